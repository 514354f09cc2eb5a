"""The processing worker: a ``QThread`` that drives :class:`mestudio.pipeline.Pipeline`.

Threads (ARCHITECTURE.md, "Threading (live)")::

    capture thread (LiveCapture) ──newest frame wins──▶ PipelineWorker (this QThread)
        ──DisplayPacket, at most one pending──▶ GUI thread (draws only)

* Opening a source, loading the model and closing happen here, never on the GUI thread;
  ``busy(text)`` tells the window to show a progress indicator ("" = done).
* The capture slot holds one frame: when processing is slower than the source, frames are
  dropped (and counted) instead of queued, so latency stays bounded.
* Results are merged into one :class:`DisplayPacket` until the GUI takes it: the newest
  frame (with its overlays) replaces the previous one, while spotter samples and events are
  accumulated so the plot and the table lose nothing. ``packet_ready`` is emitted only
  when no packet is pending, so the GUI's event queue never fills up.
* Flow and strain pictures for the overlays, and the Grad-CAM pictures of events, are
  computed here (only when their overlay is on); the GUI thread only wraps and draws them.
* A camera that fails mid-stream is reopened by ``LiveCapture``; its ``status``/``message``
  are forwarded through ``capture_status(status, message)``.

Latency is measured from ``FrameResult.capture_time`` (``time.perf_counter()`` at capture):
to the end of processing here, and to the end of painting in the GUI
(:meth:`PipelineWorker.record_display_latency`).
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QThread, Signal

from mestudio.config import AppConfig
from mestudio.errors import CameraError, MestudioError
from mestudio.gui.predtext import model_mark, prediction_text
from mestudio.types import Frame, FrameResult, SpotEvent, SpotterState

log = logging.getLogger(__name__)

#: Longest history of spotter samples kept for the GUI while it is not taking packets.
MAX_PENDING_SAMPLES = 4000
#: Grad-CAM / apex crops kept for this many most recent events.
MAX_EVENT_VIEWS = 200
#: Optical strain shown at full colour in the strain overlay (dimensionless).
STRAIN_FULL_SCALE = 0.12
#: Flow magnitude (pixels of a 128-px aligned crop) shown fully opaque in the flow overlay.
FLOW_FULL_SCALE_PX = 1.5


# --------------------------------------------------------------------------- statistics
class LatencyStats:
    """Thread-safe record of latencies (seconds): recent window for the status bar, full
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
        return (n - 1) / span if span > 0 else 0.0

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


@dataclass
class WorkerStats:
    """What the status bar shows (all figures since the current source was opened).

    Attributes:
        capture_fps: frames per second delivered by the source.
        processed_fps: frames per second through the pipeline.
        displayed_fps: frames per second painted by the GUI.
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
class EventView:
    """What the Grad-CAM inset shows for one event.

    Attributes:
        crop: the aligned face at the event's apex, BGR ``uint8`` ``(S, S, 3)``, or None.
        cams: per stream name, the Grad-CAM of the predicted class as RGBA ``uint8``
            ``(S, S, 4)`` (colour map, alpha = weight); empty without a prediction/CAM.
        caption: e.g. ``"happiness 72 %"`` or ``"micro · no emotion"``.
        auto_stream: the stream with the strongest Grad-CAM of the predicted class (what
            the "auto" stream setting shows), or None when every map is zero / no CAM.
        empty_streams: streams whose map of the predicted class is zero everywhere.
    """

    crop: np.ndarray | None
    cams: dict[str, np.ndarray] = field(default_factory=dict)
    caption: str = ""
    auto_stream: str | None = None
    empty_streams: frozenset[str] = frozenset()


@dataclass
class DisplayPacket:
    """Everything new since the GUI last took a packet.

    Attributes:
        result: the newest processed frame.
        capture_time: its ``perf_counter()`` capture time (None when unknown).
        flow, strain: RGBA ``uint8`` ``(S, S, 4)`` overlay pictures of the aligned crop of
            ``result`` (None when the overlay is off or there is no face).
        samples: ``(frame index, timestamp_s, spotter state)`` of every processed frame.
        events: events emitted since the last packet.
        updated_events: earlier events whose prediction arrived.
        event_views: Grad-CAM inset content by event id.
        merged: number of processed frames folded into this packet.
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


@dataclass
class SourceInfo:
    """A successfully opened source (for the title and the status bar)."""

    label: str
    name: str
    fps: float | None
    n_frames: int | None
    size: tuple[int, int]
    seekable: bool
    is_camera: bool


class ResultSink(Protocol):
    """Something that consumes every processed frame in the worker thread (e.g. the
    session recorder ``capture.recorder.SessionRecorder``)."""

    def add_result(self, result: FrameResult) -> None: ...


# --------------------------------------------------------------------------- pacing
class PacedSource:
    """Wraps a file-like :class:`FrameSource` so it delivers frames in real time (at their
    timestamps), like a camera, and can be paused without losing frames.

    Iteration sleeps until each frame is due (wall clock relative to the first frame);
    while paused it blocks, and on resume the clock is re-based so playback continues where
    it stopped instead of racing to catch up.
    """

    def __init__(self, source: Any, speed: float = 1.0) -> None:
        self._source = source
        self.speed = speed
        self._running = threading.Event()
        self._running.set()
        self._closed = threading.Event()
        self.name = getattr(source, "name", "source")
        self.fps = getattr(source, "fps", None)
        self.n_frames = getattr(source, "n_frames", None)
        self.size = getattr(source, "size", (0, 0))
        self.seekable = getattr(source, "seekable", False)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def __iter__(self) -> Iterator[Frame]:
        t0_wall: float | None = None
        t0_media = 0.0
        fallback_dt = 1.0 / float(self.fps) if self.fps else 1.0 / 30.0
        last_ts: float | None = None
        for frame in self._source:
            if self._closed.is_set():
                return
            ts = float(frame.timestamp_s)
            if last_ts is not None and not (ts > last_ts):
                ts = last_ts + fallback_dt  # broken timestamps: fall back to nominal fps
            last_ts = ts
            if not self._running.is_set():
                while not self._running.wait(0.1):
                    if self._closed.is_set():
                        return
                t0_wall = None  # re-base the clock after a pause
            now = time.perf_counter()
            if t0_wall is None:
                t0_wall, t0_media = now, ts
            due = t0_wall + (ts - t0_media) / self.speed
            delay = due - now
            if delay > 0:
                if self._closed.wait(delay):
                    return
            elif delay < -0.25:
                t0_wall, t0_media = now, ts  # fell far behind (decoder stall): re-base
            yield frame

    def read(self, i: int) -> Frame:
        return self._source.read(i)

    def interrupt(self) -> None:
        """Make a running iteration return soon (from any thread); the inner source stays
        open until :meth:`close` (called by the thread that iterates)."""
        self._closed.set()
        self._running.set()

    def close(self) -> None:
        self.interrupt()
        self._source.close()

    def __enter__(self) -> PacedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- pictures
def flow_to_rgba(flow: np.ndarray, full_scale_px: float = FLOW_FULL_SCALE_PX,
                 floor_fraction: float = 1.0 / 3.0) -> np.ndarray:
    """Colour-code a flow field for the overlay.

    Args:
        flow: ``(H, W, 2)`` float32 ``(u, v)`` in pixels.
        full_scale_px: magnitude drawn fully opaque.
        floor_fraction: magnitudes under this fraction of ``full_scale_px`` (residual
            tracking jitter, sensor noise) stay transparent.

    Returns:
        RGBA ``uint8`` ``(H, W, 4)``: hue = direction, alpha = magnitude.
    """
    import cv2

    u = np.ascontiguousarray(flow[..., 0], dtype=np.float32)
    v = np.ascontiguousarray(flow[..., 1], dtype=np.float32)
    mag, ang = cv2.cartToPolar(u, v, angleInDegrees=True)
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (ang * 0.5).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = 255
    rgba = np.empty(flow.shape[:2] + (4,), np.uint8)
    rgba[..., :3] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    floor = floor_fraction * full_scale_px
    rgba[..., 3] = np.clip((mag - floor) * (230.0 / (full_scale_px - floor)),
                           0, 230).astype(np.uint8)
    return rgba


def heat_to_rgba(values: np.ndarray, vmax: float | None = None, size: int | None = None,
                 max_alpha: int = 200, colormap: int | None = None,
                 floor: float = 0.2) -> np.ndarray:
    """Colour-map a non-negative scalar map (strain, Grad-CAM) for an overlay.

    Args:
        values: ``(h, w)`` float map.
        vmax: value drawn at full colour/opacity (default: the map's maximum).
        size: resize to ``(size, size)`` first (bilinear), or keep the shape.
        max_alpha: opacity of the strongest value (0..255).
        colormap: an OpenCV colour map (default ``COLORMAP_INFERNO``).
        floor: fraction of ``vmax`` under which the map is fully transparent.

    Returns:
        RGBA ``uint8`` ``(size, size, 4)`` (or the input shape).
    """
    import cv2

    v: np.ndarray = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0)
    if size is not None and v.shape != (size, size):
        v = np.asarray(cv2.resize(v, (size, size), interpolation=cv2.INTER_LINEAR))
    top = float(vmax) if vmax is not None else float(v.max())
    norm = np.clip(v / top, 0.0, 1.0) if top > 1e-12 else np.zeros_like(v)
    grey = (norm * 255).astype(np.uint8)
    cmap = cv2.COLORMAP_INFERNO if colormap is None else colormap
    bgr = cv2.applyColorMap(grey, cmap)
    rgba = np.empty(v.shape + (4,), np.uint8)
    rgba[..., 0] = bgr[..., 2]
    rgba[..., 1] = bgr[..., 1]
    rgba[..., 2] = bgr[..., 0]
    # the weakest 20 % stay transparent, so only real structure is tinted
    rgba[..., 3] = (np.clip((norm - floor) / (1.0 - floor), 0.0, 1.0) * max_alpha
                    ).astype(np.uint8)
    return rgba


def event_view(event: SpotEvent, crop: np.ndarray | None) -> EventView:
    """The Grad-CAM inset content of ``event`` (its prediction's CAMs of the predicted
    class, one picture per stream, over the apex ``crop``)."""
    pred = event.prediction
    if pred is None:
        caption = f"{event.kind} · no emotion" if event.kind == "micro" else "macro · not classified"
        return EventView(crop=crop, caption=caption)
    caption = prediction_text(pred)
    cams: dict[str, np.ndarray] = {}
    auto: str | None = None
    empty: set[str] = set()
    if pred.cams is not None and crop is not None:
        import cv2

        from mestudio.gui.gradcam import (
            auto_cam_stream,
            cam_stream_scores,
            predicted_class_index,
            stream_names,
        )

        arr = np.asarray(pred.cams, dtype=np.float32)
        if arr.ndim == 4:
            k = predicted_class_index(pred)
            names = stream_names(pred, arr.shape[1])
            scores = cam_stream_scores(pred)
            for s, name in enumerate(names):
                cams[name] = heat_to_rgba(arr[k, s], vmax=1.0, size=crop.shape[0],
                                          max_alpha=170, colormap=cv2.COLORMAP_JET)
                if scores is not None and scores[s] <= 0.0:
                    empty.add(name)
            best = auto_cam_stream(pred)
            auto = names[best] if best is not None else None
    return EventView(crop=crop, cams=cams, caption=caption, auto_stream=auto,
                     empty_streams=frozenset(empty))


def strain_magnitude(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude of a flow field, for the overlay.

    The same definition and differences as :func:`mestudio.flow.optical_strain`
    (``sqrt(e_xx² + e_yy² + 2 e_xy²)``, central differences inside, one-sided at the
    borders; a test keeps them equal) in numpy: the GUI process then needs no torch for
    the overlay (0.5 ms for 128×128 instead of torch's thread pool competing with the
    capture and GUI threads on small machines).

    Args:
        flow: ``(H, W, 2)`` float flow in pixels (H, W >= 2).

    Returns:
        ``(H, W)`` float32 strain (dimensionless).
    """
    u = np.asarray(flow[..., 0], dtype=np.float32)
    v = np.asarray(flow[..., 1], dtype=np.float32)
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    e_xy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx ** 2 + dv_dy ** 2 + 2.0 * e_xy ** 2).astype(np.float32)


def _flow_functions() -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
                               Callable[[np.ndarray], np.ndarray] | None]:
    """(flow, strain) functions for the overlays: ``mestudio.flow.fast_flow`` (OpenCV DIS
    when the flow module is not there) and :func:`strain_magnitude`."""
    flow_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    strain_fn: Callable[[np.ndarray], np.ndarray] | None = None
    try:
        from mestudio.flow import fast_flow  # numpy/OpenCV only (no torch)

        flow_fn = fast_flow
    except Exception:  # noqa: BLE001 - module absent in this build: use OpenCV's DIS
        try:
            import cv2

            dis = cv2.DISOpticalFlow_create(  # type: ignore[attr-defined]
                cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

            def flow_fn(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
                return dis.calc(prev, nxt, None)
        except Exception:  # noqa: BLE001
            flow_fn = None
    strain_fn = strain_magnitude
    return flow_fn, strain_fn


# --------------------------------------------------------------------------- worker
def _default_open(spec: Any, config: AppConfig) -> Any:
    from mestudio.capture import describe_spec, open_source

    if isinstance(spec, str) and spec.startswith("demo:") and describe_spec(spec) == "missing":
        from mestudio.capture.demo import DemoSource

        return DemoSource.from_spec(spec)  # "demo:fps=100,duration=30"
    return open_source(spec, config.capture)


def describe_spec_kind(spec: Any) -> str:
    """:func:`mestudio.capture.describe_spec`, also knowing ``"demo:options"`` specs."""
    from mestudio.capture import describe_spec

    if isinstance(spec, str) and spec.startswith("demo:"):
        return "demo"
    return describe_spec(spec)


def _default_capture(open_fn: Callable[[], Any], config: AppConfig) -> Any:
    from mestudio.capture.live import LiveCapture

    return LiveCapture(open_fn, config.capture, pace=False, loop=False)


def _default_pipeline(config: AppConfig, spotting: bool, recognition: bool) -> Any:
    from mestudio.pipeline import Pipeline

    return Pipeline(config, spotting=spotting, recognition=recognition)


def _is_camera_spec(spec: Any) -> bool:
    if isinstance(spec, int):
        return True
    from mestudio.capture import describe_spec

    return describe_spec(spec) == "camera"


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


def wait_for_thread(thread: QThread, timeout_s: float, what: str | None = None) -> None:
    """``thread.wait()`` that logs a warning after ``timeout_s`` and then keeps waiting:
    a running ``QThread`` must never be destroyed (Qt aborts the whole process)."""
    if thread.wait(max(0, int(timeout_s * 1000))):
        return
    log.warning("%s is still busy after %.0f s; waiting for it to finish",
                what or thread.objectName() or type(thread).__name__, timeout_s)
    thread.wait()


class PipelineWorker(QThread):
    """Runs capture → pipeline off the GUI thread and hands results to the GUI.

    Every public method is safe to call from the GUI thread; the work happens in this
    thread, in order. The factories are injectable for tests and for other front ends
    (kiosk): ``open_fn(spec, config) -> FrameSource``, ``capture_fn(open, config) ->
    LiveCapture``-like, ``pipeline_fn(config, spotting, recognition) -> Pipeline``-like.

    Signals:
        packet_ready(): a :class:`DisplayPacket` waits in :meth:`take_packet`.
        busy(str): a slow step started (the text says which); "" when it is over.
        source_opened(object): a :class:`SourceInfo`.
        source_failed(str): the source could not be opened (user-facing message).
        capture_status(str, str): the capture's status and message changed
            ("running", "reconnecting", "ended", "error").
        pipeline_info(object): dict with ``model`` (model_info or None), ``model_name``,
            ``device``, ``synthetic``, ``n_classes``, ``badge`` ("SYNTHETIC DEMO MODEL" /
            "real-data model · K classes", "" without a model), ``model_description`` (one
            line), ``spotting``, ``recognition``, ``degraded`` (list of str), ``rois`` (masks
            in aligned-crop pixels or None), ``warning`` (str),
            ``overlays`` ({"flow": bool, "strain": bool}: can they be computed).
        ended(): the file/clip reached its end and the last events were flushed.
        failed(str): an unexpected error in processing (the worker keeps running).
    """

    packet_ready = Signal()
    busy = Signal(str)
    source_opened = Signal(object)
    source_failed = Signal(str)
    capture_status = Signal(str, str)
    pipeline_info = Signal(object)
    ended = Signal()
    failed = Signal(str)

    def __init__(self, config: AppConfig | None = None, *,
                 open_fn: Callable[[Any, AppConfig], Any] | None = None,
                 capture_fn: Callable[[Callable[[], Any], AppConfig], Any] | None = None,
                 pipeline_fn: Callable[[AppConfig, bool, bool], Any] | None = None,
                 parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("PipelineWorker")
        self._config = config or AppConfig()
        self._open_fn = open_fn or _default_open
        self._capture_fn = capture_fn or _default_capture
        self._pipeline_fn = pipeline_fn or _default_pipeline
        self._commands: queue.Queue[Callable[[], None]] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._packet: DisplayPacket | None = None
        self._signal_pending = False
        self._capture: Any = None
        self._paced: PacedSource | None = None
        self._pipeline: Any = None
        self._spec: Any = None
        self._label = ""
        self._is_camera = False
        self._paused = False
        self._last_status: tuple[str, str] = ("idle", "")
        self._ended_sent = False
        self._need_flow = False
        self._need_strain = False
        self._flow_fns: tuple[Any, Any] | None = None
        self._reference: tuple[np.ndarray, float] | None = None
        self._crops: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._crop_keep = 300
        self._views: collections.OrderedDict[int, EventView] = collections.OrderedDict()
        self._sinks: list[ResultSink] = []
        self.latency_display = LatencyStats()
        self.latency_processing = LatencyStats()
        self._capture_meter = RateMeter()
        self._capture_counts: collections.deque[tuple[float, int]] = collections.deque()
        self._process_meter = RateMeter()
        self._display_meter = RateMeter()
        self._processed = 0
        self._dropped = 0
        self._captured = 0
        self._status = "idle"
        self._message = ""
        self._last_result: FrameResult | None = None
        self._reconnects_seen = 0

    # ------------------------------------------------------------ GUI-thread API
    def config(self) -> AppConfig:
        return self._config

    def open_source(self, spec: Any) -> None:
        """Open ``spec`` (``"demo"``, a camera index or ``"camera:N"``, a file, a folder) and
        start processing it; replaces the current source."""
        self._post(lambda: self._do_open(spec))

    def open_callable(self, open_fn: Callable[[], Any], label: str, *,
                      is_camera: bool = True) -> None:
        """Open a source made by ``open_fn()`` (tests, custom sources); ``is_camera``
        decides whether it is played in real time (False: paced at its timestamps)."""
        self._post(lambda: self._do_open((open_fn, label, is_camera)))

    def close_source(self) -> None:
        """Stop the current source (the window keeps the last frame)."""
        self._post(self._do_close)

    def set_paused(self, paused: bool) -> None:
        """Pause/resume. Files and the demo clip stop where they are; a camera keeps running
        but its frames are not processed while paused."""
        self._post(lambda: self._do_pause(paused))

    def is_paused(self) -> bool:
        return self._paused

    def set_config(self, config: AppConfig) -> None:
        """Use new settings: the pipeline is rebuilt (model reloaded) for the current
        source."""
        self._post(lambda: self._do_config(config))

    def set_overlay_needs(self, flow: bool, strain: bool) -> None:
        """Compute flow / strain pictures (costly; only while their overlay is shown)."""
        self._need_flow = bool(flow)
        self._need_strain = bool(strain)

    def add_result_sink(self, sink: ResultSink) -> None:
        """Call ``sink.add_result(result)`` (in this thread) for every processed frame."""
        self._post(lambda: self._sinks.append(sink))

    def remove_result_sink(self, sink: ResultSink, final: bool = True) -> None:
        """Stop feeding ``sink``; with ``final`` call ``sink.close(events)`` (in this
        thread) with the pipeline's events when the sink has a ``close``."""
        def do() -> None:
            if sink in self._sinks:
                self._sinks.remove(sink)
            close = getattr(sink, "close", None)
            if final and callable(close):
                try:
                    close(list(getattr(self._pipeline, "events", []) or []))
                except Exception as exc:  # noqa: BLE001
                    log.exception("closing a result sink failed")
                    self.failed.emit(f"could not finish the recording: {exc}")
        self._post(do)

    def take_packet(self) -> DisplayPacket | None:
        """The pending packet (None when there is none); the next one will be signalled."""
        with self._lock:
            packet, self._packet = self._packet, None
            self._signal_pending = False
        return packet

    def record_display_latency(self, seconds: float) -> None:
        """The GUI painted a frame ``seconds`` after its capture."""
        self.latency_display.add(seconds)
        self._display_meter.tick()

    def stats(self) -> WorkerStats:
        """Current figures for the status bar."""
        p50 = self.latency_display.percentile(50)
        p95 = self.latency_display.percentile(95)
        if np.isnan(p50):
            p50 = self.latency_processing.percentile(50)
            p95 = self.latency_processing.percentile(95)
        capture_fps = self._capture_rate()
        return WorkerStats(capture_fps=capture_fps, processed_fps=self._process_meter.rate(),
                           displayed_fps=self._display_meter.rate(), captured=self._captured,
                           processed=self._processed, dropped=self._dropped,
                           latency_p50_ms=p50, latency_p95_ms=p95, status=self._status,
                           message=self._message)

    def _capture_rate(self) -> float:
        """Frames per second read by the capture over the last ~2 s (from its counter, so
        bursts after a stall do not inflate it)."""
        cap = self._capture
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

    def summary(self) -> dict[str, float]:
        """Whole-run figures (for ``--exit-after`` runs and the performance note)."""
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

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop processing, close the source and the pipeline, end the thread.

        Returns once the thread has ended: after ``timeout_s`` a warning is logged and the
        wait goes on, since a ``QThread`` destroyed while it runs aborts the process (every
        step of the thread is bounded: capture waits, ``LiveCapture.stop``, one frame).
        """
        self._stop.set()
        self._commands.put(lambda: None)
        if self.isRunning():
            wait_for_thread(self, timeout_s)
        else:
            self._teardown()

    # ------------------------------------------------------------ worker thread
    def _post(self, fn: Callable[[], None]) -> None:
        self._commands.put(fn)

    def run(self) -> None:  # noqa: D102 - QThread entry point
        try:
            while not self._stop.is_set():
                self._drain_commands(block=self._capture is None)
                if self._stop.is_set():
                    break
                cap = self._capture
                if cap is None:
                    continue
                try:
                    item = cap.get(timeout=0.05)
                except Exception as exc:  # noqa: BLE001 - a broken capture must not kill us
                    log.exception("capture failed")
                    self._report_status("error", f"capture failed: {exc}")
                    self._do_close()
                    continue
                self._poll_capture(cap, drained=item is None)
                if item is None or self._capture is None:
                    continue
                frame, t_cap = item
                if self._paused and self._paced is None:  # camera while paused: drop
                    continue
                self._process(frame, t_cap)
        finally:
            self._teardown()

    def _drain_commands(self, block: bool) -> None:
        try:
            fn = self._commands.get(timeout=0.1) if block else self._commands.get_nowait()
        except queue.Empty:
            return
        while True:
            try:
                fn()
            except MestudioError as exc:
                self.failed.emit(str(exc))
            except Exception as exc:  # noqa: BLE001 - keep the worker alive
                log.exception("worker command failed")
                self.failed.emit(f"internal error: {exc}")
            try:
                fn = self._commands.get_nowait()
            except queue.Empty:
                return

    def _do_open(self, spec: Any) -> None:
        self._do_close()
        custom = isinstance(spec, tuple)
        if custom:
            make, label, is_camera = spec
        else:
            label, is_camera = source_label(spec), _is_camera_spec(spec)
        self.busy.emit(f"Opening {label}…")
        source: Any = None
        waiting = ""
        try:
            source = make() if custom else self._open_fn(spec, self._config)
        except CameraError as exc:
            if not is_camera:
                self.busy.emit("")
                self._status, self._message = "error", str(exc)
                self.source_failed.emit(str(exc))
                return
            # A camera that is not there (yet): keep trying in the capture thread, so it
            # starts by itself when it is plugged in; the banner says so meanwhile.
            waiting = str(exc)
        except MestudioError as exc:
            self.busy.emit("")
            self._status, self._message = "error", str(exc)
            self.source_failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            log.exception("opening %s failed", label)
            self.busy.emit("")
            self.source_failed.emit(f"cannot open {label}: {exc}")
            return
        self._spec, self._label, self._is_camera = spec, label, is_camera
        info = SourceInfo(label=label, name=str(getattr(source, "name", label)),
                          fps=getattr(source, "fps", None),
                          n_frames=getattr(source, "n_frames", None),
                          size=tuple(getattr(source, "size", (0, 0))),  # type: ignore[arg-type]
                          seekable=bool(getattr(source, "seekable", False)),
                          is_camera=is_camera)
        try:
            self.busy.emit("Loading the models…")
            self._build_pipeline()
        except Exception:
            if source is not None:
                source.close()
            self.busy.emit("")
            raise
        first = [source] if source is not None else []

        def open_again() -> Any:
            src = first.pop() if first else (make() if custom else self._open_fn(spec,
                                                                                self._config))
            if not is_camera:
                self._paced = PacedSource(src)
                if self._paused:
                    self._paced.pause()
                return self._paced
            return src

        self._reset_counters()
        self._capture = self._capture_fn(open_again, self._config)
        self._capture.start()
        self._ended_sent = False
        if waiting:
            self._report_status("reconnecting", f"{waiting} — waiting for it")
        else:
            self._report_status("running", "")
        self.busy.emit("")
        self.source_opened.emit(info)

    def _build_pipeline(self) -> None:
        """(Re)create the pipeline; without recognition when the model cannot be loaded,
        without spotting when the spotter cannot be built — and say so."""
        if self._pipeline is not None:
            self._close_pipeline()
        cfg = self._config
        attempts = [(True, cfg.recognition.enabled)]
        if cfg.recognition.enabled:
            attempts.append((True, False))
        attempts.append((False, False))
        warning = ""
        error: Exception | None = None
        for spotting, recognition in attempts:
            try:
                pipeline = self._pipeline_fn(cfg, spotting, recognition)
            except Exception as exc:  # noqa: BLE001 - degrade, then report
                if isinstance(exc, MestudioError):
                    log.warning("pipeline (spotting=%s, recognition=%s): %s", spotting,
                                recognition, exc)
                else:
                    log.exception("pipeline (spotting=%s, recognition=%s) failed", spotting,
                                  recognition)
                error = exc
                warning = f"{'recognition' if recognition else 'spotting'} is off: {exc}"
                continue
            self._pipeline = pipeline
            self.pipeline_info.emit(self._describe_pipeline(pipeline, spotting, recognition,
                                                            warning))
            return
        assert error is not None
        raise error

    def _describe_pipeline(self, pipeline: Any, spotting: bool, recognition: bool,
                           warning: str) -> dict[str, Any]:
        info = getattr(pipeline, "model_info", None)
        info = dict(info) if isinstance(info, dict) else None
        name, device, synthetic = "", "CPU", False
        badge = description = ""
        n_classes = 0
        if info:
            name = str(info.get("name") or info.get("arch") or info.get("architecture") or "")
            synthetic = bool(info.get("synthetic", False))
            n_classes = len(info.get("classes") or [])
            badge, description, _ = model_mark(info)
            provider = str(info.get("provider") or info.get("device") or "")
            if "cuda" in provider.lower() or "tensorrt" in provider.lower():
                device = "CUDA"
        degraded = [str(d) for d in (getattr(pipeline, "degraded", None) or [])]
        if self._flow_fns is None:
            self._flow_fns = _flow_functions()
        overlays = {"flow": self._flow_fns[0] is not None,
                    "strain": self._flow_fns[1] is not None}
        return {"overlays": overlays, "model": info, "model_name": name, "device": device,
                "synthetic": synthetic, "n_classes": n_classes, "badge": badge,
                "model_description": description,
                "spotting": spotting, "recognition": recognition and info is not None,
                "degraded": degraded, "rois": self._roi_masks(), "warning": warning}

    def _roi_masks(self) -> dict[str, np.ndarray] | None:
        try:
            from mestudio.spotting.signal import RoiSignal

            return dict(RoiSignal(self._config.spotter).rois(self._config.tracker.align_size))
        except Exception as exc:  # noqa: BLE001 - spotting module absent/incomplete
            log.debug("no ROI masks for the overlay: %s", exc)
            return None

    def _do_config(self, config: AppConfig) -> None:
        self._config = config
        if self._capture is not None:
            self.busy.emit("Reloading the models…")
            try:
                self._build_pipeline()
            finally:
                self.busy.emit("")

    def _do_pause(self, paused: bool) -> None:
        self._paused = paused
        if self._paced is not None:
            if paused:
                self._paced.pause()
            else:
                self._paced.resume()

    def _close_pipeline(self) -> None:
        pipe, self._pipeline = self._pipeline, None
        if pipe is not None:
            try:
                pipe.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the pipeline failed")

    def _do_close(self, report: bool = True) -> None:
        cap, self._capture = self._capture, None
        if self._paced is not None:
            self._paced.interrupt()
        self._paced = None
        if cap is not None:
            try:
                cap.stop()
            except Exception:  # noqa: BLE001
                log.exception("stopping the capture failed")
        self._close_pipeline()
        self._reference = None
        if cap is not None and report:
            self._report_status("idle", "")

    def _teardown(self) -> None:
        for sink in list(self._sinks):
            close = getattr(sink, "close", None)
            if callable(close):
                try:
                    close(list(getattr(self._pipeline, "events", []) or []))
                except Exception:  # noqa: BLE001
                    log.exception("closing a result sink failed")
        self._sinks.clear()
        self._do_close()

    def _reset_counters(self) -> None:
        self._processed = self._dropped = self._captured = 0
        self.latency_display.clear()
        self.latency_processing.clear()
        for m in (self._capture_meter, self._process_meter, self._display_meter):
            m.clear()
        self._capture_counts.clear()
        self._crops.clear()
        self._views.clear()
        self._reference = None
        self._last_result = None
        self._reconnects_seen = 0
        with self._lock:
            self._packet = None

    def _report_status(self, status: str, message: str) -> None:
        self._status, self._message = status, message
        if (status, message) != self._last_status:
            self._last_status = (status, message)
            self.capture_status.emit(status, message)

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
                                    f"{self._label}: connection lost — reconnected")
        if status in ("ended", "error") and not drained:
            return
        if status == "ended":
            if not self._ended_sent:
                self._ended_sent = True
                self._finish_stream()
                self._report_status("ended", message or f"{self._label}: end")
                self.ended.emit()
            return
        if status == "error":
            self._report_status("error", message or f"{self._label} failed")
            self._finish_stream()
            self._do_close(report=False)
            return
        self._report_status(status, message)

    def _finish_stream(self) -> None:
        pipe = self._pipeline
        if pipe is None:
            return
        try:
            flushed = list(pipe.finish() or [])
        except Exception as exc:  # noqa: BLE001
            log.exception("finishing the pipeline failed")
            self.failed.emit(f"could not flush the last events: {exc}")
            return
        flushed_ids = {ev.id for ev in flushed}
        known = [ev for ev in (getattr(pipe, "events", None) or [])
                 if ev.id >= 0 and ev.id not in flushed_ids]
        with self._lock:
            packet = self._packet
        if packet is None and not flushed and not known:
            return
        self._publish_events(flushed, known)

    def _publish_events(self, events: list[SpotEvent], updated: list[SpotEvent]) -> None:
        views = {}
        for ev in events:
            self._remember_event(ev)
        for ev in [*events, *updated]:
            if ev.id >= 0:
                views[ev.id] = self._view_for(ev)
        with self._lock:
            if self._packet is None:
                last = self._last_result
                if last is None:
                    return
                self._packet = DisplayPacket(result=last, merged=0)
            self._packet.events.extend(events)
            self._packet.updated_events.extend(updated)
            self._packet.event_views.update(views)
            emit = not self._signal_pending
            self._signal_pending = True
        if emit:
            self.packet_ready.emit()

    def _remember_event(self, ev: SpotEvent) -> None:
        if ev.id < 0:
            return
        crop = self._crops.get(ev.apex)
        if crop is None and self._crops:
            # nearest stored frame to the apex
            idx = min(self._crops, key=lambda i: abs(i - ev.apex))
            crop = self._crops[idx]
        self._views[ev.id] = EventView(crop=crop)
        while len(self._views) > MAX_EVENT_VIEWS:
            self._views.popitem(last=False)

    def _view_for(self, ev: SpotEvent) -> EventView:
        base = self._views.get(ev.id)
        view = event_view(ev, base.crop if base is not None else None)
        self._views[ev.id] = view
        return view

    def _overlays(self, result: FrameResult) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not (self._need_flow or self._need_strain):
            self._reference = None
            return None, None
        aligned = result.face.aligned if result.face.face_found else None
        if aligned is None:
            self._reference = None
            return None, None
        import cv2

        if self._flow_fns is None:
            self._flow_fns = _flow_functions()
        flow_fn, strain_fn = self._flow_fns
        if flow_fn is None:
            return None, None
        gray = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY) if aligned.ndim == 3 else aligned
        t = result.frame.timestamp_s
        ref = self._reference
        if ref is None or ref[0].shape != gray.shape or \
                t - ref[1] > self._config.spotter.reference_window_s or t < ref[1]:
            self._reference = (gray, t)
            ref = self._reference
        flow = np.asarray(flow_fn(ref[0], gray), dtype=np.float32)
        # Residual head motion moves the whole crop: show the face's own deformation.
        flow = (flow - np.median(flow.reshape(-1, 2), axis=0)).astype(np.float32)
        scale = gray.shape[0] / 128.0  # full scale is defined on a 128-px crop
        flow_img = flow_to_rgba(flow, FLOW_FULL_SCALE_PX * scale) if self._need_flow else None
        strain_img = None
        if self._need_strain and strain_fn is not None:
            strain = strain_fn(flow)
            strain_img = heat_to_rgba(strain, vmax=STRAIN_FULL_SCALE, max_alpha=200, floor=0.3)
        return flow_img, strain_img

    def _process(self, frame: Frame, t_cap: float) -> None:
        pipe = self._pipeline
        if pipe is None:
            return
        cap = self._capture
        if cap is not None:
            self._captured = int(getattr(cap, "captured", self._captured + 1))
            self._dropped = int(getattr(cap, "dropped", self._dropped))
        self._capture_meter.tick()
        try:
            result: FrameResult = pipe.process(frame, capture_time=t_cap)
        except MestudioError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            log.exception("processing frame %s failed", frame.index)
            self.failed.emit(f"processing failed: {exc}")
            return
        self._processed += 1
        self._process_meter.tick()
        self._dropped = max(self._dropped, int(result.dropped_frames or 0))
        ct = result.capture_time if result.capture_time is not None else t_cap
        face = result.face
        if face.face_found and face.aligned is not None:
            self._crops[frame.index] = face.aligned
            while len(self._crops) > self._crop_keep:
                self._crops.popitem(last=False)
        for ev in result.events:
            self._remember_event(ev)
        try:
            flow_img, strain_img = self._overlays(result)
        except Exception:  # noqa: BLE001 - overlays are optional
            log.exception("overlay computation failed; overlays off")
            self._need_flow = self._need_strain = False
            flow_img = strain_img = None
        views = {ev.id: self._view_for(ev) for ev in [*result.events, *result.updated_events]
                 if ev.id >= 0}
        for sink in list(self._sinks):
            try:
                sink.add_result(result)
            except Exception as exc:  # noqa: BLE001
                log.exception("result sink failed; removed")
                self._sinks.remove(sink)
                self.failed.emit(f"recording stopped: {exc}")
        self._last_result = result
        sample = (frame.index, frame.timestamp_s, result.spotter)
        with self._lock:
            packet = self._packet
            if packet is None:
                packet = DisplayPacket(result=result, capture_time=ct, flow=flow_img,
                                       strain=strain_img, samples=[sample],
                                       events=list(result.events),
                                       updated_events=list(result.updated_events),
                                       event_views=views)
                self._packet = packet
            else:
                packet.result, packet.capture_time = result, ct
                packet.flow, packet.strain = flow_img, strain_img
                packet.samples.append(sample)
                if len(packet.samples) > MAX_PENDING_SAMPLES:
                    del packet.samples[: len(packet.samples) - MAX_PENDING_SAMPLES]
                packet.events.extend(result.events)
                packet.updated_events.extend(result.updated_events)
                packet.event_views.update(views)
                packet.merged += 1
            emit = not self._signal_pending
            self._signal_pending = True
        self.latency_processing.add(time.perf_counter() - ct)
        if emit:
            self.packet_ready.emit()


def default_config() -> AppConfig:
    """The user's saved settings (defaults when none), honouring ``$MESTUDIO_SETTINGS``."""
    from mestudio.config import load_settings

    env = os.environ.get("MESTUDIO_SETTINGS")
    return load_settings(Path(env) if env else None)
