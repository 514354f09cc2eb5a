"""Planted events (the ground truth) and their placement on a clip's timeline.

Frame indices are inclusive and snapped to the frame grid: the onset and offset frames are
still neutral (profile 0) and the apex frame is the peak (profile 1), as micro-expression
datasets annotate them. Times are ``index / fps``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mestudio.errors import ConfigError
from mestudio.synth.aus import AU_PATTERNS, CLASSES
from mestudio.synth.config import Range, SynthConfig

log = logging.getLogger(__name__)

EventKind = Literal["micro", "macro", "blink"]
_EPS = 1e-6

#: The frame rate below which micro-expressions cannot be represented (s⁻¹).
MIN_FPS = 5.0


@dataclass(frozen=True)
class PlantedEvent:
    """One synthetic facial movement of a clip (an entry of ``truth.json``).

    Attributes:
        onset, apex, offset: frame indices (inclusive; onset < apex < offset).
        onset_s, apex_s, offset_s: the same in seconds (``index / fps``).
        kind: ``"micro"`` (≤ 0.5 s), ``"macro"`` (> 0.5 s) or ``"blink"``.
        label: the class (one of :data:`~mestudio.synth.aus.CLASSES`), ``"blink"`` for blinks.
        aus: the action units that move, e.g. ``("AU6", "AU12")``; ``("AU45",)`` for blinks.
        amplitude: peak displacement at the apex as a fraction of the face width (for a
            blink: the upper-eyelid travel).
    """

    onset: int
    apex: int
    offset: int
    onset_s: float
    apex_s: float
    offset_s: float
    kind: EventKind
    label: str
    aus: tuple[str, ...]
    amplitude: float

    @property
    def duration_s(self) -> float:
        """Onset→offset duration in seconds."""
        return self.offset_s - self.onset_s

    @property
    def rise_s(self) -> float:
        """Onset→apex duration in seconds."""
        return self.apex_s - self.onset_s

    def to_dict(self) -> dict[str, Any]:
        """The ``truth.json`` event entry."""
        return {"onset": self.onset, "apex": self.apex, "offset": self.offset,
                "onset_s": self.onset_s, "apex_s": self.apex_s, "offset_s": self.offset_s,
                "kind": self.kind, "label": self.label, "aus": list(self.aus),
                "amplitude": self.amplitude}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PlantedEvent:
        """Inverse of :meth:`to_dict` (extra keys are ignored)."""
        return cls(int(d["onset"]), int(d["apex"]), int(d["offset"]), float(d["onset_s"]),
                   float(d["apex_s"]), float(d["offset_s"]), d["kind"], str(d["label"]),
                   tuple(str(a) for a in d.get("aus", ())), float(d.get("amplitude", 0.0)))

    def shifted(self, frames: int, fps: float) -> PlantedEvent:
        """The same event ``frames`` frames later (negative: earlier)."""
        return make_event(self.kind, self.label, self.onset + frames, self.apex - self.onset,
                          self.offset - self.onset, fps, self.amplitude, self.aus)


def make_event(kind: EventKind, label: str, onset: int, rise_frames: int, duration_frames: int,
               fps: float, amplitude: float, aus: Sequence[str] | None = None) -> PlantedEvent:
    """A planted event from frame counts.

    Args:
        kind: ``"micro"``, ``"macro"`` or ``"blink"``.
        label: a class of :data:`CLASSES` (or ``"blink"``).
        onset: onset frame index.
        rise_frames: frames from onset to apex (>= 1).
        duration_frames: frames from onset to offset (> rise_frames).
        fps: frames per second.
        amplitude: peak displacement, fraction of face width (rounded to 6 decimals).
        aus: action units; default: the class pattern (``("AU45",)`` for blinks).
    """
    if rise_frames < 1 or duration_frames <= rise_frames:
        raise ConfigError(f"event needs 1 <= rise ({rise_frames}) < duration ({duration_frames}) "
                          "frames")
    if kind != "blink" and label not in AU_PATTERNS:
        raise ConfigError(f"unknown class {label!r}; known: {', '.join(CLASSES)}")
    if aus is None:
        aus = ("AU45",) if kind == "blink" else AU_PATTERNS[label]
    apex, offset = onset + rise_frames, onset + duration_frames
    return PlantedEvent(onset, apex, offset, onset / fps, apex / fps, offset / fps, kind,
                        label, tuple(aus), round(float(amplitude), 6))


def plan_event(kind: EventKind, label: str, onset_s: float, fps: float, *,
               rise_s: float | None = None, duration_s: float | None = None,
               amplitude: float | None = None, config: SynthConfig | None = None,
               rng: np.random.Generator | None = None) -> PlantedEvent:
    """An event starting at (the frame nearest to) ``onset_s``; unspecified timing and
    amplitude are drawn from the configuration's ranges (needs ``rng``) or their middle."""
    cfg = config or SynthConfig()
    rng = rng or np.random.default_rng(0)
    onset = int(round(onset_s * fps))
    rise_f, dur_f = _timing(kind, fps, cfg, rng, rise_s, duration_s)
    if amplitude is None:
        lo, hi = {"micro": cfg.micro_amplitude, "macro": cfg.macro_amplitude,
                  "blink": (cfg.blink_amplitude, cfg.blink_amplitude)}[kind]
        amplitude = float(rng.uniform(lo, hi))
    return make_event(kind, label, onset, rise_f, dur_f, fps, amplitude)


def _frames_in(range_s: Range, fps: float) -> list[int]:
    lo, hi = range_s
    return list(range(max(1, math.ceil(lo * fps - _EPS)), math.floor(hi * fps + _EPS) + 1))


def _timing(kind: EventKind, fps: float, cfg: SynthConfig, rng: np.random.Generator,
            rise_s: float | None = None, duration_s: float | None = None) -> tuple[int, int]:
    """``(rise_frames, duration_frames)`` of an event at ``fps`` within the configured ranges."""
    if fps < MIN_FPS:
        raise ConfigError(f"fps {fps} is too low for micro-expressions (>= {MIN_FPS} needed)")
    if kind == "blink":
        d = duration_s if duration_s is not None else rng.uniform(*cfg.blink_duration_s)
        dur = max(2, int(round(d * fps)))
        rise = int(round(rise_s * fps)) if rise_s is not None else int(round(0.4 * dur))
        return min(max(rise, 1), dur - 1), dur
    rise_range = cfg.micro_rise_s if kind == "micro" else cfg.macro_rise_s
    if rise_s is not None:
        rise = max(1, int(round(rise_s * fps)))
    else:
        cands = _frames_in(rise_range, fps)
        if cands:
            rise = int(rng.choice(cands))
        else:  # no whole frame count fits (low fps): nearest
            rise = max(1, int(round(0.5 * (rise_range[0] + rise_range[1]) * fps)))
            log.debug("no onset→apex frame count in %s s at %.3g fps; using %d", rise_range,
                      fps, rise)
    d = duration_s if duration_s is not None else rng.uniform(
        *(cfg.micro_duration_s if kind == "micro" else cfg.macro_duration_s))
    dur = int(round(d * fps))
    if kind == "micro":
        dmax = math.floor(cfg.micro_max_s * fps + _EPS)
        dur = min(max(dur, rise + 1), dmax)
        if dur <= rise:
            raise ConfigError(f"fps {fps} is too low for a micro-expression of at most "
                              f"{cfg.micro_max_s} s with a {rise}-frame rise")
    else:
        dur = max(dur, math.floor(cfg.micro_max_s * fps + _EPS) + 1, rise + 1)
    return rise, dur


def plan_events(n_frames: int, fps: float, rng: np.random.Generator, *,
                n_micro: int, n_macro: int = 0, n_blinks: int = 0,
                config: SynthConfig | None = None,
                classes: Sequence[str] = CLASSES) -> list[PlantedEvent]:
    """Place micro-, macro-expressions and blinks on a timeline without overlaps.

    Events keep at least ``config.min_gap_s`` between them and stay out of the lead-in and
    the tail; the spacing is nearly regular with random jitter. Micro labels cycle through
    ``classes`` in a random order (balanced counts). When the clip is too short for every
    event, macro-expressions are dropped first, then blinks, then micro-expressions (logged).

    Returns:
        Events sorted by onset.
    """
    cfg = config or SynthConfig()
    for c in classes:
        if c not in AU_PATTERNS:
            raise ConfigError(f"unknown class {c!r}; known: {', '.join(CLASSES)}")
    items: list[tuple[EventKind, int, int]] = []
    for kind, n in (("micro", n_micro), ("macro", n_macro), ("blink", n_blinks)):
        for _ in range(max(0, n)):
            rise, dur = _timing(kind, fps, cfg, rng)  # type: ignore[arg-type]
            items.append((kind, rise, dur))  # type: ignore[arg-type]
    start = math.ceil(cfg.lead_in_s * fps - _EPS)
    last = n_frames - 1 - math.ceil(cfg.tail_s * fps - _EPS)
    gap = math.ceil(cfg.min_gap_s * fps - _EPS)

    def needed(its: list[tuple[EventKind, int, int]]) -> int:
        return sum(d + 1 for _, _, d in its) + gap * max(0, len(its) - 1)

    dropped = 0
    for kind in ("macro", "blink", "micro"):
        while items and needed(items) > last - start + 1 and any(k == kind for k, _, _ in items):
            idx = max(i for i, it in enumerate(items) if it[0] == kind)
            items.pop(idx)
            dropped += 1
    if dropped:
        log.warning("clip too short for every planted event: %d dropped (%d kept)", dropped,
                    len(items))
    if not items:
        return []
    order = rng.permutation(len(items))
    items = [items[i] for i in order]
    slack = (last - start + 1) - needed(items)
    w = 1.0 + 0.6 * rng.uniform(-1, 1, size=len(items) + 1)
    w[0] *= 0.5  # less empty time before the first event (the lead-in is already there)
    shares = np.floor(slack * w / w.sum()).astype(int)
    n_micro_kept = sum(1 for k, _, _ in items if k == "micro")
    n_macro_kept = sum(1 for k, _, _ in items if k == "macro")
    micro_labels = _balanced_labels(n_micro_kept, classes, rng)
    macro_labels = _balanced_labels(n_macro_kept, classes, rng)
    events = []
    pos = start + int(shares[0])
    for i, (kind, rise, dur) in enumerate(items):
        if kind == "micro":
            label, amp = micro_labels.pop(), float(rng.uniform(*cfg.micro_amplitude))
        elif kind == "macro":
            label, amp = macro_labels.pop(), float(rng.uniform(*cfg.macro_amplitude))
        else:
            label, amp = "blink", float(cfg.blink_amplitude)
        events.append(make_event(kind, label, pos, rise, dur, fps, amp))
        pos += dur + 1 + gap + int(shares[i + 1])
    return sorted(events, key=lambda e: e.onset)


def _balanced_labels(n: int, classes: Sequence[str], rng: np.random.Generator) -> list[str]:
    reps = -(-n // max(1, len(classes)))
    labels = [c for _ in range(reps) for c in rng.permutation(list(classes))]
    return [str(x) for x in labels[:n]]
