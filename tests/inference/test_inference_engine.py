"""InferenceEngine: predictions, contract validation errors, provider fallback."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mestudio.config import AppConfig
from mestudio.errors import ModelFileError
from mestudio.inference import engine as engine_module
from mestudio.inference.engine import InferenceEngine, normalise_cams
from mestudio.inference.providers import CPU, CUDA, cuda_status
from mestudio.types import Prediction


def _inputs(model, n, seed=3):
    return {name: x.numpy() for name, x in
            zip(model.input_names, model.example_inputs(n, seed=seed), strict=True)}


def test_predict_returns_predictions_with_normalised_cams(m3enet_export, classes):
    path, model = m3enet_export
    eng = InferenceEngine(path, device="cpu", threads=1)
    assert eng.classes == tuple(classes) and eng.input_kind == "keyframes"
    assert eng.synthetic and eng.provider == CPU and eng.has_cam
    assert eng.streams == ("u", "v", "strain", "onset_apex", "offset_apex")
    assert eng.preprocess_config["flow_size"] == 128 and eng.name == "m3enet_test"
    assert "SYNTHETIC" in eng.describe()
    feed = _inputs(model, 4)
    preds = eng.predict(feed)
    assert len(preds) == 4 and all(isinstance(p, Prediction) for p in preds)
    with torch.no_grad():
        probs = torch.softmax(model(*[torch.from_numpy(v) for v in feed.values()]), 1).numpy()
    for p, ref in zip(preds, probs, strict=True):
        np.testing.assert_allclose(p.probs, ref, atol=1e-5)
        assert p.label == classes[int(ref.argmax())] and p.confidence == pytest.approx(ref.max())
        assert p.cams.shape == (3, 5, 6, 6) and p.cams.dtype == np.float32
        assert p.cams.min() >= 0.0 and p.cams.max() == pytest.approx(1.0)
        peaks = p.cams.max(axis=(-2, -1))
        assert np.all((np.isclose(peaks, 1.0)) | (peaks == 0.0))  # each map scaled to [0, 1]
        assert p.synthetic and p.model_name == "m3enet_test" and p.streams == eng.streams
    one = eng.predict({k: v[0] for k, v in feed.items()})  # no batch axis
    np.testing.assert_allclose(one[0].probs, preds[0].probs, atol=1e-6)
    assert eng.predict(feed, cam=False)[0].cams is None


def test_batches_larger_than_the_chunk_size_are_split(ststnet_export, monkeypatch):
    path, model = ststnet_export
    eng = InferenceEngine(path, device="cpu")
    feed = _inputs(model, 7)
    whole = eng.run(feed)
    monkeypatch.setattr(engine_module, "MAX_BATCH", 3)
    split = eng.run(feed)
    np.testing.assert_allclose(split["cam"], whole["cam"], atol=1e-6)
    assert split["logits"].shape == (7, 3)


def test_clip_model_prediction(im3dr_export):
    path, model = im3dr_export
    eng = InferenceEngine(path, device="cpu")
    assert eng.input_kind == "clip"
    assert eng.input_shapes == {"clip": ("N", 4, 1, 48, 48), "flow_seq": ("N", 3, 2, 48, 48)}
    preds = eng.predict(_inputs(model, 2))
    assert preds[0].cams.shape == (3, 1, 6, 6)


def test_wrong_inputs_at_predict_time(ststnet_export):
    eng = InferenceEngine(ststnet_export[0], device="cpu")
    with pytest.raises(ValueError, match="missing"):
        eng.predict({"flow": np.zeros((1, 3, 48, 48), np.float32)})
    with pytest.raises(ValueError, match="expects"):
        eng.predict({"flow": np.zeros((1, 3, 32, 32), np.float32),
                     "frames": np.zeros((1, 3, 1, 32, 32), np.float32)})


def test_normalise_cams_keeps_empty_maps_empty():
    cams = np.stack([np.zeros((2, 2)), np.array([[0.0, 2.0], [1.0, 4.0]])]).astype(np.float32)
    out = normalise_cams(cams)
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1], [[0, 0.5], [0.25, 1.0]])


# -- contract validation -----------------------------------------------------------------------


def _copy(src, dst):
    shutil.copy(src, dst)  # the model only: no .sha256 companion
    return dst


def _tamper(proto):
    """Change one weight of the largest initializer."""
    init = max(proto.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(arr, init.name))


def _edit(src, dst, fn):
    proto = onnx.load(str(src))
    fn(proto)
    onnx.save(proto, str(dst))
    return dst


def test_missing_empty_corrupt_and_truncated_files(tmp_path, ststnet_export):
    with pytest.raises(ModelFileError, match="not found"):
        InferenceEngine(tmp_path / "nope.onnx")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        InferenceEngine(empty)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a protobuf \xff\xfe" * 50)
    with pytest.raises(ModelFileError, match="ONNX"):
        InferenceEngine(corrupt)
    data = ststnet_export[0].read_bytes()
    for cut in (len(data) // 3, len(data) - 100):
        truncated = tmp_path / f"trunc{cut}.onnx"
        truncated.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            InferenceEngine(truncated)


def test_foreign_onnx_model_is_refused(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "foreign", [x], [y])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelFileError, match="not a mestudio model"):
        InferenceEngine(path)


def test_missing_metadata_and_wrong_shapes_are_refused(tmp_path, ststnet_export):
    src = ststnet_export[0]

    def drop_classes(proto):
        keep = [p for p in proto.metadata_props if p.key != "mestudio.classes"]
        del proto.metadata_props[:]
        proto.metadata_props.extend(keep)

    with pytest.raises(ModelFileError, match="mestudio.classes"):
        InferenceEngine(_edit(src, tmp_path / "nometa.onnx", drop_classes))

    def claim_64px(proto):
        for p in proto.metadata_props:
            if p.key == "mestudio.input_size":
                p.value = "64"

    with pytest.raises(ModelFileError, match="input 'flow' has shape"):
        InferenceEngine(_edit(src, tmp_path / "shape.onnx", claim_64px))

    def fixed_batch(proto):
        for i in proto.graph.input:
            i.type.tensor_type.shape.dim[0].dim_value = 1

    with pytest.raises(ModelFileError, match="fixed batch"):
        InferenceEngine(_edit(src, tmp_path / "fixed.onnx", fixed_batch))


def test_tampered_weights_and_checksum_file(tmp_path, ststnet_export):
    src = ststnet_export[0]

    with pytest.raises(ModelFileError, match="recorded sha256"):
        InferenceEngine(_edit(src, tmp_path / "tampered.onnx", _tamper))
    copy = _copy(src, tmp_path / "copy.onnx")
    assert InferenceEngine(copy).classes  # no companion file: fine
    (tmp_path / "copy.onnx.sha256").write_text("0" * 64 + "  copy.onnx\n")
    with pytest.raises(ModelFileError, match="checksum file"):
        InferenceEngine(copy)


def test_a_model_is_verified_once_per_process_until_its_file_changes(tmp_path, ststnet_export,
                                                                    monkeypatch):
    """A batch worker loads the same model for every input: its hashes are checked the first
    time only; a file that changes afterwards (tampered here) is checked again and refused."""
    from mestudio.inference.onnxwire import ModelView

    calls = []
    real = ModelView.weights_sha256
    monkeypatch.setattr(ModelView, "weights_sha256",
                        lambda self: calls.append(1) or real(self))
    path = _copy(ststnet_export[0], tmp_path / "model.onnx")
    for _ in range(3):
        assert InferenceEngine(path).classes
    assert len(calls) == 1

    _edit(ststnet_export[0], path, _tamper)
    with pytest.raises(ModelFileError, match="recorded sha256"):
        InferenceEngine(path)
    assert len(calls) == 2


# -- providers ---------------------------------------------------------------------------------


@pytest.mark.skipif(cuda_status()[0], reason="a usable CUDA GPU is present")
def test_cuda_request_falls_back_to_cpu_with_a_logged_reason(ststnet_export, caplog):
    caplog.set_level(logging.INFO, logger="mestudio.inference")
    eng = InferenceEngine(ststnet_export[0], device="cuda")
    assert eng.provider == CPU
    assert "unavailable" in eng.provider_reason
    lines = [r for r in caplog.records if "runs on CPU" in r.getMessage()]
    assert len(lines) == 1 and "CUDA requested but unavailable" in lines[0].getMessage()
    assert lines[0].levelno == logging.WARNING
    assert eng.predict(_inputs(ststnet_export[1], 1))[0].probs.shape == (3,)


def test_cuda_provider_failing_to_start_falls_back_to_cpu(ststnet_export, monkeypatch, caplog):
    real_session = ort.InferenceSession

    def fake_session(data, opts, providers):
        if CUDA in providers:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real_session(data, opts, providers=providers)

    monkeypatch.setattr(engine_module, "choose_providers", lambda device: ([CUDA, CPU], "test"))
    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    caplog.set_level(logging.INFO, logger="mestudio.inference")
    eng = InferenceEngine(ststnet_export[0], device="auto")
    assert eng.provider == CPU and "CUDA provider failed to start" in eng.provider_reason


def test_engine_from_the_recognition_config(ststnet_export, tmp_path, monkeypatch):
    cfg = AppConfig().recognition
    cfg.model, cfg.threads = str(ststnet_export[0]), 2
    eng = engine_module.engine_from_config(cfg)
    assert eng.provider in (CPU, CUDA)
    assert eng.predict(_inputs(ststnet_export[1], 2))[1].cams.shape == (3, 1, 16, 16)
    monkeypatch.setenv("MESTUDIO_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr("mestudio.modelfiles.REPO_MODELS_DIR", tmp_path)
    cfg.model = ""
    if engine_module.default_model_path() is None:
        with pytest.raises(ModelFileError, match="no recognition model found"):
            engine_module.engine_from_config(cfg)
    cfg.model = str(tmp_path / "missing.onnx")
    with pytest.raises(ModelFileError, match="not found"):
        engine_module.engine_from_config(cfg)
