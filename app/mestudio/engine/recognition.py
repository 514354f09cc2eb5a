"""Recognition of spotted micro- (and macro-) expressions, off the per-frame path.

:class:`Recognizer` sits behind the online spotter in :class:`mestudio.engine.pipeline.Pipeline`:

* every frame, :meth:`Recognizer.add_frame` keeps the tracker's aligned crop in a ring
  buffer keyed by frame index and bounded in *seconds* (long enough to hold the longest
  micro-expression plus the spotter's emission delay);
* when the spotter emits an event of a kind it recognises (:attr:`Recognizer.kinds`,
  see "Macro-expressions" below), :meth:`Recognizer.submit` picks the event's crops
  from that buffer with the model's input kind (:meth:`mestudio.preprocess.InputKind.select`:
  onset, apex and offset for keyframe models such as M3ENet; ``clip_len`` frames from onset
  to offset for clip models such as IM3DR-MFER) and queues a job — this costs a few
  microseconds on the caller's thread;
* one worker thread (``concurrent.futures.ThreadPoolExecutor`` with one worker) turns the
  crops into model inputs with :mod:`mestudio.preprocess`
  (:meth:`~mestudio.preprocess.InputKind.make_inputs`, the code review and training use
  too: TV-L1 flow, optical strain, key frames or clips) and runs the
  :class:`~mestudio.inference.engine.InferenceEngine`;
* :meth:`Recognizer.poll` (called by the pipeline on its own thread) attaches the finished
  :class:`~mestudio.types.Prediction` to its :class:`~mestudio.types.SpotEvent` and returns
  the events that changed, so events are only ever mutated on the caller's thread.

The queue is bounded: when events arrive faster than the worker recognises them, the
oldest job still waiting is dropped (with a logged warning); such an event simply keeps no
prediction. Nothing here blocks the per-frame path except :meth:`wait` (end of a file).
No Qt.

Macro-expressions. With ``macro=True`` (the setting ``recognition.macro``, default on) and a
model that allows it (:func:`model_allows_macro`: any key-frame or clip model whose
metadata does not restrict ``event_kinds`` to micro), macro events are recognised too and
the pipeline may hand every event to :meth:`Recognizer.submit`, which decides by kind
(events of a kind it does not recognise are counted in ``stats.skipped_kind``). A macro
event is given to the model exactly as a micro one: key-frame models get its onset, apex
and *actual* offset (the spotter's offset is where the movement fell back to 20 % of its
peak, i.e. close to rest, as the offset of the micro-expressions the models were trained
on; using the apex again as the offset would feed an ``offset→apex`` stream of zeros the
models never saw); clip models get ``clip_len`` crops evenly spaced from onset to offset
(the whole rise and fall, time-compressed). The crop buffer bounds how long an event can
be: :func:`buffer_seconds` with ``max_event_s`` keeps a whole ``max_duration_s`` macro. A
macro whose onset is older than the buffer is recognised from the oldest buffered frame
(onset clipped, counted in ``stats.clipped``); when even its apex is gone it is skipped
(``stats.too_long``) — never an error.

**The expression model.** With ``macro_engine`` (the FER2013 mini-XCEPTION built by
``mestudio models fetch``), macro events are recognised by it instead, from the apex crop
(input kind ``face``), while micro events stay with the micro-expression model. Both run on
the same worker thread from the same crop buffer; a batch never mixes the two models. Each
:class:`~mestudio.types.Prediction` says which answered (``source``).

**Caveat** (no expression model): the shipped and synthetic models are trained on *micro*-expressions (and the
synthetic ones on synthetic action-unit patterns). Their answer on a macro-expression is
the class of the micro-expression pattern it resembles most, not a validated recognition
of macro-expressions: front ends must label such predictions as coming from a
micro-expression model (e.g. "macro-expression · micro-expression model: happiness").
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from mestudio.errors import ConfigError
from mestudio.preprocess import DEFAULT_INPUT_KIND, PreprocessConfig, clip_rate, model_inputs
from mestudio.preprocess import input_kind as kind_spec
from mestudio.preprocess import pick_keyframes as pick_keyframes  # re-exported
from mestudio.types import FaceObservation, Prediction, SpotEvent

log = logging.getLogger(__name__)

InputsFn = Callable[..., Mapping[str, np.ndarray]]
"""``jobs' crops -> batched model inputs``: one list of aligned crops per job (those the
input kind's :meth:`~mestudio.preprocess.InputKind.select` chose: keyframe models
``[onset, apex, offset]``, clip models ``clip_len`` crops from onset to offset) to the
engine's input dict with a leading batch axis ``N = len(jobs)``. For a model whose
preprocessing needs the frame rate (Eulerian magnification, ``evm``) it is also called with
``fps=`` (per job, the rate of its chosen crops)."""


def buffer_seconds(micro_max_s: float, emit_delay_s: float, margin_s: float = 0.5, *,
                   max_event_s: float | None = None) -> float:
    """How many seconds of aligned crops the recogniser must keep: a micro event lasts at
    most ``micro_max_s`` and is emitted at most ``emit_delay_s`` after its offset, so its
    onset is at most ``micro_max_s + emit_delay_s`` old when it arrives; ``margin_s`` covers
    the low-pass look-ahead and irregular frame times. ``max_event_s``: the longest event
    to recognise whole (macro recognition: the spotter's ``max_duration_s``)."""
    longest = max(float(micro_max_s), float(max_event_s or 0.0))
    return longest + float(emit_delay_s) + float(margin_s)


def model_allows_macro(engine: Any) -> bool:
    """Whether ``engine``'s model can be given macro events: its input kind is a registered
    one (key frames or clips can represent an interval of any length) and its metadata
    does not list ``event_kinds`` without ``"macro"``."""
    meta = getattr(engine, "metadata", None)
    kinds = meta.get("event_kinds") if isinstance(meta, Mapping) else None
    if isinstance(kinds, (list, tuple)) and "macro" not in kinds:
        return False
    try:
        kind_spec(str(getattr(engine, "input_kind", DEFAULT_INPUT_KIND)))
    except ValueError:
        return False
    return True


class CropBuffer:
    """Aligned face crops of the most recent frames, keyed by frame index.

    Args:
        max_age_s: crops older than this many seconds (frame timestamps) are dropped.
        max_frames: hard cap on the number of crops kept (memory bound at very high fps).

    A crop is BGR ``uint8`` ``(S, S, 3)`` (the tracker's aligned crop); frames without a
    face are recorded as ``None`` so that gaps are known.
    """

    def __init__(self, max_age_s: float, max_frames: int = 2048) -> None:
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s}")
        self.max_age_s = float(max_age_s)
        self.max_frames = int(max_frames)
        self._items: deque[tuple[int, float, np.ndarray | None]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()

    def add(self, index: int, timestamp_s: float, crop: np.ndarray | None) -> None:
        """Record frame ``index`` (its crop or None) and forget what is too old."""
        if self._items and index <= self._items[-1][0]:
            # A restarted or looped source: indices went back; start over.
            self._items.clear()
        self._items.append((int(index), float(timestamp_s), crop))
        limit = float(timestamp_s) - self.max_age_s - 1e-9
        while self._items and (self._items[0][1] < limit or len(self._items) > self.max_frames):
            self._items.popleft()

    @property
    def oldest_index(self) -> int | None:
        return self._items[0][0] if self._items else None

    def rate_between(self, first: int, last: int) -> float | None:
        """Frames per second of the source over the frames ``first..last`` held (from their
        indices and timestamps), or None with fewer than two."""
        held = [(i, t) for i, t, _ in self._items if first <= i <= last]
        if len(held) < 2 or held[-1][1] <= held[0][1]:
            return None
        return (held[-1][0] - held[0][0]) / (held[-1][1] - held[0][1])

    def crops_between(self, first: int, last: int) -> list[tuple[int, np.ndarray]]:
        """``(index, crop)`` of the frames ``first..last`` (inclusive) that have a face."""
        return [(i, c) for i, _, c in self._items if first <= i <= last and c is not None]


def _config(preprocess_metadata: Mapping[str, Any] | None) -> PreprocessConfig:
    return (PreprocessConfig.from_metadata(dict(preprocess_metadata))
            if preprocess_metadata else PreprocessConfig())


def preprocess_inputs_fn(input_kind: str, preprocess_metadata: Mapping[str, Any] | None,
                         device: str | None = None) -> InputsFn:
    """The default :data:`InputsFn`: the input kind's
    :meth:`~mestudio.preprocess.InputKind.make_inputs` with the configuration the model was
    trained with (its ``mestudio.preprocess`` metadata).

    Raises:
        ValueError: an unknown input kind.
        mestudio.errors.ConfigError: unreadable preprocessing metadata.
    """
    kind = kind_spec(input_kind)
    cfg = _config(preprocess_metadata)

    def make_inputs(jobs: Sequence[Sequence[np.ndarray]],
                    fps: Sequence[float] | None = None) -> Mapping[str, np.ndarray]:
        return model_inputs(kind, jobs, cfg, device=device, fps=fps)

    return make_inputs


@dataclass
class _Route:
    """One model the recogniser runs: its engine, input kind, configuration and inputs."""

    engine: Any
    kind: Any
    cfg: PreprocessConfig
    inputs_fn: InputsFn

    def make(self, crops: list[Sequence[np.ndarray]], fps: list[float]
             ) -> Mapping[str, np.ndarray]:
        """The inputs of a batch; the frame rates only for models that need them."""
        return self.inputs_fn(crops, fps=fps) if self.cfg.evm else self.inputs_fn(crops)


def _route(engine: Any, inputs_fn: InputsFn | None) -> _Route:
    kind_name = str(getattr(engine, "input_kind", DEFAULT_INPUT_KIND))
    kind = kind_spec(kind_name)
    meta = getattr(engine, "preprocess_config", None)
    if inputs_fn is None:
        device = "cuda" if "CUDA" in str(getattr(engine, "provider", "")) else None
        inputs_fn = preprocess_inputs_fn(kind_name, meta, device)
    try:
        cfg = _config(meta)  # which crops make a job (clip kinds: clip_len)
    except ConfigError:  # only with a caller's inputs_fn (the default one parsed it)
        cfg = PreprocessConfig()
    return _Route(engine, kind, cfg, inputs_fn)


@dataclass
class _Job:
    event: SpotEvent
    crops: list[np.ndarray]
    submitted_at: float
    route: _Route          # the model that recognises it
    fps: float = 30.0  # rate of the chosen crops (models that magnify need it)


@dataclass
class RecognitionStats:
    """Counters of one :class:`Recognizer` (for the status bar, logs and tests).

    Attributes:
        submitted: events queued for recognition.
        completed: predictions delivered.
        failed: events whose recognition raised (no prediction; see ``last_error``).
        dropped: events dropped because the queue was full or the end-of-file wait ran out.
        skipped: events with no face crop in their interval (nothing to recognise).
        skipped_kind: events of a kind this recogniser does not recognise (macro events
            with macro recognition off or not allowed by the model).
        clipped: macro events older than the crop buffer, recognised from the oldest
            buffered frame as onset.
        too_long: macro events whose apex had already left the crop buffer (skipped).
        pending: jobs queued or being recognised now.
        last_latency_ms: submit → prediction of the latest completed event (milliseconds).
        mean_latency_ms: the same, averaged over every completed event.
        last_error: message of the latest failure, "" if none.
    """

    submitted: int = 0
    completed: int = 0
    failed: int = 0
    dropped: int = 0
    skipped: int = 0
    skipped_kind: int = 0
    clipped: int = 0
    too_long: int = 0
    pending: int = 0
    last_latency_ms: float = float("nan")
    mean_latency_ms: float = float("nan")
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"submitted": self.submitted, "completed": self.completed,
                "failed": self.failed, "dropped": self.dropped, "skipped": self.skipped,
                "skipped_kind": self.skipped_kind, "clipped": self.clipped,
                "too_long": self.too_long, "pending": self.pending,
                "last_latency_ms": None if np.isnan(self.last_latency_ms)
                else round(self.last_latency_ms, 1),
                "mean_latency_ms": None if np.isnan(self.mean_latency_ms)
                else round(self.mean_latency_ms, 1),
                "last_error": self.last_error}


class Recognizer:
    """Recognises spotted events on a worker thread and attaches the predictions.

    Args:
        engine: an :class:`~mestudio.inference.engine.InferenceEngine` (or any object with
            ``predict(inputs) -> list[Prediction]``, ``input_kind`` (a kind of
            :data:`mestudio.preprocess.INPUT_KINDS`) and ``preprocess_config``).
        buffer_s: seconds of aligned crops kept (see :func:`buffer_seconds`).
        max_pending: most jobs waiting for the worker; beyond it the oldest waiting one is
            dropped with a warning.
        max_batch: most jobs recognised in one batch (when several are waiting).
        inputs_fn: crops → model inputs; default :func:`preprocess_inputs_fn` for the
            engine (the same :mod:`mestudio.preprocess` code the model was trained with).
        with_cam: ask the engine for Grad-CAM maps (``Prediction.cams``).
        warmup_size: side (pixels) of blank crops run once through preprocessing and the
            engine when the worker starts, so the first event does not pay for
            initialisation; 0 = no warm-up.
        macro: recognise macro events too (``recognition.macro``) when the model allows it
            (:func:`model_allows_macro`); the kinds in effect are :attr:`kinds`. Keep
            ``buffer_s`` long enough (:func:`buffer_seconds` with ``max_event_s``). See the
            module docstring for the frames used and the micro-model caveat.
        macro_engine: the expression model (an engine of input kind ``face``, trained on
            real faces): with ``macro``, macro events go to it (their apex crop) and micro
            events to ``engine``; None = ``engine`` recognises both kinds.

    Attributes:
        kinds: the event kinds :meth:`submit` recognises (``("micro",)`` or
            ``("micro", "macro")``).

    Raises:
        ValueError: an engine of an unknown input kind.
    """

    def __init__(self, engine: Any, *, buffer_s: float = 1.3, max_pending: int = 8,
                 max_batch: int = 8, inputs_fn: InputsFn | None = None,
                 with_cam: bool = True, warmup_size: int = 0,
                 macro: bool = True, macro_engine: Any = None) -> None:
        self.engine = engine
        self.input_kind = str(getattr(engine, "input_kind", DEFAULT_INPUT_KIND))
        self._main = _route(engine, inputs_fn)
        #: The expression model's route (macro events), or None: macro events go to
        #: ``engine`` when it allows them.
        self._macro: _Route | None = _route(macro_engine, None) \
            if macro and macro_engine is not None else None
        self.max_pending = max(1, int(max_pending))
        self.max_batch = max(1, int(max_batch))
        self.with_cam = with_cam
        #: One crop buffer per face_id (face 0: the single-face mode's; :attr:`buffer`).
        self._buffers: dict[int, CropBuffer] = {0: CropBuffer(buffer_s)}
        self._buffer_s = buffer_s
        self.kinds: tuple[str, ...] = ("micro", "macro") if macro and (
            self._macro is not None or model_allows_macro(engine)) else ("micro",)
        self.stats = RecognitionStats()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: deque[_Job] = deque()
        self._busy = 0                                   # jobs taken by the worker
        self._done: list[tuple[SpotEvent, Prediction]] = []
        self._draining = False
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix="mestudio-recognition")
        # Start the worker now; a warm-up, when asked, loads the flow graph and the models'
        # sessions there while the caller goes on, so the first event does not wait for it.
        if warmup_size > 0:
            self._executor.submit(self._warmup, int(warmup_size))
        else:
            self._executor.submit(int)  # nothing to do: only starts the thread

    # ------------------------------------------------------------------ caller's thread
    @property
    def buffer(self) -> CropBuffer:
        """The crop buffer of face 0 (the single-face mode)."""
        return self._buffers[0]

    def add_frame(self, index: int, timestamp_s: float, face: FaceObservation,
                  face_id: int = 0) -> None:
        """Keep (a copy of) this frame's aligned crop (None when no face) of face
        ``face_id`` for later events of that face."""
        crop = face.aligned.copy() if face.face_found and face.aligned is not None else None
        buf = self._buffers.get(face_id)
        if buf is None:
            buf = self._buffers[face_id] = CropBuffer(self._buffer_s)
        buf.add(index, timestamp_s, crop)

    def drop_face(self, face_id: int) -> None:
        """Forget the crops of a face whose track ended (after its last events were
        submitted: a queued job keeps its own crops)."""
        if face_id != 0:
            self._buffers.pop(face_id, None)

    def clear(self) -> None:
        """Forget every buffered crop (a seek, a new source)."""
        self.buffer.clear()
        self._buffers = {0: self.buffer}  # the other faces' buffers go

    def submit(self, event: SpotEvent) -> bool:
        """Queue ``event`` for recognition. Returns False when it is not recognised: a kind
        outside :attr:`kinds`, no face crop in its interval, a macro whose apex has left the
        buffer, or a closed recogniser (each counted in :attr:`stats`). Never blocks."""
        if self._closed:
            return False
        if event.kind not in self.kinds:
            self.stats.skipped_kind += 1
            return False
        buffer = self._buffers.get(event.face_id, self.buffer)
        oldest = buffer.oldest_index
        if event.kind != "micro" and oldest is not None and oldest > event.onset:
            if oldest > event.apex:
                self.stats.too_long += 1
                log.info("%s event %d (frames %d-%d-%d) is longer than the crop buffer "
                         "(starts at frame %d): not recognised", event.kind, event.id,
                         event.onset, event.apex, event.offset, oldest)
                return False
            # Onset clipped: the oldest buffered frame stands for it.
            self.stats.clipped += 1
            log.debug("%s event %d: onset %d clipped to the buffer's oldest frame %d",
                      event.kind, event.id, event.onset, oldest)
        route = self._macro if event.kind == "macro" and self._macro is not None else self._main
        available = buffer.crops_between(event.onset, event.offset)
        crops = route.kind.select(available, event.onset, event.apex, event.offset, route.cfg)
        if crops is None:
            self.stats.skipped += 1
            oldest = buffer.oldest_index
            log.warning("event %d (frames %d-%d): no face crops %s; not recognised",
                        event.id, event.onset, event.offset,
                        "in its interval" if oldest is None or oldest <= event.onset
                        else f"(buffer starts at frame {oldest})")
            return False
        job = _Job(event, crops, time.perf_counter(), route)
        if route.cfg.evm:  # magnification works in Hz: the rate of the chosen crops
            chosen = route.kind.select([(i, i) for i, _ in available], event.onset,
                                       event.apex, event.offset, route.cfg) or []
            source_fps = buffer.rate_between(event.onset, event.offset) or 30.0
            job.fps = clip_rate([float(i) for i in chosen], source_fps)
        with self._lock:
            self._queue.append(job)
            self.stats.submitted += 1
            while len(self._queue) > self.max_pending:
                old = self._queue.popleft()
                self.stats.dropped += 1
                log.warning("recognition is falling behind: dropped event %d (frames %d-%d) "
                            "after %d events piled up", old.event.id, old.event.onset,
                            old.event.offset, self.max_pending + 1)
            self.stats.pending = len(self._queue) + self._busy
            if not self._draining:
                self._draining = True
                self._executor.submit(self._drain)
        return True

    def poll(self) -> list[SpotEvent]:
        """Attach the predictions that arrived since the last call; returns those events."""
        with self._lock:
            done, self._done = self._done, []
        for event, pred in done:
            event.prediction = pred
        return [event for event, _ in done]

    @property
    def pending(self) -> int:
        """Jobs waiting or being recognised."""
        with self._lock:
            return len(self._queue) + self._busy

    def wait(self, timeout_s: float | None = 30.0) -> list[SpotEvent]:
        """Wait until every queued event is recognised (at most ``timeout_s`` seconds;
        None = no limit), attach the predictions and return the events that got one.
        Jobs still waiting at the timeout are dropped with a warning."""
        deadline = None if timeout_s is None else time.perf_counter() + float(timeout_s)
        with self._idle:
            while self._queue or self._busy:
                left = None if deadline is None else deadline - time.perf_counter()
                if left is not None and left <= 0:
                    n = len(self._queue)
                    self._queue.clear()
                    self.stats.dropped += n
                    self.stats.pending = self._busy
                    log.warning("recognition did not finish within %.1f s: %d event(s) left "
                                "without a prediction", timeout_s, n + self._busy)
                    break
                self._idle.wait(left)
        return self.poll()

    def close(self) -> None:
        """Stop: forget waiting jobs and release the worker (does not wait for a running
        prediction)."""
        self._closed = True
        with self._lock:
            self._queue.clear()
            self.stats.pending = self._busy
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.clear()

    # --------------------------------------------------------------------- worker thread
    def _warmup(self, size: int) -> None:
        for route in (self._main, self._macro):
            if self._closed:  # closed while warming up (a short recording): no need
                return
            if route is None:
                continue
            blank = np.full((size, size, 3), 128, np.uint8)
            still = [(i, blank) for i in range(8)]  # a motionless event of 8 frames
            crops = route.kind.select(still, 0, 4, 7, route.cfg) or [blank]
            t0 = time.perf_counter()
            try:
                route.engine.predict(route.make([crops], [30.0]), cam=self.with_cam)
            except Exception as exc:  # noqa: BLE001 - the real events will report it
                if not self._closed:
                    log.warning("recognition warm-up failed: %s: %s", type(exc).__name__, exc)
                continue
            log.debug("recognition warm-up took %.0f ms", (time.perf_counter() - t0) * 1e3)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue or self._closed:
                    self._draining = False
                    self._idle.notify_all()
                    return
                # one batch = consecutive jobs of one model
                route = self._queue[0].route
                batch: list[_Job] = []
                while self._queue and len(batch) < self.max_batch and \
                        self._queue[0].route is route:
                    batch.append(self._queue.popleft())
                self._busy = len(batch)
            preds: list[Prediction] | None = None
            error = ""
            try:
                inputs = route.make([job.crops for job in batch], [job.fps for job in batch])
                preds = list(route.engine.predict(inputs, cam=self.with_cam))
                if len(preds) != len(batch):
                    raise RuntimeError(f"the engine returned {len(preds)} predictions for "
                                       f"{len(batch)} events")
            except Exception as exc:  # noqa: BLE001 - reported, the stream goes on
                error = f"{type(exc).__name__}: {exc}"
                log.warning("recognition of %d event(s) failed: %s", len(batch), error,
                            exc_info=log.isEnabledFor(logging.DEBUG))
                preds = None
            now = time.perf_counter()
            with self._lock:
                self._busy = 0
                if preds is None:
                    self.stats.failed += len(batch)
                    self.stats.last_error = error
                else:
                    for job, pred in zip(batch, preds, strict=True):
                        self._done.append((job.event, pred))
                        lat = (now - job.submitted_at) * 1e3
                        st = self.stats
                        st.mean_latency_ms = lat if st.completed == 0 else (
                            st.mean_latency_ms + (lat - st.mean_latency_ms) / (st.completed + 1))
                        st.last_latency_ms = lat
                        st.completed += 1
                self.stats.pending = len(self._queue)
                self._idle.notify_all()
