"""Writing a synthetic clip to disk (video or PNG frames + ``truth.json``) and reading the
truth back."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mestudio.errors import SourceError
from mestudio.fsutil import atomic_path
from mestudio.synth.clip import TRUTH_FORMAT, SynthClip
from mestudio.synth.events import PlantedEvent

log = logging.getLogger(__name__)

VIDEO_NAME = "clip.mp4"
FRAMES_DIR = "frames"
TRUTH_NAME = "truth.json"


def write_clip(clip: SynthClip, out_dir: str | os.PathLike[str], video: bool = True, *,
               progress: bool = False,
               on_frame: Callable[[int], None] | None = None) -> Path:
    """Write a clip and its ground truth.

    ``out_dir/clip.mp4`` (``cv2.VideoWriter``, codec ``mp4v``, at the clip's fps) or, when
    ``video`` is False or the writer fails, ``out_dir/frames/000000.png ...`` (lossless);
    plus ``out_dir/truth.json`` whose ``"media"`` key names what was written.

    Everything is written under temporary names in ``out_dir`` and renamed when complete
    (the truth last of all), so a failed run (disk full, read-only folder) leaves the
    previous clip and truth as they were and no file that looks complete.

    Note: mp4v is lossy; sub-pixel motion survives it, but use ``video=False`` for
    bit-exact frames.

    Args:
        clip: the clip.
        out_dir: folder (created when missing).
        video: write a video (True) or PNG frames (False).
        progress: show a progress bar on stderr (only when it is a terminal).
        on_frame: called with each frame index after it is written.
    Returns:
        The path of the video file or of the frames folder.
    Raises:
        OSError: the folder cannot be written (full, read-only, no permission).
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    media: Path | None = None
    bar = tqdm(total=clip.n_frames, unit="frame", desc="synth", file=sys.stderr,
               disable=not progress or None, leave=False)  # None: only on a terminal
    try:
        with atomic_path(out / TRUTH_NAME) as tmp_truth:
            if video:
                media = _write_video(clip, out / VIDEO_NAME, bar, on_frame)
                if media is None:
                    log.warning("the mp4v video writer failed; writing PNG frames instead")
                    bar.reset()
            if media is None:
                media = _write_frames(clip, out / FRAMES_DIR, bar, on_frame)
            truth = clip.truth()
            truth["media"] = media.name
            tmp_truth.write_text(json.dumps(truth, indent=1), encoding="utf-8")
    finally:
        bar.close()
    return media


def _write_frames(clip: SynthClip, frames_dir: Path, bar: Any,
                  on_frame: Callable[[int], None] | None) -> Path:
    """PNG frames into a hidden temporary folder beside ``frames_dir``, which replaces
    ``frames_dir`` once every frame is written."""
    import cv2

    tmp = frames_dir.with_name(f".{frames_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for i in range(clip.n_frames):
            ok, png = cv2.imencode(".png", clip.frame(i))
            if not ok:  # pragma: no cover - encoding an 8-bit BGR image does not fail
                raise SourceError(f"cannot encode frame {i} as PNG")
            (tmp / f"{i:06d}.png").write_bytes(png.tobytes())
            bar.update(1)
            if on_frame:
                on_frame(i)
        if frames_dir.exists():
            shutil.rmtree(frames_dir)
        os.replace(tmp, frames_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and (exc.filename is None or
                                         str(exc.filename).startswith(str(tmp))):
            exc.filename = str(frames_dir.parent)  # where, without our temporary name
        raise
    return frames_dir


class _VideoWriterFailed(Exception):
    """The video writer produced no readable file (no codec, or the disk filled up)."""


def _write_video(clip: SynthClip, path: Path, bar: Any,
                 on_frame: Callable[[int], None] | None) -> Path | None:
    """The clip as ``path`` (written under a temporary name, renamed when it reads back
    with every frame); None when the writer cannot produce a readable video."""
    import cv2

    from mestudio.capture.base import quiet_opencv

    quiet_opencv()
    try:
        with atomic_path(path, keep_suffix=True) as tmp:
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), clip.fps,
                                     clip.size)
            if not writer.isOpened():
                raise _VideoWriterFailed
            try:
                for i in range(clip.n_frames):
                    writer.write(clip.frame(i))
                    bar.update(1)
                    if on_frame:
                        on_frame(i)
            finally:
                writer.release()
            cap = cv2.VideoCapture(str(tmp))
            ok = cap.isOpened() and cap.read()[0]
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if ok else 0
            cap.release()
            if not ok or count < clip.n_frames:
                # cv2 does not report write errors: a short file means the disk is full.
                _raise_if_full(path.parent)
                raise _VideoWriterFailed
    except _VideoWriterFailed:
        return None
    return path


def _raise_if_full(folder: Path) -> None:
    """Raise ``OSError(ENOSPC)`` naming ``folder`` when it has (almost) no free space."""
    import errno

    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < 1 << 20:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))


def read_truth(path: str | os.PathLike[str]) -> tuple[list[PlantedEvent], dict[str, Any]]:
    """Read ``truth.json`` (a file or the folder holding it).

    Returns:
        ``(events, meta)``: the planted events and every other top-level key.
    Raises:
        SourceError: missing file or not a mestudio truth file.
    """
    p = Path(path)
    if p.is_dir():
        p = p / TRUTH_NAME
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"truth file not found: {p}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(f"cannot read truth file {p}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != TRUTH_FORMAT:
        raise SourceError(f"{p} is not a mestudio truth file (expected format {TRUTH_FORMAT})")
    events = [PlantedEvent.from_dict(d) for d in doc.get("events", [])]
    meta = {k: v for k, v in doc.items() if k != "events"}
    return events, meta
