"""Whole-video analysis: one recording from its first frame to its last, in one function.

:func:`analyze_video` is *the* loop that runs the pipeline over a whole recording (a video
file, an image-sequence folder, the demo clip, or a camera for ``max_frames`` frames).
``mestudio analyze`` (:mod:`mestudio.commands.analyze`, which adds the files, the summary
line and Ctrl+C) and the review window's background analysis
(:mod:`mestudio.gui.review_window`, a thin ``QThread`` around it) both call it; the live
front ends (the GUI worker, the kiosk) process frames one at a time instead. No Qt and no
printing here.

What it does, in order:

1. builds the pipeline with :meth:`mestudio.pipeline.Pipeline.from_config` (the one builder
   and the one fallback policy), unless a pipeline is passed in;
2. processes every frame the source yields (at most ``max_frames``), records the frames the
   source could not decode (``source.skipped``, a ``status`` of ``unreadable`` in
   ``frames.csv``) and reports progress (``progress(done, total)``);
3. stops early when ``stop`` is set: what was found so far is kept
   (:attr:`AnalysisResult.complete` False, :attr:`AnalysisResult.last_frame`), and the wait
   for pending predictions is shortened to ``stop_finish_s``;
4. calls ``pipeline.finish()`` (the last events and the late predictions) and closes the
   pipeline it built.

Optionally it writes ``frames.csv`` (``frames_csv``: one row per frame with the spotter's
*final* values and the ``status`` column) and keeps the motion signals of the whole video
for a plot (``keep_signals``: :attr:`AnalysisResult.signals`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from mestudio.config import AppConfig
from mestudio.csvio import VideoSignals
from mestudio.types import FaceObservation, Frame, FrameResult, SpotEvent, SpotterState

log = logging.getLogger(__name__)

#: Seconds a stopped analysis still waits for the predictions of events already spotted.
STOP_FINISH_S = 5.0

#: ``progress(done, total)``: frames handled so far (unreadable ones included), and the
#: number expected (None when the source does not say, e.g. a camera without ``max_frames``).
ProgressFn = Callable[[int, int | None], None]
#: ``(frame index, timestamp_s, state)`` of frames whose spotter values became final.
FinalStates = Sequence[tuple[int, float, SpotterState]]


# ------------------------------------------------------------------------------ results
@dataclass
class AnalysisTimings:
    """How long the analysis took.

    Attributes:
        elapsed_s: wall time of the frame loop and the final ``finish()`` (seconds).
        frames: frames processed.
        track_ms: mean tracking time per frame (milliseconds).
        spot_ms: mean signal + spotting time per frame (milliseconds).
        decode_ms: mean time spent waiting for the source per frame (milliseconds).
    """

    elapsed_s: float = 0.0
    frames: int = 0
    track_ms: float = 0.0
    spot_ms: float = 0.0
    decode_ms: float = 0.0

    @property
    def frames_per_s(self) -> float:
        """Processing rate (frames per second of wall time)."""
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"elapsed_s": self.elapsed_s, "frames": self.frames,
                "frames_per_s": self.frames_per_s, "track_ms": self.track_ms,
                "spot_ms": self.spot_ms, "decode_ms": self.decode_ms}


@dataclass
class AnalysisResult:
    """What :func:`analyze_video` found.

    Attributes:
        events: every spotted event, sorted by onset (then id), with its prediction when
            one arrived.
        complete: the whole source was processed (False: stopped early).
        last_frame: index of the last frame processed (-1: none).
        n_frames: frames processed (unreadable ones not counted).
        frames_with_face: frames in which a face was tracked.
        unreadable_frames: indices of the frames the source could not decode.
        model_info: the recognition model (``Pipeline.model_info``), or None.
        degraded: degraded modes in effect at the end (``Pipeline.degraded``).
        recognition_stats: the recogniser's counters, or None when recognition is off.
        spotter: the spotter settings used (``dataclasses.asdict(config.spotter)``).
        source_name, fps: the source's name and frame rate.
        notes: the source's notes (how it was read; e.g. a video that ended early).
        timings: :class:`AnalysisTimings`.
        signals: the motion signals of the whole video when ``keep_signals`` was asked
            (frames ``0 .. last_frame``), else None.
    """

    events: list[SpotEvent]
    complete: bool
    last_frame: int
    n_frames: int
    frames_with_face: int
    unreadable_frames: list[int]
    model_info: dict[str, Any] | None
    degraded: list[str]
    recognition_stats: dict[str, Any] | None = None
    spotter: dict[str, Any] = field(default_factory=dict)
    source_name: str = ""
    fps: float | None = None
    notes: list[str] = field(default_factory=list)
    timings: AnalysisTimings = field(default_factory=AnalysisTimings)
    signals: VideoSignals | None = None

    @property
    def face_fraction(self) -> float:
        """Share of the processed frames with a face (0 when none was processed)."""
        return self.frames_with_face / self.n_frames if self.n_frames else 0.0

    def events_meta(self, source: str) -> dict[str, Any]:
        """The ``meta`` of ``events.json`` (:func:`mestudio.events_io.write_events_json`) for
        this analysis of ``source`` (the input as the user gave it)."""
        return {
            "source": source, "fps": self.fps,
            "n_frames": self.n_frames,
            "complete": self.complete,
            "last_frame": self.last_frame,
            "model": self.model_info,
            "spotter": self.spotter,
            "recognition": self.recognition_stats,
            "degraded": self.degraded,
            "unreadable_frames": self.unreadable_frames,
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------- frames.csv and signals
def unreadable_result(index: int, fps: float | None) -> FrameResult:
    """The :class:`FrameResult` of a frame the source could not decode (no face,
    ``info["status"] == "unreadable"``): what ``frames.csv`` writes for it."""
    frame = Frame(index, index / float(fps or 30.0), np.zeros((1, 1, 3), np.uint8))
    return FrameResult(frame=frame, face=FaceObservation(face_found=False),
                       info={"status": "unreadable"})


class StatusColumn:
    """Wraps a :class:`~mestudio.csvio.FramesCsvWriter`: fills the ``status`` column
    (``ok``, or the frame's ``info["status"]``, e.g. ``unreadable``)."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def write(self, result: FrameResult, extra: dict[str, Any] | None = None) -> None:
        values = dict(extra or {})
        values["status"] = result.info.get("status", "ok")
        self._writer.write(result, values)


def _grow(a: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    out[:len(a)] = a
    return out


class SignalRecorder:
    """Keeps the per-frame motion signals of a whole video (:class:`VideoSignals`): the
    causal estimate of each frame at first, replaced by the spotter's final (zero-phase)
    values when they are known.

    Args:
        n_frames: expected number of frames (the arrays grow when the source under-counted).
    """

    def __init__(self, n_frames: int = 0) -> None:
        cap = max(int(n_frames), 1)
        self.times = np.full(cap, np.nan)
        self.rois: dict[str, np.ndarray] = {}
        self.combined = np.full(cap, np.nan)
        self.threshold = np.full(cap, np.nan)

    def _ensure(self, i: int) -> None:
        if i >= len(self.times):  # the container under-counted
            grow = max(i + 1, int(len(self.times) * 1.5))
            self.times = _grow(self.times, grow)
            self.combined = _grow(self.combined, grow)
            self.threshold = _grow(self.threshold, grow)
            self.rois = {k: _grow(v, grow) for k, v in self.rois.items()}

    def add(self, result: FrameResult, final_states: FinalStates = ()) -> None:
        """One processed frame and the spotter states that became final with it."""
        i = result.frame.index
        if result.info.get("status") == "unreadable" or i < 0:
            return
        self._ensure(i)
        self.times[i] = result.frame.timestamp_s
        states = [(i, result.frame.timestamp_s, result.spotter)] if result.spotter else []
        for j, _t, st in [*states, *final_states]:
            if not 0 <= j < len(self.times):
                continue
            for name, v in st.signal.items():
                arr = self.rois.get(name)
                if arr is None:
                    arr = self.rois[name] = np.full(len(self.times), np.nan)
                arr[j] = v
            self.combined[j] = st.combined
            self.threshold[j] = st.threshold

    def flush(self, final_states: FinalStates = ()) -> None:
        """The states that became final at the end of the stream (``Pipeline.finish``)."""
        for j, _t, st in final_states:
            if 0 <= j < len(self.times):
                for name, v in st.signal.items():
                    if name in self.rois:
                        self.rois[name][j] = v
                self.combined[j] = st.combined
                self.threshold[j] = st.threshold

    def signals(self, n: int) -> VideoSignals:
        """The signals of frames ``0 .. n-1``."""
        return VideoSignals(times=self.times[:n], rois={k: v[:n] for k, v in self.rois.items()},
                            combined=self.combined[:n], threshold=self.threshold[:n])


# ------------------------------------------------------------------------------- the loop
def _stop_check(stop: Any) -> Callable[[], bool]:
    if stop is None:
        return lambda: False
    is_set = getattr(stop, "is_set", None)
    if callable(is_set):
        return lambda: bool(is_set())
    if callable(stop):
        return lambda: bool(stop())
    raise TypeError(f"stop must be a threading.Event or a callable, not {type(stop).__name__}")


def analyze_video(source: Any, config: AppConfig | None = None, *, engine: Any = None,
                  recognition: bool | None = None, pipeline: Any = None,
                  max_frames: int | None = None,
                  progress: ProgressFn | None = None,
                  stop: threading.Event | Callable[[], bool] | None = None,
                  on_result: Callable[[FrameResult], None] | None = None,
                  frames_csv: str | os.PathLike[str] | None = None,
                  keep_signals: bool = False, finish_timeout_s: float | None = None,
                  stop_finish_s: float = STOP_FINISH_S) -> AnalysisResult:
    """Analyse a whole recording: track, spot and recognise every frame.

    Args:
        source: an open :class:`~mestudio.capture.base.FrameSource` (iterated from its
            current position, not closed), or a spec for
            :func:`mestudio.capture.open_source` (``"demo"``, a file, a folder; opened with
            ``config.capture`` and closed at the end).
        config: the settings (defaults when None).
        engine: a loaded recognition engine instead of ``config.recognition.model`` (not
            closed here).
        recognition: recognise micro events (default: ``config.recognition.enabled``).
        pipeline: an already built pipeline (an object with ``process(frame)``,
            ``finish()``, ``events``, ``model_info``, ``degraded``; optional
            ``pop_spotter_states``, ``poll_predictions``, ``recognition_stats``) used
            instead of building one; the caller closes it. ``engine``, ``recognition`` and
            ``finish_timeout_s`` are then ignored.
        max_frames: stop after this many frames (counts as complete).
        progress: called after every frame with ``(frames done, frames expected)``; the
            second is None when unknown.
        stop: a :class:`threading.Event` or a function returning True to stop after the
            current frame; what was found so far is kept (``complete`` False).
        on_result: called with every :class:`FrameResult`, in frame order (unreadable frames
            included, ``info["status"] == "unreadable"``).
        frames_csv: write ``frames.csv`` here (landmarks, the spotter's final values and a
            ``status`` column; see :mod:`mestudio.csvio`).
        keep_signals: keep the motion signals of every frame (:attr:`AnalysisResult.signals`).
        finish_timeout_s: longest wait for pending predictions at the end (None: the
            pipeline's default).
        stop_finish_s: longest wait for pending predictions after a stop.

    Returns:
        the :class:`AnalysisResult`.

    Raises:
        MestudioError: the source cannot be opened or read, ``frames_csv`` cannot be
            written.
    """
    cfg = config if config is not None else AppConfig()
    stopped = _stop_check(stop)
    with contextlib.ExitStack() as stack:
        if isinstance(source, (str, int, os.PathLike)):
            from mestudio.capture import open_source

            source = stack.enter_context(open_source(source, cfg.capture))
        if pipeline is None:
            from mestudio.pipeline import Pipeline

            pipeline = Pipeline.from_config(cfg, engine=engine, recognition=recognition,
                                            finish_timeout_s=finish_timeout_s)
            stack.callback(pipeline.close)
        return _run(source, cfg, pipeline, stack, max_frames=max_frames, progress=progress,
                    stopped=stopped, on_result=on_result, frames_csv=frames_csv,
                    keep_signals=keep_signals, stop_finish_s=stop_finish_s)


def _run(source: Any, cfg: AppConfig, pipeline: Any, stack: contextlib.ExitStack, *,
         max_frames: int | None, progress: ProgressFn | None,
         stopped: Callable[[], bool], on_result: Callable[[FrameResult], None] | None,
         frames_csv: str | os.PathLike[str] | None, keep_signals: bool,
         stop_finish_s: float) -> AnalysisResult:
    rois = tuple(getattr(pipeline, "roi_names", ()) or ())
    total = source.n_frames
    if max_frames is not None:
        total = min(total, max_frames) if total is not None else max_frames
    pop = getattr(pipeline, "pop_spotter_states", None)

    def pop_states() -> list[tuple[int, float, SpotterState]]:
        return list(pop()) if callable(pop) else []

    sinks: list[Any] = []  # add(result, final_states) / flush(final_states)
    recorder: SignalRecorder | None = None
    writer: Any = None
    if frames_csv is not None:
        from mestudio.csvio import FramesCsvWriter, SpotterRowBuffer, spotter_columns

        tracker = getattr(pipeline, "tracker", None)
        writer = stack.enter_context(FramesCsvWriter(
            frames_csv, tuple(getattr(tracker, "landmark_names", ()) or ()),
            ("status", *spotter_columns(rois))))
        sinks.append(SpotterRowBuffer(cast(FramesCsvWriter, StatusColumn(writer)), rois))
    if keep_signals:
        recorder = SignalRecorder(int(total or 0))
        sinks.append(recorder)

    skipped: list[int] = []
    seen_skips = 0
    last_frame = -1
    processed = with_face = 0
    track_ms: list[float] = []
    spot_ms: list[float] = []
    decode_ms: list[float] = []

    def handle(result: FrameResult, states: FinalStates) -> None:
        for sink in sinks:
            sink.add(result, states)
        if on_result is not None:
            on_result(result)

    def take_skips(before: int | None) -> None:
        """Record the frames the source skipped (those before frame ``before``; all when
        None) as unreadable rows."""
        nonlocal seen_skips
        new = list(getattr(source, "skipped", ()))[seen_skips:]
        for index in new:
            if before is None or index < before:
                handle(unreadable_result(index, source.fps), ())
                skipped.append(index)
        seen_skips += len(new)

    t0 = time.perf_counter()
    it = iter(source)
    while max_frames is None or processed < max_frames:
        if stopped():
            break
        t_read = time.perf_counter()
        try:
            frame = next(it)
        except StopIteration:
            break
        t_got = time.perf_counter()
        result = pipeline.process(frame)
        result.timings_ms["decode"] = (t_got - t_read) * 1e3
        take_skips(result.frame.index)
        tm = result.timings_ms
        decode_ms.append(tm["decode"])
        track_ms.append(tm.get("track", 0.0))
        spot_ms.append(tm.get("signal", 0.0) + tm.get("spot", 0.0))
        processed += 1
        with_face += int(bool(result.face.face_found))
        handle(result, pop_states())
        last_frame = result.frame.index
        if progress is not None:
            progress(processed + len(skipped), total)
    was_stopped = stopped()
    if not was_stopped:
        take_skips(None)  # unreadable images at the end of a folder
    else:
        log.debug("analysis stopped after frame %d: keeping the events found so far",
                  last_frame)
        if hasattr(pipeline, "finish_timeout_s"):
            pipeline.finish_timeout_s = min(pipeline.finish_timeout_s, stop_finish_s)
    pipeline.finish()
    poll = getattr(pipeline, "poll_predictions", None)
    if callable(poll):
        poll()  # the late predictions are attached to their events
    final = pop_states()
    for sink in sinks:
        sink.flush(final)
    if writer is not None:
        writer.close()  # frames.csv complete before the caller renames it
    elapsed = time.perf_counter() - t0
    events = sorted(pipeline.events, key=lambda e: (e.onset, e.id))
    timings = AnalysisTimings(
        elapsed_s=elapsed, frames=processed,
        track_ms=float(np.mean(track_ms)) if track_ms else 0.0,
        spot_ms=float(np.mean(spot_ms)) if spot_ms else 0.0,
        decode_ms=float(np.mean(decode_ms)) if decode_ms else 0.0)
    return AnalysisResult(
        events=events, complete=not (was_stopped or stopped()), last_frame=last_frame,
        n_frames=processed, frames_with_face=with_face, unreadable_frames=skipped,
        model_info=getattr(pipeline, "model_info", None),
        degraded=list(getattr(pipeline, "degraded", None) or []),
        recognition_stats=getattr(pipeline, "recognition_stats", None),
        spotter=dataclasses.asdict(cfg.spotter),
        source_name=str(getattr(source, "name", "")), fps=source.fps,
        notes=list(getattr(source, "notes", ())), timings=timings,
        signals=recorder.signals(last_frame + 1) if recorder is not None else None)
