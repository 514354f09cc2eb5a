"""Synthetic clips: a real face plus planted micro-expressions and distractors.

A :class:`SynthClip` renders every frame directly from the base image (or base video
frame) and the parameter tracks at time ``t = i / fps`` — no sequential state — so
``frame(i)`` is random access and the same seed always gives the same frames.

Rendering of frame ``i``:

1. expression warp on the face region: the forward displacement ``D = Σ a·p(t)·U`` of the
   active events (unit fields ``U`` from :mod:`mestudio.synth.aus`, amplitude ``a`` in
   pixels, raised-cosine profile ``p``) is inverted by fixed-point iteration
   (``B ← D(y − B)``) and applied with ``cv2.remap`` (bilinear); blinks add their backward
   eyelid field;
2. head motion: a global similarity transform (``cv2.warpAffine``);
3. illumination drift (gain and a left–right gradient) and sensor noise.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from mestudio.errors import ConfigError
from mestudio.synth.aus import (
    AU_PATTERNS,
    CLASSES,
    blink_field,
    displacement_field,
    pattern_blobs,
)
from mestudio.synth.config import SynthConfig
from mestudio.synth.events import MIN_FPS, PlantedEvent, _timing, make_event, plan_events
from mestudio.synth.faces import (
    FaceBase,
    FaceImage,
    StillFace,
    VideoFace,
    astronaut_face,
    frame_face,
    load_face,
)
from mestudio.synth.geometry import FaceGeometry, estimate_geometry
from mestudio.synth.motion import HeadMotion, Illumination, event_profile

log = logging.getLogger(__name__)

TRUTH_FORMAT = "mestudio-truth/1"

#: Fixed-point iterations inverting the forward displacement (2 keeps the error < 1 % of the
#: displacement for the gradients of micro- and macro-expressions).
INVERSE_ITERATIONS = 2
#: Anchor jitter of the AU blobs per event (inter-ocular distances).
ANCHOR_JITTER = 0.02
#: Noise patterns kept in memory (each frame picks one at a random offset).
NOISE_BANK = 8
NOISE_PAD = 32


class SynthClip:
    """A synthetic clip: random-access frames plus the ground truth.

    Attributes:
        fps: frames per second.
        n_frames: number of frames.
        size: ``(width, height)`` pixels.
        timestamps: ``(n_frames,)`` float64 seconds, ``i / fps``.
        events: planted events sorted by onset.
        face_width: face width in pixels used for the amplitudes.
        geometry: the base face geometry (a video base: its median frame's).
        seed: the random seed.
        config: timing/amplitude/distractor settings.
    """

    def __init__(self, base: FaceBase, fps: float, n_frames: int, events: Sequence[PlantedEvent],
                 *, seed: int = 0, config: SynthConfig | None = None) -> None:
        if not fps > 0:
            raise ConfigError(f"fps must be > 0, got {fps}")
        self.base = base
        self.fps = float(fps)
        self.n_frames = int(n_frames)
        self.seed = int(seed)
        self.config = config or SynthConfig()
        self.events = sorted(events, key=lambda e: e.onset)
        for e in self.events:
            if not 0 <= e.onset < e.apex < e.offset:
                raise ConfigError(f"event {e} needs 0 <= onset < apex < offset")
        self.size = base.size
        self.geometry: FaceGeometry = base.geometry
        self.face_width = float(self.geometry.face_width)
        self.timestamps = np.arange(self.n_frames, dtype=np.float64) / self.fps
        duration = self.n_frames / self.fps
        rng = np.random.default_rng([self.seed, 1])
        self.head = HeadMotion(duration, self.config, rng)
        self.illumination = Illumination(duration, self.config, rng)
        w, h = self.size
        self._xrel = ((np.arange(w, dtype=np.float32) - (w - 1) / 2) / max(1.0, (w - 1) / 2)
                      ).reshape(1, w, 1)
        self._noise: np.ndarray | None = None
        self._xmap: np.ndarray | None = None
        self._field_cache: OrderedDict[tuple[int, int], tuple[tuple[int, int, int, int],
                                                            np.ndarray]] = OrderedDict()
        self._grid_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    # ---- basic protocol -------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames 0..n-1 (BGR ``uint8`` ``(H, W, 3)``)."""
        for i in range(self.n_frames):
            yield self.frame(i)

    @property
    def duration_s(self) -> float:
        """Clip length in seconds (``n_frames / fps``)."""
        return self.n_frames / self.fps

    def _check(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        return i

    # ---- per-frame parameters ---------------------------------------------------------------
    def active_events(self, i: int) -> list[tuple[int, PlantedEvent, float]]:
        """``(event index, event, profile value)`` of the events moving at frame ``i``."""
        i = self._check(i)
        t = i / self.fps
        out = []
        for k, e in enumerate(self.events):
            if e.onset < i < e.offset:
                p = float(event_profile(t, e.onset_s, e.apex_s, e.offset_s))
                if p > 0:
                    out.append((k, e, p))
        return out

    def head_matrix(self, i: int) -> np.ndarray:
        """``(2, 3)`` forward similarity transform (base → frame) of the head at frame ``i``."""
        i = self._check(i)
        _, g = self.base.at(self.base.index_at(i / self.fps))
        return self.head.matrix(i / self.fps, g.center, self.face_width)

    def _unit_field(self, k: int, event: PlantedEvent, base_index: int, geometry: FaceGeometry
                    ) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """ROI and unit-peak forward field of event ``k`` (cached for still bases)."""
        key = (k, base_index if isinstance(self.base, VideoFace) else 0)
        hit = self._field_cache.get(key)
        if hit is not None:
            self._field_cache.move_to_end(key)
            return hit
        roi = geometry.roi(self.size)
        if event.kind == "blink":
            unit = blink_field(geometry, roi, 1.0)
        else:
            rng = np.random.default_rng([self.seed, 1000 + k])
            weights = {au: 1.0 for au in event.aus}
            if event.label in AU_PATTERNS and tuple(event.aus) == AU_PATTERNS[event.label]:
                blobs = pattern_blobs(event.label, rng=rng, variation=self.config.au_variation,
                                      asymmetry=self.config.asymmetry, anchor_jitter=ANCHOR_JITTER)
            else:
                blobs = pattern_blobs(weights, rng=rng, variation=self.config.au_variation,
                                      asymmetry=self.config.asymmetry, anchor_jitter=ANCHOR_JITTER)
            unit = displacement_field(geometry, blobs, roi, normalise=True)
        self._field_cache[key] = (roi, unit)
        while len(self._field_cache) > 16:
            self._field_cache.popitem(last=False)
        return roi, unit

    def _grid(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        g = self._grid_cache.get((h, w))
        if g is None:
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            g = (gx, gy)
            self._grid_cache = {(h, w): g}
        return g

    def _fields(self, i: int) -> tuple[tuple[int, int, int, int] | None, np.ndarray | None,
                                       np.ndarray | None]:
        """``(roi, forward AU field px, backward blink field px)`` at frame ``i``."""
        active = self.active_events(i)
        if not active:
            return None, None, None
        bidx = self.base.index_at(i / self.fps)
        _, geometry = self.base.at(bidx)
        roi = None
        fwd: np.ndarray | None = None
        blink: np.ndarray | None = None
        for k, e, p in active:
            r, unit = self._unit_field(k, e, bidx, geometry)
            roi = r
            scale = np.float32(p * e.amplitude * self.face_width)
            if e.kind == "blink":
                blink = unit * scale if blink is None else blink + unit * scale
            else:
                fwd = unit * scale if fwd is None else fwd + unit * scale
        return roi, fwd, blink

    def expression_field(self, i: int) -> np.ndarray:
        """The planted forward displacement of frame ``i`` in base-image pixels.

        Micro- and macro-expressions only (blinks and head motion excluded): a base pixel at
        ``x`` moves to ``x + D(x)``.

        Returns:
            ``(H, W, 2)`` float32 ``(dx, dy)`` pixels (zero outside the face region).
        """
        w, h = self.size
        out = np.zeros((h, w, 2), dtype=np.float32)
        roi, fwd, _ = self._fields(self._check(i))
        if roi is not None and fwd is not None:
            x0, y0, x1, y1 = roi
            out[y0:y1, x0:x1] = fwd
        return out

    # ---- rendering ----------------------------------------------------------------------------
    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as BGR ``uint8`` ``(H, W, 3)`` (a new array)."""
        import cv2

        i = self._check(i)
        t = i / self.fps
        bidx = self.base.index_at(t)
        base, geometry = self.base.at(bidx)
        roi, fwd, blink = self._fields(i)
        img = base
        if roi is not None:
            x0, y0, x1, y1 = roi
            gx, gy = self._grid(y1 - y0, x1 - x0)
            back = np.zeros_like(fwd if fwd is not None else blink)
            if fwd is not None:
                back = fwd.copy()
                for _ in range(INVERSE_ITERATIONS):
                    back = cv2.remap(fwd, gx - back[..., 0], gy - back[..., 1], cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            if blink is not None:
                back += blink
            patch = cv2.remap(base, gx + np.float32(x0) - back[..., 0],
                              gy + np.float32(y0) - back[..., 1], cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT101)
            img = base.copy()
            img[y0:y1, x0:x1] = patch
        if self.head.active:
            m = self.head.matrix(t, geometry.center, self.face_width)
            img = cv2.warpAffine(img, m, self.size, flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT101)
        noise = self._noise_at(i)
        if self.illumination.active:
            gain, grad = self.illumination.factors(t)
            if self._xmap is None:
                w, h = self.size
                self._xmap = np.ascontiguousarray(np.broadcast_to(self._xrel, (h, w, 3)))
            gain_map = cv2.addWeighted(self._xmap, grad, self._xmap, 0.0, gain)
            if noise is not None:
                lit = cv2.multiply(img, gain_map, dtype=cv2.CV_16S)
                img = cv2.add(lit, noise, dtype=cv2.CV_8U)
            else:
                img = cv2.multiply(img, gain_map, dtype=cv2.CV_8U)
        elif noise is not None:
            img = cv2.add(img, noise, dtype=cv2.CV_8U)
        elif img is base:
            img = base.copy()
        return img

    def _noise_at(self, i: int) -> np.ndarray | None:
        std = self.config.noise_std
        if std <= 0:
            return None
        w, h = self.size
        if self._noise is None:
            self._noise = _noise_bank(h, w, float(std))
        r = np.random.default_rng([self.seed, 3, i])
        k, dy, dx = (int(v) for v in r.integers(0, [NOISE_BANK, NOISE_PAD, NOISE_PAD]))
        return self._noise[k, dy:dy + h, dx:dx + w]

    # ---- ground truth -------------------------------------------------------------------------
    def truth(self) -> dict[str, Any]:
        """The ``truth.json`` content (format ``mestudio-truth/1``)."""
        from mestudio import __version__

        base = self.base
        counts = {k: sum(e.kind == k for e in self.events) for k in ("micro", "macro", "blink")}
        return {
            "format": TRUTH_FORMAT,
            "generator": f"mestudio {__version__} synth",
            "fps": self.fps,
            "n_frames": self.n_frames,
            "duration_s": round(self.duration_s, 6),
            "size": list(self.size),
            "seed": self.seed,
            "face": base.description,
            "face_kind": "video" if isinstance(base, VideoFace) else "image",
            "face_width_px": round(self.face_width, 3),
            "geometry": self.geometry.to_dict(),
            "classes": list(CLASSES),
            "au_patterns": {k: list(v) for k, v in AU_PATTERNS.items()},
            "counts": counts,
            "config": self.config.to_dict(),
            "events": [e.to_dict() for e in self.events],
        }


@functools.lru_cache(maxsize=2)
def _noise_bank(h: int, w: int, std: float) -> np.ndarray:
    """``NOISE_BANK`` fixed Gaussian noise patterns ``(K, h + pad, w + pad, 3)`` int16 (grey
    levels); shared by all clips of one size (each frame picks a pattern and an offset from
    its clip's seed and index)."""
    rng = np.random.default_rng(20240601)
    bank = rng.standard_normal((NOISE_BANK, h + NOISE_PAD, w + NOISE_PAD, 3),
                               dtype=np.float32) * np.float32(std)
    out = np.clip(np.round(bank), -255, 255).astype(np.int16)
    out.flags.writeable = False
    return out


# ---- construction -------------------------------------------------------------------------------
def resolve_face(face: Any, *, size: tuple[int, int] | None = None,
                 geometry: FaceGeometry | dict | None = None, face_fraction: float = 0.3,
                 max_duration_s: float | None = None) -> FaceBase:
    """Turn what the user gave into a clip base.

    Args:
        face: None (the astronaut), a BGR image array, a :class:`FaceImage`, a
            :class:`StillFace`/:class:`VideoFace`, or a path to a photo or video.
        size: output ``(width, height)``; a still face is re-framed around the face (see
            :func:`~mestudio.synth.faces.frame_face`), video frames are resized. None keeps
            the face's own size (the astronaut: 640×480).
        geometry: explicit five points (a :class:`FaceGeometry` or a mapping of points).
        face_fraction: face width / frame width when re-framing a still.
        max_duration_s: how much of a face video to read (seconds).
    """
    import cv2

    g = FaceGeometry.from_dict(geometry) if isinstance(geometry, dict) else geometry
    base: FaceBase
    if face is None:
        return astronaut_face(size or (640, 480), face_fraction)
    if isinstance(face, (StillFace, VideoFace)):
        base = face
    elif isinstance(face, FaceImage):
        base = StillFace(face.image, g or face.geometry, face.source or face.identity)
    elif isinstance(face, np.ndarray):
        img = face
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        if img.dtype != np.uint8:
            raise ConfigError(f"face image must be uint8 BGR, got dtype {img.dtype}")
        base = StillFace(np.ascontiguousarray(img), g or estimate_geometry(img), "image array")
    elif isinstance(face, (str, os.PathLike)):
        base = load_face(face, geometry=g, max_duration_s=max_duration_s,
                         video_size=None if size is None else (int(size[0]), int(size[1])))
    else:
        raise ConfigError(f"unsupported face of type {type(face).__name__}")
    if size is not None and tuple(size) != base.size:
        size = (int(size[0]), int(size[1]))
        if isinstance(base, StillFace):
            img, gg = frame_face(base.image, base.geometry, size, face_fraction)
            base = StillFace(img, gg, base.description)
        else:
            w0, h0 = base.size
            m = np.array([[size[0] / w0, 0, 0], [0, size[1] / h0, 0]])
            base = VideoFace([cv2.resize(f, tuple(size), interpolation=cv2.INTER_AREA)
                              for f in base.frames],
                             [gg.transformed(m) for gg in base.geometries], base.fps,
                             base.description)
    return base


def synthesize_clip(face: Any = None, fps: float | None = 30.0, duration_s: float = 10.0, seed: int = 0,
                    *, size: tuple[int, int] | None = None,
                    geometry: FaceGeometry | dict | None = None,
                    n_micro: int | None = None, n_macro: int | None = None,
                    n_blinks: int | None = None,
                    amplitude: float | tuple[float, float] | None = None,
                    distractors: bool = True, classes: Sequence[str] = CLASSES,
                    events: Sequence[PlantedEvent] | None = None,
                    config: SynthConfig | None = None, face_fraction: float = 0.3) -> SynthClip:
    """A synthetic clip with planted micro-expressions on a real face.

    Args:
        face: None (the scikit-image astronaut), a BGR image, a :class:`FaceImage`, or a
            path to a face photo or video (a video is the moving base: expressions are
            injected on top of its frames).
        fps: frames per second (any value >= 5); None = the face video's own rate (30 for
            a photo). A video base keeps its own motion: at a higher fps its frames repeat.
        duration_s: clip length in seconds.
        seed: random seed; the same arguments and seed give identical frames.
        size: output ``(width, height)`` (default: the astronaut 640×480, else the face's size).
        geometry: explicit face points instead of detection (photos).
        n_micro: number of micro-expressions (default: one per ``config.micro_every_s``).
        n_macro: number of macro-expressions (default: one per ``config.macro_every_s``;
            0 without distractors).
        n_blinks: number of blinks (default: one per ``config.blink_every_s``; 0 without
            distractors).
        amplitude: micro amplitude (fraction of face width), a value or a ``(lo, hi)`` range;
            default ``config.micro_amplitude`` (0.01–0.03).
        distractors: head motion, illumination drift, sensor noise, blinks and macros.
        classes: the classes micro-expressions are drawn from (balanced).
        events: explicit events instead of random planning (frame indices at this fps).
        config: timing, amplitude and distractor settings.
        face_fraction: face width / frame width when a still is re-framed to ``size``.
    Raises:
        SourceError: the face file is missing/unreadable or shows no face.
        ConfigError: invalid timing (e.g. fps too low) or events out of range.
    """
    cfg = config or SynthConfig()
    if fps is not None and not fps >= MIN_FPS:
        raise ConfigError(f"fps must be >= {MIN_FPS} for micro-expressions, got {fps}")
    if not duration_s > 0:
        raise ConfigError(f"duration must be > 0 s, got {duration_s}")
    if amplitude is not None:
        cfg = _with_amplitude(cfg, amplitude)
    if not distractors:
        cfg = cfg.without_distractors()
    base = resolve_face(face, size=size, geometry=geometry, face_fraction=face_fraction,
                        max_duration_s=duration_s)
    if fps is None:
        fps = max(MIN_FPS, base.fps) if isinstance(base, VideoFace) else 30.0
    n_frames = max(1, int(round(duration_s * fps)))
    if events is None:
        counts = default_counts(duration_s, cfg)
        if n_micro is None:
            n_micro = counts["micro"]
        if n_macro is None:
            n_macro = counts["macro"] if distractors else 0
        if n_blinks is None:
            n_blinks = counts["blink"] if distractors else 0
        rng = np.random.default_rng([int(seed), 0])
        planned = plan_events(n_frames, fps, rng, n_micro=n_micro, n_macro=n_macro,
                              n_blinks=n_blinks, config=cfg, classes=classes)
    else:
        planned = list(events)
        for e in planned:
            if e.offset >= n_frames:
                raise ConfigError(f"event at frames {e.onset}..{e.offset} does not fit a clip of "
                                  f"{n_frames} frames")
    clip = SynthClip(base, fps, n_frames, planned, seed=seed, config=cfg)
    log.debug("synthetic clip: %d frames %dx%d @ %.4g fps, %s", n_frames, *clip.size, fps,
             ", ".join(f"{v} {k}" for k, v in clip.truth()["counts"].items()))
    return clip


def synthesize_sample(face: Any, label: str, fps: float = 30.0, seed: int = 0, *,
                      geometry: FaceGeometry | dict | None = None,
                      amplitude: float | tuple[float, float] | None = None,
                      before_s: tuple[float, float] = (0.07, 0.2),
                      after_s: tuple[float, float] = (0.07, 0.2),
                      distractors: bool = True, config: SynthConfig | None = None,
                      ) -> tuple[list[np.ndarray], PlantedEvent]:
    """A short training sample: a few neutral frames, one micro-expression, a few after.

    Args:
        face: a :class:`FaceImage` (crop + geometry, see
            :func:`~mestudio.synth.faces.collect_faces`), a BGR image (face detected), or a
            path.
        label: the class (one of :data:`CLASSES`); its AU pattern is planted with random
            per-AU strength, left/right asymmetry and timing within the micro ranges.
        fps: frames per second.
        seed: random seed (same seed → same frames).
        geometry: explicit face points.
        amplitude: peak displacement, fraction of face width (default: config range 1–3 %).
        before_s, after_s: neutral time before onset / after offset (s, drawn uniformly;
            at least 2 frames each).
        distractors: light head motion, illumination drift and sensor noise (no blinks or
            macro-expressions in a sample).
    Returns:
        ``(frames, event)``: BGR ``uint8`` frames and the planted event with frame indices
        into ``frames`` (onset and offset are neutral, apex is the peak).
    """
    if label not in AU_PATTERNS:
        raise ConfigError(f"unknown class {label!r}; known: {', '.join(CLASSES)}")
    cfg = config or SynthConfig()
    if amplitude is not None:
        cfg = _with_amplitude(cfg, amplitude)
    if not distractors:
        cfg = cfg.without_distractors()
    rng = np.random.default_rng([int(seed), 4])
    rise, dur = _timing("micro", fps, cfg, rng)
    pre = max(2, int(round(rng.uniform(*before_s) * fps)))
    post = max(2, int(round(rng.uniform(*after_s) * fps)))
    event = make_event("micro", label, pre, rise, dur, fps,
                       float(rng.uniform(*cfg.micro_amplitude)))
    n = event.offset + 1 + post
    base = resolve_face(face, geometry=geometry)
    clip = SynthClip(base, fps, n, [event], seed=seed, config=cfg)
    return [clip.frame(i) for i in range(n)], event


def synthesize_samples_for(faces: Sequence[FaceImage], per_class: int, fps: float = 30.0,
                           seed: int = 0, classes: Sequence[str] = CLASSES, **kw: Any
                           ) -> Iterator[tuple[FaceImage, str, int, list[np.ndarray], PlantedEvent]]:
    """Samples for every face × class × repetition, deterministically seeded.

    Yields:
        ``(face, label, repetition, frames, event)``; the seed of each sample is derived from
        ``seed``, the face's position and the repetition, so the set is reproducible.
    """
    for fi, face in enumerate(faces):
        for ci, label in enumerate(classes):
            for r in range(per_class):
                s = int(np.random.default_rng([seed, fi, ci, r]).integers(0, 2**31 - 1))
                frames, ev = synthesize_sample(face, label, fps, s, **kw)
                yield face, label, r, frames, ev


def _with_amplitude(cfg: SynthConfig, amplitude: float | tuple[float, float]) -> SynthConfig:
    """A copy of ``cfg`` with the micro amplitude set to a value or a ``(lo, hi)`` range."""
    if isinstance(amplitude, (int, float)):
        lo = hi = float(amplitude)
    else:
        lo, hi = (float(a) for a in amplitude)
    return SynthConfig.from_dict({**cfg.to_dict(), "micro_amplitude": [lo, hi]})


def default_counts(duration_s: float, config: SynthConfig | None = None) -> dict[str, int]:
    """How many micro, macro and blink events :func:`synthesize_clip` plants by default."""
    cfg = config or SynthConfig()
    usable = max(0.0, duration_s - cfg.lead_in_s - cfg.tail_s)
    return {"micro": max(1, int(usable // cfg.micro_every_s)) if usable > 1.0 else 0,
            "macro": int(duration_s // cfg.macro_every_s),
            "blink": int(duration_s // cfg.blink_every_s)}
