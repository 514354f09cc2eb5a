"""Action units as smooth local displacement fields, and the synthetic emotion classes.

Each action unit (AU, FACS numbering) is a small set of Gaussian-weighted displacement
"blobs" placed relative to the five facial points (:class:`~mestudio.synth.geometry.FaceGeometry`)
in the face-aligned frame (unit = inter-ocular distance, IOD; ``v`` points down the face).
A blob moves the skin around its anchor in a fixed, anatomically plausible direction:

=====  =====================  ===================================================
AU     name                   motion
=====  =====================  ===================================================
AU1    inner brow raiser      inner brow ends move up
AU2    outer brow raiser      outer brow ends move up (slightly outward)
AU4    brow lowerer           brows move down and together
AU6    cheek raiser           cheeks (below the eyes) move up
AU9    nose wrinkler          skin beside the nose bridge and the upper lip move up
AU10   upper lip raiser       upper lip moves up
AU12   lip corner puller      mouth corners move up and out
AU14   dimpler                mouth corners are pulled straight back (outward)
AU15   lip corner depressor   mouth corners move down
AU24   lip presser            lips press together (upper down, lower up)
AU45   blink                  upper eyelid closes (handled by :func:`blink_field`)
=====  =====================  ===================================================

The synthetic classes (:data:`CLASSES`) are AU patterns (:data:`AU_PATTERNS`) chosen so that
their flow fields are visually distinct: happiness moves the lower face up and out,
disgust pulls the brows down/in and the nose up, surprise lifts the whole brows,
sadness lifts the inner brows while the mouth corners drop, repression presses the
lips together and pulls the corners straight back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from mestudio.synth.geometry import FaceGeometry

#: The synthetic emotion classes, in label-index order.
CLASSES: tuple[str, ...] = ("happiness", "disgust", "surprise", "sadness", "repression")

#: Class → the action units it moves.
AU_PATTERNS: dict[str, tuple[str, ...]] = {
    "happiness": ("AU6", "AU12"),
    "disgust": ("AU4", "AU9", "AU10"),
    "surprise": ("AU1", "AU2"),
    "sadness": ("AU1", "AU4", "AU15"),
    "repression": ("AU14", "AU24"),
}

#: Relative strength of each AU within a class pattern (before normalisation to the peak).
CLASS_AU_WEIGHTS: dict[str, dict[str, float]] = {
    "happiness": {"AU6": 0.6, "AU12": 1.0},
    "disgust": {"AU4": 0.8, "AU9": 1.0, "AU10": 0.6},
    "surprise": {"AU1": 1.0, "AU2": 1.0},
    "sadness": {"AU1": 1.0, "AU4": 0.45, "AU15": 1.0},
    "repression": {"AU14": 0.8, "AU24": 1.0},
}

#: The synthetic classes mapped onto the composite 3-class scheme (MEGC 2019).
CLASS_TO_3CLASS: dict[str, str] = {
    "happiness": "positive",
    "surprise": "surprise",
    "disgust": "negative",
    "sadness": "negative",
    "repression": "negative",
}

AU_NAMES: dict[str, str] = {
    "AU1": "inner brow raiser",
    "AU2": "outer brow raiser",
    "AU4": "brow lowerer",
    "AU6": "cheek raiser",
    "AU9": "nose wrinkler",
    "AU10": "upper lip raiser",
    "AU12": "lip corner puller",
    "AU14": "dimpler",
    "AU15": "lip corner depressor",
    "AU24": "lip presser",
    "AU45": "blink",
}


@dataclass(frozen=True)
class FieldBlob:
    """One Gaussian-weighted displacement blob in the face frame.

    Attributes:
        ref: reference point name (see :meth:`FaceGeometry.reference`).
        u, v: anchor offset from ``ref`` in IOD units (face frame, ``v`` down).
        du, dv: displacement direction in the face frame (unit vector).
        sigma_u, sigma_v: Gaussian widths along the face axes (IOD units).
        weight: relative strength.
        au: the action unit it belongs to.
    """

    ref: str
    u: float
    v: float
    du: float
    dv: float
    sigma_u: float
    sigma_v: float
    weight: float = 1.0
    au: str = ""


@dataclass(frozen=True)
class _AUPart:
    """A blob template; ``sided`` parts exist once per side, mirrored (``lat`` = outward)."""

    ref: str          # "eye" / "mouth" are resolved to the side's point when sided
    lat: float        # lateral offset (IOD), positive = away from the face midline
    v: float
    dlat: float       # lateral direction component, positive = outward
    dv: float
    sigma_u: float
    sigma_v: float
    weight: float = 1.0
    sided: bool = True


#: The blobs of each AU (face frame, IOD units). Brows sit ≈0.35 IOD above the eyes;
#: mouth corners come from the geometry.
_AU_PARTS: dict[str, tuple[_AUPart, ...]] = {
    "AU1": (_AUPart("eye", -0.2, -0.38, 0.0, -1.0, 0.17, 0.14),),
    "AU2": (_AUPart("eye", 0.24, -0.33, 0.25, -1.0, 0.19, 0.14),),
    "AU4": (_AUPart("eye", -0.12, -0.34, -0.6, 0.8, 0.22, 0.14),),
    "AU6": (_AUPart("eye", 0.05, 0.42, 0.1, -1.0, 0.24, 0.17),),
    "AU9": (_AUPart("nose", 0.15, -0.28, 0.0, -1.0, 0.1, 0.15),
            _AUPart("nose", 0.0, 0.22, 0.0, -1.0, 0.2, 0.1, weight=0.5, sided=False)),
    "AU10": (_AUPart("mouth_mid", 0.2, -0.12, 0.0, -1.0, 0.15, 0.1),),
    "AU12": (_AUPart("mouth", 0.0, 0.0, 0.6, -0.8, 0.16, 0.13),),
    "AU14": (_AUPart("mouth", 0.02, 0.0, 1.0, 0.0, 0.13, 0.12),),
    "AU15": (_AUPart("mouth", 0.0, 0.03, 0.1, 1.0, 0.15, 0.13),),
    "AU24": (_AUPart("mouth_mid", 0.0, -0.09, 0.0, 1.0, 0.28, 0.09, sided=False),
             _AUPart("mouth_mid", 0.0, 0.13, 0.0, -1.0, 0.28, 0.09, sided=False)),
}

#: AUs that have a displacement field (AU45, the blink, is rendered separately).
FIELD_AUS: tuple[str, ...] = tuple(_AU_PARTS)

#: Eye regions (per eye, face frame around the eye centre, IOD units): lateral half-width,
#: top (the upper-lid crease; the brows, ≈0.35 above the eye centre, stay still) and bottom
#: (the lower lid). Blinks change pixels only inside these boxes.
EYE_REGION = {"half_width": 0.34, "top": -0.22, "bottom": 0.12}


def au_blobs(au: str, weight: float = 1.0, side_gain: tuple[float, float] = (1.0, 1.0)
             ) -> list[FieldBlob]:
    """The blobs of one action unit.

    Args:
        au: e.g. ``"AU12"`` (see :data:`FIELD_AUS`).
        weight: strength multiplier.
        side_gain: multipliers for the image-left and image-right side.
    """
    if au not in _AU_PARTS:
        raise KeyError(f"unknown action unit {au!r}; known: {', '.join(FIELD_AUS)}")
    out = []
    for part in _AU_PARTS[au]:
        if not part.sided:
            out.append(FieldBlob(part.ref, part.lat, part.v, part.dlat, part.dv, part.sigma_u,
                                 part.sigma_v, part.weight * weight, au))
            continue
        for s, gain in ((-1.0, side_gain[0]), (1.0, side_gain[1])):
            ref = part.ref
            if ref in ("eye", "mouth"):
                ref = f"{ref}_{'left' if s < 0 else 'right'}"
            n = float(np.hypot(part.dlat, part.dv)) or 1.0
            out.append(FieldBlob(ref, s * part.lat, part.v, s * part.dlat / n, part.dv / n,
                                 part.sigma_u, part.sigma_v, part.weight * weight * gain, au))
    return out


def pattern_blobs(label_or_aus: str | Sequence[str] | Mapping[str, float], *,
                  rng: np.random.Generator | None = None, variation: float = 0.0,
                  asymmetry: float = 0.0, anchor_jitter: float = 0.0) -> list[FieldBlob]:
    """The blobs of a class pattern or of a set of AUs, optionally varied at random.

    Args:
        label_or_aus: a class of :data:`CLASSES`, a sequence of AUs (equal weights), or a
            mapping AU → weight.
        rng: random generator for the variations (required when any variation is > 0).
        variation: relative random change of each AU's strength (0.2 = ±20 %).
        asymmetry: relative random change of each side's strength.
        anchor_jitter: random anchor shift (IOD units, uniform ± this).
    """
    if isinstance(label_or_aus, str):
        if label_or_aus not in CLASS_AU_WEIGHTS:
            raise KeyError(f"unknown class {label_or_aus!r}; known: {', '.join(CLASSES)}")
        weights: Mapping[str, float] = CLASS_AU_WEIGHTS[label_or_aus]
    elif isinstance(label_or_aus, Mapping):
        weights = label_or_aus
    else:
        weights = {au: 1.0 for au in label_or_aus}
    if rng is None and (variation or asymmetry or anchor_jitter):
        raise ValueError("pattern_blobs: variations need an rng")
    blobs: list[FieldBlob] = []
    for au, w in weights.items():
        if au == "AU45":
            continue
        gain = (1.0, 1.0)
        if rng is not None:
            w = w * (1.0 + variation * rng.uniform(-1, 1))
            gain = (1.0 + asymmetry * rng.uniform(-1, 1), 1.0 + asymmetry * rng.uniform(-1, 1))
        for b in au_blobs(au, w, gain):
            if rng is not None and anchor_jitter:
                b = replace(b, u=b.u + anchor_jitter * rng.uniform(-1, 1),
                            v=b.v + anchor_jitter * rng.uniform(-1, 1))
            blobs.append(b)
    return blobs


def displacement_field(geometry: FaceGeometry, blobs: Sequence[FieldBlob],
                       roi: tuple[int, int, int, int], *, normalise: bool = True,
                       cutoff_sigmas: float = 4.0) -> np.ndarray:
    """Forward displacement field of a set of blobs over a region of the image.

    A pixel at ``x`` moves to ``x + D(x)``.

    Args:
        geometry: face points in image pixels.
        blobs: from :func:`pattern_blobs` / :func:`au_blobs`.
        roi: ``(x0, y0, x1, y1)`` image region (x1, y1 exclusive).
        normalise: scale so that the largest displacement magnitude is exactly 1 (then
            multiply by the wanted peak displacement in pixels).
        cutoff_sigmas: each blob is evaluated within this many sigmas of its anchor.
    Returns:
        ``(y1 - y0, x1 - x0, 2)`` float32 ``(dx, dy)``; in pixels × the blob weights, or of
        unit peak magnitude when ``normalise``.
    """
    x0, y0, x1, y1 = roi
    field = np.zeros((max(0, y1 - y0), max(0, x1 - x0), 2), dtype=np.float32)
    if field.size == 0:
        return field
    e_u, e_v = geometry.axes
    iod = geometry.iod
    for b in blobs:
        anchor = geometry.to_image(b.ref, b.u, b.v)
        direction = b.du * e_u + b.dv * e_v
        su, sv = b.sigma_u * iod, b.sigma_v * iod
        r = cutoff_sigmas * max(su, sv)
        bx0 = int(max(x0, np.floor(anchor[0] - r)))
        bx1 = int(min(x1, np.ceil(anchor[0] + r) + 1))
        by0 = int(max(y0, np.floor(anchor[1] - r)))
        by1 = int(min(y1, np.ceil(anchor[1] + r) + 1))
        if bx1 <= bx0 or by1 <= by0:
            continue
        xs = np.arange(bx0, bx1, dtype=np.float64) - anchor[0]
        ys = np.arange(by0, by1, dtype=np.float64)[:, None] - anchor[1]
        lu = xs * e_u[0] + ys * e_u[1]
        lv = xs * e_v[0] + ys * e_v[1]
        w = b.weight * np.exp(-0.5 * ((lu / su) ** 2 + (lv / sv) ** 2))
        sub = field[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0]
        sub[..., 0] += (w * direction[0]).astype(np.float32)
        sub[..., 1] += (w * direction[1]).astype(np.float32)
    if normalise:
        peak = float(np.sqrt((field ** 2).sum(axis=2)).max())
        if peak > 0:
            field /= peak
    return field


def _raised_cosine_ramp(x: np.ndarray) -> np.ndarray:
    """0 for x <= 0, 1 for x >= 1, raised cosine in between."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def blink_field(geometry: FaceGeometry, roi: tuple[int, int, int, int],
                travel_px: float) -> np.ndarray:
    """Backward displacement of a full blink over a region (both eyes).

    The upper eyelid slides down over the eye: inside each eye region the image is sampled
    from higher up (output ``y`` shows the source at ``y - B(y)``), strongest just below
    the eye centre and fading to zero at the lower lid and above the upper lid, i.e. a
    local vertical squash of the eye region. Multiply by the closure (0..1) over time.

    Args:
        geometry: face points in image pixels.
        roi: ``(x0, y0, x1, y1)`` region.
        travel_px: eyelid travel at full closure (pixels); keep below ≈0.15 IOD so the
            mapping does not fold (the default blink amplitude, 0.06 face width, is 0.12 IOD).
    Returns:
        ``(y1 - y0, x1 - x0, 2)`` float32 backward displacement in pixels.
    """
    x0, y0, x1, y1 = roi
    field = np.zeros((max(0, y1 - y0), max(0, x1 - x0), 2), dtype=np.float32)
    if field.size == 0:
        return field
    e_u, e_v = geometry.axes
    iod = geometry.iod
    hw, top, bottom = EYE_REGION["half_width"], EYE_REGION["top"], EYE_REGION["bottom"]
    peak_v = 0.02
    xs = np.arange(x0, x1, dtype=np.float64)
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    for eye in ("eye_left", "eye_right"):
        c = geometry.reference(eye)
        lu = ((xs - c[0]) * e_u[0] + (ys - c[1]) * e_u[1]) / iod
        lv = ((xs - c[0]) * e_v[0] + (ys - c[1]) * e_v[1]) / iod
        wx = _raised_cosine_ramp((hw - np.abs(lu)) / (0.5 * hw))
        wy = np.where(lv <= peak_v, _raised_cosine_ramp((lv - top) / (peak_v - top)),
                      _raised_cosine_ramp((bottom - lv) / (bottom - peak_v)))
        w = travel_px * wx * wy
        field[..., 0] += (w * e_v[0]).astype(np.float32)
        field[..., 1] += (w * e_v[1]).astype(np.float32)
    return field


def eye_region_mask(geometry: FaceGeometry, size: tuple[int, int]) -> np.ndarray:
    """Boolean ``(H, W)`` mask of both eye regions (where blinks may change pixels)."""
    w, h = size
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)[:, None]
    e_u, e_v = geometry.axes
    mask = np.zeros((h, w), dtype=bool)
    for eye in ("eye_left", "eye_right"):
        c = geometry.reference(eye)
        lu = ((xs - c[0]) * e_u[0] + (ys - c[1]) * e_u[1]) / geometry.iod
        lv = ((xs - c[0]) * e_v[0] + (ys - c[1]) * e_v[1]) / geometry.iod
        mask |= ((np.abs(lu) <= EYE_REGION["half_width"]) & (lv >= EYE_REGION["top"])
                 & (lv <= EYE_REGION["bottom"]))
    return mask
