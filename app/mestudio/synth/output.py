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
from mestudio.fsutil import atomic_write_text
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
    """
    import cv2
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    media: Path | None = None
    bar = tqdm(total=clip.n_frames, unit="frame", desc="synth", file=sys.stderr,
               disable=not progress or None, leave=False)  # None: only on a terminal
    try:
        if video:
            media = _write_video(clip, out / VIDEO_NAME, bar, on_frame)
            if media is None:
                log.warning("the mp4v video writer failed; writing PNG frames instead")
                bar.reset()
        if media is None:
            frames_dir = out / FRAMES_DIR
            if frames_dir.exists():
                shutil.rmtree(frames_dir)
            frames_dir.mkdir()
            for i in range(clip.n_frames):
                path = frames_dir / f"{i:06d}.png"
                if not cv2.imwrite(str(path), clip.frame(i)):
                    raise SourceError(f"cannot write {path}: check the folder is writable")
                bar.update(1)
                if on_frame:
                    on_frame(i)
            media = frames_dir
    finally:
        bar.close()
    truth = clip.truth()
    truth["media"] = media.name
    atomic_write_text(out / TRUTH_NAME, json.dumps(truth, indent=1))
    return media


def _write_video(clip: SynthClip, path: Path, bar: Any,
                 on_frame: Callable[[int], None] | None) -> Path | None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), clip.fps, clip.size)
    if not writer.isOpened():
        path.unlink(missing_ok=True)
        return None
    try:
        for i in range(clip.n_frames):
            writer.write(clip.frame(i))
            bar.update(1)
            if on_frame:
                on_frame(i)
    finally:
        writer.release()
    cap = cv2.VideoCapture(str(path))
    ok = cap.isOpened() and cap.read()[0]
    cap.release()
    if not ok:
        path.unlink(missing_ok=True)
        return None
    return path


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
