"""Live capture: a thread reads the source, the newest frame wins.

The capture thread never waits for the consumer. It puts each frame in a one-frame slot;
a frame that the consumer had not taken yet is overwritten and counted in
:attr:`LiveCapture.dropped`. Latency therefore stays bounded when processing is slower
than the camera (ARCHITECTURE.md, "Threading").

A camera that disappears (CameraError while opening or reading) is reopened with
exponential back-off (``CaptureConfig.reopen_initial_s`` doubling up to
``reopen_max_s``); :attr:`LiveCapture.status` is then ``"reconnecting"`` and
:attr:`LiveCapture.message` a sentence for the status bar. Files can be played at their
own speed (``pace=True``) and looped (``loop=True``, used by the kiosk soak test). Frame
indices and timestamps stay increasing across reconnects and loops.

A paced source can be paused (:meth:`LiveCapture.pause`: the thread stops reading, so no
frame is lost, and the clock is re-based on :meth:`LiveCapture.resume` so playback does not
race to catch up) and a seekable one repositioned (:meth:`LiveCapture.seek`; while paused,
the frame at the new position is still delivered, so stepping shows it). Pacing follows the
frames' timestamps; a broken timestamp (not increasing) falls back to the nominal fps, and a
stall of more than :data:`REBASE_S` re-bases the clock instead of bursting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mestudio.capture.base import FrameSource
from mestudio.capture.config import CaptureConfig
from mestudio.errors import CameraError, MestudioError
from mestudio.types import Frame

log = logging.getLogger(__name__)

#: Falling this far behind a paced source's timestamps (a decoder stall) re-bases the clock.
REBASE_S = 0.25


class LiveCapture:
    """Capture thread with a newest-frame-wins slot.

    Args:
        open_fn: opens the source; called again to reconnect after a CameraError (and to
            restart a non-seekable source when looping).
        config: back-off settings (``reopen_initial_s``, ``reopen_max_s``).
        pace: deliver frames no faster than their timestamps (for files and the demo).
        loop: start again from the first frame at the end of a file.

    Attributes:
        dropped: frames overwritten before the consumer took them.
        captured: frames read from the source.
        capture_fps: rate at which frames are captured (frames/s, smoothed).
        status: ``"idle"``, ``"starting"``, ``"running"``, ``"reconnecting"``,
            ``"ended"`` (end of a file) or ``"error"`` (a source that cannot be used).
        message: human text for the status bar.
        error: the exception behind ``"error"``, else None.
    """

    def __init__(self, open_fn: Callable[[], FrameSource], config: CaptureConfig | None = None,
                 pace: bool = False, loop: bool = False) -> None:
        self.config = config or CaptureConfig()
        self._open_fn = open_fn
        self.pace = pace
        self.loop = loop
        self.dropped = 0
        self.captured = 0
        self.capture_fps = 0.0
        self.status = "idle"
        self.message = ""
        self.error: MestudioError | None = None
        self.source: FrameSource | None = None
        self.reconnects = 0
        self._cond = threading.Condition()
        self._slot: tuple[Frame, float] | None = None
        self._fresh = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_publish: float | None = None
        # Offsets that keep index/timestamps increasing across reconnects and loops.
        self._index_offset = 0
        self._time_offset = 0.0
        self._last_out: Frame | None = None
        self._last_out_wall = 0.0
        self._pace_anchor = (0.0, 0.0)  # (perf_counter, timestamp_s) pacing started from
        self._pace_last_ts: float | None = None
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._seek_to: int | None = None
        self._show_one = False

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Start the capture thread (no-op when running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._set_status("starting", "opening the source")
        self._thread = threading.Thread(target=self._run, name="mestudio-capture", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the capture thread and wait for it (the thread closes the source)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():  # pragma: no cover - a driver blocked in read()
                log.warning("capture thread did not stop within %.1f s", timeout_s)
            self._thread = None

    def __enter__(self) -> LiveCapture:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pause(self) -> None:
        """Stop reading (paced sources): the frame in hand waits, nothing is dropped."""
        self._running.clear()

    def resume(self) -> None:
        """Continue after :meth:`pause`; the pacing clock starts again from now."""
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def seek(self, index: int) -> None:
        """Continue from frame ``index`` (seekable sources; others ignore it). The next
        delivered frame is that one, even while paused."""
        with self._cond:
            self._seek_to = max(0, int(index))
            self._fresh = False  # a frame from before the seek must not be taken now
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """True when no more frames will come (end of file, error, or stopped)."""
        return self.status in ("ended", "error") or self._stop.is_set()

    def get(self, timeout: float = 0.5) -> tuple[Frame, float] | None:
        """The newest frame not yet taken and its capture time (``time.perf_counter()``),
        waiting up to ``timeout`` seconds; None when none came (or the capture finished)."""
        with self._cond:
            if not self._fresh and not self.finished:
                self._cond.wait_for(lambda: self._fresh or self.finished, timeout)
            if not self._fresh or self._slot is None:
                return None
            self._fresh = False
            return self._slot

    # ---------------------------------------------------------------- internals
    def _set_status(self, status: str, message: str) -> None:
        with self._cond:
            changed = status != self.status or message != self.message
            self.status, self.message = status, message
            self._cond.notify_all()
        if changed:
            log.info("capture %s: %s", status, message)

    def _publish(self, frame: Frame) -> None:
        now = time.perf_counter()
        with self._cond:
            if self._fresh:
                self.dropped += 1
            self._slot = (frame, now)
            self._fresh = True
            self.captured += 1
            if self._last_publish is not None and now > self._last_publish:
                inst = 1.0 / (now - self._last_publish)
                self.capture_fps = inst if self.captured <= 2 else \
                    0.9 * self.capture_fps + 0.1 * inst
            self._last_publish = now
            self._cond.notify_all()

    def _restamp(self, frame: Frame, new_pass: bool) -> Frame:
        """Shift index and time so they continue from the previous pass."""
        if new_pass and self._last_out is not None:
            last = self._last_out
            fps = (self.source.fps if self.source is not None else None) or 30.0
            gap = max(time.perf_counter() - self._last_out_wall, 1.0 / fps) \
                if not self.loop else 1.0 / fps
            self._index_offset = last.index + 1 - frame.index
            self._time_offset = last.timestamp_s + gap - frame.timestamp_s
        if self._index_offset == 0 and self._time_offset == 0.0:
            out = frame
        else:
            out = Frame(frame.index + self._index_offset, frame.timestamp_s + self._time_offset,
                        frame.image)
        self._last_out = out
        self._last_out_wall = time.perf_counter()
        return out

    def _wait_backoff(self, delay: float, why: str) -> bool:
        """Sleep ``delay`` s (interruptible by stop); False when stopped."""
        self._set_status("reconnecting", f"{why} — retrying in {delay:.3g} s")
        return not self._stop.wait(delay)

    def _play(self, src: FrameSource, fresh: bool) -> str:
        """Deliver the frames of one pass over ``src``: ``"ended"`` at its end, ``"stopped"``
        when stopped, ``"seek"`` when a seek was asked for.

        ``fresh``: the source was just (re)opened, so pacing starts over; a loop pass
        continues the pacing of the previous one (its times continue too).
        """
        new_pass = True
        for frame in src:
            if self._stop.is_set():
                return "stopped"
            if self._seek_to is not None:
                return "seek"
            out = self._restamp(frame, new_pass)
            new_pass = False
            if self._show_one:
                self._show_one = False  # the frame at a seek position, even while paused
            elif not self._running.is_set():
                while not self._running.wait(0.05):
                    if self._stop.is_set():
                        return "stopped"
                    if self._seek_to is not None:
                        return "seek"
                fresh = True  # re-base the clock after a pause
            if self.pace:
                fresh = self._pace(out, fresh)
                if self._stop.is_set():
                    return "stopped"
            self._publish(out)
        return "ended"

    def _pace(self, out: Frame, fresh: bool) -> bool:
        """Wait until ``out`` is due; returns the new ``fresh`` (False)."""
        ts = float(out.timestamp_s)
        last = self._pace_last_ts
        if last is not None and not ts > last:  # broken timestamps: the nominal fps
            fps = (self.source.fps if self.source is not None else None) or 30.0
            ts = last + 1.0 / fps
        self._pace_last_ts = ts
        now = time.perf_counter()
        if fresh:
            self._pace_anchor = (now, ts)
            return False
        wall0, ts0 = self._pace_anchor
        delay = wall0 + (ts - ts0) - now
        if delay > 0:
            self._stop.wait(delay)
        elif delay < -REBASE_S:
            self._pace_anchor = (now, ts)  # fell far behind (decoder stall): re-base
        return False

    def _do_seek(self, src: FrameSource) -> None:
        with self._cond:
            index, self._seek_to = self._seek_to, None
        if index is None or not src.seekable:
            return
        src.seek(index)
        self._index_offset, self._time_offset = 0, 0.0
        self._last_out = None
        self._pace_last_ts = None
        self._show_one = True

    def _run(self) -> None:
        cfg = self.config
        backoff = cfg.reopen_initial_s
        src: FrameSource | None = None
        fresh = True
        try:
            while not self._stop.is_set():
                if src is None:
                    try:
                        src = self._open_fn()
                    except CameraError as exc:
                        if not self._wait_backoff(backoff, str(exc)):
                            break
                        backoff = min(backoff * 2.0, cfg.reopen_max_s)
                        continue
                    self.source = src
                    fresh = True
                    self._set_status("running", f"{src.name}: running")
                try:
                    captured_before = self.captured
                    outcome = self._play(src, fresh)
                    fresh = False
                except CameraError as exc:
                    self.reconnects += 1
                    if self.captured > captured_before:
                        backoff = cfg.reopen_initial_s  # it had worked: start over gently
                    src.close()
                    src = None
                    if not self._wait_backoff(backoff, f"{exc}"):
                        break
                    backoff = min(backoff * 2.0, cfg.reopen_max_s)
                    continue
                if outcome == "seek":
                    self._do_seek(src)
                    fresh = True
                    continue
                if outcome == "stopped":
                    break
                if not self.loop:
                    self._set_status("ended", f"{src.name}: end of file")
                    break
                if src.seekable:
                    src.seek(0)
                else:
                    src.close()
                    src = None
        except MestudioError as exc:
            self.error = exc
            self._set_status("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - report, never kill the app silently
            log.exception("capture thread failed")
            self.error = MestudioError(f"capture failed: {exc}")
            self._set_status("error", f"capture failed: {exc}")
        finally:
            if src is not None:
                src.close()
            if self.status not in ("ended", "error"):
                self._set_status("ended", "stopped")
            with self._cond:
                self._cond.notify_all()
