"""``mestudio analyze INPUT --out DIR``: track, spot and recognise; write frames.csv,
events.csv and events.json."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from mestudio.commands._progress import add_progress_argument, show_progress

NAME = "analyze"
HELP = ("find micro-expressions in a video, image folder, camera or the demo: writes "
        "DIR/frames.csv, DIR/events.csv and DIR/events.json")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="video file, folder of numbered images, camera:N, or demo")
    parser.add_argument("--out", "-o", type=Path, required=True, metavar="DIR",
                        help="output folder (created; frames.csv, events.csv and events.json "
                             "are written there)")
    parser.add_argument("--model", type=Path, default=None, metavar="PATH",
                        help="recognition model (.onnx made by `mestudio export`; default: the "
                             "shipped models/m3enet_synthetic.onnx)")
    parser.add_argument("--no-recognition", action="store_true",
                        help="spot events only; leave emotion, confidence and probabilities "
                             "empty")
    parser.add_argument("--sensitivity", type=float, default=None, metavar="S",
                        help="spotting sensitivity 0..1 (higher finds weaker movements and more "
                             "false events; default from the settings, 0.5)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="stop after N frames (needed for cameras unless you press Ctrl+C)")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of an image-sequence folder (default 30)")
    add_progress_argument(parser)


def _model_text(pipeline: Any, recognition: bool) -> str:
    info = pipeline.model_info
    if info is None:
        return "" if recognition else "recognition off"
    name = info.get("name") or Path(str(info.get("path", "model"))).stem
    return f"model {name}" + (" (synthetic demo model)" if info.get("synthetic") else "")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from mestudio.capture import open_source
    from mestudio.config import load_settings
    from mestudio.csvio import FramesCsvWriter, SpotterRowBuffer, spotter_columns
    from mestudio.errors import ConfigError, MestudioError
    from mestudio.events_io import write_events_csv, write_events_json
    from mestudio.pipeline import Pipeline

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be at least 1")
    cfg = load_settings()
    if args.fps is not None:
        if args.fps <= 0:
            raise ConfigError("--fps must be positive")
        cfg.capture.sequence_fps = args.fps
    if args.sensitivity is not None:
        if not 0.0 <= args.sensitivity <= 1.0:
            raise ConfigError(f"--sensitivity must be between 0 and 1, got {args.sensitivity}")
        cfg.spotter.sensitivity = float(args.sensitivity)
    recognition = not args.no_recognition
    if args.model is not None:
        cfg.recognition.model = str(args.model)
        cfg.recognition.enabled = True
    out: Path = args.out
    source = open_source(args.input, cfg.capture)
    with source:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MestudioError(f"cannot create output folder {out}: "
                                f"{exc.strerror or exc}") from exc
        pipeline = Pipeline(cfg, spotting=True, recognition=recognition)
        try:
            rois = pipeline.roi_names
            csv_path = out / "frames.csv"
            track_ms: list[float] = []
            spot_ms: list[float] = []
            t0 = time.perf_counter()
            with FramesCsvWriter(csv_path, pipeline.tracker.landmark_names,
                                 spotter_columns(rois)) as writer:
                rows = SpotterRowBuffer(writer, rois)
                for result in pipeline.run(source, progress=show_progress(args),
                                           max_frames=args.max_frames):
                    tm = result.timings_ms
                    track_ms.append(tm.get("track", 0.0))
                    spot_ms.append(tm.get("signal", 0.0) + tm.get("spot", 0.0))
                    rows.add(result, pipeline.pop_spotter_states())
                pipeline.finish()
                rows.flush(pipeline.pop_spotter_states())
            elapsed = time.perf_counter() - t0
            events = sorted(pipeline.events, key=lambda e: (e.onset, e.id))
            meta = {
                "source": str(args.input), "fps": source.fps,
                "n_frames": pipeline.frames_processed,
                "model": pipeline.model_info,
                "spotter": dataclasses.asdict(cfg.spotter),
                "recognition": pipeline.recognition_stats,
                "degraded": pipeline.degraded,
            }
            events_json = write_events_json(out / "events.json", events, meta)
            write_events_csv(out / "events.csv", events)
        finally:
            pipeline.close()
    n = pipeline.frames_processed
    pct = 100.0 * pipeline.frames_with_face / n if n else 0.0
    n_micro = sum(e.kind == "micro" for e in events)
    n_recognised = sum(e.prediction is not None for e in events)
    parts = [f"{source.name}: {n} frames, face in {pct:.1f}%",
             f"{n / elapsed if elapsed > 0 else 0.0:.0f} frames/s processing "
             f"(track {float(np.mean(track_ms)) if track_ms else 0.0:.1f} + spot "
             f"{float(np.mean(spot_ms)) if spot_ms else 0.0:.1f} ms/frame)",
             f"{len(events)} events ({n_micro} micro, {len(events) - n_micro} macro"
             + (f", {n_recognised} recognised" if pipeline.model_info is not None else "")
             + ")"]
    model = _model_text(pipeline, recognition)
    if model:
        parts.append(model)
    parts.append(f"wrote {csv_path}, {out / 'events.csv'}, {events_json}")
    if pipeline.degraded:
        parts.append("degraded: " + "; ".join(pipeline.degraded))
    if source.notes:
        parts.append("notes: " + "; ".join(source.notes))
    print(" | ".join(parts))
    return 0
