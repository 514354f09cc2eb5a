"""``mestudio analyze INPUT... --out DIR``: track, spot and recognise; write frames.csv,
events.csv and events.json.

One input (a video file, a folder of numbered images, camera:N, demo): the three files go
straight into DIR. Every output goes to a hidden temporary file in DIR and takes its name
only when the run ends (completely, or stopped with Ctrl+C), so a folder never mixes two
runs and a failed re-run leaves the previous results as they were. Ctrl+C stops after the
current frame and still writes the events found so far (``events.json``: ``"complete":
false`` and the ``last_frame`` processed), then exits 130; a second Ctrl+C stops at once
without writing.

Several inputs (or a folder of videos, or ``@list.txt``, or ``--ray``): a batch
(:mod:`mestudio.batch`): ``DIR/<name>/`` per input and ``DIR/summary.csv``; inputs already
analysed with the same settings are skipped (``--force`` redoes them); ``--workers N``
runs N at once in separate processes, ``--ray [ADDRESS]`` as Ray tasks. Exit 0 when every
input succeeded, 1 when some failed (listed on stderr, one line each), 2 for a usage
mistake, 130 when interrupted.

The frame loop itself (pipeline, unreadable frames, stopping, frames.csv rows) is
:func:`mestudio.engine.analysis.analyze_video`, shared with the review window; the files of one
input are :func:`mestudio.batch.analyze_to_folder`; this module adds the options, Ctrl+C,
the progress bars and the summary lines.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from mestudio.progress import add_progress_argument, show_progress

log = logging.getLogger(__name__)

NAME = "analyze"
HELP = ("find micro-expressions in a video, image folder, camera or the demo: writes "
        "DIR/frames.csv, DIR/events.csv and DIR/events.json; several inputs: one folder each "
        "and DIR/summary.csv")
EPILOG = ("Ctrl+C stops after the current frame: the events found so far are written "
          "(events.json says \"complete\": false and the last frame processed) and the exit "
          "code is 130; a second Ctrl+C stops at once and writes nothing. Files appear only "
          "when complete (a failed run leaves the previous ones). Several inputs (a batch): "
          "DIR/<name>/ per input and DIR/summary.csv; inputs already analysed with the same "
          "settings are skipped (--force redoes them). Exit codes: 0 done; 1 some inputs of "
          "a batch failed (listed on stderr); 2 an error you can fix (bad input, --model not "
          "found, disk full, read-only folder, Ray missing or storage not shared); 130 "
          "interrupted.")
#: ``--ray`` given without an address: ``$RAY_ADDRESS``, else a local Ray.
RAY_DEFAULT = "local"
#: Seconds an interrupted run still waits for the predictions of events already spotted.
INTERRUPTED_FINISH_S = 5.0


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT", nargs="+",
                        help="video file, folder of numbered images, camera:N, or demo; "
                             "several of them, a folder of videos or @list.txt (one path a "
                             "line, # comments; relative to the list's folder) for a batch")
    parser.add_argument("--out", "-o", type=Path, required=True, metavar="DIR",
                        help="output folder (created; frames.csv, events.csv and events.json "
                             "are written there; for a batch DIR/<name>/ per input and "
                             "DIR/summary.csv)")
    parser.add_argument("--model", type=Path, default=None, metavar="PATH",
                        help="recognition model (.onnx made by `mestudio export`; default: the "
                             "shipped models/m3enet_synthetic.onnx)")
    parser.add_argument("--macro-model", default=None, metavar="PATH|off",
                        help="expression model that names macro events (default: "
                             "fer2013_mini_xception.onnx when `mestudio models fetch` has built "
                             "it; off: the recognition model names them as micro-expressions)")
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
    add_face_arguments(parser)
    batch = parser.add_argument_group("batches (several inputs)")
    batch.add_argument("--workers", type=int, default=None, metavar="N",
                       help="inputs analysed at once, each in its own process with one thread "
                            "(default: the number of cores, at most the number of inputs); "
                            "with --ray: the CPUs of the local Ray")
    batch.add_argument("--force", action="store_true",
                       help="analyse again the inputs whose folder already holds a complete "
                            "analysis with the same settings (skipped otherwise)")
    batch.add_argument("--ray", nargs="?", const=RAY_DEFAULT, default=None, metavar="ADDRESS",
                       help="run the inputs as Ray tasks: on a local Ray started here, or on "
                            "the cluster at ADDRESS (host:port, ray://host:port, auto; or "
                            "$RAY_ADDRESS); inputs and DIR must be on storage every node "
                            "sees. Needs pip install \"mestudio[cluster]\". Write --ray=ADDRESS "
                            "or put --ray after the inputs")
    add_progress_argument(parser)


FACE_CHOICES = ("primary", "all")


def add_face_arguments(parser: argparse.ArgumentParser) -> None:
    """``--faces primary|all`` and ``--max-faces N`` (also used by ``live`` and ``kiosk``);
    :func:`apply_face_arguments` puts them into the settings."""
    parser.add_argument("--faces", choices=FACE_CHOICES, default=None,
                        help="primary: the largest face only (default, from the settings); "
                             "all: every face, each with its own number (face_id), signal "
                             "and events")
    parser.add_argument("--max-faces", type=int, default=None, metavar="N",
                        help="with --faces all: most faces analysed at once, largest first "
                             "(default from the settings, 4)")


def apply_face_arguments(args: argparse.Namespace, cfg: Any) -> Any:
    """Set ``cfg.tracker.faces`` / ``max_faces`` from ``--faces`` / ``--max-faces`` (in
    place; returns ``cfg``). Raises ConfigError (one line, exit 2) for ``--max-faces`` < 1."""
    from mestudio.errors import ConfigError

    faces = getattr(args, "faces", None)
    max_faces = getattr(args, "max_faces", None)
    if max_faces is not None and max_faces < 1:
        raise ConfigError(f"--max-faces must be at least 1, got {max_faces}")
    if faces is not None:
        if faces not in FACE_CHOICES:
            raise ConfigError(f"--faces must be one of {', '.join(FACE_CHOICES)}, "
                              f"got {faces!r}")
        cfg.tracker.faces = faces
    if max_faces is not None:
        cfg.tracker.max_faces = int(max_faces)
    return cfg


def _model_text(info: dict[str, Any] | None, recognition: bool) -> str:
    if info is None:
        return "" if recognition else "recognition off"
    name = info.get("name") or Path(str(info.get("path", "model"))).stem
    return f"model {name}" + (" (synthetic demo model)" if info.get("synthetic") else "")


class StopRequest:
    """Context manager that turns the first Ctrl+C (SIGINT) or termination request (SIGTERM:
    ``kill``, a service manager, a closing session) into a request to stop after the
    current frame (:attr:`requested`): what was found so far is written. A second one
    raises :class:`KeyboardInterrupt` as usual. Outside the main thread (where signals
    cannot be caught) it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self.last_frame = -1
        self._told = False
        self._previous: dict[int, Any] = {}
        self._installed = False

    def seen(self, result: Any) -> None:
        """Note the frame just processed (``analyze_video``'s ``on_result``)."""
        self.last_frame = result.frame.index

    def check(self) -> bool:
        """Whether to stop now (``analyze_video``'s ``stop``); says so once on stderr."""
        if self.requested and not self._told:
            self._told = True
            log.warning("stopped by Ctrl+C or a termination signal after frame %d; writing "
                        "the events found so far (Ctrl+C again to stop at once)",
                        self.last_frame)
        return self.requested

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        try:
            for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
            self._installed = True
        except ValueError:  # not the main thread
            self._installed = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)
            self._previous.clear()
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


def check_macro_model(value: str | None) -> str | None:
    """``--macro-model``: ``off``, or a file that exists (a missing *default* expression
    model is a degraded mode, a missing named one an error); the value to store."""
    from mestudio.errors import ModelFileError

    if value is None:
        return None
    choice = str(value).strip()
    if choice.lower() == "off":
        return "off"
    p = Path(choice).expanduser()
    if not p.is_file():
        raise ModelFileError(f"--macro-model {value} is not a file; give the .onnx that "
                             "`mestudio models fetch fer-expression` builds, or off")
    return str(p)


def run(args: argparse.Namespace) -> int:
    with StopRequest() as stop:
        return _run(args, stop)


def _settings(args: argparse.Namespace) -> tuple[Any, bool]:
    """The settings of this run (the saved ones with the options applied) and whether to
    recognise."""
    from mestudio.config import load_settings
    from mestudio.errors import ConfigError

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be at least 1")
    _check_model_path(args.model)
    cfg = apply_face_arguments(args, load_settings())
    if args.fps is not None:
        if not args.fps > 0:
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
    macro = check_macro_model(args.macro_model)
    if macro is not None:
        cfg.recognition.macro_model = macro
    return cfg, recognition


def _run(args: argparse.Namespace, stop: StopRequest) -> int:
    from mestudio.batch import is_collection

    inputs: list[str] = list(args.input)
    ray = getattr(args, "ray", None)
    if ray is not None and ray != RAY_DEFAULT:
        from mestudio.batch import is_ray_address

        if not is_ray_address(ray):  # `--ray a.mp4 b.mp4`: an input, not an address
            inputs.insert(0, ray)
            ray = RAY_DEFAULT
    if len(inputs) == 1 and ray is None and not is_collection(inputs[0]):
        return _run_one(args, inputs[0], stop)
    return _run_batch(args, inputs, ray, stop)


def _run_one(args: argparse.Namespace, spec: str, stop: StopRequest) -> int:
    from mestudio.batch import analyze_to_folder
    from mestudio.capture import open_source
    from mestudio.engine.pipeline import Pipeline
    from mestudio.progress import ProgressBar

    cfg, recognition = _settings(args)
    out: Path = args.out
    source = open_source(spec, cfg.capture)
    with source, contextlib.closing(Pipeline.from_config(cfg, recognition=recognition)) as pipe:
        # Said before the work, not only in the summary: without the face models a long
        # recording takes several times longer, and the user can stop and fetch them.
        for line in pipe.degraded:
            print(f"mestudio analyze: warning: {line}", file=sys.stderr, flush=True)
        with ProgressBar(show_progress(args), desc=source.name) as bar:
            res, paths = analyze_to_folder(source, out, cfg, recognition=recognition,
                                           source_label=str(spec),
                                           max_frames=args.max_frames, progress=bar.update,
                                           stop=stop.check, on_result=stop.seen,
                                           stop_finish_s=INTERRUPTED_FINISH_S, pipeline=pipe)
    print(_summary(source.name, res, recognition, paths))
    return 0 if res.complete else 130


def _run_batch(args: argparse.Namespace, specs: list[str], ray: str | None,
               stop: StopRequest) -> int:
    import os
    import sys

    from mestudio.batch import expand_inputs, make_jobs, run_batch
    from mestudio.errors import ConfigError
    from mestudio.progress import ProgressBar

    cfg, recognition = _settings(args)
    inputs = expand_inputs(specs)
    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    workers = args.workers or min(os.cpu_count() or 1, len(inputs))
    address = None
    out = Path(os.path.abspath(args.out.expanduser()))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder")
    if ray is not None:
        from mestudio.batch import check_storage
        from mestudio.raysupport import import_ray

        address = (os.environ.get("RAY_ADDRESS") or None) if ray == RAY_DEFAULT else ray
        check_storage(out, inputs)
        import_ray()  # says how to install it before anything runs
    jobs = make_jobs(inputs, out, cfg, recognition=recognition, max_frames=args.max_frames,
                     force=args.force)
    names = {i: Path(j.out_dir).name for i, j in enumerate(jobs)}
    enabled = show_progress(args)
    with ProgressBar(enabled, desc="inputs", unit="input") as inputs_bar, \
            ProgressBar(enabled, desc="", unit="frame") as frames_bar:
        finished = [0]
        inputs_bar.update(0, len(jobs))

        def on_start(i: int, job: Any) -> None:
            frames_bar.close()
            frames_bar.desc = names[i]

        def on_done(i: int, result: Any) -> None:
            finished[0] += 1
            inputs_bar.update(finished[0], len(jobs))
            if result.status == "interrupted":
                log.warning("%s: stopped after %s frames (outputs marked incomplete)",
                            names[i], result.frames)

        told = [False]

        def stop_requested() -> bool:
            if stop.requested and not told[0]:
                told[0] = True
                log.warning("stopped by Ctrl+C: the inputs not started are cancelled, the "
                            "running ones stop after their current frame and keep what they "
                            "found (Ctrl+C again to stop at once)")
            return stop.requested

        report = run_batch(jobs, out, workers=workers, ray=address, use_ray=ray is not None,
                           stop=stop_requested, on_start=on_start, on_done=on_done,
                           frame_progress=frames_bar.update)
    failed = [r for r in report.results if r.status == "failed"]
    for r in failed:
        text = r.error if r.error.startswith(r.input) else f"{r.input}: {r.error}"
        print(f"mestudio analyze: failed: {text}", file=sys.stderr)
    how = {"serial": "one at a time", "processes": f"{report.workers} worker processes",
           "ray": f"Ray ({address or f'local, {report.workers} CPUs'})"}[report.mode]
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items())
    print(f"{len(jobs)} inputs: {counts} | {how}, {report.wall_s:.1f} s | wrote "
          f"{report.summary_path} and one folder per input in {out}")
    if report.interrupted:
        return 130
    return 1 if failed else 0


def _summary(name: str, res: Any, recognition: bool, paths: tuple[Path, ...]) -> str:
    """The one line ``mestudio analyze`` prints (an :class:`~mestudio.engine.analysis.AnalysisResult`)."""
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
