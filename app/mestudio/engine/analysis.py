"""Whole-video analysis: one recording from its first frame to its last, in one function.

:func:`analyze_video` is *the* loop that runs the pipeline over a whole recording (a video
file, an image-sequence folder, the demo clip, or a camera for ``max_frames`` frames).
``mestudio analyze`` (:mod:`mestudio.commands.analyze`, which adds the files, the summary
line and Ctrl+C) and the review window's background analysis
(:mod:`mestudio.gui.review_window`, a thin ``QThread`` around it) both call it; the live
front ends (the GUI worker, the kiosk) process frames one at a time instead. No Qt and no
printing here.

What it does, in order:

1. builds the pipeline with :meth:`mestudio.engine.pipeline.Pipeline.from_config` (the one builder
   and the one fallback policy), unless a pipeline is passed in;
2. processes every frame the source yields (at most ``max_frames``), records the frames the
   source could not decode (``source.skipped``, a ``status`` of ``unreadable`` in
   ``frames.csv``) and reports progress (``progress(done, total)``);
3. stops early when ``stop`` is set: what was found so far is kept
   (:attr:`AnalysisResult.complete` False, :attr:`AnalysisResult.last_frame`), and the wait
   for pending predictions is shortened to ``stop_finish_s``;
4. calls ``pipeline.finish()`` (the last events and the late predictions) and closes the
   pipeline it built.

Frames are read ahead: a decode thread iterates the source, a tracking thread runs the
face tracker (:class:`~mestudio.face.tracker.FaceTracker`) on them and, with one face
analysed, a signal thread measures the ROI signal (:class:`~mestudio.spotting.signal.RoiSignal`,
the optical flow: the costliest stage), each feeding the next through a small bounded queue
(:data:`READ_AHEAD` frames, so memory stays flat on long videos); the frame loop itself runs
the spotter, the recogniser's bookkeeping and the outputs. Frame order,
the unreadable-frame rows, ``max_frames`` (the source is read exactly that far) and ``stop``
(nothing read ahead is processed; a seekable source is left at the first unprocessed frame)
behave as in a serial loop, and the results are identical. ``read_ahead=0`` turns the
threads off.

Optionally it writes ``frames.csv`` (``frames_csv``: one row per frame with the spotter's
*final* values and the ``status`` column; when the pipeline analyses every face
(``tracker.faces = "all"``), the long format: one row per face per frame with a ``face_id``
column, see :mod:`mestudio.csvio`) and keeps the motion signals of the whole video
for a plot (``keep_signals``: :attr:`AnalysisResult.signals`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from mestudio.config import AppConfig
from mestudio.csvio import VideoSignals
from mestudio.engine.pipeline import Measured
from mestudio.types import FaceObservation, Frame, FrameResult, SpotEvent, SpotterState

log = logging.getLogger(__name__)

#: Seconds a stopped analysis still waits for the predictions of events already spotted.
STOP_FINISH_S = 5.0
#: Frames each read-ahead thread (decoding, tracking) may hold ready for the next stage.
READ_AHEAD = 8

#: ``progress(done, total)``: frames handled so far (unreadable ones included), and the
#: number expected (None when the source does not say, e.g. a camera without ``max_frames``).
ProgressFn = Callable[[int, int | None], None]
#: ``(frame index, timestamp_s, state)`` of frames whose spotter values became final.
FinalStates = Sequence[tuple[int, float, SpotterState]]
#: ``(face_id, frame index, timestamp_s, state)``: the same per face (every-face mode).
FaceFinalStates = Sequence[tuple[int, int, float, SpotterState]]


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
            (frames ``0 .. last_frame``; with every face analysed: those of each frame's
            primary face), else None.
        faces: the face mode (``"primary"`` or ``"all"``: every face with its own events).
        max_faces: most faces analysed at once (``tracker.max_faces``).
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
    faces: str = "primary"
    max_faces: int = 4

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
            "faces": self.faces,
            "max_faces": self.max_faces,
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

    def write_face(self, result: FrameResult, face_id: int | None,
                   extra: dict[str, Any] | None = None,
                   face: FaceObservation | None = None) -> None:
        """Long format: the row of one face (see ``FramesCsvWriter.write_face``)."""
        values = dict(extra or {})
        values["status"] = result.info.get("status", "ok")
        self._writer.write_face(result, face_id, values, face=face)


class PrimaryFaceStates:
    """Every-face mode: turns the per-face final states (``Pipeline.pop_face_states``)
    into those of each frame's primary face (``FrameResult.face``), for the sinks that
    keep one signal per frame (:class:`SignalRecorder`).

    :meth:`note` records a frame's primary face (before its states can arrive);
    :meth:`states` keeps the states of the faces noted.
    """

    def __init__(self, keep: int = 8192) -> None:
        self._of: dict[int, int] = {}
        self._keep = int(keep)

    def note(self, result: FrameResult) -> None:
        fid = next((f.face_id for f in result.faces if f.face is result.face), None)
        if fid is not None:
            self._of[result.frame.index] = fid
        if len(self._of) > self._keep:
            for k in sorted(self._of)[:len(self._of) - self._keep]:
                del self._of[k]

    def states(self, face_states: FaceFinalStates) -> list[tuple[int, float, SpotterState]]:
        return [(i, t, st) for fid, i, t, st in face_states if self._of.get(i) == fid]


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


# ----------------------------------------------------------------------------- read-ahead
class _Halted(Exception):
    """The read-ahead chain was shut down while a stage waited."""


@dataclass
class _Item:
    """One frame travelling through the read-ahead chain."""

    frame: Frame
    n_skipped: int                     # len(source.skipped) once this frame was read
    read_ms: float                     # time the decode thread spent reading it
    measured: Measured | None = None   # what the tracking (and signal) threads found


class _AheadStage:
    """A daemon thread that calls ``produce()`` and hands its results, in order, to the
    next stage through a bounded queue.

    ``produce()`` returns the next item or raises StopIteration at the end; any other
    exception is handed on in the item's place and raised by :meth:`get` (after the items
    before it), so a failing source or tracker fails the analysis at the same frame as a
    serial loop would. :meth:`close` stops the thread and waits for it.
    """

    def __init__(self, produce: Callable[[Callable[[], bool]], Any], size: int,
                 name: str) -> None:
        self._produce = produce
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, size))
        self._halt = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._halt.is_set():
            try:
                item = ("item", self._produce(self._halt.is_set))
            except StopIteration:
                self._put(("end", None))
                return
            except _Halted:
                return
            except BaseException as exc:  # noqa: BLE001 - handed on to the frame loop
                self._put(("error", exc))
                return
            if not self._put(item):
                return

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(self, halted: Callable[[], bool] = lambda: False) -> Any:
        """The next item. Raises StopIteration at the end, the producer's exception when
        it failed, and :class:`_Halted` when ``halted()`` becomes true while waiting."""
        if self._done:
            raise StopIteration
        while True:
            try:
                kind, value = self._queue.get(timeout=0.05)
                break
            except queue.Empty:
                if halted():
                    raise _Halted from None
                if not self._thread.is_alive() and self._queue.empty():
                    self._done = True  # halted by close(): nothing more comes
                    raise StopIteration from None
        if kind == "item":
            return value
        self._done = True
        if kind == "error":
            raise value
        raise StopIteration

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the thread (a blocked hand-over gives up within 50 ms) and wait for it."""
        self._halt.set()
        while True:  # free the queue so nothing stays referenced
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
            if self._thread.is_alive():  # pragma: no cover - a source stuck in a read
                log.warning("%s did not stop within %.0f s", self._thread.name, timeout_s)


class _ReadAhead:
    """The frames of ``source`` (at most ``max_frames``), read by a decode thread and, when
    ``tracker`` is given, tracked by a second thread, and when ``signal`` is given too, its
    ROI signal measured by a third, each stage at most ``size`` frames ahead of the next.
    Use as a context manager; :meth:`get` returns :class:`_Item`."""

    def __init__(self, source: Any, max_frames: int | None, size: int,
                 tracker: Any = None, signal: Any = None, keep_flow: bool = False) -> None:
        self._source = source
        self._it = iter(source)
        self._max = max_frames
        self._size = size
        self._tracker = tracker
        self._signal = signal if tracker is not None else None
        self._keep_flow = keep_flow
        self.n_read = 0
        self.first_index: int | None = None   # index of the first frame read
        self._stages: list[_AheadStage] = []

    def start(self) -> None:
        decode = _AheadStage(self._read, self._size, "mestudio-decode")
        self._stages.append(decode)
        if self._tracker is not None:
            track = _AheadStage(lambda halted: self._track(decode.get(halted)), self._size,
                                "mestudio-track")
            self._stages.append(track)
            if self._signal is not None:
                self._stages.append(_AheadStage(
                    lambda halted: self._measure(track.get(halted)), self._size,
                    "mestudio-signal"))

    def _read(self, halted: Callable[[], bool]) -> _Item:
        if self._max is not None and self.n_read >= self._max:
            raise StopIteration
        t0 = time.perf_counter()
        frame = next(self._it)
        read_ms = (time.perf_counter() - t0) * 1e3
        if self.first_index is None:
            self.first_index = frame.index
        self.n_read += 1
        return _Item(frame, len(getattr(self._source, "skipped", ())), read_ms)

    def _track(self, item: _Item) -> _Item:
        tracker = self._tracker
        t0 = time.perf_counter()
        face = tracker.update(item.frame)
        item.measured = Measured(face, (time.perf_counter() - t0) * 1e3,
                                 dict(tracker.timings_ms))
        return item

    def _measure(self, item: _Item) -> _Item:
        signal: Any = self._signal
        m = item.measured
        assert m is not None
        t0 = time.perf_counter()
        m.values = signal.update(m.face, float(item.frame.timestamp_s))
        m.vectors = signal.last_vectors  # a new array every frame: safe to hand over
        if self._keep_flow and m.face.face_found:
            m.flow = signal.last_flow
        m.signal = True
        m.signal_ms = (time.perf_counter() - t0) * 1e3
        return item

    def get(self) -> _Item:
        """The next frame (StopIteration at the end; the source's or the tracker's
        exception where it failed)."""
        if self._size <= 0:  # serial: read (and track) here
            item = self._read(lambda: False)
            return self._track(item) if self._tracker is not None else item
        if not self._stages:
            self.start()
        return cast(_Item, self._stages[-1].get())

    def close(self) -> None:
        for stage in reversed(self._stages):  # the consumer's side first
            stage.close()
        self._stages = []

    def __enter__(self) -> _ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


_cv_lock = threading.Lock()
_cv_users = 0
_cv_saved: int | None = None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _opencv_threads_for_read_ahead() -> Any:
    """While read-ahead threads run, OpenCV's own pool gets one core less (the decode and
    tracking threads use it): on 2 cores the frame loop's optical flow runs on one thread
    instead of competing with them. Results do not depend on the thread count. The
    previous setting is restored when the last analysis running in the process ends."""
    global _cv_users, _cv_saved
    import cv2

    with _cv_lock:
        if _cv_users == 0:
            current = cv2.getNumThreads()
            wanted = max(1, _cores() - 1)
            if current > wanted:
                _cv_saved = current
                cv2.setNumThreads(wanted)
        _cv_users += 1
    try:
        yield
    finally:
        with _cv_lock:
            _cv_users -= 1
            if _cv_users == 0 and _cv_saved is not None:
                cv2.setNumThreads(_cv_saved)
                _cv_saved = None


def _tracks_ahead(tracker: Any) -> bool:
    """Whether the tracker can run in the tracking thread: our own FaceTracker (a double
    or another tracker is called by the pipeline as usual)."""
    if tracker is None:
        return False
    from mestudio.face.tracker import FaceTracker

    return isinstance(tracker, FaceTracker)


def _measures_ahead(pipeline: Any, signal: Any) -> bool:
    """Whether the ROI signal can run in its own thread: our own RoiSignal in the
    single-face mode with spotting on (every face: one signal per face, run by the frame
    loop as usual)."""
    if signal is None or getattr(pipeline, "spotter", None) is None \
            or getattr(pipeline, "multi", None) is not None:
        return False
    from mestudio.spotting.signal import RoiSignal

    return isinstance(signal, RoiSignal)


def _leave_source(source: Any, reader: _ReadAhead, taken: Callable[[], tuple[int, int]]
                  ) -> None:
    """After the loop: a seekable source read ahead of the frames the loop took is put
    back at the first frame not taken (where a serial loop would have left it)."""
    n_taken, last = taken()
    if reader.n_read <= n_taken or not getattr(source, "seekable", False) \
            or getattr(source, "closed", False):
        return
    where = last + 1 if n_taken else reader.first_index
    try:
        source.seek(where)
    except Exception as exc:  # noqa: BLE001 - best effort; the analysis is over
        log.debug("could not put %s back at frame %s: %s", source, where, exc)


def analyze_video(source: Any, config: AppConfig | None = None, *, engine: Any = None,
                  recognition: bool | None = None, pipeline: Any = None,
                  max_frames: int | None = None,
                  progress: ProgressFn | None = None,
                  stop: threading.Event | Callable[[], bool] | None = None,
                  on_result: Callable[[FrameResult], None] | None = None,
                  frames_csv: str | os.PathLike[str] | None = None,
                  keep_signals: bool = False, finish_timeout_s: float | None = None,
                  stop_finish_s: float = STOP_FINISH_S,
                  read_ahead: int = READ_AHEAD) -> AnalysisResult:
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
        read_ahead: frames the decode thread (and the tracking thread, when the pipeline's
            tracker is a :class:`~mestudio.face.tracker.FaceTracker`) may prepare ahead of
            the frame loop; 0 reads and tracks in the loop itself (same results, slower).
            Tracking ahead means a pipeline passed in may have tracked up to
            ``2 * read_ahead`` frames more than it processed when the analysis stops early.

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
            from mestudio.engine.pipeline import Pipeline

            pipeline = Pipeline.from_config(cfg, engine=engine, recognition=recognition,
                                            finish_timeout_s=finish_timeout_s)
            stack.callback(pipeline.close)
        return _run(source, cfg, pipeline, stack, max_frames=max_frames, progress=progress,
                    stopped=stopped, on_result=on_result, frames_csv=frames_csv,
                    keep_signals=keep_signals, stop_finish_s=stop_finish_s,
                    read_ahead=read_ahead)


def _run(source: Any, cfg: AppConfig, pipeline: Any, stack: contextlib.ExitStack, *,
         max_frames: int | None, progress: ProgressFn | None,
         stopped: Callable[[], bool], on_result: Callable[[FrameResult], None] | None,
         frames_csv: str | os.PathLike[str] | None, keep_signals: bool,
         stop_finish_s: float, read_ahead: int) -> AnalysisResult:
    rois = tuple(getattr(pipeline, "roi_names", ()) or ())
    total = source.n_frames
    if max_frames is not None:
        total = min(total, max_frames) if total is not None else max_frames
    # Every face analysed (the pipeline's multi-face tracker): per-face final states and
    # the long-format frames.csv; else the primary face's.
    every_face = getattr(pipeline, "multi", None) is not None \
        and callable(getattr(pipeline, "pop_face_states", None))
    pop = getattr(pipeline, "pop_face_states" if every_face else "pop_spotter_states", None)
    primary_states = PrimaryFaceStates() if every_face else None

    def pop_states() -> tuple[list[Any], FinalStates]:
        """``(per-face states, primary states)``: the first are those of
        ``pop_face_states`` (every-face mode), else the same list as the second."""
        got = list(pop()) if callable(pop) else []
        if primary_states is None:
            return got, got
        return got, primary_states.states(got)

    sinks: list[Any] = []  # add(result, final_states) / flush(final_states)
    face_sinks: list[Any] = []  # the same with per-face states (every-face mode)
    recorder: SignalRecorder | None = None
    writer: Any = None
    if frames_csv is not None:
        from mestudio.csvio import (
            FaceRowBuffer,
            FramesCsvWriter,
            SpotterRowBuffer,
            spotter_columns,
        )

        tracker = getattr(pipeline, "tracker", None)
        writer = stack.enter_context(FramesCsvWriter(
            frames_csv, tuple(getattr(tracker, "landmark_names", ()) or ()),
            ("status", *spotter_columns(rois)), long_format=every_face, alignment=True))
        if every_face:
            face_sinks.append(FaceRowBuffer(StatusColumn(writer), rois))
        else:
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

    def handle(result: FrameResult, states: tuple[list[Any], FinalStates] = ([], [])
               ) -> None:
        if primary_states is not None:
            primary_states.note(result)
        for sink in face_sinks:
            sink.add(result, states[0])
        for sink in sinks:
            sink.add(result, states[1])
        if on_result is not None:
            on_result(result)

    def take_skips(upto: int | None) -> None:
        """Record the frames the source skipped (the first ``upto`` of its ``skipped``
        list: those it had skipped when it yielded the current frame; all when None) as
        unreadable rows."""
        nonlocal seen_skips
        new = list(getattr(source, "skipped", ()))[seen_skips:upto]
        for index in new:
            handle(unreadable_result(index, source.fps))
            skipped.append(index)
        seen_skips += len(new)

    tracker = getattr(pipeline, "tracker", None)
    tracks_ahead = read_ahead > 0 and _tracks_ahead(tracker)
    signal = getattr(pipeline, "signal", None)
    measures_ahead = tracks_ahead and _measures_ahead(pipeline, signal)
    reader = _ReadAhead(source, max_frames, read_ahead,
                        tracker=tracker if tracks_ahead else None,
                        signal=signal if measures_ahead else None,
                        keep_flow=bool(getattr(pipeline, "keep_flow", False)
                                       or getattr(pipeline, "keep_strain", False)))
    if read_ahead > 0:
        stack.enter_context(_opencv_threads_for_read_ahead())
    taken = 0
    last_taken = -1
    stack.callback(_leave_source, source, reader, lambda: (taken, last_taken))
    stack.callback(reader.close)  # before the source is closed
    t0 = time.perf_counter()
    while max_frames is None or processed < max_frames:
        if stopped():
            break
        t_read = time.perf_counter()
        try:
            item = reader.get()
        except StopIteration:
            break
        t_got = time.perf_counter()
        taken += 1
        frame = item.frame
        last_taken = frame.index
        result = pipeline.process(frame, measured=item.measured) if tracks_ahead \
            else pipeline.process(frame)
        result.timings_ms["decode"] = (t_got - t_read) * 1e3
        result.timings_ms["read"] = item.read_ms
        take_skips(item.n_skipped)
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
    reader.close()
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
    for sink in face_sinks:
        sink.flush(final[0])
    for sink in sinks:
        sink.flush(final[1])
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
        signals=recorder.signals(last_frame + 1) if recorder is not None else None,
        faces="all" if every_face else "primary", max_faces=int(cfg.tracker.max_faces))
