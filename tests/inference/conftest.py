"""Small exported models shared by the inference tests (random weights, never shipped)."""

from __future__ import annotations

import pytest
import torch

from mestudio.inference.export import export_onnx
from mestudio.nets import create_model

torch.set_num_threads(1)

CLASSES = ["positive", "negative", "surprise"]
PREPROCESS = {"input_size": 48, "flow_size": 128, "color": False, "clip_len": 4,
              "flow_method": "tvl1", "tvl1": {"lambda": 0.15, "warps": 5}}


def make_model(name: str, **kw):
    """A random-weight model whose last layer is scaled up so CAMs are O(1)."""
    torch.manual_seed(0)
    model = create_model(name, len(CLASSES), **kw).eval()
    with torch.no_grad():
        model.cam_head().layers[-1].weight.mul_(50.0)
        for m in model.modules():  # trained-looking batch-norm statistics (folding is tested)
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def info(synthetic: bool = True) -> dict:
    return {"classes": CLASSES, "preprocess": PREPROCESS, "synthetic": synthetic,
            "training": {"dataset": "synthetic", "protocol": "loso"},
            "metrics": {"uf1": 0.61, "uar": 0.6}}


@pytest.fixture(scope="session")
def classes() -> list[str]:
    return list(CLASSES)


@pytest.fixture(scope="session")
def model_factory():
    """``make_model(name, **kw)``: random weights, last layer scaled so CAMs are O(1)."""
    return make_model


@pytest.fixture(scope="session")
def export_info():
    """``info(synthetic=True)``: the checkpoint-like info dict used for test exports."""
    return info


@pytest.fixture(scope="session")
def m3enet_export(tmp_path_factory):
    """``(path, model)`` of an exported random M3ENet (with CAM, fp32, card)."""
    model = make_model("m3enet")
    path = export_onnx((model, info()), tmp_path_factory.mktemp("m3enet") / "m3enet_test.onnx")
    return path, model


@pytest.fixture(scope="session")
def ststnet_export(tmp_path_factory):
    """``(path, model)`` of an exported random STSTNet (tiny file for corruption tests)."""
    model = make_model("ststnet")
    path = export_onnx((model, info()), tmp_path_factory.mktemp("ststnet") / "ststnet.onnx")
    return path, model


@pytest.fixture(scope="session")
def im3dr_export(tmp_path_factory):
    """``(path, model)`` of an exported tiny IM3DR-MFER (clip inputs, T = 4)."""
    model = make_model("im3dr_mfer", width=8, clip_len=4)
    path = export_onnx((model, info()), tmp_path_factory.mktemp("im3dr") / "im3dr.onnx")
    return path, model
