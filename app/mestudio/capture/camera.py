"""Cameras through OpenCV, with a bounded open time and a measured frame rate.

Opening never hangs: the device is opened on a helper thread and given
``open_timeout_s``; an absent index fails at once on Linux (no ``/dev/videoN``). A camera
that stops delivering frames (unplugged, taken by another program) raises
:class:`~mestudio.errors.CameraError` from the iterator; :class:`~mestudio.capture.live.
LiveCapture` catches it and reopens with back-off.

Timestamps are the capture clock (``time.perf_counter()`` when the frame arrived, relative
to the first frame), so spotting durations stay right when the camera's real rate differs
from the one requested.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from mestudio.capture.base import FrameSource, quiet_opencv
from mestudio.errors import CameraError
from mestudio.types import Frame

log = logging.getLogger(__name__)


def _device_missing(index: int) -> bool:
    """True when the OS says for certain that there is no camera ``index`` (Linux only)."""
    if sys.platform.startswith("linux"):
        return not Path(f"/dev/video{index}").exists()
    return False


def _open_capture(index: int, width: int, height: int, fps: float, timeout_s: float):  # noqa: ANN202
    """Open camera ``index`` and read one frame, within ``timeout_s`` seconds.

    Returns ``(capture, first_image)``; raises CameraError when it cannot.
    """
    import cv2

    quiet_opencv()
    if _device_missing(index):
        raise CameraError(f"no camera at index {index} (/dev/video{index} does not exist)")
    result: dict = {}

    def worker() -> None:
        try:
            cap = cv2.VideoCapture(index)
            if not cap.isOpened():
                result["error"] = "cannot be opened"
                cap.release()
                return
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width),
                                (cv2.CAP_PROP_FRAME_HEIGHT, height), (cv2.CAP_PROP_FPS, fps)):
                if value:
                    cap.set(prop, float(value))
            img = None
            for _ in range(5):  # some cameras deliver a few empty frames while starting
                ok, img = cap.read()
                if ok and img is not None:
                    break
                img = None
            if img is None:
                cap.release()
                result["error"] = "opened but delivers no frames"
                return
            result["cap"], result["img"] = cap, img
        except cv2.error as exc:  # pragma: no cover - driver-specific
            result["error"] = f"OpenCV error: {exc}"

    thread = threading.Thread(target=worker, name=f"open-camera-{index}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        # The helper may still finish later; it then releases nothing, which is harmless
        # for a device that never answered.
        raise CameraError(f"camera {index} did not answer within {timeout_s:g} s "
                          "(is it in use by another program?)")
    if "cap" not in result:
        raise CameraError(f"camera {index} {result.get('error', 'cannot be opened')} "
                          "(check the index, the cable, and that no other program uses it)")
    return result["cap"], result["img"]


class CameraSource(FrameSource):
    """A live camera.

    Args:
        index: OpenCV camera index.
        width, height, fps: requested format (the camera may pick another; :attr:`size`
            is what it delivers, :attr:`fps` the rate measured while it runs).
        open_timeout_s: longest time opening may take before CameraError.
        stall_timeout_s: a camera that delivers nothing for this long is reported as
            disconnected (CameraError from the iterator).

    Raises:
        CameraError: the camera is absent, busy, or delivers no frame.
    """

    seekable = False

    def __init__(self, index: int = 0, width: int = 640, height: int = 480, fps: float = 30.0,
                 open_timeout_s: float = 3.0, stall_timeout_s: float = 2.0) -> None:
        super().__init__()
        self.index = int(index)
        self.name = f"camera {self.index}"
        self.requested = (int(width), int(height), float(fps))
        self.stall_timeout_s = float(stall_timeout_s)
        self._cap, self._first = _open_capture(self.index, width, height, fps, open_timeout_s)
        h, w = self._first.shape[:2]
        self.size = (w, h)
        import cv2

        nominal = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.nominal_fps = nominal if math.isfinite(nominal) and nominal > 0 else None
        self.fps = self.nominal_fps or float(fps)
        self.n_frames = None
        self._index = 0
        self._t0: float | None = None
        self._last_t: float | None = None
        if (w, h) != (width, height):
            self.notes.append(f"camera {self.index} delivers {w}x{h} (asked for {width}x{height})")
        log.info("opened camera %d: %dx%d, nominal %s fps", self.index, w, h, self.nominal_fps)

    def _stamp(self, img) -> Frame:  # noqa: ANN001
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        if self._last_t is not None:
            dt = now - self._last_t
            if dt > 0:
                # Measured rate, smoothed over ~30 frames.
                inst = 1.0 / dt
                self.fps = inst if self._index < 2 else 0.97 * (self.fps or inst) + 0.03 * inst
        self._last_t = now
        frame = Frame(self._index, now - self._t0, img)
        self._index += 1
        return frame

    def __iter__(self) -> Iterator[Frame]:
        """Frames as they arrive; raises CameraError when the camera stops delivering."""
        if self._first is not None:
            img, self._first = self._first, None
            yield self._stamp(img)
        last_ok = time.perf_counter()
        while not self._closed and self._cap is not None:
            ok, img = self._cap.read()
            if ok and img is not None:
                last_ok = time.perf_counter()
                yield self._stamp(img)
                continue
            if self._closed:
                return
            if time.perf_counter() - last_ok > self.stall_timeout_s:
                raise CameraError(f"camera {self.index} stopped delivering frames "
                                  "(unplugged or taken by another program?)")
            time.sleep(0.01)

    def close(self) -> None:
        super().close()
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def probe_cameras(indices: range | list[int] = range(4), timeout_s: float = 1.5
                  ) -> list[tuple[int, tuple[int, int]]]:
    """Camera indices that open and deliver a frame, with their frame size.

    Each index gets at most ``timeout_s`` seconds; absent devices cost nothing on Linux.
    """
    found = []
    for index in indices:
        try:
            cap, img = _open_capture(index, 0, 0, 0.0, timeout_s)
        except CameraError:
            continue
        cap.release()
        found.append((index, (img.shape[1], img.shape[0])))
    return found
