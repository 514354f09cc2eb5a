"""Our torch Dual TV-L1 against OpenCV's DualTVL1 on real faces moved by known fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mestudio.flow import (
    FAST_PARAMS,
    OPENCV_PARAMS,
    TVL1Params,
    create_opencv_tvl1,
    endpoint_error,
    median_blur,
    opencv_tvl1,
    pyramid_sizes,
    tvl1_flow,
)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float()[:, None]


def _np(flow: torch.Tensor) -> np.ndarray:
    return flow.permute(0, 2, 3, 1).cpu().numpy()


def _opencv(prev, nxt, **params) -> np.ndarray:
    tv = create_opencv_tvl1(**params)
    return np.stack([tv.calc(a, b, None) for a, b in zip(prev, nxt, strict=True)])


def test_default_parameters_are_as_accurate_as_opencv(face_pairs):
    """Issue target: EPE within 10 % of OpenCV's on the same pairs (OpenCV's defaults)."""
    prev, nxt, truth = face_pairs(48, 4, seed=1)
    epe_cv = endpoint_error(_opencv(prev, nxt), truth)
    epe_ours = endpoint_error(_np(tvl1_flow(_t(prev), _t(nxt))), truth)
    zero = endpoint_error(np.zeros_like(truth), truth)
    assert epe_cv < 0.7 * zero  # the pairs are a real test: flow helps a lot
    assert epe_ours <= 1.10 * epe_cv, (epe_ours, epe_cv)


@pytest.mark.parametrize("size,n", [(64, 8), (128, 4)])
def test_fast_parameters_are_as_accurate_as_opencv_defaults(face_pairs, size, n):
    """FAST_PARAMS (~30 steps per level instead of up to 1500) against OpenCV's defaults."""
    prev, nxt, truth = face_pairs(size, n, seed=2)
    epe_cv = endpoint_error(_opencv(prev, nxt), truth)
    epe_fast = endpoint_error(_np(tvl1_flow(_t(prev), _t(nxt), FAST_PARAMS)), truth)
    assert epe_fast <= 1.10 * epe_cv, (epe_fast, epe_cv)


def test_same_algorithm_as_opencv_step_for_step(face_pairs):
    """With fixed iteration counts (epsilon 0) both compute the same flow: pyramid, warps,
    bicubic warping, median filter and primal-dual steps match."""
    prev, nxt, _ = face_pairs(48, 2, seed=3)
    params = dict(nscales=2, warps=2, inner_iterations=10, outer_iterations=2, epsilon=0.0)
    ours = _np(tvl1_flow(_t(prev), _t(nxt), **params))
    ref = _opencv(prev, nxt, **params)
    assert np.abs(ours - ref).mean() < 1e-3
    assert np.abs(ours - ref).max() < 0.02


def test_batch_gives_the_same_flows_as_single_pairs(face_pairs):
    prev, nxt, _ = face_pairs(48, 3, seed=4)
    params = OPENCV_PARAMS.replace(nscales=3)  # early exit per pair, as OpenCV
    batch = tvl1_flow(_t(prev), _t(nxt), params)
    for i in range(3):
        single = tvl1_flow(_t(prev[i : i + 1]), _t(nxt[i : i + 1]), params)
        torch.testing.assert_close(batch[i : i + 1], single, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        tvl1_flow(_t(prev), _t(nxt), params, chunk=1), batch, atol=1e-5, rtol=0
    )


def test_rare_convergence_checks_change_little(face_pairs):
    """The GPU setting (test every 10 steps) against the CPU one (every step)."""
    prev, nxt, truth = face_pairs(48, 2, seed=5)
    params = OPENCV_PARAMS.replace(nscales=3)
    every = _np(tvl1_flow(_t(prev), _t(nxt), params, check_every=1))
    rare = _np(tvl1_flow(_t(prev), _t(nxt), params, check_every=10))
    assert abs(endpoint_error(rare, truth) - endpoint_error(every, truth)) < 0.01


def test_translation_is_recovered_in_pixels(faces):
    from mestudio.flow import SmoothField, synthetic_pair

    img, box = faces[0]
    shift = np.array([1.25, -0.5])
    field = SmoothField(64, np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2)), shift)
    prev, nxt, _ = synthetic_pair(img, box, 64, field, noise=0.0)
    flow = tvl1_flow(_t(prev[None]), _t(nxt[None]), FAST_PARAMS)[0]
    inner = flow[:, 8:-8, 8:-8].reshape(2, -1).median(dim=1).values
    assert abs(float(inner[0]) - 1.25) < 0.08 and abs(float(inner[1]) + 0.5) < 0.08


def test_no_motion_gives_no_flow(face_pairs):
    prev, _, _ = face_pairs(48, 2, seed=6)
    flow = tvl1_flow(_t(prev), _t(prev))
    assert flow.abs().max() < 5e-3  # 1/200 px: float rounding of the warp positions


def test_shapes_dtypes_and_inputs(face_pairs):
    prev, nxt, _ = face_pairs(48, 2, seed=7)
    a = torch.from_numpy(prev)  # (B, H, W) uint8 is accepted
    b = torch.from_numpy(nxt)
    out = tvl1_flow(a, b, FAST_PARAMS)
    assert out.shape == (2, 2, 48, 48) and out.dtype == torch.float32
    torch.testing.assert_close(out, tvl1_flow(_t(prev), _t(nxt), FAST_PARAMS))
    assert tvl1_flow(a[:0], b[:0]).shape == (0, 2, 48, 48)


@pytest.mark.parametrize(
    "shape_a,shape_b,match",
    [
        ((2, 2, 32, 32), (2, 2, 32, 32), r"\(B, 1, H, W\)"),
        ((32, 32), (32, 32), r"\(B, 1, H, W\)"),
        ((2, 1, 32, 32), (2, 1, 32, 30), "same shape"),
        ((1, 1, 3, 3), (1, 1, 3, 3), "at least 4x4"),
    ],
)
def test_bad_inputs_raise_value_error(shape_a, shape_b, match):
    with pytest.raises(ValueError, match=match):
        tvl1_flow(torch.zeros(shape_a), torch.zeros(shape_b))


def test_parameters_validate_and_round_trip():
    p = FAST_PARAMS.replace(**{"lambda": 0.2})
    assert p.lambda_ == 0.2
    assert TVL1Params.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="median_filtering"):
        TVL1Params(median_filtering=7)
    with pytest.raises(ValueError, match="scale_step"):
        OPENCV_PARAMS.replace(scale_step=1.2)
    with pytest.raises(ValueError, match="unknown"):
        tvl1_flow(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), warp=3)


def test_pyramid_follows_opencv_sizes():
    assert pyramid_sizes(48, 48, OPENCV_PARAMS) == [
        (48, 48),
        (38, 38),
        (30, 30),
        (24, 24),
        (19, 19),
    ]
    assert pyramid_sizes(20, 40, OPENCV_PARAMS) == [(20, 40), (16, 32)]


@pytest.mark.parametrize("ksize", [3, 5])
def test_median_filter_is_exact_with_replicated_border(ksize):
    g = torch.Generator().manual_seed(ksize)
    x = torch.randn(2, 2, 11, 13, generator=g)
    r = ksize // 2
    padded = F.pad(x, (r, r, r, r), mode="replicate")
    windows = padded.unfold(2, ksize, 1).unfold(3, ksize, 1).reshape(2, 2, 11, 13, -1)
    torch.testing.assert_close(median_blur(x, ksize), windows.median(dim=-1).values)


def test_opencv_reference_wrapper(face_pairs):
    prev, nxt, _ = face_pairs(48, 1, seed=8)
    flow = opencv_tvl1(prev[0], nxt[0], warps=2, nscales=2)
    assert flow.shape == (48, 48, 2) and flow.dtype == np.float32
    with pytest.raises(ValueError, match="same shape"):
        opencv_tvl1(prev[0], nxt[0][:40])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(face_pairs):
    prev, nxt, truth = face_pairs(64, 4, seed=9)
    cpu = tvl1_flow(_t(prev), _t(nxt), FAST_PARAMS)
    gpu = tvl1_flow(_t(prev).cuda(), _t(nxt).cuda(), FAST_PARAMS)
    assert gpu.device.type == "cuda"
    assert abs(endpoint_error(_np(gpu), truth) - endpoint_error(_np(cpu), truth)) < 0.005


def test_thread_setting_is_restored(face_pairs):
    prev, nxt, _ = face_pairs(48, 1, seed=10)
    torch.set_num_threads(2)
    tvl1_flow(_t(prev), _t(nxt), FAST_PARAMS)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
