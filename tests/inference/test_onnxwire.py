"""The engine reads models without ``import onnx``: the wire reader must agree with onnx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mestudio.inference import contract
from mestudio.inference.onnxwire import read_model

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "m3enet_synthetic.onnx"


def _as_onnx_sees_it(proto: onnx.ModelProto) -> tuple[dict, dict, dict]:
    def dims(v):
        return tuple(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                     for d in v.type.tensor_type.shape.dim)
    return ({i.name: dims(i) for i in proto.graph.input},
            {o.name: dims(o) for o in proto.graph.output},
            {p.key: p.value for p in proto.metadata_props})


@pytest.mark.parametrize("which", ["shipped", "m3enet", "ststnet"])
def test_reader_agrees_with_onnx(which, m3enet_export, ststnet_export):
    path = {"shipped": SHIPPED, "m3enet": m3enet_export[0], "ststnet": ststnet_export[0]}[which]
    data = path.read_bytes()
    proto = onnx.load_model_from_string(data)
    view = read_model(data)
    inputs, outputs, meta = _as_onnx_sees_it(proto)
    assert view.inputs == inputs and view.outputs == outputs and view.metadata == meta
    assert view.n_nodes == len(proto.graph.node)
    assert view.weights_sha256() == contract.weights_sha256(proto) == meta[
        "mestudio.weights_sha256"]


def test_a_changed_weight_changes_the_hash(ststnet_export):
    proto = onnx.load_model_from_string(ststnet_export[0].read_bytes())
    before = read_model(proto.SerializeToString()).weights_sha256()
    init = proto.graph.initializer[0]
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    assert read_model(proto.SerializeToString()).weights_sha256() != before


def test_weights_in_typed_fields_hash_as_onnx_does():
    """float_data and int32/int64_data (quantised models' scales and zero points) are decoded
    as onnx decodes them; double_data is left to onnx (None, never a wrong hash)."""
    floats = helper.make_tensor("w", TensorProto.FLOAT, [3], [1.0, -2.5, 3.25])
    doubles = helper.make_tensor("d", TensorProto.DOUBLE, [2], [7.0, -1.0])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    typed = [helper.make_tensor(f"t{code}", code, [3], values) for code, values in [
        (TensorProto.INT8, [-128, 0, 127]), (TensorProto.UINT8, [0, 7, 255]),
        (TensorProto.INT64, [7, -1, 1 << 40]), (TensorProto.INT32, [-5, 6, -(1 << 31)]),
        (TensorProto.BOOL, [True, False, True])]]
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y],
                              initializer=[floats, *typed])
    model = helper.make_model(graph)
    assert read_model(model.SerializeToString()).weights_sha256() == \
        contract.weights_sha256(model)
    graph.initializer.append(doubles)
    assert read_model(helper.make_model(graph).SerializeToString()).weights_sha256() is None
    assert np.asarray(numpy_helper.to_array(floats)).tobytes() == \
        read_model(model.SerializeToString()).initializers[0].data


@pytest.mark.parametrize("damage", ["truncated", "garbage", "bad-length"])
def test_malformed_data_raises_valueerror(damage, ststnet_export):
    data = ststnet_export[0].read_bytes()
    bad = {"truncated": data[: len(data) // 2],
           "garbage": b"\xff\xfe not protobuf" * 20,
           "bad-length": b"\x3a\xff\xff\x03" + data[:50]}[damage]
    with pytest.raises(ValueError):
        read_model(bad)


def test_loading_a_model_does_not_import_onnx_or_torch():
    """The start-up cost this reader exists for: a model loads with neither import."""
    code = ("import sys\nfrom mestudio.inference.engine import InferenceEngine\n"
            f"e = InferenceEngine({str(SHIPPED)!r})\n"
            "from mestudio.engine.recognition import preprocess_inputs_fn\n"
            "preprocess_inputs_fn(e.input_kind, e.preprocess_config)\n"
            "print(sorted(m for m in ('onnx', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip().splitlines()[-1]
    assert out == "[]"
