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

Two modes (``TrainConfig.aug_mode``):

* ``online`` (:func:`augment_batch`): every epoch each training sample appears
  ``aug_expansion`` times, all but one with a fresh random transform;
* ``offline`` (the M3ENet paper's x5 expansion): each training sample becomes the fixed
  variants :data:`OFFLINE_VARIANTS` — the original, a horizontal flip, a rotation by
  ``+theta``, a rotation by ``-theta`` and additive noise (``theta`` uniform in
  ``[rotation_deg / 2, rotation_deg]``; ``theta`` and the noise are drawn from a hash of the
  sample id and the variant, so a sample's variants are the same in every fold and every
  run). The expansion is built once per fold from the fold's training samples only
  (:func:`mestudio.training.runner.offline_training_set`): on the model inputs
  (:func:`expand_offline`, ``aug_stage = "maps"``) or on the aligned face crops before the
  optical flow (:func:`transform_crop`, ``aug_stage = "frames"``, through
  :mod:`mestudio.training.features`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
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


# ---- offline expansion (the paper's x5) ----------------------------------------------------
OFFLINE_VARIANTS: tuple[str, ...] = ("original", "flip", "rotate+", "rotate-", "noise")
"""The offline variants of a training sample, in order (``aug_expansion`` takes the first)."""


@dataclass(frozen=True)
class Variant:
    """One offline variant of one sample: what is done to it."""

    name: str
    flip: bool = False
    angle_deg: float = 0.0
    noise: float = 0.0
    seed: int = 0


def offline_variants(count: int = 5) -> tuple[str, ...]:
    """The first ``count`` names of :data:`OFFLINE_VARIANTS` (``1 <= count <= 5``)."""
    if not 1 <= count <= len(OFFLINE_VARIANTS):
        raise ValueError(f"the offline expansion has 1 to {len(OFFLINE_VARIANTS)} variants, "
                         f"got {count}")
    return OFFLINE_VARIANTS[:count]


def offline_variant(sample_id: str, name: str, params: AugmentParams) -> Variant:
    """The transform of variant ``name`` of sample ``sample_id`` (deterministic)."""
    # rotate+ and rotate- share theta: one rotation each way
    h = hashlib.sha256(f"{sample_id}|{name.rstrip('+-')}".encode()).digest()
    u = int.from_bytes(h[:4], "little") / 2 ** 32
    seed = int.from_bytes(h[4:8], "little")
    theta = params.rotation_deg * (0.5 + 0.5 * u)
    if name == "original":
        return Variant(name)
    if name == "flip":
        return Variant(name, flip=True)
    if name == "rotate+":
        return Variant(name, angle_deg=theta)
    if name == "rotate-":
        return Variant(name, angle_deg=-theta)
    if name == "noise":
        return Variant(name, noise=params.noise, seed=seed)
    raise ValueError(f"unknown offline variant {name!r}; known: {', '.join(OFFLINE_VARIANTS)}")


def expand_offline(inputs: Mapping[str, np.ndarray], ids: Sequence[str],
                   variants: Sequence[str], params: AugmentParams) -> dict[str, np.ndarray]:
    """The offline expansion of model inputs (``aug_stage = "maps"``).

    Args:
        inputs: ``{name: (N, ...)}`` arrays of N samples (see the module docstring).
        ids: the N sample ids (they seed each sample's variants).
        variants: names from :data:`OFFLINE_VARIANTS`.

    Returns:
        ``{name: (len(variants) * N, ...)}``: block ``v`` (rows ``v*N .. v*N+N-1``) holds
        variant ``variants[v]`` of the N samples, in their order.
    """
    n = len(ids)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
    blocks: dict[str, list[np.ndarray]] = {k: [] for k in inputs}
    for name in variants:
        vs = [offline_variant(i, name, params) for i in ids]
        if name == "original":
            out = {k: t.clone() for k, t in tensors.items()}
        elif any(v.noise > 0 for v in vs):
            parts = []
            for i, v in enumerate(vs):
                g = torch.Generator().manual_seed(v.seed)
                parts.append(apply_transform({k: t[i:i + 1] for k, t in tensors.items()},
                                             torch.zeros(1, dtype=torch.bool), torch.zeros(1),
                                             v.noise, g))
            out = {k: torch.cat([p[k] for p in parts]) if parts else tensors[k]
                   for k in tensors}
        else:
            flip = torch.tensor([v.flip for v in vs], dtype=torch.bool).reshape(n)
            angle = torch.tensor([math.radians(v.angle_deg) for v in vs],
                                 dtype=torch.float32).reshape(n)
            out = apply_transform(tensors, flip, angle, 0.0)
        for k in inputs:
            blocks[k].append(out[k].numpy())
    return {k: np.concatenate(b).astype(np.float32, copy=False) for k, b in blocks.items()}


def transform_crop(image: np.ndarray, variant: Variant, rng: np.random.Generator | None = None
                   ) -> np.ndarray:
    """A variant of an aligned face crop (``uint8``, ``(S, S, 3)`` or ``(S, S)``), before
    the optical flow (``aug_stage = "frames"``): mirrored, rotated about the centre (border
    pixels repeated; the same sense as :func:`apply_transform`) or with Gaussian noise of
    ``noise`` times the crop's standard deviation."""
    import cv2

    out = image
    if variant.flip:
        out = cv2.flip(out, 1)
    if variant.angle_deg:
        h, w = out.shape[:2]
        # apply_transform turns content by +theta in (x right, y down): clockwise on screen;
        # OpenCV's positive angle is counter-clockwise on screen
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -variant.angle_deg, 1.0)
        out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    if variant.noise > 0:
        rng = rng if rng is not None else np.random.default_rng(variant.seed)
        x = out.astype(np.float32)
        x = x + variant.noise * float(x.std()) * rng.standard_normal(x.shape).astype(np.float32)
        out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)
