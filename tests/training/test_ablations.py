"""Ablations (issue 14): no-flow / no-rgb build M3ENet without those streams;
shuffled-rgb shuffles spatial blocks; permuted-rgb permutes time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mestudio.nets import create_model
from mestudio.training.config import TrainConfig
from mestudio.training.features import FeatureSet, FeatureSpec
from mestudio.training.runner import (
    SHUFFLE_GRID,
    apply_ablation,
    block_permutation,
    build_model,
    input_ablation,
    model_info,
    run_protocol,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")
S = 48


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_m3enet_without_streams_has_fewer_streams_and_parameters():
    full = create_model("m3enet", 5)
    no_flow = create_model("m3enet", 5, without=("flow",))
    no_rgb = create_model("m3enet", 5, without=("rgb",))
    assert _count(full) == 6_006_213
    assert (len(full.stream_names), len(no_flow.stream_names), len(no_rgb.stream_names)) == \
        (5, 2, 3)
    assert no_flow.input_names == ("frames",) and no_rgb.input_names == ("flow",)
    # exactly the removed stacks, their embeddings and their head weights are gone
    flow_part = sum(_count(m) for m in (full.flow_u, full.flow_v, full.flow_strain,
                                         *list(full.embed)[:3])) + 3 * 256 * 1024
    rgb_part = sum(_count(m) for m in (full.frame_stack, full.pair_onset_apex,
                                        full.pair_offset_apex, *list(full.embed)[3:])) \
        + 2 * 256 * 1024
    assert _count(no_flow) == 6_006_213 - flow_part == 3_237_405
    assert _count(no_rgb) == 6_006_213 - rgb_part == 3_824_557
    assert not hasattr(no_flow, "flow_u") and not hasattr(no_rgb, "frame_stack")
    # a removed stream's input is not taken at all
    flow, frames = full.example_inputs(2)
    assert no_flow(frames).shape == (2, 5) and no_rgb(flow).shape == (2, 5)
    with pytest.raises(ValueError, match="takes 1 input"):
        no_flow(flow, frames)
    # the checkpoint config rebuilds the same network
    again = create_model("m3enet", 5, **no_flow.config())
    assert again.input_names == ("frames",) and _count(again) == _count(no_flow)
    with pytest.raises(ValueError):
        create_model("m3enet", 5, without=("flow", "rgb"))


def _features(nan_flow: bool = False) -> FeatureSet:
    rng = np.random.default_rng(0)
    ids, labels, subjects = [], [], []
    for s in range(3):
        for c in ("a", "b"):
            for r in range(2):
                ids.append(f"d/S{s}/{c}{r}")
                labels.append(c)
                subjects.append(f"d/S{s}")
    n = len(ids)
    flow = rng.normal(size=(n, 3, S, S)).astype(np.float32)
    if nan_flow:
        flow[:] = np.nan
    frames = rng.random((n, 3, 1, S, S)).astype(np.float32)
    return FeatureSet(ids, labels, subjects, ["d"] * n, {"flow": flow, "frames": frames},
                      FeatureSpec())


def test_runner_builds_the_network_without_the_removed_streams(tmp_path):
    feats = _features(nan_flow=True)          # any use of the flow would give NaN
    cfg = TrainConfig(epochs=1, batch_size=4, aug_expansion=1, final_model=False,
                      ablation="no-flow")
    model = build_model(cfg, 2, feats)
    assert model.removed_streams == ("flow",) and input_ablation("no-flow", model) == "none"
    info = model_info(model, "no-flow")
    assert info["parameters"] == _count(model) and info["removed_streams"] == ["flow"]
    assert info["streams"] == ["onset_apex", "offset_apex"] and "note" not in info
    res = run_protocol(feats, ("a", "b"), cfg, out_dir=tmp_path, progress=False)
    assert res.model_info["parameters"] == _count(model)
    assert np.isfinite(res.pooled[1].probs).all()   # the NaN flow was never read


def test_a_network_that_cannot_remove_streams_gets_zero_inputs():
    feats = _features()
    model = build_model(TrainConfig(model="ststnet", ablation="no-rgb"), 2, feats)
    assert input_ablation("no-rgb", model) == "no-rgb"
    assert "zeros" in model_info(model, "no-rgb")["note"]


def test_shuffled_rgb_moves_spatial_blocks_and_permuted_rgb_permutes_time():
    g = torch.Generator().manual_seed(0)
    x = {"flow": torch.randn(2, 3, S, S), "frames": torch.rand(2, 3, 1, S, S)}
    out = apply_ablation(x, "shuffled-rgb")["frames"]
    assert torch.equal(apply_ablation(x, "shuffled-rgb")["frames"], out)   # fixed seed
    assert torch.equal(apply_ablation(x, "shuffled-rgb")["flow"], x["flow"])
    b = S // SHUFFLE_GRID
    perm = block_permutation()
    assert perm != list(range(SHUFFLE_GRID ** 2)) and sorted(perm) == list(range(16))
    moved = 0
    for i, src in enumerate(perm):               # every block intact, at its new place
        r, c = divmod(i, SHUFFLE_GRID)
        sr, sc = divmod(src, SHUFFLE_GRID)
        assert torch.equal(out[..., r * b:(r + 1) * b, c * b:(c + 1) * b],
                           x["frames"][..., sr * b:(sr + 1) * b, sc * b:(sc + 1) * b])
        moved += i != src
    assert moved > 0
    # content preserved per frame, positions changed, time order kept
    flat_in = x["frames"].flatten(-2).sort(-1).values
    assert torch.equal(out.flatten(-2).sort(-1).values, flat_in)
    assert not torch.equal(out, x["frames"])
    # permuted-rgb: whole frames change places within a sample, each frame unchanged
    p = apply_ablation(x, "permuted-rgb", g)["frames"]
    assert not torch.equal(p, x["frames"])
    for n in range(2):
        for t in range(3):
            assert any(torch.equal(p[n, t], x["frames"][n, u]) for u in range(3))
