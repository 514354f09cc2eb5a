"""Architectures of mestudio.nets: sizes match the papers, shapes match the ONNX contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mestudio.nets import create_model, list_models
from mestudio.nets.flops import complexity, count_macs, count_params

torch.set_num_threads(1)

PAPER_PARAMS = 6.01e6  # M3ENet paper, Table 4
PAPER_MACS = 42.87e6  # reported as "FLOPs" (multiply-accumulates of conv + linear layers)


def test_registry_lists_the_architectures_and_rejects_unknown_names():
    assert set(list_models()) == {"m3enet", "im3dr_mfer", "im3dr_mfer_light",
                                  "im3dr_mfer_baseline", "ststnet", "ststnet_fg2019",
                                  "offapexnet", "alexnet", "vgg16", "resnet18", "googlenet",
                                  "efficientnet_b0", "htnet", "laenet", "ssrlts_vit",
                                  "cnncapsnet"}
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet50", 5)
    assert create_model("IM3DR-MFER", 3, width=4).arch == "im3dr_mfer"


@pytest.mark.parametrize("k", [3, 5])
def test_m3enet_has_the_published_size(k):
    model = create_model("m3enet", k)
    fig = complexity(model)
    assert abs(fig["params"] - PAPER_PARAMS) / PAPER_PARAMS < 0.01, fig
    # conv + linear MACs; the paper's 42.87 M also counts BN/ReLU/additions.
    assert abs(fig["macs"] - PAPER_MACS) / PAPER_MACS < 0.03, fig
    assert 41.5e6 < fig["macs"] < 42.5e6


def test_m3enet_colour_frames_option():
    grey = create_model("m3enet", 5)
    colour = create_model("m3enet", 5, in_channels=3)
    assert colour.input_shapes(2)["frames"] == (2, 3, 3, 48, 48)
    assert count_params(colour) - count_params(grey) == 2 * 9 * 8 + 2 * 8  # first conv + shortcut
    logits = colour(*colour.example_inputs(2))
    assert logits.shape == (2, 5)


def test_mac_counter_on_a_known_network():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = torch.zeros(4, 1, 4, 4)
    assert count_macs(net, x) == 2 * 16 * 9 + 32 * 3  # per sample, whatever the batch
    grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
    assert count_macs(grouped, torch.zeros(1, 4, 5, 5)) == 4 * 25 * 2 * 9


CASES = [
    ("m3enet", {}, "keyframes", 5, (6, 6)),
    ("ststnet", {}, "keyframes", 1, (16, 16)),
    ("offapexnet", {}, "keyframes", 2, (12, 12)),
    ("im3dr_mfer", {"width": 4, "clip_len": 6}, "clip", 1, (6, 6)),
]


@pytest.mark.parametrize(("name", "kw", "kind", "n_streams", "cam_hw"), CASES)
def test_forward_shapes_and_activations(name, kw, kind, n_streams, cam_hw):
    model = create_model(name, 4, **kw).eval()
    assert model.input_kind == kind
    assert len(model.stream_names) == n_streams
    inputs = model.example_inputs(3)
    for x, (input_name, shape) in zip(inputs, model.input_shapes(3).items(), strict=True):
        assert tuple(x.shape) == shape, input_name
    with torch.no_grad():
        logits = model(*inputs)
        logits2, acts = model.forward_with_activations(*inputs)
    assert logits.shape == (3, 4)
    torch.testing.assert_close(logits, logits2)
    assert len(acts) == n_streams
    assert all(a.dim() == 4 and a.shape[0] == 3 and tuple(a.shape[2:]) == cam_hw for a in acts)


def test_keyframe_baselines_ignore_frames():
    for name in ("ststnet", "offapexnet"):
        model = create_model(name, 3).eval()
        flow, frames = model.example_inputs(2)
        with torch.no_grad():
            torch.testing.assert_close(model(flow, frames), model(flow, torch.zeros_like(frames)))


def test_m3enet_uses_every_stream():
    model = create_model("m3enet", 3).eval()
    flow, frames = model.example_inputs(2)
    with torch.no_grad():
        base = model(flow, frames)
        for c in range(3):
            changed = flow.clone()
            changed[:, c] += 1.0
            assert not torch.allclose(model(changed, frames), base), f"flow channel {c} unused"
        for f in range(3):
            changed = frames.clone()
            changed[:, f] += 0.5
            assert not torch.allclose(model(flow, changed), base), f"frame {f} unused"


def test_im3dr_mfer_structure_and_complexity():
    from mestudio.nets.blocks import CASA, GroupedBasicBlock3d, MultiScaleContext3d

    model = create_model("im3dr_mfer_light", 5)  # width 16; im3dr_mfer is the paper's 64
    mods = list(model.modules())
    assert sum(isinstance(m, CASA) for m in mods) == 1  # only in the last residual block
    assert isinstance(model.stage4[-1].attention, CASA)
    assert any(isinstance(m, MultiScaleContext3d) for m in mods)
    grouped = [m for m in mods if isinstance(m, GroupedBasicBlock3d)]
    assert all(m.conv2.groups > 1 for m in grouped)
    fig = complexity(model)
    assert 0.5e6 < fig["params"] < 1.0e6  # width 16: 0.72 M
    assert 1.0e8 < fig["macs"] < 1.8e8  # 138 M MACs at 8 x 48 x 48
    flow_seq = torch.zeros(1, 7, 2, 48, 48)
    with pytest.raises(ValueError, match="clip"):
        model(torch.zeros(1, 8, 48, 48), flow_seq)


def test_m3enet_inference_variant_is_equivalent():
    """The export form (BN folded, parallel streams as grouped convs) computes the same."""
    torch.manual_seed(3)
    model = create_model("m3enet", 5).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        fast = model.inference_variant()
        inputs = model.example_inputs(3)
        for a, b in zip(model.features(*inputs), fast.features(*inputs), strict=True):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fast(*inputs), model(*inputs), atol=1e-5, rtol=1e-5)
    n_conv = sum(isinstance(m, nn.Conv2d) for m in fast.modules())
    assert n_conv == 24  # 48 in the training form
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
