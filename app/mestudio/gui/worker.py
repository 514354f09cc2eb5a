"""The live window's worker: a ``QThread`` that drives a :class:`mestudio.engine.live.LiveSession`
and turns its callbacks into Qt signals. Everything else (capture, pacing, the pipeline and
its fallback policy, statistics, display packets, overlay pictures) is the session's, and
has no Qt; this module only carries it across threads.

Latency is measured from ``FrameResult.capture_time`` to the end of painting in the GUI
(:meth:`PipelineWorker.record_display_latency`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThread, Signal

from mestudio.config import AppConfig
from mestudio.engine.live import (
    DisplayPacket,
    LiveSession,
    SessionListener,
    SessionStats,
    SourceInfo,
    default_config,
    describe_spec_kind,
    source_label,
)
from mestudio.engine.overlays import EventView

log = logging.getLogger(__name__)

__all__ = ["DisplayPacket", "EventView", "PipelineWorker", "SessionStats", "SourceInfo",
           "default_config", "describe_spec_kind", "source_label", "wait_for_thread"]


def wait_for_thread(thread: QThread, timeout_s: float, what: str | None = None) -> None:
    """``thread.wait()`` that logs a warning after ``timeout_s`` and then keeps waiting:
    a running ``QThread`` must never be destroyed (Qt aborts the whole process)."""
    if thread.wait(max(0, int(timeout_s * 1000))):
        return
    log.warning("%s is still busy after %.0f s; waiting for it to finish",
                what or thread.objectName() or type(thread).__name__, timeout_s)
    thread.wait()


class _Signals(SessionListener):
    """The session's callbacks, emitted as the worker's signals (queued to the GUI)."""

    def __init__(self, worker: PipelineWorker) -> None:
        self.w = worker

    def on_busy(self, text: str) -> None:
        self.w.busy.emit(text)

    def on_source_opened(self, info: SourceInfo) -> None:
        self.w.source_opened.emit(info)

    def on_source_failed(self, message: str) -> None:
        self.w.source_failed.emit(message)

    def on_status(self, status: str, message: str) -> None:
        self.w.capture_status.emit(status, message)

    def on_pipeline_info(self, info: dict[str, Any]) -> None:
        self.w.pipeline_info.emit(info)

    def on_packet(self) -> None:
        self.w.packet_ready.emit()

    def on_ended(self) -> None:
        self.w.ended.emit()

    def on_failed(self, message: str) -> None:
        self.w.failed.emit(message)


class PipelineWorker(QThread):
    """Runs a :class:`~mestudio.engine.live.LiveSession` off the GUI thread.

    Every public method is safe to call from the GUI thread (they are the session's
    commands). The factories are the session's (``open_fn(spec, config)``,
    ``capture_fn(open, config, pace=, loop=)``, ``pipeline_fn(config)``), injectable for
    tests.

    Signals:
        packet_ready(): a :class:`DisplayPacket` waits in :meth:`take_packet`.
        busy(str): a slow step started (the text says which); "" when it is over.
        source_opened(object): a :class:`SourceInfo`.
        source_failed(str): the source could not be opened (user-facing message).
        capture_status(str, str): the capture's status and message changed.
        pipeline_info(object): :func:`mestudio.engine.live.describe_pipeline`.
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
                 capture_fn: Callable[..., Any] | None = None,
                 pipeline_fn: Callable[[AppConfig], Any] | None = None,
                 parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("PipelineWorker")
        self.session = LiveSession(config, listener=_Signals(self), open_fn=open_fn,
                                   capture_fn=capture_fn, pipeline_fn=pipeline_fn)
        s = self.session
        self.open_source = s.open_source
        self.open_callable = s.open_callable
        self.close_source = s.close_source
        self.set_paused = s.set_paused
        self.is_paused = s.is_paused
        self.seek = s.seek
        self.set_config = s.set_config
        self.set_overlay_needs = s.set_overlay_needs
        self.select_face = s.select_face
        self.add_result_sink = s.add_result_sink
        self.remove_result_sink = s.remove_result_sink
        self.take_packet = s.take_packet
        self.record_display_latency = s.record_display_latency
        self.stats = s.stats
        self.summary = s.summary

    def config(self) -> AppConfig:
        return self.session.config

    def run(self) -> None:  # noqa: D102 - QThread entry point
        self.session.run()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop processing, close the source and the pipeline, end the thread.

        Returns once the thread has ended: after ``timeout_s`` a warning is logged and the
        wait goes on, since a ``QThread`` destroyed while it runs aborts the process (every
        step of the thread is bounded: capture waits, ``LiveCapture.stop``, one frame).
        """
        self.session.stop()
        if self.isRunning():
            wait_for_thread(self, timeout_s)
        else:
            self.session.close()
