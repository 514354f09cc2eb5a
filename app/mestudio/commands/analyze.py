"""``mestudio analyze INPUT --out DIR``: track, spot and recognise; write frames.csv,
events.csv and events.json.

Every output goes to a hidden temporary file in DIR and takes its name only when the run
ends (completely, or stopped with Ctrl+C), so a folder never mixes two runs and a failed
re-run leaves the previous results as they were. Ctrl+C stops after the current frame and
still writes the events found so far (``events.json``: ``"complete": false`` and the
``last_frame`` processed), then exits 130; a second Ctrl+C stops at once without writing.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any, cast

from mestudio.progress import add_progress_argument, show_progress

log = logging.getLogger(__name__)

NAME = "analyze"
HELP = ("find micro-expressions in a video, image folder, camera or the demo: writes "
        "DIR/frames.csv, DIR/events.csv and DIR/events.json")
EPILOG = ("Ctrl+C stops after the current frame: the events found so far are written "
          "(events.json says \"complete\": false and the last frame processed) and the exit "
          "code is 130; a second Ctrl+C stops at once and writes nothing. Files appear only "
          "when complete (a failed run leaves the previous ones). Exit codes: 0 done; 2 an "
          "error you can fix (bad input, --model not found, disk full, read-only folder); "
          "130 interrupted.")
#: Seconds an interrupted run still waits for the predictions of events already spotted.
INTERRUPTED_FINISH_S = 5.0


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
                        help="stop after N frames (for cameras; or press Ctrl+C, which keeps "
                             "the events found so far and exits 130)")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of an image-sequence folder (default 30)")
    add_progress_argument(parser)


def _model_text(pipeline: Any, recognition: bool) -> str:
    info = pipeline.model_info
    if info is None:
        return "" if recognition else "recognition off"
    name = info.get("name") or Path(str(info.get("path", "model"))).stem
    return f"model {name}" + (" (synthetic demo model)" if info.get("synthetic") else "")


class StopRequest:
    """Context manager that turns the first Ctrl+C (SIGINT) into a request to stop after the
    current frame (:attr:`requested`); a second Ctrl+C raises :class:`KeyboardInterrupt` as
    usual. Outside the main thread (where signals cannot be caught) it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        except ValueError:  # not the main thread
            self._installed = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


def _unreadable_result(index: int, fps: float | None) -> Any:
    """The frames.csv row of a frame the source could not decode (``status`` unreadable)."""
    import numpy as np

    from mestudio.types import FaceObservation, Frame, FrameResult

    frame = Frame(index, index / float(fps or 30.0), np.zeros((1, 1, 3), np.uint8))
    return FrameResult(frame=frame, face=FaceObservation(face_found=False),
                       info={"status": "unreadable"})


def _check_model_path(path: Path | None) -> None:
    """A ``--model`` the user named must exist (a missing *default* model is a degraded
    mode, not an error)."""
    from mestudio.errors import ModelFileError

    if path is None:
        return
    p = path.expanduser()
    if p.is_dir():
        raise ModelFileError(f"--model {path} is a folder; give a .onnx file made by "
                             "`mestudio export`")
    if not p.is_file():
        raise ModelFileError(f"--model {path} does not exist; give a .onnx file made by "
                             "`mestudio export`, or leave --model out for the shipped model")


def run(args: argparse.Namespace) -> int:
    with StopRequest() as stop:
        return _run(args, stop)


def _run(args: argparse.Namespace, stop: StopRequest) -> int:
    import contextlib
    import dataclasses

    import numpy as np

    from mestudio.capture import open_source
    from mestudio.config import load_settings
    from mestudio.csvio import FramesCsvWriter, SpotterRowBuffer, spotter_columns
    from mestudio.errors import ConfigError, MestudioError
    from mestudio.events_io import write_events_csv, write_events_json
    from mestudio.fsutil import atomic_path
    from mestudio.pipeline import Pipeline

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be at least 1")
    _check_model_path(args.model)
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
        cfg.recognition.model = str(args.model.expanduser())
        cfg.recognition.enabled = True
    out: Path = args.out
    source = open_source(args.input, cfg.capture)
    csv_path = out / "frames.csv"
    json_path = out / "events.json"
    events_csv_path = out / "events.csv"
    with source:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MestudioError(f"cannot create output folder {out}: "
                                f"{exc.strerror or exc}") from exc
        pipeline = Pipeline(cfg, spotting=True, recognition=recognition)
        last_frame = -1
        skipped: list[int] = []
        try:
            rois = pipeline.roi_names
            track_ms: list[float] = []
            spot_ms: list[float] = []
            t0 = time.perf_counter()
            # Nothing takes its final name before the end: a failed run leaves the folder
            # as it was, a finished (or stopped) one replaces all three files.
            with contextlib.ExitStack() as outputs:
                tmp_csv = outputs.enter_context(atomic_path(csv_path))
                tmp_json = outputs.enter_context(atomic_path(json_path))
                tmp_events_csv = outputs.enter_context(atomic_path(events_csv_path))
                with FramesCsvWriter(tmp_csv, pipeline.tracker.landmark_names,
                                     ("status", *spotter_columns(rois))) as writer:
                    rows = SpotterRowBuffer(cast(FramesCsvWriter, _StatusColumn(writer)),
                                            rois)
                    seen_skips = 0
                    if not stop.requested:
                        for result in pipeline.run(source, progress=show_progress(args),
                                                   max_frames=args.max_frames):
                            new_skips = list(getattr(source, "skipped", ()))[seen_skips:]
                            for index in new_skips:
                                if index < result.frame.index:
                                    rows.add(_unreadable_result(index, source.fps))
                                    skipped.append(index)
                            seen_skips += len(new_skips)
                            tm = result.timings_ms
                            track_ms.append(tm.get("track", 0.0))
                            spot_ms.append(tm.get("signal", 0.0) + tm.get("spot", 0.0))
                            rows.add(result, pipeline.pop_spotter_states())
                            last_frame = result.frame.index
                            if stop.requested:
                                break
                    for index in list(getattr(source, "skipped", ()))[seen_skips:]:
                        if not stop.requested:
                            rows.add(_unreadable_result(index, source.fps))
                            skipped.append(index)
                    if stop.requested:
                        log.warning("stopped by Ctrl+C after frame %d; writing the events "
                                    "found so far (Ctrl+C again to stop at once)", last_frame)
                        pipeline.finish_timeout_s = min(pipeline.finish_timeout_s,
                                                        INTERRUPTED_FINISH_S)
                    pipeline.finish()
                    rows.flush(pipeline.pop_spotter_states())
                elapsed = time.perf_counter() - t0
                events = sorted(pipeline.events, key=lambda e: (e.onset, e.id))
                meta = {
                    "source": str(args.input), "fps": source.fps,
                    "n_frames": pipeline.frames_processed,
                    "complete": not stop.requested,
                    "last_frame": last_frame,
                    "model": pipeline.model_info,
                    "spotter": dataclasses.asdict(cfg.spotter),
                    "recognition": pipeline.recognition_stats,
                    "degraded": pipeline.degraded,
                    "unreadable_frames": skipped,
                    "notes": list(source.notes),
                }
                write_events_json(tmp_json, events, meta)
                write_events_csv(tmp_events_csv, events)
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
    if stop.requested:
        parts.insert(0, f"interrupted after frame {last_frame} (incomplete)")
    if skipped:
        shown = ", ".join(str(i) for i in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        parts.append(f"{len(skipped)} unreadable image(s) skipped (frame {shown}; status "
                     "'unreadable' in frames.csv)")
    model = _model_text(pipeline, recognition)
    if model:
        parts.append(model)
    parts.append(f"wrote {csv_path}, {events_csv_path}, {json_path}")
    if pipeline.degraded:
        parts.append("degraded: " + "; ".join(pipeline.degraded))
    if source.notes:
        parts.append("notes: " + "; ".join(source.notes))
    print(" | ".join(parts))
    return 130 if stop.requested else 0


class _StatusColumn:
    """Wraps the frames.csv writer: fills the ``status`` column (``ok``, or the frame's
    ``info["status"]``, e.g. ``unreadable``)."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def write(self, result: Any, extra: dict[str, Any] | None = None) -> None:
        values = dict(extra or {})
        values["status"] = result.info.get("status", "ok")
        self._writer.write(result, values)
