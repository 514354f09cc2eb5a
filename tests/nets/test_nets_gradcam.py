"""Analytic Grad-CAM equals torch-autograd Grad-CAM for every architecture."""

from __future__ import annotations

import pytest
import torch

from mestudio.nets import create_model
from mestudio.nets.gradcam import AnalyticGradCAM, gradcam_autograd

torch.set_num_threads(1)


def _scale_up_head(model):
    """Random init gives tiny CAMs; scale the last layer so the maps are O(1) and the
    comparison is meaningful."""
    with torch.no_grad():
        model.cam_head().layers[-1].weight.mul_(50.0)


@pytest.mark.parametrize(("name", "kw"), [
    ("m3enet", {}), ("offapexnet", {}), ("ststnet", {}), ("im3dr_mfer", {"width": 4, "clip_len": 4}),
])
def test_analytic_cam_equals_autograd(name, kw):
    torch.manual_seed(1)
    model = create_model(name, 4, **kw).eval()
    _scale_up_head(model)
    inputs = model.example_inputs(3, seed=2)
    with torch.no_grad():
        logits, probs, cam = AnalyticGradCAM(model)(*inputs)
    ref = gradcam_autograd(model, *inputs)
    assert cam.shape == (3, 4, len(model.stream_names), *ref.shape[-2:])
    assert ref.abs().max() > 1e-3  # not a trivially-zero comparison
    torch.testing.assert_close(cam, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits, model(*inputs))
    torch.testing.assert_close(probs.sum(1), torch.ones(3))


def test_cams_differ_between_classes_and_samples():
    torch.manual_seed(0)
    model = create_model("m3enet", 3).eval()
    _scale_up_head(model)
    with torch.no_grad():
        _, _, cam = AnalyticGradCAM(model)(*model.example_inputs(2, seed=3))
    assert (cam >= 0).all()
    assert not torch.allclose(cam[0, 0], cam[0, 1])
    assert not torch.allclose(cam[0], cam[1])


def test_wrapper_without_cam_returns_logits_and_probs_only():
    model = create_model("ststnet", 3).eval()
    out = AnalyticGradCAM(model, with_cam=False)(*model.example_inputs(2))
    assert len(out) == 2 and out[0].shape == (2, 3)
