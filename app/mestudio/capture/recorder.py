"""Opt-in recording of a live session: a video file plus ``events.json`` for review mode.

A recording is one folder::

    recording-20251121-173012/
        video.avi          the frames the pipeline processed (MPEG-4 part 2 in AVI by default)
        events.json        mestudio-events/1, rewritten atomically after every event
        timestamps.csv     recorded index, source frame index, capture timestamp (s)

Frame indices and times in the recording's ``events.json`` refer to the *video file*
(frame ``k`` is the k-th frame written, at ``k / fps`` seconds), so ``mestudio review
recording-.../video.avi`` lands exactly on the frames the events were spotted in, even when the
live source dropped frames or the recording started in the middle of a session. The original
capture times are kept in ``timestamps.csv``.

Crash safety: ``events.json`` is rewritten after each event by writing a temporary file,
``fsync`` and an atomic rename, so a crash or power cut leaves the previous or the new
version, never a torn one, and no acknowledged event is lost. The AVI container stays
readable (up to the last frames in the encoder's buffer) when the process dies before
:meth:`SessionRecorder.close`; ``events.json`` then says ``"complete": false``.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import os
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.errors import SourceError
from mestudio.types import Frame, FrameResult, SpotEvent

log = logging.getLogger(__name__)

VIDEO_NAME = "video"
EVENTS_NAME = "events.json"
TIMESTAMPS_NAME = "timestamps.csv"
RECORDING_FORMAT = "mestudio-recording/1"
DEFAULT_CODEC = "mp4v"
DEFAULT_CONTAINER = "avi"


def durable_write_events(path: Path, events: Iterable[SpotEvent], meta: dict[str, Any]) -> Path:
    """Write ``events.json`` so that a crash leaves the old or the new file
    (:func:`mestudio.events_io.write_events_json` writes through
    :func:`mestudio.fsutil.atomic_write_text`: temporary file in the same folder, ``fsync``,
    atomic rename, ``fsync`` of the folder)."""
    from mestudio.events_io import write_events_json

    return write_events_json(path, events, meta)


def new_recording_dir(parent: str | os.PathLike[str], now: datetime | None = None) -> Path:
    """A fresh ``recording-YYYYmmdd-HHMMSS`` folder name under ``parent`` (not created)."""
    parent = Path(parent)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    out = parent / f"recording-{stamp}"
    n = 2
    while out.exists():
        out = parent / f"recording-{stamp}-{n}"
        n += 1
    return out


class SessionRecorder:
    """Writes the frames of a live session to a video file and its events to ``events.json``.

    Feed it every :class:`~mestudio.types.FrameResult` (:meth:`add_result`) or frames and
    events separately (:meth:`write_frame`, :meth:`add_event`). Not thread-safe: call it from
    the thread that receives the results.

    Args:
        out_dir: the recording folder (created; must not already hold a recording).
        fps: frame rate written into the video file (frames per second); use the measured
            capture rate of the live source.
        size: ``(width, height)`` of the video in pixels (frames of another size are
            resized); None: the size of the first frame.
        source_name: what was recorded (camera name, file), stored in ``events.json``.
        model: the recogniser's model description for ``events.json`` (or None).
        codec: FourCC of the video codec (``"mp4v"`` = MPEG-4 part 2, ``"MJPG"`` = Motion JPEG).
        container: file extension (``"avi"`` stays readable after a crash, ``"mp4"`` does
            not).
        micro_max_s: events whose recorded duration exceeds this are written as ``macro``.
    """

    def __init__(self, out_dir: str | os.PathLike[str], *, fps: float,
                 size: tuple[int, int] | None = None, source_name: str = "",
                 model: dict | None = None,
                 codec: str = DEFAULT_CODEC, container: str = DEFAULT_CONTAINER,
                 micro_max_s: float | None = None) -> None:

        if not fps or fps <= 0 or not np.isfinite(fps):
            raise SourceError(f"cannot record at {fps!r} frames per second; the source's frame "
                              "rate is unknown — give a positive fps")
        if len(codec) != 4:
            raise SourceError(f"video codec must be a 4-letter FourCC such as 'mp4v', got {codec!r}")
        self.out_dir = Path(out_dir)
        if (self.out_dir / EVENTS_NAME).exists():
            raise SourceError(f"{self.out_dir} already holds a recording; choose a new folder")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"cannot create the recording folder {self.out_dir}: {exc}") from exc
        self.fps = float(fps)
        self.size = (int(size[0]), int(size[1])) if size else None
        self.source_name = source_name
        self.model = model
        self.codec = codec
        self.micro_max_s = micro_max_s
        self.video_path = self.out_dir / f"{VIDEO_NAME}.{container.lstrip('.')}"
        self.events_path = self.out_dir / EVENTS_NAME
        self.timestamps_path = self.out_dir / TIMESTAMPS_NAME
        self.started = datetime.now().astimezone()
        self._writer: Any = None
        if self.size is not None:
            self._open_writer(self.size)
        self._ts_file = open(self.timestamps_path, "w", encoding="utf-8", newline="")
        self._ts_file.write("frame,source_frame,timestamp_s\n")
        self._last_flush = time.monotonic()
        # recorded index k <-> source index; both increase, so bisect maps between them.
        self._source_indices: list[int] = []
        self._events: dict[int, SpotEvent] = {}
        self._next_id = 0
        self.closed = False
        self._write_events(complete=False)
        log.info("recording to %s (%s, %.1f fps)", self.out_dir, codec, self.fps)

    def _open_writer(self, size: tuple[int, int]) -> None:
        import cv2

        if size[0] <= 0 or size[1] <= 0:
            raise SourceError(f"cannot record frames of size {size[0]}x{size[1]}")
        self.size = size
        self._writer = cv2.VideoWriter(str(self.video_path),
                                       cv2.VideoWriter.fourcc(*self.codec), self.fps, size)
        if not self._writer.isOpened():
            raise SourceError(f"OpenCV cannot write {self.codec!r} video to {self.video_path}; "
                              "try codec 'MJPG' with container 'avi'")

    # ----------------------------------------------------------------- frames
    @property
    def n_frames(self) -> int:
        """Frames written so far."""
        return len(self._source_indices)

    def write_frame(self, frame: Frame) -> int:
        """Append one frame to the video; returns its index in the recording.

        Frames must arrive in increasing source order; a repeated or older source index is
        ignored (returns -1)."""
        import cv2

        if self.closed:
            raise SourceError("the recording is closed")
        if self._source_indices and frame.index <= self._source_indices[-1]:
            return -1
        img = frame.image
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        if self._writer is None:
            self._open_writer((int(img.shape[1]), int(img.shape[0])))
        assert self.size is not None
        if (img.shape[1], img.shape[0]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(img))
        k = len(self._source_indices)
        self._source_indices.append(int(frame.index))
        self._ts_file.write(f"{k},{frame.index},{frame.timestamp_s:.6f}\n")
        now = time.monotonic()
        if now - self._last_flush > 1.0:
            self._ts_file.flush()
            self._last_flush = now
        return k

    def recorded_index(self, source_index: int) -> int | None:
        """The recording's frame index for a source frame index: the exact frame when it was
        recorded, else the next recorded frame (the previous one past the end); None when
        nothing has been recorded."""
        idx = self._source_indices
        if not idx:
            return None
        k = bisect.bisect_left(idx, source_index)
        return min(k, len(idx) - 1)

    # ----------------------------------------------------------------- events
    def _to_recording(self, ev: SpotEvent) -> SpotEvent | None:
        if not self._source_indices or ev.offset < self._source_indices[0]:
            return None  # happened before the recording started
        on = self.recorded_index(ev.onset)
        ap = self.recorded_index(ev.apex)
        off = self.recorded_index(ev.offset)
        assert on is not None and ap is not None and off is not None
        # an offset frame that was dropped maps to the next recorded one: keep the frame before
        if self._source_indices[off] > ev.offset and off > on:
            off -= 1
        ap = min(max(ap, on), off)
        kind = ev.kind
        if self.micro_max_s is not None:
            kind = "micro" if (off - on) / self.fps <= self.micro_max_s else "macro"
        return dataclasses.replace(ev, onset=on, apex=ap, offset=off, onset_s=on / self.fps,
                                   apex_s=ap / self.fps, offset_s=off / self.fps, kind=kind)

    def add_event(self, event: SpotEvent, *, write: bool = True) -> SpotEvent | None:
        """Record a spotted event (indices mapped to the video file) and rewrite
        ``events.json`` durably. An event with a known ``id`` replaces the earlier version
        (e.g. when its prediction arrives). Returns the event as recorded, or None when it
        ended before the recording started. ``write=False`` defers the rewrite of
        ``events.json`` (many events at once)."""
        rec = self._to_recording(event)
        if rec is None:
            log.debug("event %d ended before the recording started: not recorded", event.id)
            return None
        if rec.id < 0:
            rec = dataclasses.replace(rec, id=self._next_id)
        self._next_id = max(self._next_id, rec.id + 1)
        self._events[rec.id] = rec
        if write:
            self._write_events(complete=False)
        return rec

    def add_result(self, result: FrameResult) -> None:
        """Write the result's frame and its new and updated events."""
        self.write_frame(result.frame)
        for ev in [*result.events, *result.updated_events]:
            self.add_event(ev)

    @property
    def events(self) -> list[SpotEvent]:
        """Recorded events (recording frame indices), sorted by onset."""
        return sorted(self._events.values(), key=lambda e: (e.onset, e.id))

    def _meta(self, complete: bool) -> dict[str, Any]:
        return {"source": self.video_path.name, "fps": self.fps, "n_frames": self.n_frames,
                "model": self.model,
                "recording": {"format": RECORDING_FORMAT, "complete": complete,
                              "started": self.started.isoformat(timespec="seconds"),
                              "recorded_from": self.source_name, "codec": self.codec,
                              "size": list(self.size) if self.size else None,
                              "timestamps": TIMESTAMPS_NAME}}

    def _write_events(self, complete: bool) -> None:
        if not self._ts_file.closed:
            self._ts_file.flush()
        durable_write_events(self.events_path, self.events, self._meta(complete))

    # ----------------------------------------------------------------- end
    def close(self, final_events: Iterable[SpotEvent] = ()) -> Path:
        """Add ``final_events`` (e.g. ``Pipeline.finish()``), finalise the video and write
        the complete ``events.json``; returns the recording folder."""
        if self.closed:
            return self.out_dir
        for ev in final_events:
            self.add_event(ev, write=False)
        if self._writer is not None:
            self._writer.release()
        self._ts_file.close()
        self.closed = True
        if self.n_frames == 0 and not self._events:
            # nothing was recorded (started at the end of a clip, stopped at once): a folder
            # without a video would only be refused by review
            import shutil

            shutil.rmtree(self.out_dir, ignore_errors=True)
            log.info("recording %s had no frame: folder removed", self.out_dir)
            return self.out_dir
        self._write_events(complete=True)
        log.info("recording closed: %s (%d frames, %d events)", self.out_dir, self.n_frames,
                 len(self._events))
        return self.out_dir

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_video(path: str | os.PathLike[str]) -> Path:
    """A recording folder (``video.*`` + ``events.json``) opens its video; anything else is
    returned as is."""
    from mestudio.errors import SourceError

    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path} does not exist; give a video file, an image folder or a "
                          "recording folder")
    if path.is_dir():
        videos = sorted(p for p in path.glob("video.*") if p.suffix.lower() in
                        (".avi", ".mp4", ".mkv", ".mov"))
        if videos:
            return videos[0]
    return path
