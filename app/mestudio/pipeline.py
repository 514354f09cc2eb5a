"""The processing pipeline: source → tracker → (spotter → recogniser) → FrameResult.

No Qt and no global state: the GUI worker, ``mestudio analyze`` and the kiosk all drive a
:class:`Pipeline`. This version runs the tracking stage; spotting and recognition plug in
as further stages of :meth:`Pipeline.process` (each one reads the :class:`FrameResult`
being built and adds its part), and their flags are already part of the API.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from mestudio.capture.base import FrameSource
from mestudio.config import AppConfig
from mestudio.face.tracker import FaceTracker
from mestudio.types import Frame, FrameResult, SpotEvent

log = logging.getLogger(__name__)


class Pipeline:
    """Per-frame processing shared by every front end.

    Args:
        config: the application configuration (tracker section used here).
        engine: a recognition engine (``inference.engine.InferenceEngine``) or None.
        spotting: run the spotting stage (when available in this build).
        recognition: run recognition on micro events (when a model is loaded).

    Attributes:
        tracker: the face tracker.
        events: every event emitted so far (emission order).
        degraded: human lines about degraded modes (tracker and later stages).
        model_info: metadata of the recognition model, or None.
        frames_processed: frames through :meth:`process`.
    """

    def __init__(self, config: AppConfig | None = None, *, engine: Any = None,
                 spotting: bool = True, recognition: bool = True) -> None:
        self.config = config or AppConfig()
        self.tracker = FaceTracker(self.config.tracker)
        self.engine = engine
        self.spotting = spotting
        self.recognition = recognition and engine is not None
        self.events: list[SpotEvent] = []
        self.model_info: dict | None = getattr(engine, "metadata", None) if engine else None
        self.frames_processed = 0
        self.frames_with_face = 0
        self._closed = False

    @property
    def degraded(self) -> list[str]:
        """Degraded modes in effect, as lines for the user."""
        return list(self.tracker.degraded)

    def process(self, frame: Frame, capture_time: float | None = None) -> FrameResult:
        """Run every stage on one frame.

        Args:
            frame: the frame (timestamps in seconds drive smoothing and spotting).
            capture_time: ``time.perf_counter()`` when a live frame was captured, for
                latency; None for files.
        """
        t0 = time.perf_counter()
        face = self.tracker.update(frame)
        timings = {"track": (time.perf_counter() - t0) * 1e3}
        timings.update({k: v for k, v in self.tracker.timings_ms.items()})
        result = FrameResult(frame=frame, face=face, timings_ms=timings,
                             capture_time=capture_time)
        if self.tracker.degraded:
            result.info["degraded"] = "; ".join(self.tracker.degraded)
        # Later stages (spotting signal + online spotter, recognition of finished micro
        # events on an executor) extend `result` here: result.spotter, result.events,
        # result.updated_events, their timings.
        self.frames_processed += 1
        self.frames_with_face += int(face.face_found)
        return result

    def finish(self) -> list[SpotEvent]:
        """End of the stream: close pending events and wait for their predictions.
        Returns the events emitted by this call."""
        return []

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
        """Release resources held by later stages (executors, sessions)."""
        self._closed = True
