"""Video files through OpenCV's FFmpeg backend, with container timestamps and random access.

Timestamps come from the container (``CAP_PROP_POS_MSEC`` after each decoded frame), never
from a nominal frame rate, so variable-frame-rate phone recordings (HEVC ``.mov``) keep
their real timing. When a container gives no usable timestamps (all zero, or not
increasing) the source falls back to ``index / fps`` and says so in :attr:`notes`.

Random access: OpenCV's frame-number seek maps frame numbers to times through the nominal
fps, which lands on the wrong frame in variable-frame-rate files. This source therefore
keeps an index of the timestamps of the frames it decoded from the start, seeks by *time*
to a frame it has indexed and checks where it landed, and walks forward with the decoder
for frames beyond the index. Stepping forward (the common case in review mode) reuses the
sequential decoder; a small cache of recent frames makes stepping back by a few frames
cheap. Between decoding through, rewinding and seeking, the cheapest is chosen from their
measured costs (a seek in a long-GOP HEVC file decodes from the previous key frame anyway).
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from mestudio.capture.base import FrameOutOfRange, FrameSource, quiet_opencv
from mestudio.errors import SourceError
from mestudio.types import Frame

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
#: Frames to aim before the target when seeking by time (see _seek_before).
SEEK_MARGIN_FRAMES = 8
#: Timestamp tolerance when matching a decoded frame to the index (seconds).
TS_TOLERANCE_S = 5e-4


def check_readable_file(path: Path) -> None:
    """Raise SourceError when ``path`` is not an existing, non-empty, readable file."""
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if not path.is_file():
        raise SourceError(f"{path}: not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError as exc:
        raise SourceError(f"{path}: permission denied") from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise SourceError(f"{path}: the file is empty (0 bytes)")


class VideoFileSource(FrameSource):
    """A video file (anything OpenCV's FFmpeg backend decodes: mp4, mov/HEVC, avi, mkv, ...).

    Args:
        path: the video file.
        cache_frames: how many recently decoded frames are kept for cheap re-reads
            (``read(i - 1)`` after ``read(i)``); 0 disables the cache.

    Raises:
        SourceError: the file is missing, empty, unreadable, not a video, or has no
            decodable frame.
    """

    seekable = True

    def __init__(self, path: str | os.PathLike[str], cache_frames: int = 16) -> None:
        super().__init__()
        import cv2

        quiet_opencv()
        self.path = Path(path).expanduser()
        self.name = self.path.name
        check_readable_file(self.path)
        self._cv2 = cv2
        self._lock = threading.RLock()
        self._cache: OrderedDict[int, tuple[float, np.ndarray]] = OrderedDict()
        self._cache_size = max(0, int(cache_frames))
        self._cap = self._open_capture()

        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or fps <= 0 or fps > 10000:
            self.notes.append(f"the container gives no frame rate; assuming {DEFAULT_FPS:g} fps")
            fps = DEFAULT_FPS
            self._fps_known = False
        else:
            self._fps_known = True
        self.fps = fps
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.n_frames = count if count > 0 else None
        #: The frame count the container announced (None when it gave none); when the
        #: video ends earlier (truncated file) :attr:`notes` says so.
        self.announced_frames = self.n_frames

        #: timestamps (s) of frames 0..len-1, decoded sequentially from the start.
        self._ts: list[float] = []
        self._next = 0                  # index of the frame the decoder returns next
        self._container_ts = True       # False once the container's timestamps proved useless
        self._fixed_ts = 0              # frames whose timestamp was filled in from fps
        self._cfr: bool | None = None   # constant frame rate (frame-number seeks are exact)
        self._ended = False             # the real end of the stream has been seen
        self._grab_ms = 2.0             # measured cost of decoding one frame (ms)
        self._seek_ms = 30.0            # measured cost of a seek (ms)
        self._jumped = False
        self._pending: int | None = None

        try:
            first = self._decode_next()
        except FrameOutOfRange:
            first = None
        first_image = first[1] if first is not None else None
        if first is None or first_image is None:
            self._cap.release()
            raise SourceError(f"{self.path}: contains no decodable video frame "
                              "(empty, corrupt or truncated video)")
        h, w = first_image.shape[:2]
        self.size = (w, h)
        self._remember(0, *first)
        # Two more frames tell whether the timestamps are usable and the rate constant.
        for k in (1, 2):
            more = self._decode_next()
            if more is None:
                break
            self._remember(k, *more)
        log.debug("opened %s: %dx%d, %.3f fps, %s frames", self.path, w, h, self.fps,
                  self.n_frames)

    # ------------------------------------------------------------------ opening
    def _open_capture(self):  # noqa: ANN202 - cv2.VideoCapture
        cv2 = self._cv2
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"{self.path}: not a video OpenCV/FFmpeg can decode (corrupt, "
                              "truncated, or another kind of file)")
        return cap

    def _rewind(self) -> None:
        """Reopen the file: the only position that is certain in every container."""
        self._cap.release()
        self._cap = self._open_capture()
        self._next = 0

    # ---------------------------------------------------------------- decoding
    def _decode_next(self, retrieve: bool = True) -> tuple[float, np.ndarray | None] | None:
        """Decode the frame at ``self._next``; returns ``(timestamp_s, image)`` (image None
        when ``retrieve`` is False) or None at the end of the stream."""
        cv2 = self._cv2
        t0 = time.perf_counter()
        ok = self._cap.grab()
        self._grab_ms = 0.9 * self._grab_ms + 0.1 * (time.perf_counter() - t0) * 1e3
        img = None
        if ok and retrieve:
            ok, img = self._cap.retrieve()
        if not ok:
            self._hit_end(self._next)
            return None
        k = self._next
        raw = float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        ts = self._timestamp_for(k, raw)
        self._next = k + 1
        return ts, img

    def _timestamp_for(self, k: int, raw: float) -> float:
        """The timestamp of frame ``k`` given the container's value ``raw`` (s); extends
        the index when ``k`` is the next unindexed frame."""
        fps = self.fps or DEFAULT_FPS
        if k < len(self._ts):
            return self._ts[k]
        contiguous = k == len(self._ts)
        if not self._container_ts:
            ts = k / fps
        elif k == 0:
            ts = raw if math.isfinite(raw) and raw >= 0 else 0.0
        elif contiguous:
            prev = self._ts[k - 1]
            if math.isfinite(raw) and raw > prev:
                ts = raw
            elif k == 1:
                # The container has no timestamps at all (e.g. POS_MSEC stuck at 0).
                self._container_ts = False
                self.notes.append(f"the container gives no usable timestamps; using frame "
                                  f"index / {fps:g} fps")
                log.warning("%s: no usable container timestamps; using index / fps", self.name)
                self._ts = [0.0]
                ts = k / fps
            else:
                if self._fixed_ts == 0:
                    log.warning("%s: non-increasing timestamp at frame %d; filling in from "
                                "the frame rate", self.name, k)
                self._fixed_ts += 1
                ts = prev + 1.0 / fps
        else:
            # Beyond the index after a frame-number seek (constant-frame-rate files only).
            ts = raw if math.isfinite(raw) and raw >= 0 else k / fps
        if contiguous:
            self._ts.append(ts)
            self._update_cfr()
        return ts

    def _update_cfr(self) -> None:
        """Decide whether frame-number seeks can be trusted: every indexed timestamp lies
        within a quarter frame of ``t0 + k / fps`` (checked on the first 120 frames)."""
        n = len(self._ts)
        if n < 2 or n > 120 or self._cfr is False:
            return
        fps = self.fps or DEFAULT_FPS
        k = n - 1
        expected = self._ts[0] + k / fps
        self._cfr = (not self._container_ts) or abs(self._ts[k] - expected) < 0.25 / fps

    def _hit_end(self, k: int) -> None:
        if not self._ended and (self.n_frames is None or k < self.n_frames):
            if self.n_frames is not None and k < self.n_frames:
                log.debug("%s: the container announced %d frames but %d could be decoded",
                         self.name, self.n_frames, k)
                # Containers estimate their count from duration x nominal fps, a few
                # percent off in variable-rate files; much fewer frames is a file that
                # ends early.
                if self.announced_frames is not None and \
                        self.announced_frames - k > max(2, 0.05 * self.announced_frames):
                    line = (f"video ended at frame {k} of {self.announced_frames} announced "
                            "(truncated or damaged file)")
                    log.warning("%s: %s", self.name, line)
                    self.notes.append(line)
            self.n_frames = k
        self._ended = True

    # ----------------------------------------------------------------- seeking
    def _seek_before(self, target: int) -> None:
        """Position the decoder so that the next frame it returns is ``target`` or an
        earlier one, with ``self._next`` exact. ``target`` must be indexed. Chooses
        between rewinding and a time seek by their measured costs."""
        cv2 = self._cv2
        if target * self._grab_ms <= self._seek_ms:
            self._rewind()
            return
        if not self._container_ts:
            # No timestamps to verify against: trust the frame-number seek.
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, target)
            self._next = target
            return
        # Aim early: OpenCV maps times to frame numbers through the nominal fps, so in a
        # variable-rate file it lands up to several frames off (±6 in the HEVC test
        # clips); where it landed is read back and looked up in the index.
        aim = max(0, target - SEEK_MARGIN_FRAMES)
        t = self._ts[aim]
        for _ in range(4):
            t0 = time.perf_counter()
            self._cap.set(cv2.CAP_PROP_POS_MSEC, max(0.0, t) * 1000.0)
            ok = self._cap.grab()
            self._seek_ms = 0.7 * self._seek_ms + 0.3 * (time.perf_counter() - t0) * 1e3
            if not ok:
                break
            raw = float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            k = bisect.bisect_left(self._ts, raw - TS_TOLERANCE_S)
            if k < len(self._ts) and abs(self._ts[k] - raw) <= TS_TOLERANCE_S and k <= target:
                if k == target:
                    # Landed on the target itself: it is decoded already, keep it.
                    self._pending = k
                self._next = k + 1
                return
            t -= max(4.0 / (self.fps or DEFAULT_FPS), 2 * (self._ts[aim] - t))
            if t <= 0:
                break
        self._rewind()

    def _place_decoder(self, i: int) -> None:
        """Leave the decoder where decoding forward reaches frame ``i`` cheapest."""
        walk = (i - self._next) * self._grab_ms if self._next <= i else math.inf
        if i < len(self._ts):
            if walk > self._seek_ms or walk > i * self._grab_ms:
                self._seek_before(i)
        elif self._cfr:
            if walk > self._seek_ms:
                self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, i)
                self._next = i
                self._jumped = True
        elif not (self._next <= i and self._next <= len(self._ts)):
            # Variable frame rate: frames past the index are reached by decoding on from
            # the end of the index, which extends it.
            self._seek_before(len(self._ts) - 1)

    def _skip_to(self, target: int) -> None:
        while self._next < target:
            if self._decode_next(retrieve=False) is None:
                raise FrameOutOfRange(f"frame {target} is past the end of {self.name} "
                                      f"({self.n_frames} frames)")

    # ------------------------------------------------------------------ reading
    def _remember(self, i: int, ts: float, img: np.ndarray | None) -> None:
        if self._cache_size and img is not None:
            self._cache[i] = (ts, img.copy())
            self._cache.move_to_end(i)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _read(self, i: int) -> Frame:
        with self._lock:
            hit = self._cache.get(i)
            if hit is not None:
                self._cache.move_to_end(i)
                return Frame(i, hit[0], hit[1].copy())
            if self._cap is None:
                raise SourceError(f"{self.name} is closed")
            self._jumped = False
            self._pending = None
            self._place_decoder(i)
            if self._pending == i:
                ok, img = self._cap.retrieve()
                got = (self._ts[i], img) if ok else None
            else:
                self._skip_to(i)
                got = self._decode_next()
            img = got[1] if got is not None else None
            if got is None or img is None:
                raise FrameOutOfRange(f"frame {i} is past the end of {self.name} "
                                      f"({self.n_frames} frames)")
            ts = got[0]
            if self._jumped and self._container_ts:
                expected = self._ts[0] + i / (self.fps or DEFAULT_FPS)
                if abs(ts - expected) > 0.5 / (self.fps or DEFAULT_FPS):
                    log.info("%s: frame-number seek is not exact (variable frame rate); "
                             "decoding through instead", self.name)
                    self._cfr = False
                    self._seek_before(len(self._ts) - 1)
                    return self._read(i)
            self._remember(i, ts, img)
            return Frame(i, ts, img)

    @property
    def timestamps_from_container(self) -> bool:
        """False when the container's timestamps were unusable and index/fps is used."""
        return self._container_ts

    def close(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            self._cache.clear()
        super().close()
