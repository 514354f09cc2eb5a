"""``mestudio analyze INPUT --out DIR``: track the face in every frame and write frames.csv."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

NAME = "analyze"
HELP = "track the face in a video, image folder, camera or the demo and write DIR/frames.csv"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="video file, folder of numbered images, camera:N, or demo")
    parser.add_argument("--out", "-o", type=Path, required=True, metavar="DIR",
                        help="output folder (created; frames.csv is written there)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="stop after N frames (needed for cameras unless you press Ctrl+C)")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of an image-sequence folder (default 30)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from mestudio.capture import open_source
    from mestudio.config import load_settings
    from mestudio.csvio import FramesCsvWriter
    from mestudio.errors import ConfigError, MestudioError
    from mestudio.pipeline import Pipeline

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be at least 1")
    cfg = load_settings()
    if args.fps is not None:
        if args.fps <= 0:
            raise ConfigError("--fps must be positive")
        cfg.capture.sequence_fps = args.fps
    out: Path = args.out
    source = open_source(args.input, cfg.capture)
    with source:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MestudioError(f"cannot create output folder {out}: "
                                f"{exc.strerror or exc}") from exc
        pipeline = Pipeline(cfg, spotting=False, recognition=False)
        csv_path = out / "frames.csv"
        t0 = time.perf_counter()
        with FramesCsvWriter(csv_path, pipeline.tracker.landmark_names) as writer:
            for result in pipeline.run(source, progress=not args.no_progress,
                                       max_frames=args.max_frames):
                writer.write(result)
            pipeline.finish()
        elapsed = time.perf_counter() - t0
        pipeline.close()
    n = pipeline.frames_processed
    pct = 100.0 * pipeline.frames_with_face / n if n else 0.0
    parts = [f"{source.name}: {n} frames, face in {pct:.1f}%",
             f"{n / elapsed if elapsed > 0 else 0.0:.0f} frames/s processing",
             f"wrote {csv_path}"]
    if pipeline.degraded:
        parts.append("degraded: " + "; ".join(pipeline.degraded))
    if source.notes:
        parts.append("notes: " + "; ".join(source.notes))
    print(" | ".join(parts))
    return 0
