"""``mestudio review FILE``: frame-by-frame review and annotation of a recorded session."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "review"
HELP = ("review a video frame by frame: correct onset/apex/offset, label events, export a "
        "CASME II-style coding sheet")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path,
                        help="video file, image-sequence folder, or a recording folder")
    parser.add_argument("--events", type=Path, default=None, metavar="JSON",
                        help="annotations or events.json to open (default: found beside the "
                        "video)")
    parser.add_argument("--no-analysis", action="store_true",
                        help="do not analyse the video when no events file is found")
    parser.add_argument("--export", type=Path, default=None, metavar="OUT",
                        help="write the coding sheet (.xlsx or .csv) of the events and exit, "
                        "without opening a window")
    parser.add_argument("--subject", default=None,
                        help="Subject column of the coding sheet")
    parser.add_argument("--clamp-frames", action="store_true",
                        help="clamp events that reach outside the video to its frames "
                        "(default: refuse such an events file)")
    from mestudio.gui.app import add_gui_arguments

    add_gui_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mestudio.capture.recorder import resolve_video
    from mestudio.config import load_settings

    video = resolve_video(args.file)
    cfg = load_settings()
    if args.export is not None:
        return _export_only(video, args, cfg)
    from mestudio.gui.app import run_gui

    def make_window():  # noqa: ANN202
        from mestudio.gui.review_window import ReviewWindow

        win = ReviewWindow(video, events=args.events, config=cfg,
                           analyze=not args.no_analysis, clamp_frames=args.clamp_frames)
        if args.subject is not None and win.doc is not None:
            win.doc.subject = args.subject
        return win

    return run_gui(make_window, args)


def _export_only(video: Path, args: argparse.Namespace, cfg) -> int:  # noqa: ANN001
    from mestudio.annotations import AnnotationDocument, AnnotationError, find_annotation_file
    from mestudio.capture import open_source

    ann = args.events or find_annotation_file(video)
    if ann is None:
        raise AnnotationError(f"no events or annotation file beside {video}; analyse it first "
                              "(`mestudio review` without --export) or give --events")
    with open_source(str(video), cfg.capture) as src:
        doc = AnnotationDocument.load(ann, fps=src.fps or None, n_frames=src.n_frames or None,
                                      video=video, clamp=args.clamp_frames)
    if args.subject is not None:
        doc.subject = args.subject
    suffix = args.export.suffix.lower()
    if suffix == ".xlsx":
        out = doc.export_xlsx(args.export)
    elif suffix == ".csv":
        out = doc.export_csv(args.export)
    else:
        raise AnnotationError(f"--export must end in .xlsx or .csv, not {args.export.name}")
    print(f"{len(doc)} events from {ann} written to {out}")
    return 0
