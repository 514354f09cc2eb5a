"""The baselines of the M3ENet paper's tables, IM3DR-MFER's switches, FLOPs and EVM options."""

from __future__ import annotations

import pytest
import torch

from mestudio.nets import create_model, model_input_kind
from mestudio.nets.flops import count_params, paper_complexity
from mestudio.nets.gradcam import AnalyticGradCAM, gradcam_autograd
from mestudio.preprocess.evm import EVMSettings, magnify_clip_input

torch.set_num_threads(1)

#: name -> (parameters at K = 5, 48 px grey, allowed relative deviation)
BASELINES = {
    "alexnet": (57.0e6, 0.05), "vgg16": (107.0e6, 0.05), "resnet18": (11.17e6, 0.02),
    "googlenet": (5.6e6, 0.05), "efficientnet_b0": (4.0e6, 0.05), "htnet": (0.99e6, 0.1),
}


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_takes_m3enet_inputs(name):
    expected, tol = BASELINES[name]
    model = create_model(name, 5).eval()
    assert model_input_kind(name) == "keyframes" == model.input_kind
    assert abs(count_params(model) - expected) / expected < tol, count_params(model)
    inputs = model.example_inputs(2)
    assert [tuple(x.shape) for x in inputs] == [(2, 3, 48, 48), (2, 3, 1, 48, 48)]
    with torch.no_grad():
        logits, acts = model.forward_with_activations(*inputs)
    assert logits.shape == (2, 5)
    assert len(acts) == len(model.stream_names) == 1 and tuple(acts[0].shape[2:]) == (6, 6)
    rebuilt = create_model(name, 5, **model.config())
    assert count_params(rebuilt) == count_params(model)


def calibrated(model):
    """``model`` in eval mode with batch-norm statistics of a few random batches (a fresh
    deep network in eval mode has unit statistics and its signal vanishes)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for seed in range(3):
            model(*model.example_inputs(8, seed=seed))
    return model.eval()


@pytest.mark.parametrize("name", ["alexnet", "resnet18", "efficientnet_b0"])
def test_stacked_baselines_read_flow_and_frames(name):
    torch.manual_seed(0)  # a fresh deep network's output depends on its draw; fix it
    model = calibrated(create_model(name, 3, **({"hidden": 64} if name == "alexnet" else {})))
    flow, frames = model.example_inputs(2)
    with torch.no_grad():
        base = model(flow, frames)
        assert not torch.allclose(model(flow, frames + 0.5), base)
        assert not torch.allclose(model(flow + 0.5, frames), base)
    flow_only = create_model(name, 3, inputs="flow").eval()
    with torch.no_grad():
        torch.testing.assert_close(flow_only(flow, frames), flow_only(flow, frames * 0))
    with pytest.raises(ValueError, match="inputs"):
        create_model(name, 3, inputs="frames")


def test_htnet_ignores_frames_and_works_at_64px():
    model = create_model("htnet", 3, input_size=64).eval()
    flow, frames = model.example_inputs(2)
    with torch.no_grad():
        torch.testing.assert_close(model(flow, frames), model(flow, torch.zeros_like(frames)))
        _, acts = model.forward_with_activations(flow, frames)
    assert tuple(acts[0].shape[2:]) == (8, 8)


@pytest.mark.parametrize(("name", "kw"), [("htnet", {}), ("efficientnet_b0", {}),
                                          ("alexnet", {"hidden": 32}),
                                          ("vgg16", {"hidden": 32}),
                                          ("googlenet", {}), ("resnet18", {"width": 8})])
def test_baseline_analytic_gradcam_matches_autograd(name, kw):
    torch.manual_seed(0)
    model = calibrated(create_model(name, 3, **kw))
    with torch.no_grad():
        model.cam_head().layers[-1].weight.mul_(20.0)
    inputs = model.example_inputs(2, seed=3)
    _, _, cam = AnalyticGradCAM(model)(*inputs)
    ref = gradcam_autograd(model, *inputs)
    assert cam.shape == ref.shape == (2, 3, 1, 6, 6)
    torch.testing.assert_close(cam, ref, atol=1e-4, rtol=1e-3)


def test_small_baselines_export_and_pass_the_check(tmp_path):
    from mestudio.inference.export import export_onnx

    info = {"classes": ["a", "b", "c"], "synthetic": True,
            "preprocess": {"input_size": 48, "color": False},
            "training": {"dataset": "synthetic", "protocol": "loso"}}
    for name in ("htnet", "efficientnet_b0"):
        model = create_model(name, 3).eval()
        path = export_onnx((model, info), tmp_path / f"{name}.onnx", card=False)
        assert path.is_file()


def test_im3dr_switches_change_the_parameter_count():
    def params(name="im3dr_mfer", **kw):
        return count_params(create_model(name, 5, **kw))

    light = params("im3dr_mfer_light")
    assert 0.6e6 < light < 0.8e6                                  # width 16
    full = params()
    assert create_model("im3dr_mfer", 5).width == 64 and 10e6 < full < 13e6
    assert params(width=16) == light
    assert params("im3dr_mfer_light", mscaf=False) < light      # MSCAF off: fewer
    assert params("im3dr_mfer_light", casa=False) < light       # CASANet off: fewer
    assert params("im3dr_mfer_light", groups=1) > 2 * light      # plain convs: many more
    assert params("im3dr_mfer_light", modalities="flow") < light
    baseline = create_model("im3dr_mfer_baseline", 5, width=16)
    assert (baseline.groups, baseline.mscaf, baseline.casa) == (1, False, False)
    assert count_params(baseline) == params("im3dr_mfer_light", groups=1, mscaf=False,
                                            casa=False)
    m = create_model("im3dr_mfer_light", 3, modalities="frames", clip_len=4).eval()
    clip, flow_seq = m.example_inputs(2)
    with torch.no_grad():
        torch.testing.assert_close(m(clip, flow_seq), m(clip, flow_seq * 0))
    with pytest.raises(ValueError, match="modalities"):
        create_model("im3dr_mfer", 3, modalities="audio")


def test_paper_flops_of_m3enet():
    fig = paper_complexity(create_model("m3enet", 5))
    assert fig["params"] == 6_006_213 and fig["macs"] == 41_974_784
    assert abs(fig["paper_flops"] - 42.81e6) < 0.01e6            # paper: 42.87 M
    assert fig["flops"] == fig["paper_flops"] + fig["add"]


def test_evm_settings_and_clip_hook():
    s = EVMSettings.parse("alpha=10,low=0.4,high=3")
    assert s == EVMSettings(10.0, 0.4, 3.0, 3) and EVMSettings.parse(s.to_text()) == s
    assert EVMSettings.parse("off") is None and EVMSettings.parse(None) is None
    assert EVMSettings.parse("12").alpha == 12.0
    with pytest.raises(ValueError, match="unknown EVM"):
        EVMSettings.parse("gain=3")
    t = torch.arange(8, dtype=torch.float32)
    clip = (0.5 + 0.01 * torch.sin(2 * torch.pi * 2.0 * t / 16)).reshape(8, 1, 1, 1)
    clip = clip.expand(8, 1, 16, 16).contiguous()
    out = magnify_clip_input(clip, 16.0, "alpha=10,low=1,high=4")
    assert out.shape == clip.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert (out - 0.5).abs().max() > 5 * (clip - 0.5).abs().max()
    assert magnify_clip_input(clip, 16.0, "off") is clip
