"""Optical strain of a flow field (the third flow map of M3ENet and similar networks).

For a flow ``(u, v)`` in pixels the strain tensor is::

    e_xx = du/dx,   e_yy = dv/dy,   e_xy = e_yx = (du/dy + dv/dx) / 2

and the optical strain magnitude is ``sqrt(e_xx² + e_yy² + e_xy² + e_yx²)``. The values are
dimensionless (pixels per pixel), so a flow field and the same field resized with its vectors
scaled by the resize factor have the same strain.

Derivatives are central differences ``(f[i+1] − f[i−1]) / 2`` inside the image and one-sided
differences ``f[1] − f[0]`` / ``f[n−1] − f[n−2]`` on the first/last row and column (as
``numpy.gradient``), so an affine flow gives its exact strain everywhere, borders included.

One definition serves both array types: :func:`optical_strain` (torch, ``(B, 2, H, W)``, for
model inputs, any device) and :func:`strain_magnitude` (numpy, ``(H, W, 2)``, for the live
overlay: the pipeline computes it from the flow spotting used, without torch's thread pool).
This module imports torch only when given a tensor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

    Tensor = torch.Tensor

A = TypeVar("A")


def _is_tensor(x: object) -> bool:
    return type(x).__module__.startswith("torch")


def _check_flow(flow: Tensor, name: str) -> None:
    import torch

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


def _gradient(f: Any) -> tuple[Any, Any]:
    """``d/dx`` and ``d/dy`` of ``[..., H, W]`` (numpy array or tensor): central inside,
    one-sided at the borders. Built from slices and concatenations, without in-place writes,
    so the ONNX exporter can trace it (:mod:`mestudio.flow.tvl1_graph`)."""
    if _is_tensor(f):
        import torch

        cat: Any = torch.cat
    else:
        cat = np.concatenate
    dx = cat([f[..., :, 1:2] - f[..., :, 0:1], 0.5 * (f[..., :, 2:] - f[..., :, :-2]),
              f[..., :, -1:] - f[..., :, -2:-1]], -1)
    dy = cat([f[..., 1:2, :] - f[..., 0:1, :], 0.5 * (f[..., 2:, :] - f[..., :-2, :]),
              f[..., -1:, :] - f[..., -2:-1, :]], -2)
    return dx, dy


def _components(u: A, v: A) -> tuple[A, A, A]:
    """``(e_xx, e_yy, e_xy)`` of the flow components ``u``, ``v`` (same shape)."""
    du_dx, du_dy = _gradient(u)
    dv_dx, dv_dy = _gradient(v)
    return du_dx, dv_dy, 0.5 * (du_dy + dv_dx)


def strain_components(flow: Tensor) -> Tensor:
    """The strain tensor components of a flow field.

    Input: ``(B, 2, H, W)`` flow (u, v) in pixels.
    Output: ``(B, 3, H, W)`` = ``(e_xx, e_yy, e_xy)``, dimensionless (``e_yx = e_xy``).
    """
    import torch

    _check_flow(flow, "strain_components")
    return torch.cat(_components(flow[:, 0:1], flow[:, 1:2]), dim=1)


def optical_strain(flow: Tensor) -> Tensor:
    """Optical strain magnitude ``sqrt(e_xx² + e_yy² + 2 e_xy²)`` of a flow field.

    Input: ``(B, 2, H, W)`` flow (u, v) in pixels, any float dtype and device.
    Output: ``(B, 1, H, W)``, dimensionless, same dtype and device.

    Raises:
        ValueError: the flow is not ``(B, 2, H, W)`` (at least 2×2) floating point.
    """
    import torch

    _check_flow(flow, "optical_strain")
    e_xx, e_yy, e_xy = _components(flow[:, 0:1], flow[:, 1:2])
    return torch.sqrt(e_xx ** 2 + e_yy ** 2 + 2.0 * e_xy ** 2)


def strain_magnitude(flow: np.ndarray) -> np.ndarray:
    """:func:`optical_strain` of one numpy flow field: ``(H, W, 2)`` pixels → ``(H, W)``
    float32 (H, W >= 2)."""
    f = np.asarray(flow, dtype=np.float32)
    if f.ndim != 3 or f.shape[2] != 2 or f.shape[0] < 2 or f.shape[1] < 2:
        raise ValueError(f"strain_magnitude: expected flow of shape (H, W, 2) with H, W >= 2, "
                         f"got {f.shape}")
    e_xx, e_yy, e_xy = _components(f[..., 0], f[..., 1])
    return np.sqrt(e_xx ** 2 + e_yy ** 2 + 2.0 * e_xy ** 2).astype(np.float32)


def _optical_strain_module() -> type:
    from torch import nn

    class OpticalStrain(nn.Module):
        """Module form of :func:`optical_strain`: ``(B, 2, H, W) -> (B, 1, H, W)``."""

        def forward(self, flow: Tensor) -> Tensor:
            return optical_strain(flow)

    OpticalStrain.__module__ = __name__
    return OpticalStrain


def __getattr__(name: str) -> Any:
    if name == "OpticalStrain":  # built on first use, so importing this needs no torch
        cls = _optical_strain_module()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
