"""Frame files of the dataset releases: parse frame numbers, sort, find folders.

Every release embeds an absolute frame number in its file names, with different prefixes
and paddings (DATASETS.md):

======================  ==========================  ==========
release                 example file                number
======================  ==========================  ==========
CASME II RAW/selected   ``img46.jpg``               46
CASME II Cropped        ``reg_img46.jpg``           46
SAMM                    ``006_05562.jpg``, ``006_5562.jpg``   5562
CASME (I)               ``EP01_5-012.jpg``          12
CAS(ME)²                ``img001.jpg``              1
SMIC                    ``image036237.bmp``         36237
MMEW                    ``12.jpg``                  12
======================  ==========================  ==========

The rule that covers all of them: the frame number is the LAST run of digits in the file
stem. Frames are always sorted by that integer, never lexically (``img2`` before ``img10``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
"""File extensions (lower case) that count as frames."""

_LAST_DIGITS = re.compile(r"(\d+)(?!.*\d)")
_DIGIT_RUN = re.compile(r"\d+")
_SKIP_DIRS = {"__macosx", ".ds_store", "@eadir"}

FrameFile = tuple[int, Path]
"""``(frame number, path)`` of one frame file."""


def frame_number(name: str | os.PathLike[str]) -> int | None:
    """The frame number embedded in a frame file name: the last run of digits of its stem.

    Args:
        name: a file name or path, e.g. ``"reg_img46.jpg"`` or ``"SAMM/006/006_1_2/006_05562.jpg"``.

    Returns:
        The integer (``46``, ``5562``), or None when the stem holds no digit.
    """
    stem = Path(name).stem
    match = _LAST_DIGITS.search(stem)
    return int(match.group(1)) if match else None


def is_frame_file(path: Path) -> bool:
    """True for a visible image file (macOS ``._*`` resource forks and hidden files excluded)."""
    return (
        not path.name.startswith(".")
        and path.suffix.lower() in IMAGE_EXTENSIONS
    )


def list_frames(folder: Path) -> list[FrameFile]:
    """All frame files of a folder, sorted by their parsed frame number.

    Files without a number are ignored; when two files carry the same number (e.g. a stray
    copy), the lexically first is kept and the duplicate is logged.

    Args:
        folder: a sample folder, e.g. ``CASME2-RAW/sub01/EP02_01f``.

    Returns:
        ``[(number, path), ...]`` in increasing frame number; empty when the folder is
        missing or holds no image.
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    by_number: dict[int, Path] = {}
    for entry in entries:
        if not entry.is_file():
            continue
        path = Path(entry.path)
        if not is_frame_file(path):
            continue
        number = frame_number(path.name)
        if number is None:
            continue
        if number in by_number:
            logger.debug("%s: frame %d appears twice (%s, %s); keeping the first",
                         folder, number, by_number[number].name, path.name)
            continue
        by_number[number] = path
    return sorted(by_number.items())


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers numerically: ``sub2`` < ``sub10``."""
    parts: list[tuple[int, int | str]] = []
    pos = 0
    for m in _DIGIT_RUN.finditer(text):
        if m.start() > pos:
            parts.append((1, text[pos:m.start()].lower()))
        parts.append((0, int(m.group())))
        pos = m.end()
    if pos < len(text):
        parts.append((1, text[pos:].lower()))
    return tuple(parts)


def normalized_name(text: str) -> str:
    """A folder/sample name for tolerant matching: lower case, numbers without zero padding.

    ``"EP02_01f"`` -> ``"ep2_1f"``; ``"s01_ne_01"`` and ``"s1_ne_01"`` -> ``"s1_ne_1"``.
    """
    return _DIGIT_RUN.sub(lambda m: str(int(m.group())), text.strip().lower())


def format_ranges(numbers: Iterable[int], limit: int = 6) -> str:
    """Compact text for a set of frame numbers: ``[3, 4, 5, 9]`` -> ``"3-5, 9"``.

    At most ``limit`` ranges are written, then ``"... (N frames)"``.
    """
    values = sorted(set(numbers))
    if not values:
        return ""
    ranges: list[tuple[int, int]] = []
    start = prev = values[0]
    for v in values[1:]:
        if v == prev + 1:
            prev = v
            continue
        ranges.append((start, prev))
        start = prev = v
    ranges.append((start, prev))
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit])
    if len(ranges) > limit:
        text += f", ... ({len(values)} frames)"
    return text


def child_dirs(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder`` in natural order (empty when it cannot be listed)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    dirs = [
        Path(e.path) for e in entries
        if e.is_dir() and not e.name.startswith(".") and e.name.lower() not in _SKIP_DIRS
    ]
    return sorted(dirs, key=lambda p: natural_key(p.name))


def find_dirs(root: Path, names: Sequence[str], max_depth: int = 4) -> list[Path]:
    """Folders under ``root`` (itself included) whose name is one of ``names``.

    Breadth-first, case-insensitive, at most ``max_depth`` levels below ``root``; the search
    does not descend into a folder that matched, so a frame tree is never walked.

    Returns:
        Matches, shallowest first.
    """
    wanted = {n.lower() for n in names}
    found: list[Path] = []
    level = [root]
    for depth in range(max_depth + 1):
        next_level: list[Path] = []
        for folder in level:
            if folder.name.lower() in wanted:
                found.append(folder)
                continue
            if depth < max_depth:
                next_level.extend(child_dirs(folder))
        level = next_level
        if not level:
            break
    return found


def find_files(root: Path, patterns: Sequence[str], max_depth: int = 2) -> list[Path]:
    """Files under ``root`` whose name matches one of the glob ``patterns`` (case-insensitive).

    Looks at ``root`` and ``max_depth`` levels of sub-folders; results are ordered by
    pattern (earlier patterns first), then by depth, then by name in reverse natural order
    (so ``...-20190701.xlsx`` comes before ``...-20140508.xlsx``).
    """
    import fnmatch

    candidates: list[tuple[int, Path]] = []
    level = [root]
    for depth in range(max_depth + 1):
        next_level: list[Path] = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for e in entries:
                if e.name.startswith((".", "~$")):
                    continue
                if e.is_file():
                    candidates.append((depth, Path(e.path)))
                elif e.is_dir() and depth < max_depth and e.name.lower() not in _SKIP_DIRS:
                    next_level.append(Path(e.path))
        level = next_level
    result: list[Path] = []
    for pattern in patterns:
        pat = pattern.lower()
        hits = [(d, p) for d, p in candidates if fnmatch.fnmatchcase(p.name.lower(), pat)]
        hits.sort(key=lambda dp: natural_key(dp[1].name), reverse=True)
        hits.sort(key=lambda dp: dp[0])
        for _, p in hits:
            if p not in result:
                result.append(p)
    return result


class FolderIndex:
    """Look up a child folder by name: exact, then case-insensitive, then normalized
    (:func:`normalized_name`), so ``EP02_01F`` or ``s01_ne_01`` still find their folder."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.children: list[Path] = child_dirs(folder) if folder is not None else []
        self._exact = {p.name: p for p in self.children}
        self._lower: dict[str, Path] = {}
        self._norm: dict[str, Path] = {}
        for p in self.children:
            self._lower.setdefault(p.name.lower(), p)
            self._norm.setdefault(normalized_name(p.name), p)

    def get(self, name: str) -> tuple[Path | None, str]:
        """``(folder, how)`` where ``how`` is ``"exact"``, ``"case"``, ``"normalized"`` or ``""``."""
        name = name.strip()
        if name in self._exact:
            return self._exact[name], "exact"
        if name.lower() in self._lower:
            return self._lower[name.lower()], "case"
        norm = normalized_name(name)
        if norm in self._norm:
            return self._norm[norm], "normalized"
        return None, ""

    def prefixed(self, prefix: str) -> Path | None:
        """The first child whose name starts with ``prefix`` (case-insensitive)."""
        low = prefix.lower()
        for p in self.children:
            if p.name.lower().startswith(low):
                return p
        return None
