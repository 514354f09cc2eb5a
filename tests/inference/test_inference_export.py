"""ONNX export: round trip vs torch, in-graph Grad-CAM vs autograd, metadata, card, CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mestudio import cli
from mestudio.errors import ModelFileError
from mestudio.inference import contract
from mestudio.inference.card import card_paths
from mestudio.inference.export import _verify, export_onnx
from mestudio.nets.checkpoint import save_checkpoint
from mestudio.nets.gradcam import gradcam_autograd

CLASSES = ["positive", "negative", "surprise"]


@pytest.fixture()
def make_model(model_factory):
    return model_factory


@pytest.fixture()
def info(export_info):
    return export_info


def _run(path, inputs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return dict(zip([o.name for o in sess.get_outputs()],
                    sess.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)}),
                    strict=True))


@pytest.mark.parametrize("fixture", ["m3enet_export", "im3dr_export", "ststnet_export"])
def test_onnx_matches_torch_and_autograd_gradcam(fixture, request):
    path, model = request.getfixturevalue(fixture)
    inputs = model.example_inputs(5, seed=11)  # another batch size than at export
    out = _run(path, inputs)
    with torch.no_grad():
        logits = model(*inputs).numpy()
    np.testing.assert_allclose(out["logits"], logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose(out["probs"], torch.softmax(torch.from_numpy(logits), 1).numpy(),
                               atol=1e-5)
    ref = gradcam_autograd(model, *inputs).numpy()
    assert out["cam"].shape == (5, len(CLASSES), len(model.stream_names), *ref.shape[-2:])
    assert np.abs(ref).max() > 1e-2
    np.testing.assert_allclose(out["cam"], ref, atol=1e-4, rtol=1e-4)


def test_metadata_follows_the_contract(m3enet_export):
    path, model = m3enet_export
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    meta = contract.decode_metadata({p.key: p.value for p in proto.metadata_props})
    for key in contract.REQUIRED_KEYS:
        assert key in meta, key
    assert meta["architecture"] == "m3enet" and meta["input_kind"] == "keyframes"
    assert meta["classes"] == CLASSES and meta["synthetic"] is True
    assert meta["streams"] == ["u", "v", "strain", "onset_apex", "offset_apex"]
    assert meta["input_size"] == 48 and meta["color"] is False and meta["cam_size"] == [6, 6]
    assert meta["flow_method"] == "tvl1" and meta["flow_params"]["lambda"] == 0.15
    assert meta["training_data"] == "synthetic" and meta["protocol"] == "loso"
    assert meta["metrics"]["uf1"] == 0.61 and meta["preprocess"]["flow_size"] == 128
    assert meta["weights_sha256"] == contract.weights_sha256(proto)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input}
    assert dims == {"flow": ["N", 3, 48, 48], "frames": ["N", 3, 1, 48, 48]}
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
            for o in proto.graph.output}
    assert outs == {"logits": ["N", 3], "probs": ["N", 3], "cam": ["N", 3, 5, 6, 6]}


def test_sha256_and_model_card_beside_the_model(m3enet_export):
    path, _ = m3enet_export
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar = path.with_name(path.name + ".sha256").read_text().split()
    assert sidecar == [digest, path.name]
    json_card, md_card = card_paths(path)
    card = json.loads(json_card.read_text())
    assert card["file_sha256"] == digest and card["synthetic"] is True
    assert card["params"] == 6_004_163 and card["classes"] == CLASSES
    assert card["export_check"]["passed"] and card["export_check"]["cam_max_abs_diff"] <= 1e-4
    text = md_card.read_text()
    assert "NOT a validated emotion recogniser" in text and "synthetic action-unit" in text
    assert "mestudio train" in text  # says how to train a real model


def test_real_data_card_has_no_synthetic_warning(tmp_path, make_model, info):
    model = make_model("ststnet")
    path = export_onnx((model, info(synthetic=False)), tmp_path / "real.onnx", verify=False)
    text = card_paths(path)[1].read_text()
    assert "NOT a validated" not in text and "not a lie detector" in text


def test_export_without_cam_and_with_fp16_weights(tmp_path, m3enet_export, info):
    ref_path, model = m3enet_export
    no_cam = export_onnx((model, info()), tmp_path / "nocam.onnx", cam=False, verify=False,
                         card=False)
    assert [o.name for o in onnx.load(str(no_cam)).graph.output] == ["logits", "probs"]
    half = export_onnx((model, info()), tmp_path / "half.onnx", fp16=True)
    assert half.stat().st_size < 0.6 * ref_path.stat().st_size
    inputs = model.example_inputs(4, seed=5)
    full, small = _run(ref_path, inputs), _run(half, inputs)
    np.testing.assert_allclose(small["probs"], full["probs"], atol=1e-3)
    assert (small["probs"].argmax(1) == full["probs"].argmax(1)).all()
    card = json.loads(card_paths(half)[0].read_text())
    assert card["precision"] == "fp16-weights"
    assert card["export_check"]["fp16_check"]["argmax_agreement"] >= 0.95


def test_export_check_detects_a_mismatch(ststnet_export, make_model):
    path, model = ststnet_export
    other = make_model("ststnet")
    with torch.no_grad():
        other.fc.bias.add_(1.0)
    with pytest.raises(ModelFileError, match="export check failed"):
        _verify(path, model, other, with_cam=True)


def test_cli_export_writes_model_card_and_hash(tmp_path, capsys, make_model):
    model = make_model("offapexnet")
    ckpt = save_checkpoint(tmp_path / "off.pt", model, arch="offapexnet", classes=CLASSES,
                           preprocess={"input_size": 48}, synthetic=True)
    out = tmp_path / "models" / "off.onnx"
    assert cli.main(["export", str(ckpt), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "passed" in printed and "synthetic" in printed
    assert out.is_file() and (tmp_path / "models" / "off.onnx.sha256").is_file()
    assert (tmp_path / "models" / "off.card.md").is_file()
    assert cli.main(["export", str(tmp_path / "missing.pt"), "-o", str(out)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_a_failed_export_check_leaves_no_model_file(tmp_path, monkeypatch, make_model, info):
    from mestudio.inference import export as export_module

    def failing(path, *args, **kwargs):
        raise ModelFileError("export check failed for test")

    monkeypatch.setattr(export_module, "_verify", failing)
    with pytest.raises(ModelFileError, match="export check failed"):
        export_onnx((make_model("ststnet"), info()), tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []
