"""The ``--no-progress`` flag shared by the commands that show a progress bar, and
:class:`ProgressBar`, a tqdm bar driven by a ``progress(done, total)`` callback (what
:func:`mestudio.engine.analysis.analyze_video` reports).

Every progress bar of mestudio is a tqdm bar on stderr that is shown only when stderr is a
terminal (``tqdm(disable=None)``), so logs and pipes stay clean; ``--no-progress`` hides it
on a terminal too. Lives outside :mod:`mestudio.commands` so that library modules
(``training.prepare``) can use it without importing up the layers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-progress`` to a sub-command's parser."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (it is shown only when stderr is a terminal)")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether the command may show its progress bar (still only on a terminal)."""
    return not getattr(args, "no_progress", False)


class ProgressBar:
    """A tqdm bar on stderr (terminal only) moved by :meth:`update` ``(done, total)``
    callbacks; nothing at all when ``enabled`` is False. Use as a context manager.

    Args:
        enabled: show the bar (e.g. :func:`show_progress`); it still appears only on a
            terminal.
        desc: the bar's label (the source name).
        unit: what is counted.
    """

    def __init__(self, enabled: bool = True, desc: str = "", unit: str = "frame") -> None:
        self.enabled = bool(enabled)
        self.desc = desc
        self.unit = unit
        self._bar: Any = None

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` items of ``total`` (None: unknown) are finished."""
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=self.unit, desc=self.desc, file=sys.stderr,
                             dynamic_ncols=True, leave=False, disable=None)
        elif total is not None and self._bar.total != total:
            self._bar.total = total
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
