"""Augmentation acts consistently on every stream of a sample."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mestudio.training.augment import AugmentParams, apply_transform, augment_batch

S = 48


def _blob(cx: float, cy: float, sigma: float = 2.5) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(S, dtype=torch.float32),
                          torch.arange(S, dtype=torch.float32), indexing="ij")
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))


def _centroid(img: torch.Tensor) -> np.ndarray:
    y, x = torch.meshgrid(torch.arange(S, dtype=torch.float32),
                          torch.arange(S, dtype=torch.float32), indexing="ij")
    w = img.clamp(min=0)
    return np.array([float((w * x).sum() / w.sum()), float((w * y).sum() / w.sum())])


def _sample(d=(3.0, 0.0), at=(20.0, 26.0)):
    """A blob that moves by ``d`` px from onset to apex, and the flow describing it."""
    onset, apex = _blob(*at), _blob(at[0] + d[0], at[1] + d[1])
    frames = torch.stack([onset, apex, onset])[None, :, None]          # [1, 3, 1, S, S]
    flow = torch.zeros(1, 3, S, S)
    flow[0, 0], flow[0, 1] = d[0], d[1]
    flow[0, 2] = _blob(*at, sigma=6)                                     # a "strain" map
    return {"flow": flow, "frames": frames}


def test_flip_mirrors_every_stream_and_negates_u():
    x = _sample(d=(3.0, 1.0))
    x["flow"][0, 0] += torch.linspace(0, 1, S)   # make u vary across the image
    out = apply_transform(x, torch.tensor([True]), torch.zeros(1))
    assert torch.allclose(out["flow"][0, 0], -x["flow"][0, 0].flip(-1))   # u mirrored AND negated
    assert torch.allclose(out["flow"][0, 1], x["flow"][0, 1].flip(-1))    # v only mirrored
    assert torch.allclose(out["flow"][0, 2], x["flow"][0, 2].flip(-1))    # strain mirrored
    assert torch.allclose(out["frames"], x["frames"].flip(-1))            # every key frame
    # the mirrored motion is what the mirrored frames show: blob moves left now
    motion = _centroid(out["frames"][0, 1, 0]) - _centroid(out["frames"][0, 0, 0])
    assert motion == pytest.approx([-3.0, 1.0], abs=0.05)
    assert float(out["flow"][0, 0, 26, 20 + 1]) < 0


def test_clip_streams_flip_together():
    clip = torch.rand(2, 4, 1, S, S)
    flow_seq = torch.rand(2, 3, 2, S, S)
    out = apply_transform({"clip": clip, "flow_seq": flow_seq}, torch.tensor([True, False]),
                          torch.zeros(2))
    assert torch.allclose(out["clip"][0], clip[0].flip(-1))
    assert torch.allclose(out["flow_seq"][0, :, 0], -flow_seq[0, :, 0].flip(-1))
    assert torch.allclose(out["flow_seq"][0, :, 1], flow_seq[0, :, 1].flip(-1))
    assert torch.equal(out["clip"][1], clip[1]) and torch.equal(out["flow_seq"][1], flow_seq[1])


@pytest.mark.parametrize("degrees, flip", [(90.0, False), (25.0, False), (-12.0, True)])
def test_rotation_rotates_flow_vectors_with_the_maps(degrees, flip):
    x = _sample(d=(3.0, 0.0), at=(24.0, 28.0))
    out = apply_transform(x, torch.tensor([flip]), torch.tensor([math.radians(degrees)]))
    # what the transformed frames show ...
    moved = _centroid(out["frames"][0, 1, 0]) - _centroid(out["frames"][0, 0, 0])
    # ... is what the transformed flow says at the blob
    cx, cy = (int(round(v)) for v in _centroid(out["frames"][0, 0, 0]))
    vec = np.array([float(out["flow"][0, 0, cy, cx]), float(out["flow"][0, 1, cy, cx])])
    assert vec == pytest.approx(moved, abs=0.15)
    assert np.linalg.norm(vec) == pytest.approx(3.0, abs=0.05)          # a rotation keeps length
    if degrees == 90.0:
        assert vec == pytest.approx([0.0, 3.0], abs=0.05)               # right -> down (y down)


def test_noise_and_mask():
    x = {"flow": torch.randn(6, 3, S, S), "frames": torch.rand(6, 3, 1, S, S)}
    mask = torch.tensor([True, False] * 3)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, AugmentParams(flip=1.0, rotation_deg=0.0, noise=0.1), g, mask=mask)
    for name in x:
        assert torch.equal(out[name][~mask], x[name][~mask])            # un-augmented copies
    residual = out["frames"][mask] - x["frames"][mask].flip(-1)
    assert 0.02 < float(residual.std()) / float(x["frames"].std()) < 0.2   # ~10 % noise
