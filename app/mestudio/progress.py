"""The ``--no-progress`` flag shared by the commands that show a progress bar.

Every progress bar of mestudio is a tqdm bar on stderr that is shown only when stderr is a
terminal (``tqdm(disable=None)``), so logs and pipes stay clean; ``--no-progress`` hides it
on a terminal too. Lives outside :mod:`mestudio.commands` so that library modules
(``training.prepare``) can use it without importing up the layers.
"""

from __future__ import annotations

import argparse


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-progress`` to a sub-command's parser."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (it is shown only when stderr is a terminal)")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether the command may show its progress bar (still only on a terminal)."""
    return not getattr(args, "no_progress", False)
