"""A folder of numbered images (how the micro-expression datasets store their clips).

Frames are sorted by the *integer in the file name* — the last number in the stem — so
``img2`` comes before ``img10`` (CASME), ``reg_img46.jpg`` (CASME II), ``006_05562.jpg``
(SAMM: subject 006, frame 5562) and ``image036237.bmp`` (SMIC) all come out in frame order.
Timestamps are ``index / fps``; the fps is given by the caller (datasets know theirs) or
30 with a note.

An image that cannot be decoded (corrupt, truncated, not an image) does not end a run:
iterating skips it, logs a warning and records its frame number in
:attr:`ImageSequenceSource.skipped`; :meth:`~FrameSource.read` of that frame still raises.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from mestudio.capture.base import FrameOutOfRange, FrameSource
from mestudio.errors import SourceError
from mestudio.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp",
                            ".pgm", ".ppm", ".jp2"})
DEFAULT_SEQUENCE_FPS = 30.0
_NUMBER = re.compile(r"\d+")


def frame_sort_key(path: str | os.PathLike[str]) -> tuple:
    """Sort key of an image file name: the last integer in its stem first, then the whole
    name split into text and numbers (so ties and names without a number are stable).

    >>> sorted(["img10.jpg", "img2.jpg", "img1.jpg"], key=frame_sort_key)
    ['img1.jpg', 'img2.jpg', 'img10.jpg']
    """
    stem = Path(path).stem
    numbers = _NUMBER.findall(stem)
    natural = tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower())
                    for t in re.split(r"(\d+)", stem) if t)
    return (int(numbers[-1]) if numbers else -1, natural)


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` (not recursive, hidden files skipped), in frame order."""
    files = [p for p in folder.iterdir()
             if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=frame_sort_key)


class ImageSequenceSource(FrameSource):
    """Frames from a folder of images, or from an explicit list of image files.

    Args:
        images: a folder, or a list of image paths (kept in the given order).
        fps: frames per second of the sequence; None means 30, noted in :attr:`notes`.

    Raises:
        SourceError: the folder does not exist, holds no image, or none of its first
            images can be decoded.

    Attributes:
        skipped: frame numbers of the images that could not be decoded while iterating
            (in order).
    """

    #: Images tried at opening to find the frame size before giving up.
    MAX_UNREADABLE_AT_START = 10

    seekable = True

    def __init__(self, images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 fps: float | None = None) -> None:
        super().__init__()
        if isinstance(images, (str, os.PathLike)):
            folder = Path(images).expanduser()
            if not folder.exists():
                raise SourceError(f"{folder}: no such folder")
            if not folder.is_dir():
                raise SourceError(f"{folder}: not a folder")
            try:
                self.paths = list_images(folder)
            except PermissionError as exc:
                raise SourceError(f"{folder}: permission denied") from exc
            if not self.paths:
                raise SourceError(f"{folder}: no image files in this folder (looked for "
                                  f"{', '.join(sorted(IMAGE_SUFFIXES))})")
            self.name = folder.name or str(folder)
        else:
            self.paths = [Path(p).expanduser() for p in images]
            if not self.paths:
                raise SourceError("an image sequence needs at least one image")
            self.name = self.paths[0].name if len(self.paths) == 1 else \
                f"{self.paths[0].parent.name}/ ({len(self.paths)} images)"
        if fps is None or fps <= 0:
            fps = DEFAULT_SEQUENCE_FPS
            if len(self.paths) > 1:
                self.notes.append(f"no frame rate given for the image sequence; assuming "
                                  f"{fps:g} fps")
        self.fps = float(fps)
        self.n_frames = len(self.paths)
        self.skipped: list[int] = []
        first = None
        for i in range(min(len(self.paths), self.MAX_UNREADABLE_AT_START)):
            try:
                first = self._load(i)
                break
            except SourceError as exc:
                if len(self.paths) == 1:
                    raise
                log.warning("%s", exc)
        if first is None:
            raise SourceError(f"{self.name}: none of the first "
                              f"{min(len(self.paths), self.MAX_UNREADABLE_AT_START)} images "
                              "can be decoded (corrupt, or not images)")
        h, w = first.shape[:2]
        self.size = (w, h)
        self._warned_size = False

    def __iter__(self) -> Iterator[Frame]:
        """Frames from the current position to the end; an image that cannot be decoded is
        skipped (warning, frame number added to :attr:`skipped`)."""
        while not self._closed:
            i = self._position
            try:
                frame = self.read(i)
            except FrameOutOfRange:
                return
            except SourceError as exc:
                log.warning("skipping frame %d: %s", i, exc)
                if i not in self.skipped:
                    self.skipped.append(i)
                self._position = i + 1
                continue
            self._position = frame.index + 1
            yield frame

    def _load(self, i: int):  # noqa: ANN202 - np.ndarray
        import cv2

        path = self.paths[i]
        if not path.is_file():
            raise SourceError(f"{path}: image missing (was it moved?)")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"{path}: cannot decode this image (corrupt or not an image)")
        return img

    def _read(self, i: int) -> Frame:
        img = self._load(i)
        h, w = img.shape[:2]
        if (w, h) != self.size and self.size != (0, 0):
            import cv2

            if not self._warned_size:
                log.warning("%s: frame %d is %dx%d, the first was %dx%d; resizing",
                            self.name, i, w, h, *self.size)
                self._warned_size = True
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
        return Frame(i, i / float(self.fps or DEFAULT_SEQUENCE_FPS), img)
