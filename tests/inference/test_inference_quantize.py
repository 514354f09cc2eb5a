"""Int8 export (``export_onnx(..., int8=True)``): valid for the engine, close to float32."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from mestudio.errors import ModelFileError
from mestudio.inference.engine import InferenceEngine
from mestudio.inference.export import export_onnx
from mestudio.inference.quantize import cam_correlation, unshare_initializers


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory, model_factory, export_info):
    model = model_factory("m3enet")
    path = export_onnx((model, export_info()), tmp_path_factory.mktemp("int8") / "m3_int8.onnx",
                       int8=True, verify=False)  # random weights: CAM corr ~0.94 < 0.95
    return path, model


def test_int8_model_is_accepted_and_agrees_with_fp32(int8_export, classes):
    path, model = int8_export
    engine = InferenceEngine(path, device="cpu", threads=1)
    assert engine.metadata["quantization"] == "int8-dynamic"
    assert engine.metadata["precision"] == "int8-dynamic"
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    assert "Conv" in ops  # convolutions stay float32
    inputs = model.example_inputs(32, seed=5)
    out = engine.run({n: x.numpy() for n, x in zip(model.input_names, inputs, strict=True)})
    assert out["logits"].dtype == np.float32 and out["cam"].dtype == np.float32
    with torch.no_grad():
        ref = model(*inputs).numpy()
    assert (out["logits"].argmax(1) == ref.argmax(1)).mean() >= 0.9
    from mestudio.nets.gradcam import gradcam_autograd
    cam_ref = gradcam_autograd(model, *inputs).numpy()
    assert cam_correlation(out["cam"], cam_ref)["mean"] >= 0.9
    preds = engine.predict({n: x[0].numpy() for n, x in zip(model.input_names, inputs,
                                                             strict=True)})
    assert preds[0].label in classes


def test_int8_check_refuses_a_poor_cam_and_leaves_no_file(tmp_path, model_factory, export_info):
    # The random-weight M3ENet's CAM correlates ~0.94 (< 0.95): the checked export refuses it.
    out = tmp_path / "m3_int8_checked.onnx"
    with pytest.raises(ModelFileError, match="Grad-CAM correlation"):
        export_onnx((model_factory("m3enet"), export_info()), out, int8=True)
    assert not out.exists()


def test_int8_hash_and_card(int8_export):
    path, _ = int8_export
    assert path.with_name(path.name + ".sha256").read_text().split()[0]
    card = json.loads(path.with_name("m3_int8.card.json").read_text())
    assert card["precision"] == "int8-dynamic"


def test_int8_and_fp16_exclude_each_other(tmp_path, model_factory, export_info):
    with pytest.raises(ValueError):
        export_onnx((model_factory("ststnet"), export_info()), tmp_path / "x.onnx",
                    int8=True, fp16=True)


def test_shared_weights_get_their_own_copy():
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(2, dtype=np.float32), "W")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node("MatMul", ["a", "W"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    proto = helper.make_model(g)
    assert unshare_initializers(proto) == 1
    assert [n.input[1] for n in proto.graph.node] == ["W", "W__share1"]


def test_cam_correlation_flags_a_broken_map():
    rng = np.random.default_rng(0)
    ref = rng.random((2, 3, 2, 6, 6))
    assert cam_correlation(ref * 2.0 + 0.1, ref)["mean"] == pytest.approx(1.0)
    assert cam_correlation(rng.random(ref.shape), ref)["mean"] < 0.5
    with pytest.raises(ModelFileError):
        from mestudio.inference.quantize import load_feature_dir
        load_feature_dir("/nonexistent-mestudio-dir", ["flow", "frames"], ["a", "b"])
