"""``mestudio analyze INPUT --out DIR``: track, spot and recognise; write frames.csv,
events.csv and events.json.

Every output goes to a hidden temporary file in DIR and takes its name only when the run
ends (completely, or stopped with Ctrl+C), so a folder never mixes two runs and a failed
re-run leaves the previous results as they were. Ctrl+C stops after the current frame and
still writes the events found so far (``events.json``: ``"complete": false`` and the
``last_frame`` processed), then exits 130; a second Ctrl+C stops at once without writing.

The frame loop itself (pipeline, unreadable frames, stopping, frames.csv rows) is
:func:`mestudio.analysis.analyze_video`, shared with the review window; this module adds the
options, the atomic output files, Ctrl+C, the progress bar and the summary line.
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Any

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


def _model_text(info: dict[str, Any] | None, recognition: bool) -> str:
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
        self.last_frame = -1
        self._told = False
        self._previous: Any = None
        self._installed = False

    def seen(self, result: Any) -> None:
        """Note the frame just processed (``analyze_video``'s ``on_result``)."""
        self.last_frame = result.frame.index

    def check(self) -> bool:
        """Whether to stop now (``analyze_video``'s ``stop``); says so once on stderr."""
        if self.requested and not self._told:
            self._told = True
            log.warning("stopped by Ctrl+C after frame %d; writing the events found so far "
                        "(Ctrl+C again to stop at once)", self.last_frame)
        return self.requested

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

    from mestudio.analysis import analyze_video
    from mestudio.capture import open_source
    from mestudio.config import load_settings
    from mestudio.errors import ConfigError, MestudioError
    from mestudio.events_io import write_events_csv, write_events_json
    from mestudio.fsutil import atomic_path
    from mestudio.progress import ProgressBar

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
        # Nothing takes its final name before the end: a failed run leaves the folder as
        # it was, a finished (or stopped) one replaces all three files.
        with contextlib.ExitStack() as outputs:
            tmp_csv = outputs.enter_context(atomic_path(csv_path))
            tmp_json = outputs.enter_context(atomic_path(json_path))
            tmp_events_csv = outputs.enter_context(atomic_path(events_csv_path))
            with ProgressBar(show_progress(args), desc=source.name) as bar:
                res = analyze_video(source, cfg, recognition=recognition,
                                    max_frames=args.max_frames, progress=bar.update,
                                    stop=stop.check, on_result=stop.seen,
                                    frames_csv=tmp_csv,
                                    stop_finish_s=INTERRUPTED_FINISH_S)
            write_events_json(tmp_json, res.events, res.events_meta(str(args.input)))
            write_events_csv(tmp_events_csv, res.events)
    print(_summary(source.name, res, recognition, (csv_path, events_csv_path, json_path)))
    return 0 if res.complete else 130


def _summary(name: str, res: Any, recognition: bool, paths: tuple[Path, ...]) -> str:
    """The one line ``mestudio analyze`` prints (an :class:`~mestudio.analysis.AnalysisResult`)."""
    n = res.n_frames
    events = res.events
    n_micro = sum(e.kind == "micro" for e in events)
    n_recognised = sum(e.prediction is not None for e in events)
    tm = res.timings
    parts = [f"{name}: {n} frames, face in {100.0 * res.face_fraction:.1f}%",
             f"{tm.frames_per_s:.0f} frames/s processing "
             f"(track {tm.track_ms:.1f} + spot {tm.spot_ms:.1f} ms/frame)",
             f"{len(events)} events ({n_micro} micro, {len(events) - n_micro} macro"
             + (f", {n_recognised} recognised" if res.model_info is not None else "")
             + ")"]
    if not res.complete:
        parts.insert(0, f"interrupted after frame {res.last_frame} (incomplete)")
    skipped = res.unreadable_frames
    if skipped:
        shown = ", ".join(str(i) for i in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        parts.append(f"{len(skipped)} unreadable image(s) skipped (frame {shown}; status "
                     "'unreadable' in frames.csv)")
    model = _model_text(res.model_info, recognition)
    if model:
        parts.append(model)
    parts.append("wrote " + ", ".join(str(p) for p in paths))
    if res.degraded:
        parts.append("degraded: " + "; ".join(res.degraded))
    if res.notes:
        parts.append("notes: " + "; ".join(res.notes))
    return " | ".join(parts)
