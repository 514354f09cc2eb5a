"""The processing pipeline: source → tracker → ROI signal → online spotter → recogniser.

No Qt and no global state. Every front end builds it with :meth:`Pipeline.from_config` (the one
fallback policy) and drives it through one of two loops: :class:`mestudio.engine.live.LiveSession`
(live window, kiosk, ``bench live``/``bench soak``) or :func:`mestudio.engine.analysis.analyze_video`
(``mestudio analyze`` and the review window). The stages are typed by the :class:`Tracker`,
:class:`Signal`, :class:`Spotter` and :class:`Engine` protocols. Per frame
(:meth:`Pipeline.process`):

1. **track**: :class:`~mestudio.face.tracker.FaceTracker` finds the face and its aligned
   crop;
2. **signal**: :class:`~mestudio.spotting.signal.RoiSignal` measures the motion of each ROI
   on the aligned crop (pixels, head motion removed);
3. **spot**: the online spotter (:func:`~mestudio.spotting.config.make_spotter`: the
   expression spotter of :mod:`mestudio.spotting.expression` by default) updates its threshold and
   state and emits the events whose offset became final at this frame;
4. **recognition**: the aligned crop goes into the recogniser's ring buffer; micro events
   (and macro events with ``recognition.macro``) are queued for recognition on a worker thread
   (:class:`~mestudio.engine.recognition.Recognizer`), and the predictions that arrived since the
   previous frame are attached to their events (``FrameResult.updated_events``).

Recognition never runs on the per-frame path: steps 1–3 plus the bookkeeping of step 4 are
all :meth:`Pipeline.process` costs (``FrameResult.timings_ms``). For overlays
(:meth:`Pipeline.set_overlays`) the result also carries the flow that step 2 measured and its
optical strain, so a picture shows exactly the motion spotting saw. Without a usable model the
pipeline runs in a degraded mode ("no recognition model: events shown without emotion");
it never invents an emotion.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np

from mestudio.capture.base import FrameSource
from mestudio.config import AppConfig
from mestudio.errors import ConfigError, MestudioError
from mestudio.face.multitrack import MultiFaceTracker
from mestudio.face.tracker import FaceTracker
from mestudio.flow.strain import strain_magnitude
from mestudio.types import (
    FaceObservation,
    FaceResult,
    Frame,
    FrameResult,
    SpotEvent,
    SpotterState,
)

log = logging.getLogger(__name__)

NO_MODEL = "no recognition model: events shown without emotion"

#: ``tracker.faces``: one face (the largest) or every face.
FACE_MODES = ("primary", "all")
"""The degraded-mode line when no usable recognition model is loaded."""


# ----------------------------------------------------------------------------- stages
@dataclass
class Measured:
    """What the tracker and the ROI signal made of a frame when they ran ahead of the
    pipeline (the read-ahead threads of :func:`mestudio.engine.analysis.analyze_video`), given to
    :meth:`Pipeline.process` in place of running them.

    Attributes:
        face: the tracker's observation of the frame.
        track_ms: the tracking time; ``track_timings``: its sub-stages.
        signal: whether the ROI signal was measured too (then ``values``, ``vectors``,
            ``flow`` and ``signal_ms`` are its output for this frame).
    """

    face: FaceObservation
    track_ms: float = 0.0
    track_timings: dict[str, float] = field(default_factory=dict)
    signal: bool = False
    values: dict[str, float] | None = None
    vectors: np.ndarray | None = None
    flow: np.ndarray | None = None
    signal_ms: float = 0.0


#: ``(frame index, timestamp_s, ROI values or None, ROI vectors or None)`` -> None
SpotterInputs = Callable[[int, float, "dict[str, float] | None", "np.ndarray | None"], None]


class Tracker(Protocol):
    """Stage 1 (:class:`~mestudio.face.tracker.FaceTracker`): frame → face observation."""

    degraded: list[str]
    timings_ms: dict[str, float]
    landmark_names: tuple[str, ...]

    def update(self, frame: Frame) -> FaceObservation: ...
    def reset(self) -> None: ...


class Signal(Protocol):
    """Stage 2 (:class:`~mestudio.spotting.signal.RoiSignal`): face → per-ROI motion."""

    roi_names: tuple[str, ...]
    #: per-ROI displacement vectors of the last frame (the spotter's configuration cut)
    last_vectors: np.ndarray | None

    @property
    def last_flow(self) -> np.ndarray | None: ...
    def update(self, face: FaceObservation, timestamp_s: float) -> dict[str, float] | None: ...
    def rois(self, size: int) -> dict[str, np.ndarray]: ...
    def reset(self) -> None: ...


class Spotter(Protocol):
    """Stage 3 (:class:`~mestudio.spotting.spotter.OnlineSpotter`): motion → events."""

    state: SpotterState

    def update(self, index: int, timestamp_s: float, values: dict[str, float] | None,
               vectors: np.ndarray | None = None) -> list[SpotEvent]: ...
    def finish(self) -> list[SpotEvent]: ...
    def pop_finalized(self) -> list[tuple[int, float, SpotterState]]: ...
    def reset(self) -> None: ...


class Engine(Protocol):
    """A recognition model (:class:`~mestudio.inference.engine.InferenceEngine`)."""

    @property
    def classes(self) -> tuple[str, ...]: ...
    @property
    def input_kind(self) -> str: ...
    def close(self) -> None: ...


#: Metadata keys of the recognition model copied into :attr:`Pipeline.model_info`.
MODEL_INFO_KEYS = ("architecture", "input_kind", "classes", "streams", "input_size", "color",
                   "synthetic", "training_data", "protocol", "metrics", "description",
                   "precision", "created", "mestudio_version", "weights_sha256")


def _plain(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None and numpy scalars/tuples made plain
    (so it can go into strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def engine_info(engine: Any) -> dict[str, Any]:
    """What the events files and the GUI show about a recognition engine: name, path,
    provider and the main ``mestudio.*`` metadata (JSON-serialisable)."""
    meta = dict(getattr(engine, "metadata", None) or {})
    info: dict[str, Any] = {"name": str(getattr(engine, "name", "") or meta.get("name", ""))}
    path = getattr(engine, "path", None)
    if path is not None:
        info["path"] = str(path)
    info["provider"] = str(getattr(engine, "provider", "") or "")
    for key in MODEL_INFO_KEYS:
        if key in meta:
            info[key] = meta[key]
    info["classes"] = list(getattr(engine, "classes", None) or meta.get("classes") or [])
    info["input_kind"] = str(getattr(engine, "input_kind", None) or meta.get("input_kind", ""))
    info["synthetic"] = bool(getattr(engine, "synthetic", meta.get("synthetic", False)))
    return cast(dict[str, Any], _plain(info))


class _FaceState:
    """The spotting state of one face (every-face mode): its own ROI signal and spotter."""

    def __init__(self, face_id: int, config: AppConfig) -> None:
        from mestudio.spotting.config import make_spotter
        from mestudio.spotting.signal import RoiSignal

        self.face_id = face_id
        self.signal = RoiSignal(config.spotter, tracker_config=config.tracker)
        self.spotter = make_spotter(config.spotter)


class Pipeline:
    """Per-frame processing shared by every front end.

    Args:
        config: the application configuration (tracker, spotter and recognition sections).
        engine: a recognition engine (``inference.engine.InferenceEngine`` or an object with
            the same ``predict``/``input_kind``/``preprocess_config``/``classes``); None =
            load ``config.recognition.model`` (the shipped model when empty) if recognition
            is on. An engine passed in is not closed by :meth:`close`.
        spotting: run the ROI signal and the online spotter.
        recognition: recognise micro events, and macro ones with ``recognition.macro``
            (needs spotting and a model; without a usable model the pipeline says so in
            :attr:`degraded`).
        finish_timeout_s: :meth:`finish` waits at most this long for pending predictions.
        max_pending: most events waiting for recognition; the oldest is dropped beyond it.

    Attributes:
        tracker: the face tracker.
        signal: the ROI signal (None when spotting is off).
        spotter: the online spotter (None when spotting is off).
        recognizer: the recogniser (None when recognition is off or unavailable).
        events: every event emitted so far (emission order; ``id`` = position).
        model_info: :func:`engine_info` of the recognition model, or None.
        frames_processed, frames_with_face: counters.
    """

    def __init__(self, config: AppConfig | None = None, *, engine: Any = None,
                 spotting: bool = True, recognition: bool = True,
                 finish_timeout_s: float = 60.0, max_pending: int = 8,
                 spotter_inputs: SpotterInputs | None = None) -> None:
        self.config = config or AppConfig()
        #: Called with every input of the (single-face) spotter: ``(index, timestamp_s,
        #: values, vectors)``, e.g. to record them for replays (``spot-eval``).
        self.spotter_inputs = spotter_inputs
        self.finish_timeout_s = float(finish_timeout_s)
        tc = self.config.tracker
        if tc.faces not in FACE_MODES:
            raise ConfigError(f"tracker.faces must be one of {', '.join(FACE_MODES)}, "
                              f"got {tc.faces!r}")
        #: Every face (``tracker.faces == "all"``): the multi-face tracker, else None.
        self.multi: MultiFaceTracker | None = None
        if tc.faces == "all":
            self.multi = MultiFaceTracker(tc, max_faces=tc.max_faces, keep_s=tc.keep_faces_s)
            self.tracker: Tracker | MultiFaceTracker = self.multi
        else:
            self.tracker = FaceTracker(tc)
        self._faces: dict[int, _FaceState] = {}
        self._face_states: list[tuple[int, int, float, SpotterState]] = []
        #: The face whose values fill FrameResult.face/spotter (None: the largest found).
        self.selected_face: int | None = None
        self.spotting = bool(spotting)
        self.signal: Signal | None = None
        self.spotter: Spotter | None = None
        self._notes: list[str] = []
        #: Put the flow spotting used (and its optical strain) into every FrameResult.
        self.keep_flow = False
        self.keep_strain = False
        if self.spotting:
            from mestudio.spotting.config import make_spotter
            from mestudio.spotting.signal import RoiSignal

            self.signal = RoiSignal(self.config.spotter, tracker_config=self.config.tracker)
            self.spotter = make_spotter(self.config.spotter)
            if self.multi is not None:
                self.spotter = None  # each face has its own (_FaceState); signal: ROI names
        self.engine: Any = None
        self._owns_engine = False
        self.recognizer: Any = None
        #: The expression model naming macro events (None: none fetched, or off).
        self.macro_engine: Any = None
        self.model_info: dict[str, Any] | None = None
        if recognition and self.spotting:
            self._start_recognition(engine, max_pending)
        self.events: list[SpotEvent] = []
        self.frames_processed = 0
        self.frames_with_face = 0
        self._unreported: list[SpotEvent] = []
        self._closed = False

    @classmethod
    def from_config(cls, config: AppConfig | None = None, *, engine: Any = None,
                    recognition: bool | None = None, finish_timeout_s: float | None = None,
                    max_pending: int = 8, spotter_inputs: SpotterInputs | None = None
                    ) -> Pipeline:
        """The one way every front end builds a pipeline, with the one fallback policy.

        Spotting is always attempted; recognition when ``recognition`` (default:
        ``config.recognition.enabled``). Whatever is missing becomes a documented degraded
        mode, listed in :attr:`degraded`, instead of an error:

        * no face detector → Haar cascade; no LBF model → YuNet's 5 points or box-only
          alignment (:class:`~mestudio.face.tracker.FaceTracker`);
        * no usable recognition model (missing, invalid, no runtime) → events without an
          emotion (:data:`NO_MODEL`);
        * the spotting stages cannot be built (a partial installation) → tracking only,
          "spotting is off: …".

        Args:
            config: the settings (defaults when None).
            engine: a loaded engine to use instead of ``config.recognition.model`` (not
                closed by :meth:`close`).
            recognition: override ``config.recognition.enabled``.
            finish_timeout_s: longest wait for pending predictions in :meth:`finish`.
            max_pending: most events waiting for recognition.
            spotter_inputs: see :attr:`spotter_inputs`.
        """
        cfg = config or AppConfig()
        rec = cfg.recognition.enabled if recognition is None else bool(recognition)
        kw: dict[str, Any] = {"engine": engine, "max_pending": max_pending,
                              "spotter_inputs": spotter_inputs}
        if finish_timeout_s is not None:
            kw["finish_timeout_s"] = finish_timeout_s
        try:
            return cls(cfg, spotting=True, recognition=rec, **kw)
        except (ImportError, MestudioError, ValueError) as exc:
            log.warning("spotting unavailable: %s", exc)
            pipeline = cls(cfg, spotting=False, recognition=False, **kw)
            pipeline._notes.append(f"spotting is off: {exc}")
            return pipeline

    # ------------------------------------------------------------------------ set-up
    def _start_recognition(self, engine: Any, max_pending: int) -> None:
        rc = self.config.recognition
        if engine is None:
            if not rc.enabled:
                return
            try:
                from mestudio.inference.engine import engine_from_config

                engine = engine_from_config(rc)
            except MestudioError as exc:
                log.debug("%s (%s)", NO_MODEL, exc)
                self._notes.append(f"{NO_MODEL} — {exc}")
                return
            except ImportError as exc:  # pragma: no cover - partial installations
                self._notes.append(f"{NO_MODEL} — no inference engine: {exc}")
                return
            self._owns_engine = True
        from mestudio.engine.recognition import Recognizer, buffer_seconds

        macro_engine = self._expression_engine(rc)
        sc = self.config.spotter
        try:
            self.recognizer = Recognizer(
                engine, buffer_s=buffer_seconds(
                    sc.micro_max_s, sc.emit_delay_s,
                    max_event_s=sc.max_duration_s if rc.macro else None),
                max_pending=max_pending,
                warmup_size=self.config.tracker.align_size, macro=rc.macro,
                macro_engine=macro_engine)
        except (ImportError, ValueError) as exc:
            log.warning("recognition unavailable: %s", exc)
            self._notes.append(f"{NO_MODEL} — recognition unavailable: {exc}")
            if self._owns_engine:
                engine.close()
            self._owns_engine = False
            return
        self.engine = engine
        self.macro_engine = macro_engine
        self.model_info = engine_info(engine)
        if macro_engine is not None:
            self.model_info["macro_model"] = engine_info(macro_engine)
        log.debug("recognition model %s (%s)", self.model_info.get("name"),
                 "synthetic demo model" if self.model_info.get("synthetic") else
                 self.model_info.get("training_data", ""))

    def _expression_engine(self, rc: Any) -> Any:
        """The expression model for macro events, or None (off, not fetched, or unusable:
        then a note says macro events are named by the micro-expression model)."""
        if not rc.macro:
            return None
        try:
            from mestudio.inference.engine import expression_engine_from_config

            return expression_engine_from_config(rc)
        except (MestudioError, ImportError) as exc:
            log.warning("expression model unavailable: %s", exc)
            self._notes.append(f"no expression model for macro events — {exc}")
            return None

    # ------------------------------------------------------------------------ status
    @property
    def degraded(self) -> list[str]:
        """Degraded modes in effect, as lines for the user (tracker, recognition)."""
        lines = list(self.tracker.degraded) + list(self._notes)
        rec = self.recognizer
        if rec is not None and rec.stats.failed:
            lines.append(f"recognition failed for {rec.stats.failed} event(s): "
                         f"{rec.stats.last_error}")
        return lines

    @property
    def notes(self) -> list[str]:
        """Lines about stages that are off although asked for (recognition without a usable
        model, spotting that could not be built); a subset of :attr:`degraded`."""
        return list(self._notes)

    @property
    def recognition_stats(self) -> dict[str, Any] | None:
        """The recogniser's counters (:class:`~mestudio.engine.recognition.RecognitionStats`), or
        None when recognition is off."""
        return None if self.recognizer is None else self.recognizer.stats.as_dict()

    @property
    def roi_names(self) -> tuple[str, ...]:
        """Names of the spotting ROIs (the per-ROI signal keys), empty when spotting is off."""
        return tuple(self.signal.roi_names) if self.signal is not None else ()

    # ---------------------------------------------------------------------- per frame
    def process(self, frame: Frame, capture_time: float | None = None, *,
                measured: Measured | None = None) -> FrameResult:
        """Run every stage on one frame.

        Args:
            frame: the frame (its timestamp in seconds drives smoothing and spotting).
            capture_time: ``time.perf_counter()`` when a live frame was captured, for
                latency; None for files.
            measured: the tracker's (and the ROI signal's) results for this frame when they
                ran ahead (single-face mode); the pipeline then does not run them itself.

        Returns:
            the :class:`FrameResult`: face, spotter state, events emitted at this frame,
            earlier events whose prediction arrived since the previous frame, and
            ``timings_ms`` per stage (``track`` with the tracker's sub-stages, ``signal``,
            ``spot``, ``recognition`` (bookkeeping only), ``total``).
        """
        if self._closed:
            raise RuntimeError("the pipeline is closed")
        if self.multi is not None:
            return self._process_all(frame, capture_time)
        t0 = time.perf_counter()
        if measured is None:
            face = cast(Tracker, self.tracker).update(frame)
            t1 = time.perf_counter()
            timings = {"track": (t1 - t0) * 1e3}
            timings.update(self.tracker.timings_ms)
        else:
            face = measured.face
            t1 = time.perf_counter()
            timings = {"track": measured.track_ms, **measured.track_timings}
        result = FrameResult(frame=frame, face=face, timings_ms=timings,
                             capture_time=capture_time)
        ts = float(frame.timestamp_s)
        rec = self.recognizer
        if rec is not None:
            rec.add_frame(frame.index, ts, face)
        t2 = time.perf_counter()
        if self.spotter is not None and self.signal is not None:
            pre = measured if measured is not None and measured.signal else None
            if pre is None:
                values = self.signal.update(face, ts)
                vectors = self.signal.last_vectors
            else:
                values, vectors = pre.values, pre.vectors
            t3 = time.perf_counter()
            if self.spotter_inputs is not None:
                self.spotter_inputs(frame.index, ts, values, vectors)
            emitted = self.spotter.update(frame.index, ts, values, vectors=vectors)
            t4 = time.perf_counter()
            timings["signal"] = (t3 - t2) * 1e3 if pre is None else pre.signal_ms
            timings["spot"] = (t4 - t3) * 1e3
            result.spotter = self.spotter.state
            result.events = self._register(emitted)
            if (self.keep_flow or self.keep_strain) and face.face_found:
                flow = self.signal.last_flow if pre is None else pre.flow
                result.flow, result.strain = self._with_strain(flow)
                timings["overlay"] = (time.perf_counter() - t4) * 1e3
        if rec is not None:
            t5 = time.perf_counter()
            result.updated_events = self._unreported + rec.poll()
            self._unreported = []
            result.info["recognition_pending"] = rec.pending
            # Buffering the crop, queueing events and collecting predictions: the only
            # recognition work on the per-frame path.
            timings["recognition"] = ((t2 - t1) + (time.perf_counter() - t5)) * 1e3 + (
                (t5 - t4) * 1e3 if self.spotter is not None else 0.0)
        timings["total"] = (time.perf_counter() - t0) * 1e3
        degraded = self.degraded
        if degraded:
            result.info["degraded"] = "; ".join(degraded)
        result.faces = [FaceResult(0, face, result.spotter, result.flow, result.strain)]
        self.frames_processed += 1
        self.frames_with_face += int(face.face_found)
        return result

    def _process_all(self, frame: Frame, capture_time: float | None) -> FrameResult:
        """Every face (``tracker.faces == "all"``): one ROI signal, spotter and crop
        buffer per track; events carry the track's ``face_id``."""
        multi = self.multi
        assert multi is not None
        t0 = time.perf_counter()
        tracked = multi.update(frame)
        t1 = time.perf_counter()
        timings = {"track": (t1 - t0) * 1e3}
        timings.update(multi.timings_ms)
        ts = float(frame.timestamp_s)
        rec = self.recognizer
        emitted: list[SpotEvent] = []
        for fid in multi.ended:  # a face that left: its open events end now
            emitted += self._end_face(fid)
        faces: list[FaceResult] = []
        t_signal = t_spot = 0.0
        for fid, obs in tracked:
            if rec is not None:
                rec.add_frame(frame.index, ts, obs, face_id=fid)
            fr = FaceResult(fid, obs)
            if self.spotting:
                st = self._faces.get(fid)
                if st is None:
                    st = self._faces[fid] = _FaceState(fid, self.config)
                a = time.perf_counter()
                values = st.signal.update(obs, ts)
                b = time.perf_counter()
                new = st.spotter.update(frame.index, ts, values,
                                        vectors=st.signal.last_vectors)
                t_signal += b - a
                t_spot += time.perf_counter() - b
                for ev in new:
                    ev.face_id = fid
                emitted += new
                fr.spotter = st.spotter.state
                self._face_states += [(fid, i, t, state)
                                      for i, t, state in st.spotter.pop_finalized()]
                if (self.keep_flow or self.keep_strain) and obs.face_found:
                    fr.flow, fr.strain = self._with_strain(st.signal.last_flow)
            faces.append(fr)
        timings["signal"] = t_signal * 1e3
        timings["spot"] = t_spot * 1e3
        primary = self._primary(faces)
        result = FrameResult(
            frame=frame, face=primary.face if primary is not None else
            FaceObservation(face_found=False, n_faces=len(tracked)),
            spotter=primary.spotter if primary is not None else None,
            timings_ms=timings, capture_time=capture_time,
            flow=primary.flow if primary is not None else None,
            strain=primary.strain if primary is not None else None, faces=faces)
        result.info["faces"] = sum(f.face.face_found for f in faces)
        result.events = self._register(emitted)
        if rec is not None:
            for fid in multi.ended:
                rec.drop_face(fid)  # after its last events took their crops
            result.updated_events = self._unreported + rec.poll()
            self._unreported = []
            result.info["recognition_pending"] = rec.pending
        timings["total"] = (time.perf_counter() - t0) * 1e3
        degraded = self.degraded
        if degraded:
            result.info["degraded"] = "; ".join(degraded)
        self.frames_processed += 1
        self.frames_with_face += int(any(f.face.face_found for f in faces))
        return result

    def _primary(self, faces: list[FaceResult]) -> FaceResult | None:
        """The selected face when it is there, else the largest face found."""
        found = [f for f in faces if f.face.face_found and f.face.box is not None]
        for f in found:
            if f.face_id == self.selected_face:
                return f
        if not found:
            return None
        return max(found, key=lambda f: f.face.box[2] * f.face.box[3])  # type: ignore[index]

    def _end_face(self, face_id: int) -> list[SpotEvent]:
        """A track ended: close its open events (they carry its number)."""
        st = self._faces.pop(face_id, None)
        if st is None:
            return []
        events: list[SpotEvent] = st.spotter.finish()
        for ev in events:
            ev.face_id = face_id
        self._face_states += [(face_id, i, t, state)
                              for i, t, state in st.spotter.pop_finalized()]
        return events

    def pop_face_states(self) -> list[tuple[int, int, float, SpotterState]]:
        """Every-face mode: ``(face_id, frame index, timestamp_s, state)`` of the frames whose
        spotting values became final since the last call, per face (what the long-format
        ``frames.csv`` records); in the single-face mode the primary face's, as ``face_id``
        0."""
        if self.multi is None:
            return [(0, i, t, state) for i, t, state in self.pop_spotter_states()]
        out, self._face_states = self._face_states, []
        return out

    def _with_strain(self, flow: np.ndarray | None
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The flow a signal measured at this frame (reference → frame, head motion removed)
        and, when asked, its optical strain; Nones when there is no flow."""
        if flow is None or not self.keep_strain:
            return flow, None
        return flow, strain_magnitude(flow)

    def _register(self, emitted: list[SpotEvent]) -> list[SpotEvent]:
        """Number the new events, keep them, queue them for recognition (the recogniser
        takes the kinds it recognises, :attr:`Recognizer.kinds`)."""
        for ev in emitted:
            ev.id = len(self.events)
            self.events.append(ev)
            if self.recognizer is not None:  # it recognises the kinds in its ``kinds``
                self.recognizer.submit(ev)
        return list(emitted)

    def poll_predictions(self) -> list[SpotEvent]:
        """Events whose prediction arrived since the last :meth:`process` (or call), with
        the prediction attached. Use after :meth:`finish` or while no frames arrive."""
        out = self._unreported
        self._unreported = []
        if self.recognizer is not None:
            out = out + self.recognizer.poll()
        return out

    def pop_spotter_states(self) -> list[tuple[int, float, SpotterState]]:
        """``(frame index, timestamp_s, state)`` of the frames whose spotting values became
        final since the last call: the zero-phase low-passed signal (``FrameResult.spotter``
        holds the causal estimate at the newest frame). What ``frames.csv`` records."""
        return list(self.spotter.pop_finalized()) if self.spotter is not None else []

    # ----------------------------------------------------------------------- lifecycle
    def finish(self) -> list[SpotEvent]:
        """End of the stream: close pending events and wait (at most
        ``finish_timeout_s``) for their predictions, which are attached to the events.

        Returns the events emitted by this call; events that got a prediction meanwhile are
        returned by :meth:`poll_predictions` (and by the next :meth:`process`).
        """
        emitted: list[SpotEvent] = []
        if self.spotter is not None:
            emitted = self._register(self.spotter.finish())
        if self.multi is not None:
            ended: list[SpotEvent] = []
            for fid in sorted(self._faces):
                ended += self._end_face(fid)
            self.multi.finish()
            emitted = self._register(ended)
        if self.recognizer is not None:
            self._unreported += self.recognizer.wait(self.finish_timeout_s)
        return emitted

    def reset(self) -> None:
        """Forget the face and the spotter's baseline (a new source or person); emitted
        events are kept."""
        self.tracker.reset()
        self._faces.clear()
        if self.signal is not None:
            self.signal.reset()
        if self.spotter is not None:
            self.spotter.reset()
        if self.recognizer is not None:
            self.recognizer.clear()

    def set_overlays(self, flow: bool = False, strain: bool = False) -> None:
        """Carry the spotting flow (``flow``) and its optical strain (``strain``) in every
        :class:`FrameResult` (for overlays; off by default, strain costs ~0.5 ms)."""
        self.keep_flow, self.keep_strain = bool(flow), bool(strain)

    def run(self, source: FrameSource, progress: bool = False,
            max_frames: int | None = None) -> Iterator[FrameResult]:
        """Process every frame of ``source`` (from its current position).

        Args:
            source: any frame source.
            progress: show a tqdm progress bar on stderr.
            max_frames: stop after this many frames.

        Yields one :class:`FrameResult` per frame; the ``decode`` timing is the time spent
        waiting for the source. Call :meth:`finish` afterwards for the last events.
        """
        total = source.n_frames
        if max_frames is not None:
            total = min(total, max_frames) if total is not None else max_frames
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="frame", desc=source.name, file=sys.stderr,
                       dynamic_ncols=True, leave=False, disable=None)
        try:
            it = iter(source)
            n = 0
            while max_frames is None or n < max_frames:
                t0 = time.perf_counter()
                try:
                    frame = next(it)
                except StopIteration:
                    break
                decode_ms = (time.perf_counter() - t0) * 1e3
                result = self.process(frame)
                result.timings_ms["decode"] = decode_ms
                n += 1
                if bar is not None:
                    bar.update(1)
                yield result
        finally:
            if bar is not None:
                bar.close()

    def close(self) -> None:
        """Stop the recogniser's worker and release the model it loaded itself."""
        if self._closed:
            return
        self._closed = True
        if self.recognizer is not None:
            self.recognizer.close()
        owned = [self.engine] if self._owns_engine else []
        for engine in [*owned, self.macro_engine]:
            if engine is None:
                continue
            try:
                engine.close()
            except Exception:  # noqa: BLE001 - closing must not raise
                log.debug("closing the engine failed", exc_info=True)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
