"""The dataclasses that travel between the modules of mestudio.

Conventions (all modules follow them):

* images are ``numpy.ndarray``; colour frames are BGR ``uint8`` of shape ``(H, W, 3)``,
  grey images ``uint8`` ``(H, W)``;
* coordinates are pixels ``(x, y)`` in the image they refer to, ``float``;
* boxes are ``(x, y, w, h)`` in pixels;
* times are seconds (``*_s``), frame indices are ``int`` counted from 0 in the source.

This module imports nothing of the package (see ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Box = tuple[float, float, float, float]
"""``(x, y, w, h)`` in pixels."""


@dataclass(frozen=True)
class Frame:
    """One frame of a source.

    Attributes:
        index: frame number in the source, from 0.
        timestamp_s: presentation time in seconds (from the container or the capture clock,
            never assumed from a nominal fps).
        image: BGR ``uint8`` array ``(H, W, 3)``.
    """

    index: int
    timestamp_s: float
    image: np.ndarray


@dataclass
class FaceObservation:
    """What the tracker knows about the primary face in one frame.

    Attributes:
        face_found: False when no face is tracked in this frame (all else is then empty).
        n_faces: number of faces the last detection saw (0 when none).
        confidence: detector/fit confidence in ``[0, 1]``.
        box: primary face box ``(x, y, w, h)`` in frame pixels, or None.
        landmarks: ``(P, 2)`` float32 landmark positions in frame pixels, or None in
            box-only mode.
        landmark_names: names of the ``P`` points, e.g. ``("left_eye_outer", ...)``.
        named_points: derived named points in frame pixels, e.g. ``"left_eye"``,
            ``"right_eye"``, ``"nose"``, ``"mouth_left"``, ``"mouth_right"`` (those available).
        transform: ``(2, 3)`` float64 similarity transform mapping frame pixels to the
            canonical aligned crop, or None.
        aligned: the aligned crop (BGR ``uint8``, ``(S, S, 3)``), or None.
        aligned_landmarks: landmarks mapped into the aligned crop ``(P, 2)``, or None.
        mode: ``"landmarks"`` (full alignment) or ``"box-only"`` (no landmark model) or
            ``"none"`` (no face).
    """

    face_found: bool
    n_faces: int = 0
    confidence: float = 0.0
    box: Box | None = None
    landmarks: np.ndarray | None = None
    landmark_names: tuple[str, ...] = ()
    named_points: dict[str, tuple[float, float]] = field(default_factory=dict)
    transform: np.ndarray | None = None
    aligned: np.ndarray | None = None
    aligned_landmarks: np.ndarray | None = None
    mode: Literal["landmarks", "box-only", "none"] = "none"


@dataclass
class Prediction:
    """The recogniser's answer for one event.

    Attributes:
        probs: ``(K,)`` float32 class probabilities summing to 1.
        label: the most probable class name.
        confidence: ``probs.max()``.
        classes: the ``K`` class names, in the model's order.
        cams: ``(K, S, h, w)`` float32 Grad-CAM maps of every class for each of the ``S``
            streams (normalised to ``[0, 1]`` per map), or None when the model has none.
        streams: the ``S`` stream names (e.g. ``("u", "v", "strain", "onset_apex",
            "offset_apex")``).
        model_name: the model's architecture/name, for display.
        synthetic: True when the model was trained on synthetic data only.
        agreement: for ensembles, the share (0..1) of members whose top class is ``label``;
            None for single models.
        uncertain: True when ``agreement`` is below the recogniser's threshold, or (the
            expression model) the top class names no expression (neutral) or is less sure
            than the model's ``min_confidence``: the event is shown without an emotion.
        source: which recogniser answered: ``"micro"`` (a micro-expression model) or
            ``"expression"`` (the expression model of macro events, trained on FER2013).
    """

    probs: np.ndarray
    label: str
    confidence: float
    classes: tuple[str, ...]
    cams: np.ndarray | None = None
    streams: tuple[str, ...] = ()
    model_name: str = ""
    synthetic: bool = False
    agreement: float | None = None
    uncertain: bool = False
    source: str = "micro"

    @property
    def emotion(self) -> str | None:
        """The emotion to show: ``label``, or None when the prediction is ``uncertain``
        (the event is then shown as "micro-expression (uncertain)")."""
        return None if self.uncertain else self.label


@dataclass
class SpotEvent:
    """A spotted facial movement.

    Frame indices are inclusive and refer to the source; the ``*_s`` fields are the
    timestamps of those frames in seconds.

    Attributes:
        onset, apex, offset: frame indices (onset <= apex <= offset).
        onset_s, apex_s, offset_s: their timestamps in seconds.
        kind: ``"micro"`` (duration <= the configured micro maximum, 0.5 s by default)
            or ``"macro"``.
        roi: name of the region of interest with the strongest response (e.g. ``"brows"``).
        peak: peak signal value (pixels of flow magnitude, after head-motion removal).
        emitted_index: frame index at which the online spotter emitted the event.
        prediction: filled in by the recogniser (micro events only), else None.
        id: a number unique within one analysis, assigned in emission order.
        face_id: the face it belongs to: its track number (from 1, per run, never reused)
            when every face is analysed, 0 in the single-face ("primary") mode.
    """

    onset: int
    apex: int
    offset: int
    onset_s: float
    apex_s: float
    offset_s: float
    kind: Literal["micro", "macro"]
    roi: str
    peak: float
    emitted_index: int = -1
    prediction: Prediction | None = None
    id: int = -1
    face_id: int = 0

    @property
    def duration_s(self) -> float:
        """Duration from onset to offset in seconds."""
        return self.offset_s - self.onset_s


@dataclass
class SpotterState:
    """Per-frame view of the spotter for plotting and ``frames.csv``.

    Attributes:
        signal: per-ROI motion signal in pixels (after low-pass), keyed by ROI name.
        combined: the combined signal the spotter thresholds (pixels).
        threshold: the adaptive threshold at this frame (pixels).
        baseline: running baseline of the person's own motion (pixels).
        state: ``"calibrating"``, ``"idle"``, ``"rising"``, ``"in_event"`` or ``"no_face"``
            (the flow-threshold detector's).
        activity: what the face is doing (the expression spotter's view): ``"calibrating"``,
            ``"rest"``, ``"moving"`` (talking, head motion), ``"expression"``,
            ``"no_face"``; empty when the spotter does not tell.
    """

    signal: dict[str, float] = field(default_factory=dict)
    combined: float = 0.0
    threshold: float = float("nan")
    baseline: float = float("nan")
    state: str = "idle"
    activity: str = ""


@dataclass
class FaceResult:
    """One face of a frame (:attr:`FrameResult.faces`).

    Attributes:
        face_id: its track number (from 1; 0 in the single-face "primary" mode).
        face: the tracker's observation (``face_found`` False while the face is missing
            but its track is kept).
        spotter: that face's spotter state, or None when spotting is off.
        flow, strain: that face's spotting flow and strain when asked (as
            :attr:`FrameResult.flow`), else None.
    """

    face_id: int
    face: FaceObservation
    spotter: SpotterState | None = None
    flow: np.ndarray | None = None
    strain: np.ndarray | None = None


@dataclass
class FrameResult:
    """Everything the pipeline produced for one frame; what the GUI and CLI display.

    Attributes:
        frame: the source frame.
        face: tracker output.
        spotter: spotter state at this frame, or None when spotting is off.
        events: events emitted at this frame (usually empty).
        updated_events: earlier events whose prediction arrived since the last frame.
        timings_ms: per-stage processing time in milliseconds (``decode``, ``track``,
            ``spot``, ...).
        dropped_frames: frames dropped so far because processing was slower than capture.
        capture_time: monotonic clock time (``time.perf_counter()``) at which the frame was
            captured, for latency measurement; None for file sources.
        info: free-form status (e.g. ``{"degraded": "box-only alignment"}``).
        flow: when asked (``Pipeline.set_overlays``), the flow spotting measured at this
            frame: reference frame → this frame on the aligned crop, head motion removed,
            ``(s, s, 2)`` float32 pixels of the signal size ``s``; else None.
        strain: when asked, the optical strain magnitude of ``flow`` ``(s, s)``; else None.
        faces: every face of the frame (one :class:`FaceResult` per live track when all
            faces are analysed; the one primary face, ``face_id`` 0, otherwise). ``face``,
            ``spotter``, ``flow`` and ``strain`` above are those of the primary face: the
            selected one, else the largest face found.
    """

    frame: Frame
    face: FaceObservation
    spotter: SpotterState | None = None
    events: list[SpotEvent] = field(default_factory=list)
    updated_events: list[SpotEvent] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    dropped_frames: int = 0
    capture_time: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    flow: np.ndarray | None = None
    strain: np.ndarray | None = None
    faces: list[FaceResult] = field(default_factory=list)
