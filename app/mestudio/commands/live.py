"""``mestudio live``: the live window on a camera (or any source with ``--source``).

A camera that is unplugged shows a message and is reopened when it comes back. Frames are
processed as they come; when processing is slower than the camera, frames are dropped (the
status bar counts them) so the picture never lags behind.
"""

from __future__ import annotations

import argparse

NAME = "live"
HELP = "open the live window on a camera (spot and recognise micro-expressions live)"


def register(parser: argparse.ArgumentParser) -> None:
    from mestudio.gui.app import add_window_arguments

    group = parser.add_mutually_exclusive_group()
    group.add_argument("--camera", type=int, metavar="N",
                       help="camera index (default: the one in the settings, usually 0)")
    group.add_argument("--source", metavar="SPEC",
                       help="instead of a camera: a video file, an image folder or 'demo', "
                            "played in real time")
    from mestudio.commands.analyze import add_face_arguments

    add_face_arguments(parser)
    add_window_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mestudio.commands.analyze import apply_face_arguments
    from mestudio.gui.main_window import run_main_window
    from mestudio.gui.worker import default_config

    config = apply_face_arguments(args, default_config())
    if args.source:
        spec: object = args.source
    else:
        spec = args.camera if args.camera is not None else config.capture.camera_index
    return run_main_window(spec, args, config=config)
