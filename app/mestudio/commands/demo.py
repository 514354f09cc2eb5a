"""``mestudio demo``: the live window on the built-in demo clip.

The demo clip is a real face (scikit-image's astronaut) with natural head motion and planted
micro-expressions, played in real time. On a desktop the window stays open until it is
closed (press Space to replay the clip). Without a screen (``QT_QPA_PLATFORM=offscreen``)
and without ``--exit-after`` it closes by itself when the clip ends, so ``make demo`` on a
headless machine never hangs.
"""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "open the live window on the demo clip (real face + planted micro-expressions)"


def register(parser: argparse.ArgumentParser) -> None:
    from mestudio.gui.app import add_window_arguments

    add_window_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mestudio.gui.main_window import run_main_window

    return run_main_window("demo", args)
