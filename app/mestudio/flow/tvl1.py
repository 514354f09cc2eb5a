"""Dual TV-L1 optical flow in torch, batched over image pairs, on any device.

The algorithm is the one of Zach, Pock and Bischof (2007) as OpenCV's
``cv2.optflow.DualTVL1OpticalFlow`` computes it (opencv_contrib ``optflow/src/tvl1flow.cpp``,
after Sánchez, Meinhardt-Llopis and Facciolo's IPOL description), step for step:

* an image pyramid of ``nscales`` levels, each level resized from the previous one by
  ``scale_step`` with bilinear interpolation (levels under 16 px are dropped);
* coarse to fine; the flow is resized (bilinear) to the next finer level and multiplied by
  ``1 / scale_step``;
* at every level ``warps`` times: warp ``next`` and its centred-difference gradient with the
  current flow (bicubic, zero outside the image), linearise the data term
  (``rho = I1w + ∇I1w · (u − u0) − I0``);
* then up to ``outer_iterations`` × ``inner_iterations`` primal-dual steps: median filtering of
  the flow (``median_filtering`` × ``median_filtering``, replicated border) at the start of
  every outer iteration, thresholding step for ``v`` (``lambda · theta``), ``u = v + theta ·
  div p``, projection step of the dual ``p`` (step ``tau / theta``) with forward differences;
  a level/warp stops early once ``Σ |u_k − u_{k−1}|² ≤ epsilon² · H · W`` (OpenCV's test);
* ``gamma > 0`` adds OpenCV's illumination variable ``u3``.

Batching: every pair of a batch runs the same number of steps as it would alone (the early-exit
test is applied per pair; a converged pair is taken out of the working set until the next warp),
so a batch gives the same flows as single calls. On a GPU the test is done every
``check_every`` steps (default 10) to avoid a host synchronisation per step; ``epsilon=0``
gives fixed iteration counts without any test.

Differences to OpenCV that remain (all below 0.01 px on face images, see the tests): OpenCV's
``remap`` rounds warp positions to 1/32 pixel, ours does not; float sums differ in order.

Units: pixels; ``flow[:, 0] = u`` (horizontal, to the right), ``flow[:, 1] = v`` (vertical,
down), such that ``next(x + u, y + v) ≈ prev(x, y)``. Intensities are grey levels in 0..255
(the scale ``lambda`` is tuned for, as in OpenCV with ``uint8`` images).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mestudio.flow.tvl1_params import FAST_PARAMS, OPENCV_PARAMS, TVL1Params

log = logging.getLogger(__name__)

Tensor = torch.Tensor

__all__ = ["FAST_PARAMS", "OPENCV_PARAMS", "TVL1Params", "median_blur", "pyramid_sizes",
           "tvl1_flow"]


# --------------------------------------------------------------------------------------------
# small operators (all batched, [N, C, H, W])


def _centered_gradient(x: Tensor) -> Tensor:
    """Centred differences with OpenCV's borders (one-sided half differences at the edges,
    i.e. replicate padding). ``[N,1,H,W] -> [N,2,H,W]`` = (d/dx, d/dy)."""
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (xp[:, :, 1:-1, 2:] - xp[:, :, 1:-1, :-2])
    dy = 0.5 * (xp[:, :, 2:, 1:-1] - xp[:, :, :-2, 1:-1])
    return torch.cat([dx, dy], dim=1)


def _resize_scaled(x: Tensor, size: tuple[int, int], scale: float) -> Tensor:
    """``cv::resize(src, dst, Size(), scale, scale, INTER_LINEAR)`` for the pyramid: the source
    position of destination pixel ``i`` is ``(i + 0.5) / scale - 0.5`` (edges replicated)."""
    n = x.shape[0]
    h_in, w_in = x.shape[-2:]
    h, w = size
    dev, dt = x.device, x.dtype
    sx = (torch.arange(w, device=dev, dtype=dt) + 0.5) / scale - 0.5
    sy = (torch.arange(h, device=dev, dtype=dt) + 0.5) / scale - 0.5
    gx = (sx * (2.0 / max(w_in - 1, 1)) - 1.0).view(1, w).expand(h, w)
    gy = (sy * (2.0 / max(h_in - 1, 1)) - 1.0).view(h, 1).expand(h, w)
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(0).expand(n, h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _minmax(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    return torch.minimum(a, b), torch.maximum(a, b)


def _sort_columns(rows: list[Tensor]) -> list[Tensor]:
    """Sort, element-wise, the list of 3 or 5 tensors (a sorting network)."""
    v = list(rows)
    net = _SORT3 if len(v) == 3 else _SORT5
    for a, b in net:
        v[a], v[b] = _minmax(v[a], v[b])
    return v


# optimal sorting networks for 3 and 5 elements
_SORT3 = ((0, 1), (1, 2), (0, 1))
_SORT5 = ((0, 1), (3, 4), (2, 4), (2, 3), (0, 3), (0, 2), (1, 4), (1, 3), (1, 2))

# Median of 25 values given as 5 sorted columns (value c*5 + r = rank r of column c):
# Batcher's odd-even merge sort for 32 inputs restricted to 25, with every comparator removed
# that never exchanges on column-sorted input or does not influence rank 12 (checked
# exhaustively on all 6^5 column-sorted 0-1 inputs, which by the 0-1 principle proves it for
# all inputs). (a, b, keep_min_at_a, keep_max_at_b).
_MEDIAN25_AFTER_COLUMN_SORT = (
    (4, 5, 1, 1), (14, 15, 1, 1), (5, 7, 1, 1), (8, 10, 1, 1), (9, 11, 1, 1), (12, 14, 1, 1),
    (5, 6, 1, 1), (9, 10, 1, 1), (13, 14, 1, 1), (0, 4, 1, 1), (1, 5, 1, 1), (2, 6, 1, 1),
    (8, 12, 1, 1), (10, 14, 1, 1), (11, 15, 1, 1), (16, 20, 1, 1), (17, 21, 1, 1),
    (18, 22, 1, 1), (19, 23, 1, 1), (2, 4, 1, 1), (3, 5, 1, 1), (10, 12, 1, 1), (11, 13, 1, 1),
    (18, 20, 1, 1), (19, 21, 1, 1), (1, 2, 1, 1), (3, 4, 1, 1), (5, 6, 1, 1), (9, 10, 1, 1),
    (11, 12, 1, 1), (13, 14, 1, 1), (17, 18, 1, 1), (19, 20, 1, 1), (21, 22, 1, 1),
    (0, 8, 1, 1), (1, 9, 1, 1), (2, 10, 1, 1), (3, 11, 1, 1), (4, 12, 1, 1), (5, 13, 1, 1),
    (6, 14, 1, 1), (7, 15, 1, 0), (4, 8, 1, 1), (5, 9, 1, 1), (6, 10, 1, 1), (7, 11, 1, 1),
    (20, 24, 1, 1), (2, 4, 1, 1), (3, 5, 1, 1), (6, 8, 1, 1), (7, 9, 1, 1), (10, 12, 1, 1),
    (11, 13, 1, 1), (22, 24, 1, 1), (1, 2, 1, 1), (3, 4, 1, 1), (5, 6, 1, 1), (7, 8, 1, 1),
    (9, 10, 1, 1), (11, 12, 1, 1), (13, 14, 1, 0), (21, 22, 1, 1), (23, 24, 1, 1),
    (0, 16, 0, 1), (1, 17, 0, 1), (2, 18, 0, 1), (3, 19, 0, 1), (4, 20, 0, 1), (5, 21, 0, 1),
    (6, 22, 1, 0), (7, 23, 1, 0), (8, 24, 1, 0), (8, 16, 0, 1), (9, 17, 0, 1), (10, 18, 1, 0),
    (11, 19, 1, 0), (12, 20, 1, 0), (13, 21, 1, 0), (6, 10, 0, 1), (7, 11, 0, 1),
    (12, 16, 1, 0), (13, 17, 1, 0), (10, 12, 0, 1), (11, 13, 1, 0), (11, 12, 0, 1),
)  # fmt: skip


def median_blur(x: Tensor, ksize: int) -> Tensor:
    """Exact ``ksize`` × ``ksize`` median of every channel, replicated border (as
    ``cv2.medianBlur`` on float images). ``ksize`` 1 (identity), 3 or 5.

    Input ``[N, C, H, W]``; output the same shape. Implemented with min/max networks on
    shifted views (the column sorts are shared by neighbouring windows), no Python loop over
    pixels.
    """
    if ksize <= 1:
        return x
    if ksize not in (3, 5):
        raise ValueError(f"median_blur: ksize must be 1, 3 or 5, got {ksize}")
    r = ksize // 2
    h, w = x.shape[-2:]
    xp = F.pad(x, (r, r, r, r), mode="replicate")
    cols = _sort_columns([xp[..., k : k + h, :] for k in range(ksize)])  # each [.., h, w+2r]
    if ksize == 3:
        lo = torch.maximum(
            torch.maximum(cols[0][..., 0:w], cols[0][..., 1 : w + 1]), cols[0][..., 2:]
        )
        hi = torch.minimum(
            torch.minimum(cols[2][..., 0:w], cols[2][..., 1 : w + 1]), cols[2][..., 2:]
        )
        mid = _median3(cols[1][..., 0:w], cols[1][..., 1 : w + 1], cols[1][..., 2:])
        return _median3(lo, mid, hi)
    v: list[Tensor | None] = [cols[i % 5][..., i // 5 : i // 5 + w] for i in range(25)]
    for a, b, keep_lo, keep_hi in _MEDIAN25_AFTER_COLUMN_SORT:
        va, vb = v[a], v[b]
        assert va is not None and vb is not None
        v[a] = torch.minimum(va, vb) if keep_lo else None
        v[b] = torch.maximum(va, vb) if keep_hi else None
    out = v[12]
    assert out is not None
    return out


def _median3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


# --------------------------------------------------------------------------------------------
# the solver


def _as_batch(x: Any, name: str) -> Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() == 3:
        t = t.unsqueeze(1)
    if t.dim() != 4 or t.shape[1] != 1:
        raise ValueError(
            f"tvl1_flow: expected {name} of shape (B, 1, H, W) or (B, H, W), got {tuple(t.shape)}"
        )
    if t.shape[-1] < 4 or t.shape[-2] < 4:
        raise ValueError(
            f"tvl1_flow: {name} must be at least 4x4 pixels, got {tuple(t.shape[-2:])}"
        )
    if not torch.is_floating_point(t):
        t = t.float()
    return t.to(torch.float32)


def default_chunk(height: int, width: int, device: torch.device) -> int:
    """Pairs solved together: on a CPU about 100k pixels per chunk, so the working set
    (~25 floats per pixel) stays in the caches while every operation is still large enough to
    hide its dispatch cost (measured best at 48 and 128 px); on a GPU everything at once."""
    if device.type != "cpu":
        return 1 << 30
    return max(1, 98304 // max(1, height * width))


def tvl1_flow(
    prev: Tensor,
    next: Tensor,
    params: TVL1Params | None = None,
    *,
    check_every: int | None = None,
    chunk: int | None = None,
    threads: int | None = 1,
    **overrides: Any,
) -> Tensor:
    """Dual TV-L1 optical flow from ``prev`` to ``next`` for a batch of image pairs.

    Args:
        prev, next: ``(B, 1, H, W)`` or ``(B, H, W)`` grey images, grey levels 0..255
            (``float32``, or ``uint8`` converted); same shape, same device. Images in 0..1
            must be multiplied by 255 first (``lambda_`` assumes 0..255, as in OpenCV).
        params: :class:`TVL1Params` (default :data:`OPENCV_PARAMS`, OpenCV's defaults);
            ``**overrides`` change single fields, e.g. ``warps=3``.
        check_every: test the stopping criterion every this many steps (default 1 on the
            CPU, 10 on other devices; ignored when ``epsilon == 0``).
        chunk: pairs solved together (default :func:`default_chunk`); results do not depend
            on it.
        threads: torch's intra-op CPU threads while this call runs (restored afterwards;
            default 1). The operations here are small (a chunk fits in the caches), so one
            thread is as fast, and it avoids thread wake-up delays that make multi-threaded
            runs 10–50× slower on a busy machine (measured). ``None`` keeps torch's setting.
            Ignored on other devices.

    Returns:
        ``(B, 2, H, W)`` float32 flow in pixels on the input's device: channel 0 = u
        (horizontal), channel 1 = v (vertical), with ``next(x + u, y + v) ≈ prev(x, y)``.

    Raises:
        ValueError: shapes that do not match ``(B, 1, H, W)`` / ``(B, H, W)`` or differ.
    """
    p = params or OPENCV_PARAMS
    if overrides:
        p = p.replace(**overrides)
    i0 = _as_batch(prev, "prev")
    i1 = _as_batch(next, "next")
    if i0.shape != i1.shape:
        raise ValueError(
            f"tvl1_flow: prev {tuple(i0.shape)} and next {tuple(i1.shape)} must have the same shape"
        )
    if i1.device != i0.device:
        i1 = i1.to(i0.device)
    if check_every is None:
        check_every = 1 if i0.device.type == "cpu" else 10
    b, _, h, w = i0.shape
    if b == 0:
        return i0.new_zeros((0, 2, h, w))
    n = chunk or default_chunk(h, w, i0.device)
    limit = threads if i0.device.type == "cpu" else None
    with torch.no_grad(), _intra_op_threads(limit):
        if n >= b:
            return _tvl1(i0, i1, p, check_every)
        return torch.cat(
            [_tvl1(a, c, p, check_every) for a, c in zip(i0.split(n), i1.split(n), strict=True)],
            dim=0,
        )


_threads_lock = threading.Lock()
_threads_users = 0
_threads_saved = 0


@contextlib.contextmanager
def _intra_op_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (process-wide; nested/concurrent calls share one
    change, the last one out restores the previous value)."""
    global _threads_users, _threads_saved
    if n is None or n <= 0:
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved = torch.get_num_threads()
            if _threads_saved != n:
                torch.set_num_threads(n)
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0 and torch.get_num_threads() != _threads_saved:
                torch.set_num_threads(_threads_saved)


def pyramid_sizes(height: int, width: int, params: TVL1Params) -> list[tuple[int, int]]:
    """The ``(H, W)`` of every pyramid level OpenCV would use (finest first)."""
    sizes = [(height, width)]
    for _ in range(1, params.nscales):
        ph, pw = sizes[-1]
        # OpenCV: Size(saturate_cast<int>(w * step), ...) rounds half to even, like round()
        nh, nw = round(ph * params.scale_step), round(pw * params.scale_step)
        if nh < 16 or nw < 16:
            break
        sizes.append((nh, nw))
    return sizes


def _tvl1(i0: Tensor, i1: Tensor, p: TVL1Params, check_every: int) -> Tensor:
    b, _, h, w = i0.shape
    sizes = pyramid_sizes(h, w, p)
    i0s, i1s = [i0], [i1]
    for size in sizes[1:]:
        i0s.append(_resize_scaled(i0s[-1], size, p.scale_step))
        i1s.append(_resize_scaled(i1s[-1], size, p.scale_step))
    channels = 3 if p.gamma > 0 else 2
    u = i0.new_zeros((b, channels) + sizes[-1])
    for s in range(len(sizes) - 1, -1, -1):
        u = _one_scale(i0s[s], i1s[s], u, p, check_every)
        if s == 0:
            break
        u = F.interpolate(u, size=sizes[s - 1], mode="bilinear", align_corners=False)
        u[:, :2] *= 1.0 / p.scale_step  # u3 (illumination) is not scaled
    return u[:, :2].contiguous()


class _UViews:
    """Views of one flow buffer ``[N,C,H,W]`` used by a step (made once, not per step)."""

    def __init__(self, u: Tensor) -> None:
        self.u = u
        self.x = u[:, 0:1]
        self.y = u[:, 1:2]
        self.z = u[:, 2:3] if u.shape[1] > 2 else None
        self.right = u[..., :, 1:]
        self.left = u[..., :, :-1]
        self.down = u[..., 1:, :]
        self.up = u[..., :-1, :]


class _Work:
    """The working set of one warp: the pairs that still iterate, and their buffers."""

    def __init__(self, u: Tensor, pd: Tensor, g: Tensor, inv_grad: Tensor, rho_c: Tensor) -> None:
        self.pd, self.g, self.inv_grad, self.rho_c = pd, g, inv_grad, rho_c
        n, c, h, w = u.shape
        self.bufs = (_UViews(u), _UViews(torch.empty_like(u)))
        self.cur = 0  # self.bufs[self.cur] holds the current flow
        self.gx, self.gy = g[:, 0:1], g[:, 1:2]
        self.div = torch.empty_like(u)
        self.div_x, self.div_y = self.div[..., :, 1:], self.div[..., 1:, :]
        self.px, self.py = pd[:, :, 0], pd[:, :, 1]
        self.px_left, self.py_up = pd[:, :, 0, :, :-1], pd[:, :, 1, :-1, :]
        self.gu = u.new_zeros((n, c, 2, h, w))  # last column / row stay 0 (forward diffs)
        self.gu_x, self.gu_y = self.gu[:, :, 0], self.gu[:, :, 1]
        self.gu_x_in, self.gu_y_in = self.gu[:, :, 0, :, :-1], self.gu[:, :, 1, :-1, :]
        self.ng = torch.empty_like(u)
        self.ng5 = self.ng.unsqueeze(2)
        self.rho = torch.empty_like(rho_c)

    @property
    def u(self) -> Tensor:
        return self.bufs[self.cur].u

    def set_flow(self, mask: slice, values: Tensor) -> None:
        self.bufs[self.cur].u[:, mask] = values

    def keep(self, mask: Tensor) -> _Work:
        return _Work(
            self.u[mask], self.pd[mask], self.g[mask], self.inv_grad[mask], self.rho_c[mask]
        )


def _one_scale(i0: Tensor, i1: Tensor, u: Tensor, p: TVL1Params, check_every: int) -> Tensor:
    """TV-L1 at one pyramid level; ``u`` ``[N,C,H,W]`` is the initial flow; returns the new."""
    n, c, h, w = u.shape
    dev, dt = u.device, u.dtype
    lt = p.lambda_ * p.theta
    taut = p.tau / p.theta
    check = p.epsilon > 0
    err_limit = math.sqrt(p.epsilon * p.epsilon * h * w)  # OpenCV: Σ du² <= eps² · area
    one = torch.ones((), device=dev, dtype=dt)

    src = torch.cat([i1, _centered_gradient(i1)], dim=1)  # I1, dI1/dx, dI1/dy
    xs = torch.arange(w, device=dev, dtype=dt) * (2.0 / (w - 1)) - 1.0
    ys = torch.arange(h, device=dev, dtype=dt) * (2.0 / (h - 1)) - 1.0
    pd = u.new_zeros((n, c, 2, h, w))  # dual variables: pd[:, k, 0] = p_k1, pd[:, k, 1] = p_k2

    for _warp in range(p.warps):
        du, dv = u[:, 0], u[:, 1]
        if p.remap_subpixel > 0:  # OpenCV's remap rounds positions to 1/32 px
            du = torch.round(du * p.remap_subpixel) / p.remap_subpixel
            dv = torch.round(dv * p.remap_subpixel) / p.remap_subpixel
        grid = torch.stack(
            [xs.view(1, 1, w) + du * (2.0 / (w - 1)), ys.view(1, h, 1) + dv * (2.0 / (h - 1))],
            dim=-1,
        )
        warped = F.grid_sample(src, grid, mode="bicubic", padding_mode="zeros", align_corners=True)
        i1w, g = warped[:, 0:1], warped[:, 1:3].contiguous()
        grad = g.square().sum(dim=1, keepdim=True)  # |∇I1w|² (OpenCV leaves gamma out)
        rho_c = i1w - i0 - (g * u[:, :2]).sum(dim=1, keepdim=True)
        inv_grad = 1.0 / grad.clamp_min(1e-30)
        if c == 3:
            g = torch.cat([g, torch.full_like(grad, p.gamma)], dim=1)

        work = _Work(u, pd, g, inv_grad, rho_c)
        index: Tensor | None = None  # None: all pairs of the chunk are in the working set
        step = 0
        finished = False
        for _outer in range(p.outer_iterations):
            if p.median_filtering > 1:
                work.set_flow(slice(0, 2), median_blur(work.u[:, :2], p.median_filtering))
            for _inner in range(p.inner_iterations):
                step += 1
                test = check and step % check_every == 0
                err = _step(work, lt, p.theta, taut, p.gamma, one, test)
                if err is None:
                    continue
                done = err <= err_limit
                n_done = int(done.sum())
                if n_done == 0:
                    continue
                if index is None:
                    index = torch.arange(n, device=dev)
                    u, pd = work.u.clone(), work.pd.clone()
                u.index_copy_(0, index[done], work.u[done])
                pd.index_copy_(0, index[done], work.pd[done])
                if n_done == done.numel():
                    finished = True
                    break
                keep = ~done
                index = index[keep]
                work = work.keep(keep)
            if finished:
                break
        if not finished:
            if index is None:
                u, pd = work.u, work.pd
            else:
                u.index_copy_(0, index, work.u)
                pd.index_copy_(0, index, work.pd)
    return u


def _step(
    s: _Work, lt: float, theta: float, taut: float, gamma: float, one: Tensor, test: bool
) -> Tensor | None:
    """One primal-dual step on the working set (in place); returns ``‖u_k − u_{k−1}‖`` per
    pair when ``test``."""
    cur, new = s.bufs[s.cur], s.bufs[1 - s.cur]
    # thresholding step: v = u - clamp(rho / |∇I|², ±λθ) ∇I  (OpenCV's three cases)
    rho = torch.addcmul(s.rho_c, s.gx, cur.x, out=s.rho)
    rho.addcmul_(s.gy, cur.y)
    if cur.z is not None:
        rho.add_(cur.z, alpha=gamma)
    rho.mul_(s.inv_grad).clamp_(-lt, lt)
    # divergence of p (backward differences, p = 0 outside)
    div = torch.add(s.px, s.py, out=s.div)
    s.div_x.sub_(s.px_left)
    s.div_y.sub_(s.py_up)
    # u = v + theta div p
    u = torch.addcmul(cur.u, s.g, rho, value=-1.0, out=new.u)
    u.add_(div, alpha=theta)
    err = None
    if test:
        torch.sub(u, cur.u, out=div)
        err = torch.linalg.vector_norm(div.flatten(1), dim=1)
    s.cur = 1 - s.cur
    # dual step: p = (p + taut ∇u) / (1 + taut |∇u|)  (forward differences, 0 at the far edge)
    torch.sub(new.right, new.left, out=s.gu_x_in)
    torch.sub(new.down, new.up, out=s.gu_y_in)
    ng = torch.mul(s.gu_x, s.gu_x, out=s.ng)
    ng.addcmul_(s.gu_y, s.gu_y).sqrt_()
    torch.add(one, ng, alpha=taut, out=ng)
    s.pd.add_(s.gu, alpha=taut)
    s.pd.div_(s.ng5)
    return err
