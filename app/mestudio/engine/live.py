"""The live engine, without Qt: source → paced capture → :class:`~mestudio.engine.pipeline.Pipeline`
→ subscribers. The live window, the kiosk and ``mestudio bench live``/``bench soak`` all
drive a :class:`LiveSession`; the GUI's ``PipelineWorker`` is a thin ``QThread`` adapter
that turns the session's callbacks into signals.

Threads (ARCHITECTURE.md, "Threading (live)")::

    capture thread (LiveCapture) ──newest frame wins──▶ the session's driving thread
        (step / run: commands, one frame through the pipeline, subscribers, packets)
        ──DisplayPacket, at most one pending──▶ a display (the GUI thread draws only)

* **Commands** (:meth:`LiveSession.open_source`, :meth:`~LiveSession.set_paused`,
  :meth:`~LiveSession.seek`, :meth:`~LiveSession.set_config`, ...) may be called from any
  thread; they are queued and run in order by the driving thread, which also opens sources,
  builds the pipeline (:meth:`Pipeline.from_config`, the one fallback policy) and closes
  them. Slow steps are announced through :meth:`SessionListener.on_busy`.
* **Pacing**: files and the demo clip play at their timestamps like a camera
  (``LiveCapture(pace=True)``); pausing stops reading them, so nothing is skipped. A camera
  keeps running while paused; its frames are dropped.
* **Newest frame wins**: the capture slot holds one frame; when processing is slower than
  the source, frames are dropped (and counted) instead of queued, so latency stays bounded.
* **Results**: every :class:`~mestudio.types.FrameResult` goes to the subscribers
  (:meth:`~LiveSession.subscribe`: a recorder, the kiosk's event log) and is merged into one
  :class:`DisplayPacket` until a display takes it (:meth:`~LiveSession.take_packet`): the
  newest frame replaces the previous one, while spotter samples and events accumulate so a
  plot and a table lose nothing.
* **Every face** (``tracker.faces = "all"``): the packet carries the newest frame's faces
  (``DisplayPacket.result.faces``: box, landmarks, track number of each), the face the
  samples and overlays follow (``DisplayPacket.face_id``: the one chosen with
  :meth:`LiveSession.select_face`, else the largest) and every face's spotter samples
  (``DisplayPacket.face_samples``), so a window can switch the plot to another face at once.
  The apex crops are kept per face, so an event's Grad-CAM inset shows its own face.
* **Overlays come from the pipeline**: the flow picture is the flow spotting measured
  (``FrameResult.flow``), the strain picture its optical strain; both only while asked for
  (:meth:`~LiveSession.set_overlay_needs`). Pictures are made by :mod:`mestudio.engine.overlays`.

Latency is measured from ``FrameResult.capture_time`` (``time.perf_counter()`` at capture)
to the end of processing here, and to the end of painting by a display
(:meth:`LiveSession.record_display_latency`).
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mestudio.config import AppConfig
from mestudio.engine.overlays import EventView, event_view, flow_overlay, strain_to_rgba
from mestudio.errors import CameraError, MestudioError
from mestudio.predtext import model_mark
from mestudio.types import FaceResult, Frame, FrameResult, SpotEvent, SpotterState

log = logging.getLogger(__name__)

#: Longest history of spotter samples kept for a display while it is not taking packets.
MAX_PENDING_SAMPLES = 4000
#: Grad-CAM / apex crops kept for this many most recent events.
MAX_EVENT_VIEWS = 200
#: Aligned crops kept to show an event's apex (per face).
CROPS_KEPT = 300


# --------------------------------------------------------------------------- statistics
class LatencyStats:
    """Thread-safe record of latencies (seconds): recent window for a status bar, full
    history (capped) for the end-of-run summary."""

    def __init__(self, window: int = 300, keep: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._recent: collections.deque[float] = collections.deque(maxlen=window)
        self._all: collections.deque[float] = collections.deque(maxlen=keep)

    def add(self, seconds: float) -> None:
        with self._lock:
            self._recent.append(seconds)
            self._all.append(seconds)

    def clear(self) -> None:
        with self._lock:
            self._recent.clear()
            self._all.clear()

    def percentile(self, q: float, recent: bool = True) -> float:
        """The ``q``-th percentile in milliseconds (NaN when empty)."""
        with self._lock:
            data = list(self._recent if recent else self._all)
        if not data:
            return float("nan")
        return float(np.percentile(np.asarray(data), q) * 1000.0)

    def count(self) -> int:
        with self._lock:
            return len(self._all)

    def max_ms(self) -> float:
        with self._lock:
            return max(self._all) * 1000.0 if self._all else float("nan")


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        with self._lock:
            self._times.append(now)
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()

    def rate(self) -> float:
        now = time.perf_counter()
        with self._lock:
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            n = len(self._times)
            if n < 2:
                return 0.0
            span = max(now - self._times[0], 1e-6)
        return (n - 1) / span

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


@dataclass
class SessionStats:
    """What a status bar shows (all figures since the current source was opened).

    Attributes:
        capture_fps: frames per second delivered by the source.
        processed_fps: frames per second through the pipeline.
        displayed_fps: frames per second painted by the display.
        captured, processed, dropped: frame counts.
        latency_p50_ms, latency_p95_ms: capture → display latency (recent window), falling
            back to capture → processed when nothing was displayed yet.
        status, message: the capture's state and its human text.
    """

    capture_fps: float = 0.0
    processed_fps: float = 0.0
    displayed_fps: float = 0.0
    captured: int = 0
    processed: int = 0
    dropped: int = 0
    latency_p50_ms: float = float("nan")
    latency_p95_ms: float = float("nan")
    status: str = "idle"
    message: str = ""


# --------------------------------------------------------------------------- packets
@dataclass
class DisplayPacket:
    """Everything new since a display last took a packet.

    Attributes:
        result: the newest processed frame.
        capture_time: its ``perf_counter()`` capture time (None when unknown).
        flow, strain: RGBA ``uint8`` ``(S, S, 4)`` overlay pictures on the aligned crop of
            ``result`` (None when the overlay is off or there is no face).
        samples: ``(frame index, timestamp_s, spotter state)`` of every processed frame
            (of the face in ``face_id`` at that frame).
        events: events emitted since the last packet.
        updated_events: earlier events whose prediction arrived.
        event_views: Grad-CAM inset content by event id (the apex crop of the event's face).
        merged: number of processed frames folded into this packet.
        face_id: the face ``result.face``, ``samples`` and the overlay pictures belong to
            (``result.faces``): the selected face (:meth:`LiveSession.select_face`) while it
            is found, else the largest; 0 in the single-face mode; None when no face.
        face_samples: every face, its samples (as ``samples``) by track number; empty in
            the single-face mode (there ``samples`` are the face's).

    Every face of the newest frame (box, landmarks, track number) is ``result.faces``.
    """

    result: FrameResult
    capture_time: float | None = None
    flow: np.ndarray | None = None
    strain: np.ndarray | None = None
    samples: list[tuple[int, float, SpotterState | None]] = field(default_factory=list)
    events: list[SpotEvent] = field(default_factory=list)
    updated_events: list[SpotEvent] = field(default_factory=list)
    event_views: dict[int, EventView] = field(default_factory=dict)
    merged: int = 1
    face_id: int | None = 0
    face_samples: dict[int, list[tuple[int, float, SpotterState | None]]] = field(
        default_factory=dict)

    @property
    def faces(self) -> list[FaceResult]:
        """Every face of the newest frame (``result.faces``)."""
        return self.result.faces


@dataclass
class SourceInfo:
    """A successfully opened source (for a title and a status bar)."""

    label: str
    name: str
    fps: float | None
    n_frames: int | None
    size: tuple[int, int]
    seekable: bool
    is_camera: bool


class ResultSink(Protocol):
    """Something that consumes every processed frame in the driving thread (e.g. the
    session recorder :class:`~mestudio.capture.recorder.SessionRecorder`). A sink with a
    ``close(events)`` method is given the pipeline's events when it is removed."""

    def add_result(self, result: FrameResult) -> None: ...


class LivePipeline(Protocol):
    """What the session needs of a pipeline (:class:`~mestudio.engine.pipeline.Pipeline`; tests
    use a scripted double)."""

    events: list[SpotEvent]
    model_info: dict[str, Any] | None
    spotting: bool

    @property
    def degraded(self) -> list[str]: ...
    def process(self, frame: Frame, capture_time: float | None = None) -> FrameResult: ...
    def finish(self) -> list[SpotEvent]: ...
    def close(self) -> None: ...


class SessionListener:
    """Callbacks of a :class:`LiveSession`, called in its driving thread. Override what you
    need; the GUI adapter turns each into a Qt signal."""

    def on_busy(self, text: str) -> None:
        """A slow step started (the text says which); "" when it is over."""

    def on_source_opened(self, info: SourceInfo) -> None:
        """A source was opened."""

    def on_source_failed(self, message: str) -> None:
        """The source could not be opened (one line for the user)."""

    def on_status(self, status: str, message: str) -> None:
        """The capture's status changed ("running", "reconnecting", "ended", "error",
        "idle")."""

    def on_pipeline_info(self, info: dict[str, Any]) -> None:
        """The pipeline was (re)built: :func:`describe_pipeline`."""

    def on_packet(self) -> None:
        """A :class:`DisplayPacket` waits in :meth:`LiveSession.take_packet` (signalled
        once per packet)."""

    def on_ended(self) -> None:
        """The file/clip reached its end and the last events were flushed."""

    def on_flushed(self, events: list[SpotEvent]) -> None:
        """The end of a stream (or :meth:`LiveSession.finish_stream`): the events the
        pipeline closed then, and earlier ones whose prediction arrived meanwhile (each once,
        with its prediction)."""

    def on_failed(self, message: str) -> None:
        """An unexpected error in processing (the session keeps running)."""


# --------------------------------------------------------------------------- sources
def source_label(spec: Any) -> str:
    """Human name of a source spec: "demo clip", "camera 0", a file name."""
    if isinstance(spec, int):
        return f"camera {spec}"
    text = os.fspath(spec)
    if text.lower().startswith("camera:"):
        return f"camera {text.split(':', 1)[1].strip()}"
    if text.isdigit():
        return f"camera {text}"
    if text == "demo" or text.startswith("demo:"):
        return "demo clip"
    return Path(text).name or text


def describe_spec_kind(spec: Any) -> str:
    """:func:`mestudio.capture.describe_spec`, also knowing ``"demo:options"`` specs."""
    from mestudio.capture import describe_spec

    if isinstance(spec, str) and spec.startswith("demo:"):
        return "demo"
    return describe_spec(spec)


def is_camera_spec(spec: Any) -> bool:
    return isinstance(spec, int) or describe_spec_kind(spec) == "camera"


def default_open(spec: Any, config: AppConfig) -> Any:
    """Open a source spec (``"demo"``, ``"demo:fps=100,duration=30"``, a camera, a file, a
    folder)."""
    from mestudio.capture import describe_spec, open_source

    if isinstance(spec, str) and spec.startswith("demo:") and describe_spec(spec) == "missing":
        from mestudio.capture.demo import DemoSource

        return DemoSource.from_spec(spec)
    return open_source(spec, config.capture)


def default_capture(open_fn: Callable[[], Any], config: AppConfig, *, pace: bool,
                    loop: bool = False) -> Any:
    """The capture thread: :class:`~mestudio.capture.live.LiveCapture`."""
    from mestudio.capture.live import LiveCapture

    return LiveCapture(open_fn, config.capture, pace=pace, loop=loop)


def default_pipeline(config: AppConfig) -> Any:
    """:meth:`Pipeline.from_config <mestudio.engine.pipeline.Pipeline.from_config>`."""
    from mestudio.engine.pipeline import Pipeline

    return Pipeline.from_config(config)


def describe_pipeline(pipeline: Any, config: AppConfig) -> dict[str, Any]:
    """What a window shows about a pipeline: ``model`` (model_info or None),
    ``model_name``, ``device``, ``synthetic``, ``n_classes``, ``badge``,
    ``model_description``, ``spotting``, ``recognition``, ``degraded`` (lines), ``warning``
    (the first line about a stage that is off, or ""), ``rois`` (masks on the aligned crop or
    None), ``overlays`` ({"flow": bool, "strain": bool}: can they be shown),
    ``recognised_kinds`` (the event kinds the recogniser recognises, e.g. ``["micro",
    "macro"]``; ``["micro"]`` when unknown, ``[]`` without a model)."""
    info = getattr(pipeline, "model_info", None)
    info = dict(info) if isinstance(info, dict) else None
    name, device, synthetic = "", "CPU", False
    badge = description = ""
    n_classes = 0
    if info:
        name = str(info.get("name") or info.get("architecture") or "")
        synthetic = bool(info.get("synthetic", False))
        n_classes = len(info.get("classes") or [])
        badge, description, _ = model_mark(info)
        provider = str(info.get("provider") or "")
        if "cuda" in provider.lower() or "tensorrt" in provider.lower():
            device = "CUDA"
    degraded = [str(d) for d in (getattr(pipeline, "degraded", None) or [])]
    notes = [str(n) for n in (getattr(pipeline, "notes", None) or [])]
    spotting = bool(getattr(pipeline, "spotting", True))
    recognizer = getattr(pipeline, "recognizer", None)
    kinds = ([str(k) for k in getattr(recognizer, "kinds", ("micro",))]
             if recognizer is not None else ["micro"] if info is not None else [])
    return {"recognised_kinds": kinds, "overlays": {"flow": spotting, "strain": spotting}, "model": info,
            "model_name": name, "device": device, "synthetic": synthetic,
            "n_classes": n_classes, "badge": badge, "model_description": description,
            "spotting": spotting, "recognition": info is not None, "degraded": degraded,
            "rois": _roi_masks(pipeline, config), "warning": notes[0] if notes else ""}


def _roi_masks(pipeline: Any, config: AppConfig) -> dict[str, np.ndarray] | None:
    signal = getattr(pipeline, "signal", None)
    try:
        if signal is None:
            from mestudio.spotting.signal import RoiSignal

            signal = RoiSignal(config.spotter)
        return dict(signal.rois(config.tracker.align_size))
    except (ImportError, ValueError) as exc:
        log.debug("no ROI masks for the overlay: %s", exc)
        return None


# --------------------------------------------------------------------------- session
class LiveSession:
    """One live stream: a source played through a pipeline, with commands, statistics,
    subscribers and display packets. No Qt.

    Args:
        config: the settings.
        listener: callbacks (:class:`SessionListener`), called in the driving thread.
        open_fn: ``open_fn(spec, config) -> FrameSource`` (default :func:`default_open`).
        capture_fn: ``capture_fn(open, config, pace=..., loop=...) -> LiveCapture``-like.
        pipeline_fn: ``pipeline_fn(config) -> Pipeline``-like (default
            :meth:`Pipeline.from_config`).
        loop: start files again at their end (the kiosk).
        packets: build :class:`DisplayPacket` objects (off for headless drivers that only
            subscribe).

    Drive it from one thread with :meth:`step` (one frame) or :meth:`run` (until
    :meth:`stop`); every other method may be called from any thread.
    """

    def __init__(self, config: AppConfig | None = None, *,
                 listener: SessionListener | None = None,
                 open_fn: Callable[[Any, AppConfig], Any] | None = None,
                 capture_fn: Callable[..., Any] | None = None,
                 pipeline_fn: Callable[[AppConfig], Any] | None = None,
                 loop: bool = False, packets: bool = True) -> None:
        self._config = config or AppConfig()
        self.listener = listener or SessionListener()
        self._open_fn = open_fn or default_open
        self._capture_fn = capture_fn or default_capture
        self._pipeline_fn = pipeline_fn or default_pipeline
        self.loop = bool(loop)
        self.packets = bool(packets)
        self._commands: queue.Queue[Callable[[], None]] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._packet: DisplayPacket | None = None
        self._signal_pending = False
        self.capture: Any = None
        self.pipeline: Any = None
        self.label = ""
        self.is_camera = False
        self._paused = False
        self._last_status: tuple[str, str] = ("idle", "")
        self._ended_sent = False
        self._need_flow = False
        self._need_strain = False
        self._crops: collections.OrderedDict[tuple[int, int], np.ndarray] = \
            collections.OrderedDict()
        self._selected_face: int | None = None
        self._views: collections.OrderedDict[int, EventView] = collections.OrderedDict()
        self._sinks: list[ResultSink] = []
        self._subscribers: list[Callable[[FrameResult], None]] = []
        self.latency_display = LatencyStats()
        self.latency_processing = LatencyStats()
        self._capture_counts: collections.deque[tuple[float, int]] = collections.deque()
        self._process_meter = RateMeter()
        self._display_meter = RateMeter()
        self._processed = 0
        self._dropped = 0
        self._captured = 0
        self._status = "idle"
        self._message = ""
        self.last_result: FrameResult | None = None
        self._reconnects_seen = 0
        self._finished = False
        self._closed = False

    # ------------------------------------------------------------ commands (any thread)
    @property
    def config(self) -> AppConfig:
        return self._config

    def open_source(self, spec: Any) -> None:
        """Open ``spec`` (``"demo"``, a camera index or ``"camera:N"``, a file, a folder) and
        start playing it; replaces the current source."""
        self._post(lambda: self._do_open(spec))

    def open_callable(self, open_fn: Callable[[], Any], label: str, *,
                      is_camera: bool = True) -> None:
        """Open a source made by ``open_fn()`` (tests, custom sources, the kiosk);
        ``is_camera`` decides whether it is played as it comes (True) or paced at its
        timestamps (False)."""
        self._post(lambda: self._do_open((open_fn, label, is_camera)))

    def close_source(self) -> None:
        """Stop the current source (a display keeps its last frame)."""
        self._post(self._do_close)

    def set_paused(self, paused: bool) -> None:
        """Pause/resume. Files and the demo clip stop where they are; a camera keeps running
        but its frames are not processed while paused."""
        self._post(lambda: self._do_pause(paused))

    def is_paused(self) -> bool:
        return self._paused

    def seek(self, index: int) -> None:
        """Continue a seekable source from frame ``index`` (shown even while paused). The
        pipeline forgets the face and the spotter's baseline (events found are kept)."""
        self._post(lambda: self._do_seek(index))

    def set_config(self, config: AppConfig) -> None:
        """Use new settings: the pipeline is rebuilt (model reloaded) for the current
        source."""
        self._post(lambda: self._do_config(config))

    def set_overlay_needs(self, flow: bool, strain: bool) -> None:
        """Make flow / strain pictures (only while their overlay is shown)."""
        self._need_flow = bool(flow)
        self._need_strain = bool(strain)
        self._post(self._apply_overlay_needs)

    def select_face(self, face_id: int | None) -> None:
        """Every-face mode: follow face ``face_id`` (its track number) in the packets'
        samples, overlay pictures and ``result.face``; None: the largest face (the default;
        kept while it is in view, so two faces of about the same size do not alternate).
        Kept for the pipelines built later (new source, new settings)."""
        fid = None if face_id is None else int(face_id)
        self._selected_face = fid
        self._post(self._apply_selected_face)

    @property
    def selected_face(self) -> int | None:
        """The face chosen with :meth:`select_face` (None: the largest)."""
        return self._selected_face

    def _apply_selected_face(self) -> None:
        pipe = self.pipeline
        if pipe is not None and hasattr(pipe, "selected_face"):
            pipe.selected_face = self._selected_face

    @property
    def overlay_needs(self) -> tuple[bool, bool]:
        """``(flow, strain)``: which overlay pictures are being made."""
        return self._need_flow, self._need_strain

    def subscribe(self, fn: Callable[[FrameResult], None]) -> None:
        """Call ``fn(result)`` in the driving thread for every processed frame."""
        self._post(lambda: self._subscribers.append(fn))

    def unsubscribe(self, fn: Callable[[FrameResult], None]) -> None:
        self._post(lambda: self._subscribers.remove(fn) if fn in self._subscribers else None)

    def add_result_sink(self, sink: ResultSink) -> None:
        """Call ``sink.add_result(result)`` (in the driving thread) for every processed
        frame."""
        self._post(lambda: self._sinks.append(sink))

    def remove_result_sink(self, sink: ResultSink, final: bool = True) -> None:
        """Stop feeding ``sink``; with ``final`` call ``sink.close(events)`` (in the driving
        thread) with the pipeline's events when the sink has a ``close``."""
        def do() -> None:
            if sink in self._sinks:
                self._sinks.remove(sink)
            if final:
                self._close_sink(sink)
        self._post(do)

    def take_packet(self) -> DisplayPacket | None:
        """The pending packet (None when there is none); the next one will be signalled."""
        with self._lock:
            packet, self._packet = self._packet, None
            self._signal_pending = False
        return packet

    def record_display_latency(self, seconds: float) -> None:
        """A display painted a frame ``seconds`` after its capture."""
        self.latency_display.add(seconds)
        self._display_meter.tick()

    def stats(self) -> SessionStats:
        """Current figures for a status bar."""
        p50 = self.latency_display.percentile(50)
        p95 = self.latency_display.percentile(95)
        if np.isnan(p50):
            p50 = self.latency_processing.percentile(50)
            p95 = self.latency_processing.percentile(95)
        return SessionStats(capture_fps=self._capture_rate(),
                            processed_fps=self._process_meter.rate(),
                            displayed_fps=self._display_meter.rate(), captured=self._captured,
                            processed=self._processed, dropped=self._dropped,
                            latency_p50_ms=p50, latency_p95_ms=p95, status=self._status,
                            message=self._message)

    def summary(self) -> dict[str, float]:
        """Whole-run figures (for ``--exit-after`` runs and benchmarks)."""
        return {
            "processed": float(self._processed),
            "captured": float(self._captured),
            "dropped": float(self._dropped),
            "display_latency_p50_ms": self.latency_display.percentile(50, recent=False),
            "display_latency_p95_ms": self.latency_display.percentile(95, recent=False),
            "display_latency_max_ms": self.latency_display.max_ms(),
            "processing_latency_p50_ms": self.latency_processing.percentile(50, recent=False),
            "processing_latency_p95_ms": self.latency_processing.percentile(95, recent=False),
            "displayed": float(self.latency_display.count()),
        }

    def stop(self) -> None:
        """Make :meth:`run` return (it then closes everything)."""
        self._stop.set()
        self._commands.put(lambda: None)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def status(self) -> str:
        """The stream's state: "idle", "running", "reconnecting", "ended" or "error"."""
        return self._status

    @property
    def message(self) -> str:
        """The human text of :attr:`status`."""
        return self._message

    # ------------------------------------------------------------ driving thread
    def run(self) -> None:
        """Step until :meth:`stop`, then close the source, the pipeline and the sinks."""
        try:
            while not self._stop.is_set():
                self.step()
        finally:
            self.close()

    def step(self, timeout: float = 0.05) -> FrameResult | None:
        """Run the pending commands, then process the newest frame (waiting at most
        ``timeout`` s for one). Returns its result, or None when no frame was processed."""
        self.run_commands(block=self.capture is None, timeout=max(timeout, 0.0))
        cap = self.capture
        if cap is None or self._stop.is_set():
            return None
        try:
            item = cap.get(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a broken capture must not end the session
            log.exception("capture failed")
            self._report_status("error", f"capture failed: {exc}")
            self._do_close()
            return None
        self._poll_capture(cap, drained=item is None)
        if item is None or self.capture is None:
            return None
        frame, t_cap = item
        if self._paused and self.is_camera:  # a camera while paused: drop
            return None
        return self._process(frame, t_cap)

    def run_commands(self, block: bool = False, timeout: float = 0.1) -> None:
        """Run the queued commands in this (the driving) thread; with ``block`` wait up to
        ``timeout`` s for the first."""
        try:
            fn = self._commands.get(timeout=timeout) if block else self._commands.get_nowait()
        except queue.Empty:
            return
        while True:
            try:
                fn()
            except MestudioError as exc:
                self.listener.on_failed(str(exc))
            except Exception as exc:  # noqa: BLE001 - a command must not end the session
                log.exception("live session command failed")
                self.listener.on_failed(f"internal error: {exc}")
            try:
                fn = self._commands.get_nowait()
            except queue.Empty:
                return

    def finish_stream(self) -> list[SpotEvent]:
        """End of the stream now (driving thread; once per stream): the pipeline closes its
        open events and waits for their predictions; they go to the display packet and to
        :meth:`SessionListener.on_flushed`. Returns the flushed events and the earlier ones
        whose prediction arrived (each once, with its prediction)."""
        pipe = self.pipeline
        if pipe is None or self._finished:
            return []
        self._finished = True
        try:
            flushed = list(pipe.finish() or [])
            poll = getattr(pipe, "poll_predictions", None)
            late = list(poll()) if callable(poll) else []
        except Exception as exc:  # noqa: BLE001 - a display must still get what was found
            log.exception("finishing the pipeline failed")
            self.listener.on_failed(f"could not flush the last events: {exc}")
            return []
        flushed_ids = {ev.id for ev in flushed}
        known = [ev for ev in (getattr(pipe, "events", None) or [])
                 if ev.id >= 0 and ev.id not in flushed_ids]
        if self.packets and (self._packet is not None or flushed or known):
            self._publish_events(flushed, known)
        latest = list({ev.id: ev for ev in [*flushed, *late]}.values())
        if latest:
            self.listener.on_flushed(latest)
        return latest

    def close(self) -> None:
        """Close the sinks (given the events), the source and the pipeline (driving thread;
        safe twice)."""
        if self._closed:
            return
        self._closed = True
        for sink in list(self._sinks):
            self._close_sink(sink)
        self._sinks.clear()
        self._do_close()

    # ------------------------------------------------------------ internals
    def _post(self, fn: Callable[[], None]) -> None:
        self._commands.put(fn)

    def _close_sink(self, sink: Any) -> None:
        close = getattr(sink, "close", None)
        if not callable(close):
            return
        try:
            close(list(getattr(self.pipeline, "events", []) or []))
        except Exception as exc:  # noqa: BLE001 - a sink must not end the session
            log.exception("closing a result sink failed")
            self.listener.on_failed(f"could not finish the recording: {exc}")

    def _capture_rate(self) -> float:
        """Frames per second read by the capture over the last ~2 s (from its counter, so
        bursts after a stall do not inflate it)."""
        cap = self.capture
        if cap is None:
            return 0.0
        now = time.perf_counter()
        count = int(getattr(cap, "captured", 0))
        hist = self._capture_counts
        hist.append((now, count))
        while len(hist) > 2 and now - hist[0][0] > 2.0:
            hist.popleft()
        if len(hist) < 2 or hist[-1][0] - hist[0][0] < 0.2:
            return float(getattr(cap, "capture_fps", 0.0) or 0.0)
        return (hist[-1][1] - hist[0][1]) / (hist[-1][0] - hist[0][0])

    def _do_open(self, spec: Any) -> None:
        self._do_close()
        custom = isinstance(spec, tuple)
        if custom:
            make, label, is_camera = spec
        else:
            label, is_camera = source_label(spec), is_camera_spec(spec)
        busy = self.listener.on_busy
        busy(f"Opening {label}…")
        source: Any = None
        waiting = ""
        try:
            source = make() if custom else self._open_fn(spec, self._config)
        except CameraError as exc:
            if not is_camera:
                busy("")
                self._status, self._message = "error", str(exc)
                self.listener.on_source_failed(str(exc))
                return
            # A camera that is not there (yet): the capture thread keeps trying, so it
            # starts by itself when it is plugged in; the status says so meanwhile.
            waiting = str(exc)
        except MestudioError as exc:
            busy("")
            self._status, self._message = "error", str(exc)
            self.listener.on_source_failed(str(exc))
            return
        except OSError as exc:
            busy("")
            self._status, self._message = "error", f"cannot open {label}: {exc}"
            self.listener.on_source_failed(self._message)
            return
        self.label, self.is_camera = label, is_camera
        info = SourceInfo(label=label, name=str(getattr(source, "name", label)),
                          fps=getattr(source, "fps", None),
                          n_frames=getattr(source, "n_frames", None),
                          size=tuple(getattr(source, "size", (0, 0))),
                          seekable=bool(getattr(source, "seekable", False)),
                          is_camera=is_camera)
        try:
            busy("Loading the models…")
            self._build_pipeline()
        except BaseException:
            if source is not None:
                source.close()
            busy("")
            raise
        first = [source] if source is not None else []

        def open_again() -> Any:
            return first.pop() if first else (make() if custom else
                                              self._open_fn(spec, self._config))

        self._reset_counters()
        self.capture = self._capture_fn(open_again, self._config, pace=not is_camera,
                                        loop=self.loop)
        if self._paused and not is_camera:
            self.capture.pause()
        self.capture.start()
        self._ended_sent = self._finished = False
        if waiting:
            self._report_status("reconnecting", f"{waiting} — waiting for it")
        else:
            self._report_status("running", "")
        busy("")
        self.listener.on_source_opened(info)

    def _build_pipeline(self) -> None:
        """(Re)create the pipeline (:meth:`Pipeline.from_config`: what is missing becomes a
        degraded mode, listed in its ``degraded``)."""
        if self.pipeline is not None:
            self._close_pipeline()
        self.pipeline = self._pipeline_fn(self._config)
        self._apply_overlay_needs()
        self._apply_selected_face()
        self.listener.on_pipeline_info(describe_pipeline(self.pipeline, self._config))

    def _apply_overlay_needs(self) -> None:
        set_overlays = getattr(self.pipeline, "set_overlays", None)
        if callable(set_overlays):
            set_overlays(flow=self._need_flow, strain=self._need_strain)

    def _do_config(self, config: AppConfig) -> None:
        self._config = config
        if self.capture is not None:
            self.listener.on_busy("Reloading the models…")
            try:
                self._build_pipeline()
            finally:
                self.listener.on_busy("")

    def _do_pause(self, paused: bool) -> None:
        self._paused = paused
        cap = self.capture
        if cap is not None and not self.is_camera:
            if paused:
                cap.pause()
            else:
                cap.resume()

    def _do_seek(self, index: int) -> None:
        cap = self.capture
        if cap is None or self.is_camera:
            return
        cap.seek(index)
        reset = getattr(self.pipeline, "reset", None)
        if callable(reset):
            reset()
        self._crops.clear()

    def _close_pipeline(self) -> None:
        pipe, self.pipeline = self.pipeline, None
        if pipe is not None:
            try:
                pipe.close()
            except Exception:  # noqa: BLE001 - closing must go on
                log.exception("closing the pipeline failed")

    def _do_close(self, report: bool = True) -> None:
        cap, self.capture = self.capture, None
        if cap is not None:
            try:
                cap.stop()
            except Exception:  # noqa: BLE001 - closing must go on
                log.exception("stopping the capture failed")
        self._close_pipeline()
        if cap is not None and report:
            self._report_status("idle", "")

    def _reset_counters(self) -> None:
        self._processed = self._dropped = self._captured = 0
        self.latency_display.clear()
        self.latency_processing.clear()
        for m in (self._process_meter, self._display_meter):
            m.clear()
        self._capture_counts.clear()
        self._crops.clear()
        self._views.clear()
        self.last_result = None
        self._reconnects_seen = 0
        with self._lock:
            self._packet = None

    def _report_status(self, status: str, message: str) -> None:
        self._status, self._message = status, message
        if (status, message) != self._last_status:
            self._last_status = (status, message)
            self.listener.on_status(status, message)

    def _poll_capture(self, cap: Any, drained: bool = True) -> None:
        """Forward the capture's status; the end of a stream only once its last frame was
        taken (``drained``)."""
        status = str(getattr(cap, "status", "running"))
        message = str(getattr(cap, "message", "") or "")
        reconnects = int(getattr(cap, "reconnects", 0) or 0)
        if reconnects > self._reconnects_seen:
            self._reconnects_seen = reconnects
            if status != "reconnecting" and self._status != "reconnecting":
                # the source failed and came back between two looks: still say so
                self._report_status("reconnecting",
                                    f"{self.label}: connection lost — reconnected")
        if status in ("ended", "error") and not drained:
            return
        if status == "ended":
            if not self._ended_sent:
                self._ended_sent = True
                self.finish_stream()
                self._report_status("ended", message or f"{self.label}: end")
                self.listener.on_ended()
            return
        if status == "error":
            self._report_status("error", message or f"{self.label} failed")
            self.finish_stream()
            self._do_close(report=False)
            return
        self._report_status(status, message)

    def _publish_events(self, events: list[SpotEvent], updated: list[SpotEvent]) -> None:
        views = {}
        for ev in events:
            self._remember_event(ev)
        for ev in [*events, *updated]:
            if ev.id >= 0:
                views[ev.id] = self._view_for(ev)
        with self._lock:
            if self._packet is None:
                last = self.last_result
                if last is None:
                    return
                self._packet = DisplayPacket(result=last, merged=0)
            self._packet.events.extend(events)
            self._packet.updated_events.extend(updated)
            self._packet.event_views.update(views)
            emit = not self._signal_pending
            self._signal_pending = True
        if emit:
            self.listener.on_packet()

    def _remember_event(self, ev: SpotEvent) -> None:
        if ev.id < 0:
            return
        face = int(getattr(ev, "face_id", 0) or 0)
        crop = self._crops.get((face, ev.apex))
        if crop is None:
            own = [i for f, i in self._crops if f == face]  # that face's stored frames only
            if own:
                crop = self._crops[(face, min(own, key=lambda i: abs(i - ev.apex)))]
        self._views[ev.id] = EventView(crop=crop)
        while len(self._views) > MAX_EVENT_VIEWS:
            self._views.popitem(last=False)

    def _view_for(self, ev: SpotEvent) -> EventView:
        base = self._views.get(ev.id)
        view = event_view(ev, base.crop if base is not None else None)
        self._views[ev.id] = view
        return view

    def _pictures(self, result: FrameResult) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The flow / strain overlay pictures of ``result`` (from the pipeline's flow)."""
        aligned = result.face.aligned if result.face.face_found else None
        if aligned is None:
            return None, None
        size = int(aligned.shape[0])
        flow_img = strain_img = None
        if self._need_flow and result.flow is not None:
            flow_img = flow_overlay(result.flow, size)
        if self._need_strain and result.strain is not None:
            strain_img = strain_to_rgba(result.strain, size)
        return flow_img, strain_img

    def _process(self, frame: Frame, t_cap: float) -> FrameResult | None:
        pipe = self.pipeline
        if pipe is None:
            return None
        cap = self.capture
        if cap is not None:
            self._captured = int(getattr(cap, "captured", self._captured + 1))
            self._dropped = int(getattr(cap, "dropped", self._dropped))
        try:
            result: FrameResult = pipe.process(frame, capture_time=t_cap)
        except MestudioError as exc:
            self.listener.on_failed(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - one bad frame must not end the session
            log.exception("processing frame %s failed", frame.index)
            self.listener.on_failed(f"processing failed: {exc}")
            return None
        self._processed += 1
        self._process_meter.tick()
        self._dropped = max(self._dropped, int(result.dropped_frames or 0))
        ct = result.capture_time if result.capture_time is not None else t_cap
        for fn in list(self._subscribers):
            try:
                fn(result)
            except Exception as exc:  # noqa: BLE001 - a subscriber must not end the session
                log.exception("live session subscriber failed; removed")
                self._subscribers.remove(fn)
                self.listener.on_failed(f"a consumer of the results stopped: {exc}")
        for sink in list(self._sinks):
            try:
                sink.add_result(result)
            except Exception as exc:  # noqa: BLE001 - a sink must not end the session
                log.exception("result sink failed; removed")
                self._sinks.remove(sink)
                self.listener.on_failed(f"recording stopped: {exc}")
        self.last_result = result
        self._keep_auto_face(pipe, result)
        if self.packets:
            self._pack(result, ct)
        self.latency_processing.add(time.perf_counter() - ct)
        return result

    def _keep_auto_face(self, pipe: Any, result: FrameResult) -> None:
        """No face chosen: the pipeline shows the largest face, which flips between faces of
        about the same size; once a face is shown it stays while it is found (then the
        largest again), so the samples and overlays do not jump between people."""
        if self._selected_face is not None or not hasattr(pipe, "selected_face"):
            return
        faces = getattr(result, "faces", None) or []
        if len(faces) < 2 and (not faces or faces[0].face_id == 0):
            return
        shown = next((f.face_id for f in faces if f.face is result.face), None)
        if shown is not None and pipe.selected_face != shown:
            pipe.selected_face = shown

    def _pack(self, result: FrameResult, ct: float) -> None:
        frame, face = result.frame, result.face
        faces = list(getattr(result, "faces", None) or [])
        multi = any(f.face_id != 0 for f in faces)
        stored = [(f.face_id, f.face) for f in faces] if faces else [(0, face)]
        for fid, obs in stored:
            if obs.face_found and obs.aligned is not None:
                self._crops[(fid, frame.index)] = obs.aligned
        most = max(1, len(stored), int(self._config.tracker.max_faces) if multi else 1)
        while len(self._crops) > CROPS_KEPT * most:
            self._crops.popitem(last=False)
        face_id: int | None = 0
        if multi:  # which face fills result.face (the selected one, else the largest)
            face_id = next((f.face_id for f in faces if f.face is face), None)
        for ev in result.events:
            self._remember_event(ev)
        flow_img, strain_img = self._pictures(result)
        views = {ev.id: self._view_for(ev) for ev in [*result.events, *result.updated_events]
                 if ev.id >= 0}
        sample = (frame.index, frame.timestamp_s, result.spotter)
        per_face = {f.face_id: (frame.index, frame.timestamp_s, f.spotter)
                    for f in faces} if multi else {}
        with self._lock:
            packet = self._packet
            if packet is None:
                self._packet = DisplayPacket(result=result, capture_time=ct, flow=flow_img,
                                             strain=strain_img, samples=[sample],
                                             events=list(result.events),
                                             updated_events=list(result.updated_events),
                                             event_views=views, face_id=face_id,
                                             face_samples={k: [v] for k, v in
                                                           per_face.items()})
            else:
                packet.result, packet.capture_time = result, ct
                packet.flow, packet.strain = flow_img, strain_img
                packet.face_id = face_id
                packet.samples.append(sample)
                if len(packet.samples) > MAX_PENDING_SAMPLES:
                    del packet.samples[: len(packet.samples) - MAX_PENDING_SAMPLES]
                for fid, smp in per_face.items():
                    kept = packet.face_samples.setdefault(fid, [])
                    kept.append(smp)
                    if len(kept) > MAX_PENDING_SAMPLES:
                        del kept[: len(kept) - MAX_PENDING_SAMPLES]
                packet.events.extend(result.events)
                packet.updated_events.extend(result.updated_events)
                packet.event_views.update(views)
                packet.merged += 1
            emit = not self._signal_pending
            self._signal_pending = True
        if emit:
            self.listener.on_packet()


def default_config() -> AppConfig:
    """The user's saved settings (defaults when none), honouring ``$MESTUDIO_SETTINGS``."""
    from mestudio.config import load_settings

    env = os.environ.get("MESTUDIO_SETTINGS")
    return load_settings(Path(env) if env else None)
