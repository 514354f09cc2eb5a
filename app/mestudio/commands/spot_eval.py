"""``mestudio spot-eval``: MEGC spotting scores, of events.json files against truth.json files
(synthetic clips), of the application's spotter over annotated real footage, or over a
long-video dataset.

Usage::

    mestudio spot-eval --annotations real/annotations.csv --root real --out runs/real [--workers 2]
    mestudio spot-eval --pred a/events.json --truth a/truth.json [--pred b/events.json --truth b/truth.json ...]
    mestudio spot-eval --pred events.json --truth truth.json --iou 0.5 --json scores.json
    mestudio spot-eval --dataset casme_sq_lv --root /data/CASME_sq --out runs/casme_sq [--workers 2]
        [--model m.onnx] [--sensitivity 0.5] [--sweep sensitivity=0.3:0.9:0.1] [--force]

Annotated mode (``--annotations FILE --root DIR``): the CSV format of the shared development
set (:mod:`mestudio.spotting.annotated`); every clip is analysed by the application's own
pipeline as a resumable batch (``OUT/<clip>/``, skipped when complete with the same
settings, ``--force`` re-runs, ``--workers N`` at once), then scored per clip and pooled:
hit rate of the clear expressions, IoU >= 0.5 P/R/F1 of expression events against the
macro and subtle rows, false events per minute (and those inside talking/head/gaze
stretches). Writes ``OUT/scores.json``, ``OUT/scores.txt`` and ``OUT/spotting.png`` (one row
per clip: signal, threshold, annotated stretches, events).

Dataset mode (``--dataset NAME --root DIR``; NAME one of ``casme_sq_lv``, ``samm_lv``,
``casme3``): every long video of the release (:mod:`mestudio.training.datasets.longvideo`)
is analysed by :func:`mestudio.engine.analysis.analyze_video` at the release's frame rate (the
image folder is read with the dataset's fps), into ``OUT/videos/<subject>/<video>/``
(``events.json``, ``events.csv``, ``frames.csv``, the spotter's recorded inputs); a video
whose folder holds a complete analysis of the same frames with the same settings is not
re-run (``--force`` re-runs it); ``--workers N`` analyses N videos at once in spawned
processes. Scores (:mod:`mestudio.spotting.megc`): micro, macro, overall (micro + macro
counts) and any-kind, per video and pooled; with ``--model`` also STRS. ``OUT/report.md``,
``OUT/scores.csv`` and ``OUT/scores.json`` (written atomically) state the settings, the
command and the literature figures for scale. ``--sweep`` replays the recorded spotter
inputs for each value and prints the F1 curve (a setting chosen on the same videos is
optimistic).

Pairs are taken in order (the k-th ``--pred`` with the k-th ``--truth``). TP/FP/FN are
summed over the pairs, then precision, recall and F1 are printed for micro and macro
expressions separately (and for both kinds together, kind ignored). A score whose
denominator is zero (precision without predictions, recall without truth, all three when a
kind has neither) is printed ``n/a`` and written as JSON ``null``. Blinks in the truth are
not spotting targets. A missing or malformed file exits with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

NAME = "spot-eval"
HELP = ("spotting scores: events.json against synthetic truth.json, the spotter run over "
        "annotated real footage (--annotations FILE --root DIR) or over a long-video dataset "
        "(--dataset casme_sq_lv|samm_lv|casme3 --root DIR)")

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", type=Path, action="append", default=None, metavar="EVENTS",
                        help="events.json written by 'mestudio analyze' (repeat for more videos)")
    parser.add_argument("--truth", type=Path, action="append", default=None, metavar="TRUTH",
                        help="truth.json written by 'mestudio synth' (one per --pred, same order)")
    parser.add_argument("--iou", type=float, default=0.5,
                        help="minimum interval IoU for a true positive (default 0.5, MEGC)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the scores to this JSON file")
    an = parser.add_argument_group(
        "annotated real footage (--annotations FILE --root DIR; uses --out, --workers, "
        "--force, --sensitivity)")
    an.add_argument("--annotations", type=Path, default=None, metavar="FILE",
                    help="a CSV of annotated expressions (clip,face,onset,apex,offset,kind,"
                         "expression,confidence[,note]; kind macro/subtle/non-expression): "
                         "every clip under --root is analysed by the app's own spotter and "
                         "scored (hit rate, IoU >= 0.5 F1, false events per minute), with a "
                         "picture per clip")
    an.add_argument("--no-labels", action="store_true",
                    help="spotting only: do not recognise the events nor score their labels "
                         "(faster)")
    an.add_argument("--macro-model", default=None, metavar="PATH|off",
                    help="the expression model that names macro events (default: "
                         "fer2013_mini_xception.onnx when fetched; off: the micro-expression "
                         "model names them)")
    an.add_argument("--plant-micro", type=int, default=0, metavar="N",
                    help="also plant N micro-expressions (2.5 %% of the face width) on each "
                         "annotated clip, following its face, and report the recall and "
                         "precision of kind micro on these real moving faces")
    ds = parser.add_argument_group("long-video datasets (MEGC protocol)")
    ds.add_argument("--dataset", default=None, metavar="NAME",
                    help="run the spotter over every long video of a release: casme_sq_lv "
                         "(CAS(ME)^2), samm_lv (SAMM Long Videos), casme3 (CAS(ME)^3 part A)")
    ds.add_argument("--root", type=Path, default=None, metavar="DIR",
                    help="folder holding the release as distributed (sheet + frames)")
    ds.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="output folder (default: spot-eval-<dataset>)")
    ds.add_argument("--layout", default="auto", help="frame layout (default: the first present)")
    ds.add_argument("--sheet", type=Path, default=None, metavar="FILE",
                    help="annotation file, when not found under --root")
    ds.add_argument("--model", type=Path, default=None, metavar="PATH",
                    help="recognise micro events with this model and report STRS")
    ds.add_argument("--sensitivity", type=float, default=None, metavar="S",
                    help="spotting sensitivity 0..1 (default from the settings, 0.5)")
    ds.add_argument("--workers", type=int, default=1, metavar="N",
                    help="videos analysed at once, each in its own process (default 1)")
    ds.add_argument("--force", action="store_true",
                    help="re-analyse videos whose folder already holds a complete analysis "
                         "with the same settings")
    ds.add_argument("--video", action="append", default=None, metavar="PATTERN",
                    help="only the videos whose id matches this glob (repeatable), e.g. 's15/*'")
    ds.add_argument("--max-frames", type=int, default=None, metavar="N",
                    help="analyse at most N frames of each video (quick looks; scores then "
                         "cover truncated videos)")
    ds.add_argument("--sweep", default=None, metavar="NAME=START:STOP:STEP",
                    help="F1 curve over a spotter setting, e.g. sensitivity=0.3:0.9:0.1 "
                         "(replays the recorded spotter inputs; optimistic if used to choose)")


def run(args: argparse.Namespace) -> int:
    if args.annotations is not None:
        return _run_annotations(args)
    if args.dataset is not None:
        return _run_dataset(args)
    return _run_pairs(args)


def _run_pairs(args: argparse.Namespace) -> int:
    from mestudio.errors import ConfigError
    from mestudio.events_io import read_events_json, read_truth_json
    from mestudio.fsutil import atomic_write_text
    from mestudio.spotting.metrics import format_score, score_by_kind

    if not args.pred or not args.truth:
        raise ConfigError("give --pred EVENTS --truth TRUTH pairs, or --dataset NAME --root DIR")
    if len(args.pred) != len(args.truth):
        raise ConfigError(f"got {len(args.pred)} --pred but {len(args.truth)} --truth files; "
                          "give one truth.json per events.json, in the same order")
    if not 0.0 < args.iou <= 1.0:
        raise ConfigError(f"--iou must be in (0, 1], got {args.iou}")
    pairs = []
    per_video = []
    for pred_path, truth_path in zip(args.pred, args.truth, strict=True):
        events, meta = read_events_json(pred_path)
        truth, tmeta = read_truth_json(truth_path)
        pf, tf = meta.get("fps"), tmeta.get("fps")
        if pf and tf and abs(float(pf) - float(tf)) > 0.01 * float(tf):
            log.warning("%s is at %.3g fps but %s at %.3g fps: frame indices may not match",
                        pred_path, float(pf), truth_path, float(tf))
        pairs.append((events, truth))
        per_video.append((pred_path, score_by_kind([(events, truth)], iou=args.iou)))
    scores = score_by_kind(pairs, iou=args.iou)

    if len(pairs) > 1:
        print(f"{'video':<40} {'kind':<6} {'TP':>4} {'FP':>4} {'FN':>4} {'F1':>6}")
        for path, sc in per_video:
            for kind in ("micro", "macro"):
                s = sc[kind]
                print(f"{str(path)[-40:]:<40} {kind:<6} {s.tp:>4} {s.fp:>4} {s.fn:>4} "
                      f"{format_score(s.f1)}")
        print()
    print(f"MEGC spotting, IoU >= {args.iou:g}, {len(pairs)} video(s)")
    print(f"{'kind':<6} {'TP':>4} {'FP':>4} {'FN':>4} {'P':>6} {'R':>6} {'F1':>6}")
    for kind in ("micro", "macro", "all"):
        s = scores[kind]
        print(f"{kind:<6} {s.tp:>4} {s.fp:>4} {s.fn:>4} {format_score(s.precision)} "
              f"{format_score(s.recall)} {format_score(s.f1)}")
    if args.json is not None:
        doc = {"iou": args.iou, "videos": [str(p) for p in args.pred],
               "scores": {k: v.as_dict() for k, v in scores.items()}}
        atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
    return 0


# ------------------------------------------------------------------------ dataset mode
def _run_dataset(args: argparse.Namespace) -> int:
    import dataclasses
    import fnmatch
    import os
    import shlex
    import sys

    from mestudio.batch import settings_fingerprint
    from mestudio.config import load_settings
    from mestudio.engine import videojobs
    from mestudio.errors import ConfigError, DatasetError, ModelFileError
    from mestudio.spotting import megc
    from mestudio.training.datasets import get_dataset
    from mestudio.training.datasets.longvideo import LongVideoDataset

    if args.root is None:
        raise ConfigError("--dataset needs --root DIR (the folder of the release)")
    if args.pred or args.truth:
        raise ConfigError("give either --pred/--truth pairs or --dataset, not both")
    if not 0.0 < args.iou <= 1.0:
        raise ConfigError(f"--iou must be in (0, 1], got {args.iou}")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be at least 1")
    sweep = None
    if args.sweep is not None:
        try:
            sweep = megc.parse_sweep(args.sweep)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    kwargs: dict[str, object] = {"layout": args.layout}
    if args.sheet is not None:
        kwargs["sheet"] = args.sheet
    dataset = get_dataset(args.dataset, **kwargs)
    if not isinstance(dataset, LongVideoDataset):
        raise ConfigError(f"{args.dataset!r} is not a long-video release: spot-eval --dataset "
                          "takes casme_sq_lv, samm_lv or casme3")
    report, videos = dataset.long_videos(args.root)
    if args.video:
        videos = [v for v in videos if any(fnmatch.fnmatchcase(v.id, pat) for pat in args.video)]
    if not videos:
        raise DatasetError(f"no long video to score under {args.root} (see `mestudio data check "
                           f"--dataset {dataset.name} --root {args.root}`)")

    cfg = load_settings()
    cfg.capture.sequence_fps = dataset.fps
    if args.sensitivity is not None:
        if not 0.0 <= args.sensitivity <= 1.0:
            raise ConfigError(f"--sensitivity must be between 0 and 1, got {args.sensitivity}")
        cfg.spotter.sensitivity = float(args.sensitivity)
    recognition = args.model is not None
    if recognition:
        model = args.model.expanduser()
        if not model.is_file():
            raise ModelFileError(f"--model {args.model} does not exist; give a .onnx file made "
                                 "by `mestudio export`")
        cfg.recognition.model = str(model)
        cfg.recognition.enabled = True
    cfg = dataclasses.replace(cfg, recognition=dataclasses.replace(cfg.recognition, threads=1))
    shash = settings_fingerprint(cfg, recognition, args.max_frames)
    out = Path(os.path.abspath((args.out or Path(f"spot-eval-{dataset.name}")).expanduser()))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    jobs = [videojobs.VideoJob(video_id=v.id, paths=tuple(str(p) for p in v.paths), fps=v.fps,
                          out_dir=str(out / "videos" / v.id), config=cfg,
                          recognition=recognition, max_frames=args.max_frames,
                          settings_hash=shash, force=args.force) for v in videos]

    def done(i: int, r: dict) -> None:
        log.info("%d/%d %s: %s%s", i + 1, len(jobs), r["video"], r["status"],
                 f" ({r['error']})" if r.get("error") else "")

    results = videojobs.run_videos(jobs, workers=min(args.workers, len(jobs)), on_done=done)
    command = "mestudio " + shlex.join(_argv_of(args))
    evaluation = megc.evaluate(videos, jobs, results, dataset, iou=args.iou,
                               recognition=recognition, sweep=sweep, base_config=cfg.spotter)
    paths = megc.write_report(out, evaluation, dataset=dataset, report=report,
                              spotter=dataclasses.asdict(cfg.spotter), command=command,
                              iou=args.iou, max_frames=args.max_frames)
    print(megc.format_summary(evaluation, iou=args.iou))
    failed = [r for r in results if r.get("status") == "failed"]
    for r in failed:
        print(f"mestudio spot-eval: failed: {r['video']}: {r['error']}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 1 if failed else 0


def _run_annotations(args: argparse.Namespace) -> int:
    """Analyse every annotated clip (resumable batch, ``--workers``) and score the events."""
    import os
    import sys

    import numpy as np

    from mestudio.batch import make_jobs, run_batch
    from mestudio.config import load_settings
    from mestudio.csvio import VideoSignals, read_frames_csv
    from mestudio.errors import ConfigError
    from mestudio.events_io import read_events_json
    from mestudio.fsutil import atomic_write_text
    from mestudio.progress import ProgressBar, show_progress
    from mestudio.spotting import annotated as an

    if args.root is None:
        raise ConfigError("--annotations needs --root DIR (the folder of the clips)")
    if args.dataset is not None or args.pred or args.truth:
        raise ConfigError("give --annotations alone, not with --dataset or --pred/--truth")
    if not 0.0 < args.iou <= 1.0:
        raise ConfigError(f"--iou must be in (0, 1], got {args.iou}")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if not 0 <= args.plant_micro <= 5:
        raise ConfigError(f"--plant-micro must be between 0 and 5 (per clip), got "
                          f"{args.plant_micro}")
    rows = an.read_annotations(args.annotations.expanduser())
    root = args.root.expanduser()
    clips = an.clips_of(rows)
    missing = [c for c in clips if not an.clip_path(root, c).is_file()]
    if missing:
        raise ConfigError(f"{len(missing)} annotated clip(s) not found under {root}: "
                          + ", ".join(str(an.clip_path(root, c)) for c in missing[:3]))
    cfg = load_settings()
    if args.sensitivity is not None:
        if not 0.0 <= args.sensitivity <= 1.0:
            raise ConfigError(f"--sensitivity must be between 0 and 1, got {args.sensitivity}")
        cfg.spotter.sensitivity = float(args.sensitivity)
    out = Path(os.path.abspath((args.out or Path("spot-eval-annotated")).expanduser()))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder")
    from mestudio.commands.analyze import check_macro_model

    macro = check_macro_model(args.macro_model)
    if macro is not None:
        cfg.recognition.macro_model = macro
    labels = not args.no_labels
    inputs = [str(an.clip_path(root, c)) for c in clips]
    jobs = make_jobs(inputs, out, cfg, recognition=labels, max_frames=args.max_frames,
                     force=args.force)
    enabled = show_progress(args)
    with ProgressBar(enabled, desc="clips", unit="clip") as bar:
        done = [0]
        bar.update(0, len(jobs))

        def on_done(i: int, result: Any) -> None:
            done[0] += 1
            bar.update(done[0], len(jobs))

        report = run_batch(jobs, out, workers=min(args.workers, len(jobs)), on_done=on_done)
    scores, pictures, failed, label_rows = [], [], [], []
    for clip, job, res in zip(clips, jobs, report.results, strict=True):
        if res.status not in ("ok", "skipped"):
            failed.append(f"{clip}: {res.error or res.status}")
            continue
        folder = Path(job.out_dir)
        events, meta = read_events_json(folder / "events.json")
        events = [e for e in events if e.face_id == 0]
        fps = float(meta.get("fps") or 0.0)
        n = int(meta.get("n_frames") or 0)
        scores.append(an.score_clip(clip, rows, events, n, fps, iou=args.iou))
        if labels:
            label_rows += an.label_rows(clip, rows, events)
        signal = read_frames_csv(folder / "frames.csv", n) or VideoSignals(np.zeros(0))
        pictures.append({"name": clip, "signal": signal,
                         "rows": [r for r in rows if r.clip == clip], "events": events})
    if not scores:
        for f in failed:
            print(f"mestudio spot-eval: failed: {f}", file=sys.stderr)
        return 1
    table = an.format_table(scores)
    print(table)
    planted = _planted_micro(args, clips, root, cfg) if args.plant_micro > 0 else None
    missed = an.pooled(scores).missed
    if missed:
        print("missed: " + "; ".join(missed))
    label_doc = None
    if labels:
        label_rows = _apex_labels(label_rows, root, cfg)
        label_doc = an.label_summary(label_rows)
        label_text = an.format_labels(label_doc)
        print(label_text)
        table = f"{table}\n\n{label_text}"
        label_doc["rows"] = [r.as_dict() for r in label_rows]
    doc = {"annotations": str(args.annotations), "root": str(root), "iou": args.iou,
           "spotter": dataclasses.asdict(cfg.spotter),
           "clips": [s.as_dict() for s in scores], "pooled": an.pooled(scores).as_dict(),
           "labels": label_doc, "planted_micro": planted}
    paths = [atomic_write_text(out / "scores.json", json.dumps(doc, indent=2) + "\n"),
             atomic_write_text(out / "scores.txt", table + "\n"),
             an.plot_clips(out / "spotting.png", pictures)]
    for f in failed:
        print(f"mestudio spot-eval: failed: {f}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 1 if failed else 0


def _apex_labels(rows: list[Any], root: Path, cfg: Any) -> list[Any]:
    """The expression model's label of each row's annotated apex frame (aligned like the
    live crops: the face found on that frame); rows unchanged without an expression model."""
    import dataclasses as dc

    from mestudio.capture import open_source
    from mestudio.errors import MestudioError
    from mestudio.inference.engine import expression_engine_from_config
    from mestudio.preprocess import FACE, PreprocessConfig, align_keyframes, model_inputs
    from mestudio.spotting import annotated as an

    try:
        engine = expression_engine_from_config(cfg.recognition)
    except MestudioError as exc:
        print(f"no expression model for the apex frames: {exc}")
        return rows
    if engine is None:
        print("no expression model for the apex frames (mestudio models fetch fer-expression)")
        return rows
    pre = PreprocessConfig.from_metadata(engine.preprocess_config)
    out = []
    sources: dict[str, Any] = {}  # one frame-exact source per clip
    try:
        for r in rows:
            try:
                if r.clip not in sources:
                    sources[r.clip] = open_source(str(an.clip_path(root, r.clip)))
                frame = sources[r.clip].read(r.apex).image
                crop = align_keyframes([frame], cfg.tracker.align_size, cfg.tracker)[0]
            except (MestudioError, ValueError) as exc:
                print(f"{r.clip} frame {r.apex}: no apex label ({exc})")
                out.append(r)
                continue
            pred = engine.predict(model_inputs(FACE, [[crop]], pre), cam=False)[0]
            out.append(dc.replace(r, apex_raw=pred.label,
                                  apex_label=None if pred.emotion is None else
                                  an.three_class(pred.label)))
    finally:
        for src in sources.values():
            src.close()
    engine.close()
    return out


def _planted_micro(args: argparse.Namespace, clips: list[str], root: Path,
                   cfg: Any) -> dict[str, Any]:
    """Micro-expressions planted on every annotated clip (its first 10 s), spotted by the
    configured spotter: recall and precision of kind micro, printed and returned."""
    from mestudio.bench.spotting import planted_on_real, replay
    from mestudio.progress import ProgressBar, show_progress
    from mestudio.spotting import annotated as an
    from mestudio.spotting.config import make_spotter
    from mestudio.spotting.metrics import format_score, score_by_kind

    runs = []
    with ProgressBar(show_progress(args), desc="planting", unit="clip") as bar:
        for i, clip in enumerate(clips):
            bar.update(i, len(clips))
            for sig, truth in planted_on_real([an.clip_path(root, clip)], seconds=10.0,
                                              per_clip=args.plant_micro):
                runs.append((replay(sig, cfg.spotter, make_spotter), truth))
        bar.update(len(clips), len(clips))
    s = score_by_kind(runs)["micro"]
    print(f"micro-expressions planted on the real clips ({s.tp + s.fn} planted): recall "
          f"{format_score(s.recall, 0, 2)}, precision {format_score(s.precision, 0, 2)}, "
          f"F1 {format_score(s.f1, 0, 2)}")
    return {"planted": s.tp + s.fn, "found": s.tp, "false": s.fp, "recall": s.recall,
            "precision": s.precision, "f1": s.f1}


def _argv_of(args: argparse.Namespace) -> list[str]:
    """The options of a dataset run as a command line (when not run from the console)."""
    argv = ["spot-eval", "--dataset", str(args.dataset), "--root", str(args.root)]
    for flag, value in (("--out", args.out), ("--model", args.model),
                        ("--sensitivity", args.sensitivity), ("--sweep", args.sweep),
                        ("--max-frames", args.max_frames), ("--sheet", args.sheet)):
        if value is not None:
            argv += [flag, str(value)]
    if args.layout != "auto":
        argv += ["--layout", args.layout]
    if args.iou != 0.5:
        argv += ["--iou", str(args.iou)]
    if args.workers != 1:
        argv += ["--workers", str(args.workers)]
    for pat in args.video or []:
        argv += ["--video", pat]
    if args.force:
        argv.append("--force")
    return argv
