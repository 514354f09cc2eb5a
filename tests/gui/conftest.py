"""Fixtures of the GUI tests: offscreen Qt, small frame sources, and a scripted pipeline.

The scripted pipeline is a test double of :class:`mestudio.engine.pipeline.Pipeline` with the same
interface (``process``, ``finish``, ``close``, ``events``, ``degraded``, ``model_info``):
it returns a fixed face and a smooth spotter signal and emits the events it is given at the
frame indices it is given (optionally with a prediction that arrives a few frames later),
so the GUI's handling of ``FrameResult.events`` / ``updated_events`` is tested
independently of the tracker's and the spotter's accuracy. End-to-end tests with the real
pipeline are in the same files and skip while its modules are missing.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from mestudio.capture.base import FrameSource  # noqa: E402
from mestudio.config import AppConfig  # noqa: E402
from mestudio.errors import CameraError  # noqa: E402
from mestudio.types import (  # noqa: E402
    FaceObservation,
    Frame,
    FrameResult,
    Prediction,
    SpotEvent,
    SpotterState,
)

CLASSES = ("happiness", "disgust", "surprise", "sadness", "repression")
STREAMS = ("u", "v", "strain", "onset_apex", "offset_apex")


def fast_config() -> AppConfig:
    """Defaults with quick camera reconnects (tests must not wait seconds)."""
    cfg = AppConfig()
    cfg.capture.reopen_initial_s = 0.05
    cfg.capture.reopen_max_s = 0.2
    return cfg


class SyntheticSource(FrameSource):
    """A small moving-gradient clip: ``n`` frames of ``size`` at ``fps``.

    Args:
        fail_at: raise :class:`CameraError` when frame ``fail_at`` is reached, the first
            time only (a camera unplugged mid-stream; reopening works).
        live: behave like a camera (not seekable, frames come at ``fps`` in real time).
    """

    shared_failures: dict[str, int] = {}

    def __init__(self, n: int = 120, fps: float = 30.0, size: tuple[int, int] = (160, 120),
                 fail_at: int | None = None, live: bool = False, key: str = "cam") -> None:
        super().__init__()
        self.name = "synthetic camera" if live else "synthetic clip"
        self.fps = fps
        self.n_frames = None if live else n
        self.size = size
        self.seekable = not live
        self._n = n
        self._fail_at = fail_at
        self._live = live
        self._key = key
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w]
        self._base = ((xx * 255 / max(1, w - 1) + yy * 0.5) % 256).astype(np.uint8)

    def image(self, i: int) -> np.ndarray:
        g = np.roll(self._base, i, axis=1)
        return np.dstack([g, 255 - g, np.full_like(g, 90)])

    def _read(self, i: int) -> Frame:
        return Frame(i, i / self.fps, self.image(i))

    def __iter__(self) -> Iterator[Frame]:
        if not self._live:
            yield from super().__iter__()
            return
        t0 = time.perf_counter()
        for i in range(self._n):
            if self.closed:
                return
            if self._fail_at is not None and i == self._fail_at and \
                    not SyntheticSource.shared_failures.get(self._key):
                SyntheticSource.shared_failures[self._key] = 1
                raise CameraError("synthetic camera disconnected (unplugged)")
            due = t0 + i / self.fps
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield Frame(i, time.perf_counter() - t0, self.image(i))


def planted_event(onset: int, apex: int, offset: int, fps: float, kind: str = "micro",
                  roi: str = "brow_left") -> SpotEvent:
    return SpotEvent(onset=onset, apex=apex, offset=offset, onset_s=onset / fps,
                     apex_s=apex / fps, offset_s=offset / fps, kind=kind,  # type: ignore[arg-type]
                     roi=roi, peak=0.6)


def make_prediction(label: str, seed: int = 0) -> Prediction:
    rng = np.random.default_rng(seed)
    k = CLASSES.index(label) if label in CLASSES else 0
    logits = rng.normal(0, 0.5, len(CLASSES)).astype(np.float32)
    logits[k] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum()
    yy, xx = np.mgrid[0:12, 0:12] / 11.0
    cams = np.zeros((len(CLASSES), len(STREAMS), 12, 12), np.float32)
    for s in range(len(STREAMS)):
        cx, cy = 0.3 + 0.1 * s, 0.35 + 0.08 * s
        cams[:, s] = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.03)
    return Prediction(probs=probs.astype(np.float32), label=label,
                      confidence=float(probs.max()), classes=CLASSES, cams=cams,
                      streams=STREAMS, model_name="scripted-m3enet", synthetic=True)


class ScriptedPipeline:
    """Test double of ``mestudio.engine.pipeline.Pipeline`` (see the module docstring).

    Args:
        script: ``[(emit_index, SpotEvent, label_or_None)]``: the event is emitted at the
            first processed frame with index >= ``emit_index``; with a label, its
            prediction arrives ``prediction_delay`` frames later in ``updated_events``.
        spotting: produce a SpotterState per frame (else None).
        recognition: whether a (scripted) model is "loaded".
        delay_s: processing time per frame (to make the worker fall behind).
    """

    def __init__(self, config: AppConfig | None = None, *, script: list | None = None,
                 spotting: bool = True, recognition: bool = True, delay_s: float = 0.0,
                 prediction_delay: int = 3) -> None:
        self.config = config or AppConfig()
        self.script = sorted(script or [], key=lambda s: s[0])
        self.spotting = spotting
        self.recognition = recognition
        self.delay_s = delay_s
        self.prediction_delay = prediction_delay
        self.events: list[SpotEvent] = []
        self.degraded: list[str] = ["scripted test pipeline"]
        self.model_info = ({"name": "scripted-m3enet", "synthetic": True,
                            "provider": "CPUExecutionProvider"} if recognition else None)
        self.processed: list[int] = []
        self.closed = False
        self._pending: list[tuple[int, SpotEvent, str]] = []
        self._next_id = 0
        self._lock = threading.Lock()

    @staticmethod
    def face_for(frame: Frame, size: int = 64) -> FaceObservation:
        import cv2

        h, w = frame.image.shape[:2]
        bx, by, bw, bh = w * 0.3, h * 0.2, w * 0.4, h * 0.6
        s = size / bw
        m = np.array([[s, 0, -bx * s], [0, s, -by * s]], np.float64)
        aligned = cv2.warpAffine(frame.image, m, (size, size))
        pts = np.array([[bx + bw * 0.3, by + bh * 0.35], [bx + bw * 0.7, by + bh * 0.35],
                        [bx + bw * 0.5, by + bh * 0.6], [bx + bw * 0.35, by + bh * 0.8],
                        [bx + bw * 0.65, by + bh * 0.8]], np.float32)
        return FaceObservation(face_found=True, n_faces=1, confidence=0.97,
                               box=(bx, by, bw, bh), landmarks=pts,
                               transform=m, aligned=aligned, mode="landmarks")

    def process(self, frame: Frame, capture_time: float | None = None) -> FrameResult:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.processed.append(frame.index)
        t = frame.timestamp_s
        spotter = None
        if self.spotting:
            sig = {"brow_left": 0.2 + 0.1 * np.sin(t * 3), "mouth_left": 0.15 + 0.05 * np.cos(t)}
            spotter = SpotterState(signal=sig, combined=max(sig.values()), threshold=0.45,
                                   baseline=0.12, state="idle")
        events: list[SpotEvent] = []
        updated: list[SpotEvent] = []
        with self._lock:
            while self.script and frame.index >= self.script[0][0]:
                _at, ev, label = self.script.pop(0)
                ev = replace(ev, id=self._next_id, emitted_index=frame.index)
                self._next_id += 1
                self.events.append(ev)
                events.append(ev)
                if label is not None and self.recognition and ev.kind == "micro":
                    self._pending.append((frame.index + self.prediction_delay, ev, label))
            for item in list(self._pending):
                due, ev, label = item
                if frame.index >= due:
                    self._pending.remove(item)
                    done = replace(ev, prediction=make_prediction(label, ev.id))
                    self._store(done)
                    updated.append(done)
        return FrameResult(frame=frame, face=self.face_for(frame), spotter=spotter,
                           events=events, updated_events=updated,
                           timings_ms={"track": 1.0}, capture_time=capture_time)

    def _store(self, ev: SpotEvent) -> None:
        for i, old in enumerate(self.events):
            if old.id == ev.id:
                self.events[i] = ev

    def finish(self) -> list[SpotEvent]:
        with self._lock:
            out = []
            for _due, ev, label in self._pending:
                done = replace(ev, prediction=make_prediction(label, ev.id))
                self._store(done)
                out.append(done)
            self._pending.clear()
        return []

    def close(self) -> None:
        self.closed = True


def scripted_factory(**kw: Any):
    """A ``pipeline_fn`` for :class:`PipelineWorker` that builds ScriptedPipelines and keeps
    the last one in ``factory.last``."""
    def factory(config: AppConfig) -> ScriptedPipeline:
        args = dict(kw)
        args.setdefault("recognition", config.recognition.enabled)
        if "script" in args:
            args["script"] = list(args["script"])
        pipe = ScriptedPipeline(config, **args)
        factory.last = pipe  # type: ignore[attr-defined]
        return pipe

    factory.last = None  # type: ignore[attr-defined]
    return factory


def real_pipeline_available() -> bool:
    try:
        import mestudio.engine.pipeline  # noqa: F401
        import mestudio.face.tracker  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


#: How long teardown waits for a thread a test started before calling it a leak (s).
THREAD_GRACE_S = 20.0


def _event_loop_works() -> bool:
    """False when the GUI thread's "quit now" flag is stuck (QCoreApplication.exit() ran
    outside exec()): every QEventLoop.exec() then returns -1 at once, timers never fire
    and pytest-qt's waits return immediately."""
    from PySide6.QtCore import QEventLoop, QTimer

    for _ in range(2):  # the first run may deliver a posted Quit event itself
        loop = QEventLoop()
        QTimer.singleShot(0, loop.quit)
        if loop.exec() == -1:
            return False
    return True


def _running_qthreads() -> list[Any]:
    from PySide6.QtCore import QThread

    out = []
    for obj in gc.get_objects():
        try:
            # type(), not isinstance(): some objects warn when their __class__ is read
            if issubclass(type(obj), QThread) and obj.isRunning():
                out.append(obj)
        except RuntimeError:  # the C++ object is gone
            continue
    return out


@pytest.fixture(autouse=True)
def _gui_hygiene():
    """Every GUI test leaves the process as it found it, else its teardown fails:

    * windows are closed and shut down (their threads, timers, sources);
    * every thread it started (``threading`` or ``QThread``) has ended;
    * the Qt event loop still runs (no stray ``QCoreApplication.exit()``);
    * the root logger's handlers are restored (``mestudio.cli.main`` points them at the
      captured stderr, which pytest closes after the test).

    Without this, one test's leftovers (a capture thread logging into a closed stream, a
    stuck quit flag) make *later* tests fail, far from the cause.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    threads_before = set(threading.enumerate())
    yield
    problems: list[str] = []
    from PySide6.QtCore import QCoreApplication, QEvent, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        app.processEvents()
        for w in app.topLevelWidgets():
            if not w.isVisible():
                continue
            problems.append(f"window {type(w).__name__} left open")
            shutdown = getattr(w, "shutdown", None)
            if callable(shutdown):
                shutdown()
            w.hide()
            w.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    deadline = time.monotonic() + THREAD_GRACE_S
    for t in set(threading.enumerate()) - threads_before:
        if isinstance(t, threading._DummyThread):  # a QThread that ran Python: see below
            continue
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            problems.append(f"thread {t.name!r} still running")
    if app is not None:
        for qt in _running_qthreads():
            if not qt.wait(int(max(0.0, deadline - time.monotonic()) * 1000)):
                problems.append(f"QThread {type(qt).__name__} still running")
        if not _event_loop_works():
            problems.append("the Qt event loop no longer runs (QCoreApplication.exit() "
                            "was called outside exec())")
            QTimer.singleShot(0, app.quit)
            app.exec()  # resets the flag, so that the next tests are not hit as well
    root.handlers[:] = handlers
    root.setLevel(level)
    if problems:
        pytest.fail("the test left the process dirty: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def make_worker(qtbot):
    """Build :class:`PipelineWorker` objects that are stopped at the end of the test."""
    from mestudio.gui.worker import PipelineWorker

    made: list[PipelineWorker] = []

    def make(**kw: Any) -> PipelineWorker:
        kw.setdefault("config", fast_config())
        worker = PipelineWorker(**kw)
        made.append(worker)
        return worker

    yield make
    for w in made:
        w.stop()


@pytest.fixture
def make_window(qtbot, tmp_path):
    """Build :class:`MainWindow` objects (shown, offscreen) with a scripted pipeline unless
    told otherwise; they are shut down at the end of the test."""
    from mestudio.gui.app import create_app
    from mestudio.gui.main_window import MainWindow
    from mestudio.gui.worker import PipelineWorker

    create_app()
    made: list[MainWindow] = []

    def make(pipeline_fn: Any = None, config: AppConfig | None = None, **kw: Any) -> MainWindow:
        cfg = config or fast_config()
        worker = PipelineWorker(cfg, pipeline_fn=pipeline_fn)
        window = MainWindow(cfg, worker, settings_file=tmp_path / "settings.json", **kw)
        qtbot.addWidget(window)
        window.resize(1100, 720)
        window.show()
        made.append(window)
        return window

    yield make
    for w in made:
        w.shutdown()


@pytest.fixture
def fakes():
    """The test doubles of this file as a namespace (test modules must not import
    ``conftest`` by name: several test folders have one)."""
    import types

    return types.SimpleNamespace(
        ScriptedPipeline=ScriptedPipeline, SyntheticSource=SyntheticSource,
        fast_config=fast_config, planted_event=planted_event,
        make_prediction=make_prediction, scripted_factory=scripted_factory)


@pytest.fixture
def real_pipeline():
    """Skip unless the real tracker and pipeline can be imported."""
    if not real_pipeline_available():
        pytest.skip("pipeline/tracker not available in this build")
