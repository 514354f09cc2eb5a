"""Eulerian video magnification (Wu et al., SIGGRAPH 2012), colour/intensity variant.

Optional preprocessing for clip models (IM3DR-MFER): each frame is blurred and downsampled
``levels`` times (Gaussian pyramid, 5-tap binomial kernel), the low-resolution sequence is
band-pass filtered in time with an ideal filter (FFT over the clip), amplified by ``alpha``,
upsampled back and added to the clip. Subtle changes inside the frequency band become
``1 + alpha`` times larger; everything else is unchanged.

Works on numpy arrays or torch tensors, on ``[T, C, H, W]`` or ``[N, T, C, H, W]`` clips.
The settings (:class:`EVMSettings`) need no torch; the magnification imports it.

As a preprocessing option (IM3DR-MFER's "+EVM" ablation): :class:`EVMSettings` (amplification
and band, with a text form for command lines) and :func:`magnify_clip_input`, which
:func:`mestudio.preprocess.clip_inputs` calls on a clip's frames (0..1, before the flow and
the normalisation) when the preprocessing configuration's ``evm`` is set — ``mestudio train
--set evm=...`` sets it, the model's metadata keeps it, ``mestudio evaluate`` applies it;
``mestudio reproduce im3dr-mfer`` passes ``--set evm=alpha=...,low=...,high=...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

if TYPE_CHECKING:  # torch is imported by the magnification itself (a training-side extra)
    import torch

    ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)
else:
    ArrayT = TypeVar("ArrayT")


def _pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Gaussian blur (5x5 binomial, reflect padding) and 2x decimation of ``[B, C, H, W]``."""
    import torch
    import torch.nn.functional as F

    c = x.shape[1]
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]).to(x) / 16.0
    kernel = (k1[:, None] * k1[None, :]).expand(c, 1, 5, 5)
    pad = F.pad(x, (2, 2, 2, 2), mode="reflect") if min(x.shape[-2:]) > 2 else \
        F.pad(x, (2, 2, 2, 2), mode="replicate")
    return F.conv2d(pad, kernel, groups=c)[:, :, ::2, ::2]


def temporal_bandpass(x: torch.Tensor, fps: float, low_hz: float, high_hz: float,
                      dim: int = 0) -> torch.Tensor:
    """Ideal temporal band-pass along ``dim``: keeps frequencies in ``[low_hz, high_hz]``.

    Args:
        x: real tensor with time along ``dim``.
        fps: sampling rate of the clip in frames per second.
        low_hz, high_hz: pass band in Hz (``0 <= low_hz < high_hz``).
    """
    import torch

    t = x.shape[dim]
    spec = torch.fft.rfft(x, dim=dim)
    freqs = torch.fft.rfftfreq(t, d=1.0 / fps).to(x.device)
    keep = ((freqs >= low_hz) & (freqs <= high_hz)).to(spec.dtype)
    shape = [1] * x.dim()
    shape[dim] = keep.shape[0]
    return torch.fft.irfft(spec * keep.view(shape), n=t, dim=dim)


def eulerian_magnify(clip: ArrayT, fps: float, low_hz: float = 0.5, high_hz: float = 8.0,
                     alpha: float = 8.0, levels: int = 3) -> ArrayT:
    """Magnify subtle temporal changes of a clip.

    Args:
        clip: ``[T, C, H, W]`` or ``[N, T, C, H, W]`` float clip (any range, e.g. 0..1);
            numpy array or torch tensor (the result has the same type, dtype float32).
        fps: frame rate of the clip in frames per second (> 0).
        low_hz, high_hz: temporal pass band in Hz; ``high_hz`` is clipped to ``fps / 2``.
            Micro-expressions last 1/25 to 1/2 s, so the default band 0.5-8 Hz holds them.
        alpha: amplification of the band-passed signal (``>= 0``).
        levels: Gaussian pyramid levels (spatial low-pass, 2**levels px blur).

    Returns:
        The magnified clip, same shape.

    Raises:
        ValueError: on a clip of the wrong rank, fewer than 2 frames, or a bad band.
    """
    import torch
    import torch.nn.functional as F

    is_numpy = isinstance(clip, np.ndarray)
    if isinstance(clip, np.ndarray):
        x = torch.as_tensor(np.asarray(clip, dtype=np.float32))
    else:
        x = clip.float()
    if x.dim() not in (4, 5):
        raise ValueError(f"clip must have shape [T, C, H, W] or [N, T, C, H, W], got {tuple(x.shape)}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not 0 <= low_hz < high_hz:
        raise ValueError(f"need 0 <= low_hz < high_hz, got {low_hz}, {high_hz}")
    batched = x.dim() == 5
    if not batched:
        x = x.unsqueeze(0)
    n, t, c, h, w = x.shape
    if t < 2:
        raise ValueError(f"a clip needs at least 2 frames to magnify, got {t}")
    low = x.reshape(n * t, c, h, w)
    for _ in range(levels):
        if min(low.shape[-2:]) < 4:
            break
        low = _pyr_down(low)
    low = low.reshape(n, t, c, *low.shape[-2:])
    band = temporal_bandpass(low, fps, low_hz, min(high_hz, fps / 2.0), dim=1) * alpha
    up = F.interpolate(band.reshape(n * t, c, *band.shape[-2:]), size=(h, w),
                       mode="bilinear", align_corners=False).reshape(n, t, c, h, w)
    out = x + up
    if not batched:
        out = out[0]
    return out.numpy() if is_numpy else out  # type: ignore[return-value]


# ---- as a preprocessing option --------------------------------------------------------------

@dataclass(frozen=True)
class EVMSettings:
    """Eulerian magnification as a preprocessing option of clip inputs (IM3DR-MFER's "+EVM").

    Attributes:
        alpha: amplification of the band-passed signal.
        low_hz, high_hz: temporal pass band in Hz.
        levels: Gaussian pyramid levels.

    Text form (``--set evm=...`` on the training side, ``mestudio reproduce im3dr-mfer``):
    ``"alpha=10,low=0.5,high=8,levels=3"`` (any subset, the rest default), a bare number
    (``"10"`` = alpha), or ``"off"`` / ``"none"`` / ``""`` / ``"0"`` for no magnification
    (:meth:`parse` returns None).
    """

    alpha: float = 8.0
    low_hz: float = 0.5
    high_hz: float = 8.0
    levels: int = 3

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError(f"EVM alpha must be >= 0, got {self.alpha}")
        if not 0 <= self.low_hz < self.high_hz:
            raise ValueError(f"EVM band needs 0 <= low < high, got {self.low_hz}, {self.high_hz}")
        if self.levels < 0:
            raise ValueError(f"EVM levels must be >= 0, got {self.levels}")

    _KEYS: ClassVar[dict[str, str]] = {"alpha": "alpha", "a": "alpha", "low": "low_hz", "low_hz": "low_hz",
             "high": "high_hz", "high_hz": "high_hz", "levels": "levels"}

    @classmethod
    def parse(cls, value: str | Mapping[str, Any] | EVMSettings | float | None
              ) -> EVMSettings | None:
        """Settings from their text form, a mapping of fields, a number (alpha) or None.

        Raises:
            ValueError: an unknown key or a bad value.
        """
        if value is None or isinstance(value, EVMSettings):
            return value
        if isinstance(value, bool):
            return cls() if value else None
        if isinstance(value, (int, float)):
            return cls(alpha=float(value)) if value else None
        if isinstance(value, Mapping):
            items = dict(value)
        else:
            text = str(value).strip().lower()
            if text in ("", "off", "none", "false", "no", "0"):
                return None
            if text in ("on", "true", "yes", "default"):
                return cls()
            items = {}
            for part in text.replace(";", ",").split(","):
                if not part.strip():
                    continue
                if "=" not in part and ":" not in part:
                    items["alpha"] = part
                    continue
                key, val = part.replace(":", "=", 1).split("=", 1)
                items[key.strip()] = val.strip()
        kwargs: dict[str, Any] = {}
        for key, val in items.items():
            field_name = cls._KEYS.get(str(key).strip().lower())
            if field_name is None:
                raise ValueError(f"unknown EVM setting {key!r}: use alpha, low, high, levels")
            kwargs[field_name] = int(val) if field_name == "levels" else float(val)
        return cls(**kwargs)

    def to_text(self) -> str:
        """The text form (:meth:`parse` reads it back)."""
        return f"alpha={self.alpha:g},low={self.low_hz:g},high={self.high_hz:g},levels={self.levels}"


def magnify_clip_input(clip: ArrayT, fps: float,
                       settings: str | Mapping[str, Any] | EVMSettings | float | None
                       ) -> ArrayT:
    """Apply EVM to a clip input before it is normalised — the hook of the feature path.

    Args:
        clip: ``[T, C, H, W]`` or ``[N, T, C, H, W]`` frames in 0..1 (numpy or torch).
        fps: the frame rate **of the clip as sampled**: a clip of ``T`` frames resampled
            from an event of ``d`` seconds has ``T / d`` frames per second, not the camera's
            rate.
        settings: :class:`EVMSettings` or anything :meth:`EVMSettings.parse` reads; None /
            ``"off"`` returns the clip unchanged.

    Returns:
        The magnified clip, clipped to 0..1 (same type and shape).
    """
    cfg = EVMSettings.parse(settings)
    if cfg is None or cfg.alpha == 0:
        return clip
    out = eulerian_magnify(clip, fps, cfg.low_hz, max(cfg.high_hz, cfg.low_hz + 1e-6),
                           cfg.alpha, cfg.levels)
    if isinstance(out, np.ndarray):
        return np.clip(out, 0.0, 1.0)  # type: ignore[return-value]
    return out.clamp(0.0, 1.0)  # type: ignore[return-value]
