"""Augmentation applied consistently to every stream of a sample.

One random transform per sample acts on all its inputs at once (the flow maps, the key
frames, the clip and the flow sequence), so they keep describing the same motion:

* horizontal flip: every map is mirrored left-right AND the horizontal flow component
  ``u`` is negated (a motion to the right becomes a motion to the left);
* small rotation by ``theta`` about the centre: every map is rotated, and the flow vectors
  ``(u, v)`` are rotated by the same matrix (a vector field is not a scalar image: rotating
  only the maps would leave the arrows pointing the old way). The optical strain map is a
  rotation-invariant magnitude and is only resampled;
* additive Gaussian noise whose standard deviation is a fraction of each map's own
  standard deviation (independent of the normalisation of the inputs).

Coordinates: image ``x`` to the right, ``y`` down (pixel rows). A rotation by ``theta`` moves
the content point ``p`` (relative to the centre) to ``R(theta) p`` with
``R = [[cos, -sin], [sin, cos]]`` in ``(x, y)``; the flow vector at ``p`` becomes
``R(theta) (u, v)`` at the new position.

Input layouts (torch tensors, a batch of ``N`` samples, square maps ``S x S``)::

    flow      [N, 3, S, S]        (u, v, strain)
    frames    [N, 3, C, S, S]     (onset, apex, offset), C = 1 or 3
    clip      [N, T, C, S, S]
    flow_seq  [N, T-1, 2, S, S]   (u, v) per consecutive frame pair
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

#: Inputs holding flow vectors: name -> (index of u, index of v) along the channel axis.
VECTOR_INPUTS: dict[str, tuple[int, int]] = {"flow": (0, 1), "flow_seq": (0, 1)}
#: Inputs that are images (resampled with border padding); others pad with zeros.
IMAGE_INPUTS: tuple[str, ...] = ("frames", "clip")


@dataclass(frozen=True)
class AugmentParams:
    """Random ranges of :func:`augment_batch`.

    Attributes:
        flip: probability of a horizontal flip.
        rotation_deg: maximum absolute rotation in degrees (uniform in ``±rotation_deg``).
        noise: noise standard deviation as a fraction of each map's standard deviation.
    """

    flip: float = 0.5
    rotation_deg: float = 8.0
    noise: float = 0.05


def _as_maps(x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """``[N, ..., S, S] -> [N, M, S, S]`` plus the original shape."""
    shape = tuple(x.shape)
    return x.reshape(shape[0], -1, shape[-2], shape[-1]), shape


def _rotate_vectors(x: Tensor, iu: int, iv: int, cos: Tensor, sin: Tensor,
                    channel_dim: int) -> Tensor:
    """Rotate the ``(u, v)`` components (indices ``iu``/``iv`` along ``channel_dim``)."""
    u = x.select(channel_dim, iu)
    v = x.select(channel_dim, iv)
    shape = [-1] + [1] * (u.dim() - 1)
    c, s = cos.view(shape).to(x.dtype), sin.view(shape).to(x.dtype)
    u2 = c * u - s * v
    v2 = s * u + c * v
    out = x.clone()
    out.select(channel_dim, iu).copy_(u2)
    out.select(channel_dim, iv).copy_(v2)
    return out


def apply_transform(inputs: Mapping[str, Tensor], flip: Tensor, angle_rad: Tensor,
                    noise: float = 0.0, generator: torch.Generator | None = None
                    ) -> dict[str, Tensor]:
    """Apply given per-sample transforms to every input of a batch.

    Args:
        inputs: tensors keyed by input name (see the module docstring); all share ``N``.
        flip: ``[N]`` bool, flip sample ``i`` horizontally.
        angle_rad: ``[N]`` rotation angles in radians (0 = none).
        noise: noise standard deviation relative to each map's standard deviation.
        generator: random generator for the noise.

    Returns:
        New tensors, same shapes and dtypes.
    """
    out: dict[str, Tensor] = {}
    for name, x in inputs.items():
        n = x.shape[0]
        if flip.shape != (n,) or angle_rad.shape != (n,):
            raise ValueError(f"flip and angle_rad must have shape [{n}] for input {name!r}")
        maps, shape = _as_maps(x)
        device = maps.device
        f = flip.to(device)
        # 1. flip: mirror the maps, negate u
        if bool(f.any()):
            maps = torch.where(f.view(-1, 1, 1, 1), maps.flip(-1), maps)
        y = maps.reshape(shape)
        if name in VECTOR_INPUTS and bool(f.any()):
            iu, _ = VECTOR_INPUTS[name]
            ch = y.dim() - 3  # the channel axis of (u, v[, strain])
            sign = torch.where(f, -1.0, 1.0).to(y.dtype).view([-1] + [1] * (y.dim() - 2))
            y = y.clone()
            y.select(ch, iu).mul_(sign)
        # 2. rotation: resample the maps, rotate the vectors
        a = angle_rad.to(device=device, dtype=torch.float32)
        if bool((a != 0).any()):
            cos, sin = torch.cos(a), torch.sin(a)
            # output q samples input at R^-1 q (normalised coordinates, square maps)
            theta = torch.zeros(n, 2, 3, device=device, dtype=torch.float32)
            theta[:, 0, 0], theta[:, 0, 1] = cos, sin
            theta[:, 1, 0], theta[:, 1, 1] = -sin, cos
            m, _ = _as_maps(y)
            grid = F.affine_grid(theta, list(m.shape), align_corners=False)
            padding = "border" if name in IMAGE_INPUTS else "zeros"
            m = F.grid_sample(m.float(), grid, mode="bilinear", padding_mode=padding,
                              align_corners=False).to(y.dtype)
            y = m.reshape(shape)
            if name in VECTOR_INPUTS:
                iu, iv = VECTOR_INPUTS[name]
                y = _rotate_vectors(y, iu, iv, cos, sin, y.dim() - 3)
        # 3. additive noise relative to each map's spread
        if noise > 0:
            m, _ = _as_maps(y)
            std = m.float().std(dim=(-2, -1), keepdim=True)
            eps = torch.randn(m.shape, generator=generator, dtype=torch.float32,
                              device="cpu" if generator is not None else device).to(device)
            m = m + (noise * std * eps).to(m.dtype)
            y = m.reshape(shape)
        out[name] = y.contiguous()
    return out


def augment_batch(inputs: Mapping[str, Tensor], params: AugmentParams,
                  generator: torch.Generator | None = None,
                  mask: Tensor | None = None) -> dict[str, Tensor]:
    """Draw one random transform per sample and apply it to all of its streams.

    Args:
        inputs: tensors keyed by input name (same ``N``).
        params: random ranges.
        generator: CPU random generator (reproducible runs).
        mask: ``[N]`` bool, which samples to augment (the others are returned unchanged,
            e.g. the un-augmented copy of the x5 expansion); None = all.
    """
    n = next(iter(inputs.values())).shape[0]
    flip = torch.rand(n, generator=generator) < params.flip
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(params.rotation_deg)
    if mask is not None:
        m = mask.cpu().bool()
        flip &= m
        angle = torch.where(m, angle, torch.zeros_like(angle))
    out = apply_transform(inputs, flip, angle, 0.0)
    if params.noise > 0:
        noisy = apply_transform(out, torch.zeros(n, dtype=torch.bool), torch.zeros(n),
                                params.noise, generator)
        if mask is None:
            return noisy
        for name, x in out.items():
            sel = mask.to(x.device).view([-1] + [1] * (x.dim() - 1))
            out[name] = torch.where(sel, noisy[name], x)
    return out
