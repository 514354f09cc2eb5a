"""``mestudio kiosk``: the unattended museum display (full screen, no images stored)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

NAME = "kiosk"
HELP = ("full-screen museum kiosk: shows fleeting expressions, stores no images, logs "
        "anonymous events to SQLite")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exhibit", default=None,
                        help="exhibit name written with every event (default: the configured "
                        "one, 'default')")
    parser.add_argument("--db", type=Path, default=None, metavar="FILE",
                        help="SQLite event log (default: events.sqlite in the user data dir)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=None, metavar="N",
                     help="camera index (default: the configured camera, 0)")
    src.add_argument("--source", default=None, metavar="FILE",
                     help="a video file, image folder or 'demo' instead of a camera "
                     "(played in a loop)")
    parser.add_argument("--exit-keys", default=None, metavar="KEYS",
                        help="key combination that closes the kiosk (default Ctrl+Shift+Q)")
    parser.add_argument("--no-mirror", action="store_true",
                        help="do not show the camera picture on screen")
    parser.add_argument("--windowed", action="store_true",
                        help="run in a window instead of full screen (set-up and testing)")
    from mestudio.commands.analyze import add_face_arguments
    from mestudio.gui.app import add_gui_arguments

    add_face_arguments(parser)
    add_gui_arguments(parser)


def build_config(args: argparse.Namespace):  # noqa: ANN201 - AppConfig, imported lazily
    """The kiosk's configuration: saved settings with the command-line overrides."""
    from mestudio.commands.analyze import apply_face_arguments
    from mestudio.config import load_settings

    cfg = apply_face_arguments(args, load_settings())
    kiosk = cfg.kiosk
    if args.exhibit is not None:
        if not args.exhibit.strip():
            from mestudio.errors import ConfigError

            raise ConfigError("--exhibit must not be empty")
        kiosk = dataclasses.replace(kiosk, exhibit=args.exhibit.strip())
    if args.exit_keys:
        kiosk = dataclasses.replace(kiosk, exit_keys=args.exit_keys)
    if args.no_mirror:
        kiosk = dataclasses.replace(kiosk, show_camera=False)
    cfg = dataclasses.replace(cfg, kiosk=kiosk)
    if args.camera is not None:
        cfg = dataclasses.replace(cfg, capture=dataclasses.replace(cfg.capture,
                                                                   camera_index=args.camera))
    return cfg


def run(args: argparse.Namespace) -> int:
    from mestudio.analytics.eventlog import EventLog, EventLogError, resolve_db_path
    from mestudio.engine.kiosk import KioskSession
    from mestudio.errors import SourceError
    from mestudio.gui.app import run_gui

    cfg = build_config(args)
    db = resolve_db_path(args.db, cfg.kiosk.db_path)
    # A bad --db fails now, in one line; a damaged log is moved aside and a fresh one started;
    # a full disk is waited out (the kiosk shows it and tries again every 5 s).
    try:
        elog = EventLog(db, exhibit=cfg.kiosk.exhibit, recover=True)
    except EventLogError as exc:
        if not exc.disk_full:
            raise
        print(f"mestudio kiosk: warning: {exc}; the kiosk starts and tries again every 5 s",
              file=sys.stderr)
        elog = None
    if elog is not None:
        elog.close()
    if elog is not None and elog.recovered is not None:
        print(f"mestudio kiosk: warning: the event log {db} was damaged: moved aside to "
              f"{elog.recovered.name}; a fresh log was started", file=sys.stderr)
    spec: str | int
    if args.source is not None:
        spec = str(args.source)
        if spec != "demo" and not Path(spec).exists():
            raise SourceError(f"{spec} does not exist; give a video file, an image folder or "
                              "'demo'")
        is_file = True
    else:
        spec = cfg.capture.camera_index
        is_file = False

    def open_source():  # noqa: ANN202 - FrameSource; called again to reconnect
        from mestudio.capture import open_source as _open

        return _open(spec, cfg.capture)

    def make_session() -> KioskSession:
        return KioskSession(cfg, open_source, db, pace=is_file,
                            loop=cfg.kiosk.loop_file if is_file else False,
                            keep_image=cfg.kiosk.show_camera)

    def make_window():  # noqa: ANN202
        from mestudio.gui.kiosk_window import KioskWindow

        win = KioskWindow(cfg, make_session)
        if args.windowed:
            win.resize(1280, 720)
        return win

    print(f"mestudio kiosk: exhibit {cfg.kiosk.exhibit!r}, event log {db}; leave with "
          f"{cfg.kiosk.exit_keys}")
    return run_gui(make_window, args, fullscreen=not args.windowed)
