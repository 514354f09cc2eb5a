"""Dual TV-L1 and optical strain as one ONNX graph (built here with torch; run without it).

:class:`TVL1Graph` computes what :func:`mestudio.flow.tvl1_flow` followed by
:func:`mestudio.flow.optical_strain` computes, for one image size and one
:class:`~mestudio.flow.TVL1Params` with a fixed number of steps (``epsilon == 0``, as
:data:`~mestudio.flow.FAST_PARAMS`): the pyramid, warps, median filtering and primal-dual steps
are unrolled, every operation is out of place and every size a constant, so the TorchScript
exporter writes a plain ONNX graph with a dynamic batch axis. The solver of ``tvl1.py`` stays
the reference (it can stop early, batches any size and reuses buffers); the tests hold the two
to the same flows.

:func:`export_graph` writes the graph; :mod:`mestudio.flow.graph` finds and runs it with ONNX
Runtime (CPU, or CUDA when present), which is how analysis, live recognition and the kiosk
make model inputs without importing torch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mestudio.flow.strain import _components
from mestudio.flow.tvl1 import _centered_gradient, median_blur, pyramid_sizes
from mestudio.flow.tvl1_params import TVL1Params

Tensor = torch.Tensor

#: inputs and outputs of the graph
INPUTS = ("prev", "next")
OUTPUTS = ("flow", "strain")


def _resize_grid(size_in: tuple[int, int], size: tuple[int, int], scale: float) -> Tensor:
    """The sampling grid of ``tvl1._resize_scaled`` (OpenCV's pyramid resize) as a constant."""
    (h_in, w_in), (h, w) = size_in, size
    sx = (torch.arange(w, dtype=torch.float32) + 0.5) / scale - 0.5
    sy = (torch.arange(h, dtype=torch.float32) + 0.5) / scale - 0.5
    gx = (sx * (2.0 / max(w_in - 1, 1)) - 1.0).view(1, w).expand(h, w)
    gy = (sy * (2.0 / max(h_in - 1, 1)) - 1.0).view(h, 1).expand(h, w)
    return torch.stack([gx, gy], dim=-1).unsqueeze(0).contiguous()


def _expand(grid: Tensor, n: int) -> Tensor:
    return grid.expand(n, -1, -1, -1)


class TVL1Graph(nn.Module):
    """``(prev, next)`` ``(N, 1, H, W)`` grey 0..255 -> ``flow`` ``(N, 2, H, W)`` (pixels) and
    ``strain`` ``(N, 1, H, W)``, for the fixed ``size`` and ``params`` (``epsilon`` must be 0).
    """

    def __init__(self, size: tuple[int, int], params: TVL1Params) -> None:
        super().__init__()
        if params.epsilon != 0:
            raise ValueError("TVL1Graph: only fixed step counts (epsilon = 0) unroll into a graph;"
                             f" these parameters stop on convergence (epsilon={params.epsilon})")
        self.p = params
        self.sizes = pyramid_sizes(size[0], size[1], params)
        for s in range(1, len(self.sizes)):
            self.register_buffer(f"pyr{s}", _resize_grid(self.sizes[s - 1], self.sizes[s],
                                                         params.scale_step), persistent=False)
        for s, (h, w) in enumerate(self.sizes):
            xs = torch.arange(w, dtype=torch.float32) * (2.0 / (w - 1)) - 1.0
            ys = torch.arange(h, dtype=torch.float32) * (2.0 / (h - 1)) - 1.0
            self.register_buffer(f"xs{s}", xs.view(1, 1, w), persistent=False)
            self.register_buffer(f"ys{s}", ys.view(1, h, 1), persistent=False)

    def forward(self, prev: Tensor, next: Tensor) -> tuple[Tensor, Tensor]:
        p = self.p
        n = prev.shape[0]
        i0s, i1s = [prev], [next]
        for s in range(1, len(self.sizes)):
            grid = _expand(getattr(self, f"pyr{s}"), n)
            i0s.append(F.grid_sample(i0s[-1], grid, mode="bilinear", padding_mode="border",
                                     align_corners=True))
            i1s.append(F.grid_sample(i1s[-1], grid, mode="bilinear", padding_mode="border",
                                     align_corners=True))
        channels = 3 if p.gamma > 0 else 2
        h, w = self.sizes[-1]
        u = prev.new_zeros((1, channels, h, w)).expand(n, -1, -1, -1)
        for s in range(len(self.sizes) - 1, -1, -1):
            u = self._one_scale(s, i0s[s], i1s[s], u)
            if s == 0:
                break
            u = F.interpolate(u, size=self.sizes[s - 1], mode="bilinear", align_corners=False)
            if channels == 3:
                u = torch.cat([u[:, :2] * (1.0 / p.scale_step), u[:, 2:]], dim=1)
            else:
                u = u * (1.0 / p.scale_step)
        flow = u[:, :2]
        e_xx, e_yy, e_xy = _components(flow[:, 0:1], flow[:, 1:2])
        strain = torch.sqrt(e_xx * e_xx + e_yy * e_yy + 2.0 * e_xy * e_xy)
        return flow, strain

    def _one_scale(self, s: int, i0: Tensor, i1: Tensor, u: Tensor) -> Tensor:
        p = self.p
        lt = p.lambda_ * p.theta
        taut = p.tau / p.theta
        h, w = self.sizes[s]
        xs, ys = getattr(self, f"xs{s}"), getattr(self, f"ys{s}")
        src = torch.cat([i1, _centered_gradient(i1)], dim=1)
        px = torch.zeros_like(u)
        py = torch.zeros_like(u)
        for _warp in range(p.warps):
            du, dv = u[:, 0], u[:, 1]
            if p.remap_subpixel > 0:
                du = torch.round(du * p.remap_subpixel) / p.remap_subpixel
                dv = torch.round(dv * p.remap_subpixel) / p.remap_subpixel
            grid = torch.stack([xs + du * (2.0 / (w - 1)), ys + dv * (2.0 / (h - 1))], dim=-1)
            warped = F.grid_sample(src, grid, mode="bicubic", padding_mode="zeros",
                                   align_corners=True)
            i1w, g = warped[:, 0:1], warped[:, 1:3]
            gx, gy = g[:, 0:1], g[:, 1:2]
            grad = gx * gx + gy * gy
            rho_c = i1w - i0 - (gx * u[:, 0:1] + gy * u[:, 1:2])
            inv_grad = 1.0 / torch.clamp(grad, min=1e-30)
            if u.shape[1] == 3:
                g = torch.cat([g, torch.full_like(grad, p.gamma)], dim=1)
            for _outer in range(p.outer_iterations):
                if p.median_filtering > 1:
                    u = torch.cat([median_blur(u[:, :2], p.median_filtering), u[:, 2:]], dim=1)
                u, px, py = _steps(u, px, py, g, rho_c, inv_grad, lt, taut, p.theta,
                                   p.inner_iterations)
        return u


def _script(fn: Any) -> Any:
    """``torch.jit.script`` without its deprecation warning (the TorchScript exporter this
    module uses needs a scripted loop to write an ONNX ``Loop``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(fn)


@_script
def _steps(u: Tensor, px: Tensor, py: Tensor, g: Tensor, rho_c: Tensor, inv_grad: Tensor,
           lt: float, taut: float, theta: float, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` primal-dual steps, out of place (the arithmetic of ``tvl1._step``). Scripted, so
    the exporter writes one ONNX ``Loop`` instead of ``n`` copies of the step (a graph of
    thousands of nodes takes ONNX Runtime tens of seconds to load). ``g`` holds ``∇I1w``
    and, with the illumination variable, ``gamma`` as a third channel."""
    for _ in range(n):
        rho = rho_c + (g * u).sum(dim=1, keepdim=True)
        rho = torch.clamp(rho * inv_grad, -lt, lt)
        # backward differences of p (p = 0 outside), forward differences of u (0 at the far
        # edge), from slices and concatenations
        div = (torch.cat([px[:, :, :, :1], px[:, :, :, 1:] - px[:, :, :, :-1]], dim=3)
               + torch.cat([py[:, :, :1, :], py[:, :, 1:, :] - py[:, :, :-1, :]], dim=2))
        u = u - g * rho + theta * div
        gux = torch.cat([u[:, :, :, 1:] - u[:, :, :, :-1], u[:, :, :, -1:] * 0.0], dim=3)
        guy = torch.cat([u[:, :, 1:, :] - u[:, :, :-1, :], u[:, :, -1:, :] * 0.0], dim=2)
        ng = 1.0 + taut * torch.sqrt(gux * gux + guy * guy)
        px = (px + taut * gux) / ng
        py = (py + taut * guy) / ng
    return u, px, py


def export_graph(path: Path, size: tuple[int, int], params: TVL1Params,
                 metadata: dict[str, str], opset: int = 17) -> None:
    """Write the graph of ``size`` and ``params`` to ``path`` (atomically), with ``metadata``
    as ONNX metadata properties."""
    import onnx

    from mestudio.fsutil import atomic_write_bytes
    from mestudio.onnxtrace import trace_onnx

    h, w = size
    example = (torch.zeros((2, 1, h, w)), torch.zeros((2, 1, h, w)))
    proto = trace_onnx(TVL1Graph(size, params).eval(), example, list(INPUTS), list(OUTPUTS),
                       opset)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    atomic_write_bytes(path, proto.SerializeToString())
