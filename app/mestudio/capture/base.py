"""The frame-source interface every input of mestudio implements.

A :class:`FrameSource` yields :class:`~mestudio.types.Frame` objects (index, timestamp in
seconds, BGR ``uint8`` image ``(H, W, 3)``). Files, image sequences and the demo are
*seekable*: :meth:`FrameSource.read` gives random access, which review mode relies on.
Cameras are not seekable; iterating them blocks until the next frame arrives.

Also here: :func:`quiet_opencv`, which keeps OpenCV's and FFmpeg's console chatter
(``moov atom not found``, ``can't open camera by index``) out of the program's output. The
errors mestudio raises say the same thing in words a user can act on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from types import TracebackType

from mestudio.errors import SourceError
from mestudio.types import Frame

log = logging.getLogger(__name__)

_QUIETED = False


def quiet_opencv() -> None:
    """Silence OpenCV's WARN lines and FFmpeg's log on the console (once per process).

    Users who want them back set ``OPENCV_LOG_LEVEL`` / ``OPENCV_FFMPEG_LOGLEVEL`` themselves;
    those settings are then left alone.
    """
    global _QUIETED
    if _QUIETED:
        return
    _QUIETED = True
    # Read by OpenCV's FFmpeg backend when it first initialises (-8 = AV_LOG_QUIET).
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if "OPENCV_LOG_LEVEL" not in os.environ:
        import cv2

        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except AttributeError:  # pragma: no cover - very old OpenCV builds
            pass


class FrameOutOfRange(SourceError):
    """:meth:`FrameSource.read` was asked for a frame the source does not have."""


class FrameSource:
    """Base class of all frame sources.

    Attributes:
        name: short human-readable name for display (file name, ``camera 0``, ``demo``).
        fps: nominal or measured frames per second, None when unknown.
        n_frames: number of frames when known (files, sequences); None for cameras.
            For video files this is the container's count until the end has been read, at
            which point it is corrected to the number of frames actually decoded.
        size: ``(width, height)`` of the frames in pixels.
        seekable: True when :meth:`read` gives random access.
        notes: human lines about how the source was interpreted (e.g. "no fps given,
            assuming 30 fps"), for summaries and the status bar.
    """

    name: str = "source"
    fps: float | None = None
    n_frames: int | None = None
    size: tuple[int, int] = (0, 0)
    seekable: bool = False

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._position = 0
        self._closed = False

    # ----------------------------------------------------------------- random access
    def read(self, i: int) -> Frame:
        """Frame number ``i`` (from 0).

        Raises:
            SourceError: the source is not seekable, or ``i`` is out of range
                (:class:`FrameOutOfRange`), or the frame cannot be decoded.
        """
        if not self.seekable:
            raise SourceError(f"{self.name} is live: frames cannot be read by number")
        if self._closed:
            raise SourceError(f"{self.name} is closed")
        if i < 0 or (self.n_frames is not None and i >= self.n_frames):
            raise FrameOutOfRange(f"frame {i} is out of range for {self.name} "
                                  f"({self.n_frames} frames)")
        return self._read(i)

    def _read(self, i: int) -> Frame:  # pragma: no cover - overridden by seekable sources
        raise SourceError(f"{self.name} has no random access")

    def seek(self, i: int) -> None:
        """Make the next iteration start at frame ``i`` (seekable sources only)."""
        if not self.seekable:
            raise SourceError(f"{self.name} is live and cannot seek")
        self._position = max(0, int(i))

    # ----------------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[Frame]:
        """Frames from the current position (0 at first) to the end.

        Iterating advances the position, so a second loop continues where the first
        stopped; call ``seek(0)`` to start over.
        """
        while not self._closed:
            try:
                frame = self.read(self._position)
            except FrameOutOfRange:
                return
            self._position = frame.index + 1
            yield frame

    # ------------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the underlying device or file. Safe to call twice."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.size
        return (f"{type(self).__name__}({self.name!r}, {w}x{h}, fps={self.fps}, "
                f"n_frames={self.n_frames})")
