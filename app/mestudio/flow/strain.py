"""Optical strain of a flow field (the third flow map of M3ENet and similar networks).

For a flow ``(u, v)`` in pixels the strain tensor is::

    e_xx = du/dx,   e_yy = dv/dy,   e_xy = e_yx = (du/dy + dv/dx) / 2

and the optical strain magnitude is ``sqrt(e_xx² + e_yy² + e_xy² + e_yx²)``. The values are
dimensionless (pixels per pixel), so a flow field and the same field resized with its vectors
scaled by the resize factor have the same strain.

Derivatives are central differences ``(f[i+1] − f[i−1]) / 2`` inside the image and one-sided
differences ``f[1] − f[0]`` / ``f[n−1] − f[n−2]`` on the first/last row and column (as
``numpy.gradient``), so an affine flow gives its exact strain everywhere, borders included.
"""

from __future__ import annotations

import torch
from torch import nn

Tensor = torch.Tensor


def _check_flow(flow: Tensor, name: str) -> None:
    if not isinstance(flow, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(flow).__name__}")
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"{name}: expected flow of shape (B, 2, H, W), got {tuple(flow.shape)}")
    if flow.shape[-1] < 2 or flow.shape[-2] < 2:
        raise ValueError(
            f"{name}: flow must be at least 2x2 pixels to differentiate, got {tuple(flow.shape[-2:])}"
        )
    if not torch.is_floating_point(flow):
        raise ValueError(f"{name}: expected a floating-point flow, got {flow.dtype}")


def _gradient(f: Tensor) -> tuple[Tensor, Tensor]:
    """``d/dx`` and ``d/dy`` of ``[B, C, H, W]``: central inside, one-sided at the borders."""
    dx = torch.empty_like(f)
    dy = torch.empty_like(f)
    dx[..., :, 1:-1] = 0.5 * (f[..., :, 2:] - f[..., :, :-2])
    dx[..., :, 0] = f[..., :, 1] - f[..., :, 0]
    dx[..., :, -1] = f[..., :, -1] - f[..., :, -2]
    dy[..., 1:-1, :] = 0.5 * (f[..., 2:, :] - f[..., :-2, :])
    dy[..., 0, :] = f[..., 1, :] - f[..., 0, :]
    dy[..., -1, :] = f[..., -1, :] - f[..., -2, :]
    return dx, dy


def strain_components(flow: Tensor) -> Tensor:
    """The strain tensor components of a flow field.

    Input: ``(B, 2, H, W)`` flow (u, v) in pixels.
    Output: ``(B, 3, H, W)`` = ``(e_xx, e_yy, e_xy)``, dimensionless (``e_yx = e_xy``).
    """
    _check_flow(flow, "strain_components")
    dx, dy = _gradient(flow)
    e_xx = dx[:, 0:1]
    e_yy = dy[:, 1:2]
    e_xy = 0.5 * (dy[:, 0:1] + dx[:, 1:2])
    return torch.cat([e_xx, e_yy, e_xy], dim=1)


def optical_strain(flow: Tensor) -> Tensor:
    """Optical strain magnitude ``sqrt(e_xx² + e_yy² + 2 e_xy²)`` of a flow field.

    Input: ``(B, 2, H, W)`` flow (u, v) in pixels, any float dtype and device.
    Output: ``(B, 1, H, W)``, dimensionless, same dtype and device.

    Raises:
        ValueError: the flow is not ``(B, 2, H, W)`` (at least 2×2) floating point.
    """
    _check_flow(flow, "optical_strain")
    e = strain_components(flow)
    return torch.sqrt(e[:, 0:1] ** 2 + e[:, 1:2] ** 2 + 2.0 * e[:, 2:3] ** 2)


class OpticalStrain(nn.Module):
    """Module form of :func:`optical_strain`: ``(B, 2, H, W) -> (B, 1, H, W)``."""

    def forward(self, flow: Tensor) -> Tensor:
        return optical_strain(flow)
