"""Frame sources: camera, video file, image-sequence folder and the synthetic demo.

Everything yields :class:`~mestudio.types.Frame` objects through one interface,
:class:`FrameSource`; :func:`open_source` picks the right one from what the user typed.
This package imports neither Qt nor torch (and OpenCV only when a source is opened).
"""

from __future__ import annotations

import os
from pathlib import Path

from mestudio.capture.base import FrameOutOfRange, FrameSource
from mestudio.capture.config import CaptureConfig
from mestudio.errors import SourceError

__all__ = ["CaptureConfig", "FrameOutOfRange", "FrameSource", "open_source", "describe_spec"]


def _camera_index(spec: str) -> int | None:
    """The camera index in ``"camera:N"`` (or a bare number), else None."""
    text = spec.strip()
    if text.lower().startswith("camera:"):
        text = text.split(":", 1)[1].strip()
        if not text.lstrip("-").isdigit():
            raise SourceError(f"{spec!r}: expected camera:N with a camera index N, e.g. camera:0")
        return int(text)
    if text.isdigit() and not Path(text).exists():
        return int(text)
    return None


def describe_spec(spec: str | int | os.PathLike[str]) -> str:
    """What :func:`open_source` would open: ``"camera"``, ``"demo"``, ``"folder"``,
    ``"image"``, ``"video"`` or ``"missing"`` (without opening anything)."""
    if isinstance(spec, int):
        return "camera"
    text = os.fspath(spec)
    if text == "demo" or text.startswith("demo:"):
        return "demo"
    if _camera_index(text) is not None:
        return "camera"
    p = Path(text).expanduser()
    if p.is_dir():
        return "folder"
    if p.is_file():
        from mestudio.capture.imageseq import IMAGE_SUFFIXES

        return "image" if p.suffix.lower() in IMAGE_SUFFIXES else "video"
    return "missing"


def open_source(spec: str | int | os.PathLike[str],
                config: CaptureConfig | None = None) -> FrameSource:
    """Open a frame source from a user's spec.

    Args:
        spec: ``"demo"`` (or ``"demo:key=value,..."``, see ``DemoSource.from_spec``) → the
            synthetic demo clip; an ``int`` or ``"camera:N"`` (or a bare
            number that is not a file) → camera N; a folder → its images in frame-number
            order; an image file → a one-frame source; any other file → a video.
        config: capture settings (camera format, image-sequence fps, frame cache).

    Raises:
        SourceError: nothing usable at ``spec`` (CameraError for cameras).
    """
    cfg = config or CaptureConfig()
    kind = describe_spec(spec)
    if kind == "camera":
        from mestudio.capture.camera import CameraSource

        index = spec if isinstance(spec, int) else _camera_index(str(spec))
        assert index is not None
        return CameraSource(index, cfg.width, cfg.height, cfg.fps,
                            open_timeout_s=cfg.open_timeout_s,
                            stall_timeout_s=cfg.stall_timeout_s)
    text = spec if isinstance(spec, str) else str(spec)
    if kind == "demo":
        try:
            from mestudio.capture.demo import DemoSource
        except ImportError as exc:
            raise SourceError("the demo source is not available in this installation "
                              f"({exc})") from exc
        from_spec = getattr(DemoSource, "from_spec", None)
        return from_spec(text) if from_spec is not None else DemoSource()
    path = Path(text).expanduser()
    if kind == "folder":
        from mestudio.capture.imageseq import ImageSequenceSource

        return ImageSequenceSource(path, fps=cfg.sequence_fps or None)
    if kind == "image":
        from mestudio.capture.imageseq import ImageSequenceSource

        return ImageSequenceSource([path], fps=cfg.sequence_fps or None)
    if kind == "video":
        from mestudio.capture.video import VideoFileSource

        return VideoFileSource(path, cache_frames=cfg.frame_cache)
    raise SourceError(f"{spec}: no such file or folder (give a video file, a folder of "
                      "images, camera:N or demo)")
