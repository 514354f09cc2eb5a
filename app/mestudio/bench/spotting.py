"""``mestudio bench spotting``: the spotter's false-event budget on real, event-free footage
next to its F1 on planted events, at several sensitivities.

* **False events** — the project's real footage without planted events: a still face
  (the first, neutral frame of ``single_face.mp4`` with sensor noise; from frame ~17 on
  that person breaks into a broad smile — a real macro-expression, so the clip itself is
  not event-free, and ping-ponging a short stretch of it turns its slow drift into a
  periodic movement) and ``frontal_speech.mp4`` (a person talking), each played for
  ``--minutes`` in ping-pong order (forward, backward, forward, …: no jump at the loop
  points) with a small, smooth brightness and scale drift (new random values every 3 s,
  interpolated, never a jump), all in memory. Every micro event spotted there is false; macro events are reported too (talking
  is real facial movement and may give macro events).
* **Planted events** — :func:`mestudio.synth.synthesize_clip` clips (320×240, 30 fps, 20 s,
  the tests' settings: micro-expressions at 1–3 % of the face width, blinks, a macro
  distractor, head motion, illumination drift, sensor noise) for ``--seeds`` seeds, scored
  with the MEGC protocol (:func:`mestudio.spotting.metrics.score_by_kind`); plus one
  **recovery** clip per seed: a long, large movement (7 s, 6–7 % of the face width) followed
  ~1 s later by a quieter broad expression (1.5 s, 4 %) and micro-expressions before and
  after — the second macro and the later micros must still be found (the baseline and the
  noise unit must recover after a long movement).

* **Annotated real footage** — the shared development set (``data/real``, its
  ``annotations.csv``): hit rate of the clear expressions, IoU >= 0.5 F1 against the
  expression rows, false events per minute (:mod:`mestudio.spotting.annotated`, the scores
  of ``spot-eval --annotations``).
* **Micro-expressions planted on real moving faces** — :func:`synthesize_clip` on the
  talking/expressive real clips (the face followed every frame, 3 micro-expressions of
  2.5 % of the face width per 8 s, nothing else added): recall and precision of kind micro.

The ROI signal does not depend on the sensitivity: each clip is tracked and its signal
computed once, then replayed through a new spotter per sensitivity (the same events as a
full run): ``expression`` (the default,
:class:`~mestudio.spotting.expression.ExpressionSpotter`) and ``threshold`` (the
flow-threshold :class:`~mestudio.spotting.spotter.OnlineSpotter` alone).
``--compare FILE`` replays the same signals through another spotter module (e.g. a copy of
an older ``spotter.py``) for before/after figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

HELP = ("spotting: false micro events per minute on real event-free clips (looped) next to "
        "F1 on planted events, per sensitivity")

REAL_CLIPS: tuple[tuple[str, tuple[int, int] | None], ...] = (
    ("single_face.mp4", (0, 0)),     # its first (neutral) frame: a still face
    ("frontal_speech.mp4", None),    # talking
)
STILL_NOISE = 2.0
"""Sensor noise (grey levels) added to a one-frame still clip."""
SIZE = (320, 240)

#: ``(frame index, timestamp, ROI magnitudes or None, ROI displacement vectors or None)``
Signals = list[tuple[int, float, dict[str, float] | None, np.ndarray | None]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sensitivities", default="0.3,0.5,0.7",
                        help="comma-separated sensitivities (default 0.3,0.5,0.7)")
    parser.add_argument("--minutes", type=float, default=5.0,
                        help="length each real clip is looped to (minutes, default 5)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="synthetic clips (seeds 0..N-1) for F1 (default 3; 0 = none)")
    parser.add_argument("--videos", type=Path, action="append", default=None,
                        help="an event-free video to loop (repeatable; default: the first frame "
                             "of single_face.mp4 as a still face, and frontal_speech.mp4, "
                             "of the shared data)")
    parser.add_argument("--no-recovery", action="store_true",
                        help="skip the long-movement recovery clips")
    parser.add_argument("--compare", type=Path, default=None,
                        help="also replay the signals through the OnlineSpotter of this "
                             "Python file (e.g. an older spotter.py) for before/after figures")


# ------------------------------------------------------------------------------ sources
def looped_frames(frames: Sequence[Any], fps: float, minutes: float, seed: int = 0,
                  gain: float = 0.08, scale: float = 0.03, jitter_every_s: float = 3.0,
                  noise_std: float = 0.0) -> Iterator[Any]:
    """``frames`` (:class:`~mestudio.types.Frame`) played for ``minutes`` in ping-pong order
    with a smooth brightness (``±gain``) and scale (``±scale``) drift (random values every
    ``jitter_every_s`` seconds, linearly interpolated: no jumps) and, optionally, Gaussian
    sensor noise of ``noise_std`` grey levels per frame; new :class:`Frame` objects with
    continuous indices and timestamps ``i / fps``. A single frame gives a still face."""
    import cv2

    from mestudio.types import Frame

    n = len(frames)
    total = max(1, int(round(minutes * 60.0 * fps)))
    rng = np.random.default_rng(seed)
    period = max(1, n - 1)
    knots = int(total / fps / jitter_every_s) + 2
    gains = np.r_[1.0, 1.0 + rng.uniform(-gain, gain, knots)]
    scales = np.r_[1.0, 1.0 + rng.uniform(-scale, scale, knots)]
    for i in range(total):
        k, r = divmod(i, period)
        pos = 0 if n == 1 else (r if k % 2 == 0 else period - r)
        img = frames[pos].image
        kk, a = divmod(i / fps / jitter_every_s, 1.0)
        j = int(kk)
        g = (1 - a) * gains[j] + a * gains[j + 1]
        s = (1 - a) * scales[j] + a * scales[j + 1]
        h, w = img.shape[:2]
        if abs(s - 1.0) > 1e-4:
            m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), 0.0, float(s))
            img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT)
        if noise_std > 0:
            noisy = img.astype(np.float32) * float(g) + rng.normal(0.0, noise_std, img.shape)
            img = np.clip(noisy, 0, 255).astype(np.uint8)
        elif abs(g - 1.0) > 1e-4:
            img = cv2.convertScaleAbs(img, alpha=float(g))
        yield Frame(i, i / fps, img)


def compute_signals(frames: Iterator[Any], config: Any) -> Signals:
    """Track the face and compute the ROI signal of every frame once."""
    from mestudio.face.tracker import FaceTracker
    from mestudio.spotting.signal import RoiSignal

    tracker, signal = FaceTracker(), RoiSignal(config)
    out: Signals = []
    for frame in frames:
        face = tracker.update(frame)
        t = float(frame.timestamp_s)
        values = signal.update(face, t)
        vectors = signal.last_vectors
        out.append((int(frame.index), t, values,
                    None if values is None or vectors is None else vectors.copy()))
    return out


def replay(signals: Signals, config: Any, spotter_cls: Any = None) -> list[Any]:
    """The events of ``spotter_cls(config)`` (default :class:`OnlineSpotter`) on
    recorded signals."""
    if spotter_cls is None:
        from mestudio.spotting.spotter import OnlineSpotter as spotter_cls
    sp = spotter_cls(config)
    events: list[Any] = []
    for index, t, values, vectors in signals:
        events += sp.update(index, t, values, vectors=vectors)
    events += sp.finish()
    return events


def recovery_clip(seed: int, fps: float = 30.0, after_s: float = 7.0,
                  ) -> tuple[Any, tuple[int, int]]:
    """A long, noisy stretch of large movements (four overlapping macro-expressions of
    brows, nose and mouth at 5-7 % of the face width, about 7 s in all: the "crying") followed
    0.5-1 s later by a quieter broad expression (happiness, 1.5 s, 4 %: the "laugh"), with
    micro-expressions before and after (those after only when ``after_s`` leaves room:
    at 3 and 5 s after the laugh's onset). Returns the clip and the stretch's frame
    interval (inclusive); only the events outside the stretch are scored."""
    from mestudio.synth import synthesize_clip
    from mestudio.synth.events import make_event

    rng = np.random.default_rng([seed, 15])

    def f(s: float) -> int:
        return int(round(s * fps))

    start = 3.0
    stretch = []
    for j, label in enumerate(("disgust", "sadness", "disgust", "sadness")):
        on = start + 1.5 * j + rng.uniform(-0.2, 0.2)
        stretch.append(make_event("macro", label, f(on), f(rng.uniform(0.6, 1.0)), f(2.5),
                                  fps, float(rng.uniform(0.05, 0.07))))
    end_f = max(e.offset for e in stretch)
    laugh_on = end_f / fps + rng.uniform(0.5, 1.0)
    events = [
        make_event("micro", "surprise", f(1.6), f(0.08), f(0.3), fps, 0.02),
        *stretch,
        make_event("macro", "happiness", f(laugh_on), f(0.4), f(1.5), fps, 0.04),
        make_event("micro", "disgust", f(laugh_on + 3.0), f(0.08), f(0.35), fps, 0.025),
        make_event("micro", "happiness", f(laugh_on + 5.0), f(0.08), f(0.3), fps, 0.025),
    ]
    events = [e for e in events if e.offset_s < laugh_on + after_s - 0.5]
    clip = synthesize_clip(fps=fps, duration_s=laugh_on + after_s, seed=seed, size=SIZE,
                           events=events)
    return clip, (min(e.onset for e in stretch), end_f)


def outside(events: list[Any], truth: list[dict[str, Any]], span: tuple[int, int],
            ) -> tuple[list[Any], list[dict[str, Any]]]:
    """Spotted events whose apex and planted events whose onset lie outside ``span``."""
    lo, hi = span
    return ([e for e in events if not lo <= e.apex <= hi],
            [t for t in truth if not lo <= t["onset"] <= hi])


def _clip_frames(clip: Any) -> Iterator[Any]:
    from mestudio.types import Frame

    for i in range(clip.n_frames):
        yield Frame(i, float(clip.timestamps[i]), clip.frame(i))


def _load_spotter(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("mestudio_bench_compare_spotter", path)
    if spec is None or spec.loader is None:
        from mestudio.errors import ConfigError

        raise ConfigError(f"--compare: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.OnlineSpotter


# ---------------------------------------------------------------------------------- run
def _score(runs: list[tuple[list[Any], list[dict[str, Any]]]]) -> dict[str, Any]:
    from mestudio.spotting.metrics import score_by_kind

    sc = score_by_kind(runs)
    out: dict[str, Any] = {}
    for kind in ("micro", "macro"):
        s = sc[kind]
        out[kind] = {"tp": s.tp, "fp": s.fp, "fn": s.fn, "f1": s.f1,
                     "recall": s.recall, "precision": s.precision}
    return out


def _fmt(x: float | None) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:5.2f}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from mestudio.capture import open_source
    from mestudio.shareddata import shared_data_dir, use_shared_models
    from mestudio.spotting.config import SpotterConfig

    use_shared_models()
    sens = [float(x) for x in str(args.sensitivities).split(",") if x.strip()]
    base_cfg = SpotterConfig()
    from mestudio.spotting.config import make_spotter

    spotters: dict[str, Any] = {
        "expression": lambda cfg: make_spotter(replace(cfg, method="expression")),
        "threshold": lambda cfg: make_spotter(replace(cfg, method="threshold"))}
    if args.compare:
        spotters["compare"] = _load_spotter(Path(args.compare))
    t_start = time.perf_counter()

    # Real, event-free clips.
    videos: list[tuple[Path, tuple[int, int] | None]] = [
        (Path(v), None) for v in args.videos or []]
    if not videos:
        data = shared_data_dir()
        videos = [(data / "video" / n, r) for n, r in REAL_CLIPS] if data else []
    real: dict[str, tuple[Signals, float]] = {}
    for k, (path, span) in enumerate(videos):
        if not path.is_file():
            print(f"{path.name}: not found (set MESTUDIO_TEST_DATA), skipped")
            continue
        with open_source(path) as src:
            frames = list(src)
            fps = float(src.fps or 30.0)
        if span is not None:
            frames = frames[span[0]:span[1] + 1]
        if not frames:
            continue
        t0 = time.perf_counter()
        noise = STILL_NOISE if len(frames) == 1 else 0.0
        sig = compute_signals(looped_frames(frames, fps, args.minutes, seed=k,
                                            noise_std=noise), base_cfg)
        minutes = (sig[-1][1] + 1.0 / fps) / 60.0
        label = path.name + (f"[{span[0]}-{span[1]}]" if span is not None else "")
        label = label.replace("[0-0]", "[still]")
        real[label] = (sig, minutes)
        print(f"{label}: {len(frames)} frames looped to {minutes:.1f} min "
              f"({len(sig)} frames, {sum(v is not None for *_, v in sig)} with a face) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    # Synthetic clips with planted events.
    from mestudio.synth import synthesize_clip

    synth: list[tuple[Signals, list[dict[str, Any]]]] = []
    recovery: list[tuple[Signals, list[dict[str, Any]], tuple[int, int]]] = []
    t0 = time.perf_counter()
    for seed in range(max(0, args.seeds)):
        clip = synthesize_clip(fps=30.0, duration_s=20.0, seed=seed, size=SIZE,
                               amplitude=(0.01, 0.03))
        synth.append((compute_signals(_clip_frames(clip), base_cfg), clip.truth()["events"]))
        if not args.no_recovery:
            rc, span = recovery_clip(seed)
            recovery.append((compute_signals(_clip_frames(rc), base_cfg), rc.truth()["events"],
                             span))
    if synth:
        print(f"{len(synth)} synthetic clips{' + recovery clips' if recovery else ''} in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    annotated = _annotated_signals()
    planted_real = _planted_on_real(args.seeds)
    results: dict[str, Any] = {"sensitivities": sens, "minutes": args.minutes,
                               "seeds": args.seeds, "spotters": {}}
    for name, cls in spotters.items():
        rows = []
        for s in sens:
            cfg = replace(base_cfg, sensitivity=s)
            row: dict[str, Any] = {"sensitivity": s, "real": {}}
            for clip_name, (sig, minutes) in real.items():
                ev = replay(sig, cfg, cls)
                micro = sum(e.kind == "micro" for e in ev)
                row["real"][clip_name] = {"minutes": minutes, "micro": micro,
                                          "macro": len(ev) - micro,
                                          "micro_per_min": micro / minutes,
                                          "macro_per_min": (len(ev) - micro) / minutes}
            tot_min = sum(m for _, m in real.values())
            tot_micro = sum(r["micro"] for r in row["real"].values())
            row["false_micro_per_min"] = tot_micro / tot_min if tot_min else None
            if synth:
                row["synthetic"] = _score([(replay(sig, cfg, cls), tr) for sig, tr in synth])
            if recovery:
                row["recovery"] = _score([outside(replay(sig, cfg, cls), tr, span)
                                          for sig, tr, span in recovery])
            if annotated is not None:
                row["annotated"] = _score_annotated(annotated, cfg, cls)
            if planted_real:
                row["planted_real"] = _score([(replay(sig, cfg, cls), tr)
                                              for sig, tr in planted_real])
            rows.append(row)
        results["spotters"][name] = rows
        _print_table(name if len(spotters) > 1 else "", rows, list(real))
        _print_real(rows)
    results["seconds"] = time.perf_counter() - t_start
    return results


def _print_table(title: str, rows: list[dict[str, Any]], clips: list[str]) -> None:
    if title:
        print(f"\n-- spotter: {title} --")
    head = f"{'sens':>5} " + "".join(f"{c[:18] + ' µ/min':>24}" for c in clips)
    head += f"{'µ/min all':>10}{'synth µF1':>10}{'synth MF1':>10}{'recov µF1':>10}" \
            f"{'recov MF1':>10}"
    print(head)
    for r in rows:
        line = f"{r['sensitivity']:>5.2f} "
        for c in clips:
            x = r["real"][c]
            line += f"{x['micro_per_min']:>12.2f} (M {x['macro_per_min']:5.1f})    "
        syn, rec = r.get("synthetic"), r.get("recovery")
        line += f"{_fmt(r['false_micro_per_min']):>10}"
        line += f"{_fmt(syn['micro']['f1'] if syn else None):>10}"
        line += f"{_fmt(syn['macro']['f1'] if syn else None):>10}"
        line += f"{_fmt(rec['micro']['f1'] if rec else None):>10}"
        line += f"{_fmt(rec['macro']['f1'] if rec else None):>10}"
        print(line)
    print("µ/min: false micro events per minute (M: macro per minute; talking is real "
          "movement); F1 on planted events (µ micro, M macro), MEGC protocol")


def _annotated_signals() -> tuple[list[Any], list[tuple[str, Signals, float, int]]] | None:
    """The annotated development set's rows and each clip's recorded signal, or None."""
    from mestudio.capture import open_source
    from mestudio.shareddata import shared_data_dir
    from mestudio.spotting import annotated as an
    from mestudio.spotting.config import SpotterConfig

    data = shared_data_dir()
    csv_path = data / "real" / "annotations.csv" if data else None
    if csv_path is None or not csv_path.is_file():
        print("annotated real clips (data/real) not found: that section is skipped")
        return None
    t0 = time.perf_counter()
    rows = an.read_annotations(csv_path)
    clips = []
    for clip in an.clips_of(rows):
        path = an.clip_path(csv_path.parent, clip)
        if not path.is_file():
            continue
        with open_source(path) as src:
            sig = compute_signals(iter(src), SpotterConfig())
            fps = float(src.fps or 30.0)
        clips.append((clip, sig, fps, len(sig)))
    print(f"{len(clips)} annotated real clips in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows, clips


def _score_annotated(annotated: tuple[list[Any], list[tuple[str, Signals, float, int]]],
                     cfg: Any, cls: Any) -> dict[str, Any]:
    from mestudio.spotting import annotated as an

    rows, clips = annotated
    total = an.pooled(an.score_clip(clip, rows, replay(sig, cfg, cls), n, fps)
                      for clip, sig, fps, n in clips)
    return total.as_dict()


PLANTED_REAL = ("real/liveportrait_d11.mp4", "real/liveportrait_d13.mp4",
                "video/frontal_speech.mp4", "real/liveportrait_d10.mp4",
                "real/liveportrait_d12.mp4", "real/liveportrait_d9.mp4")
"""Real moving faces (talking, head motion, expressions) that micro-expressions are
planted on."""


def planted_on_real(videos: Sequence[Path], seconds: float = 8.0, per_clip: int = 3,
                    amplitude: float = 0.025) -> list[tuple[Signals, list[dict[str, Any]]]]:
    """Micro-expressions planted on real moving faces: for each video, ``per_clip``
    micro-expressions (``amplitude`` of the face width, the face followed every frame,
    nothing else added) over its first ``seconds``; the recorded signal of each clip and
    its planted micro-expressions (replay them with :func:`replay`)."""
    from mestudio.spotting.config import SpotterConfig
    from mestudio.synth import synthesize_clip

    out = []
    for k, path in enumerate(videos):
        clip = synthesize_clip(path, fps=None, duration_s=seconds, seed=k, n_micro=per_clip,
                               n_macro=0, n_blinks=0, distractors=False, amplitude=amplitude)
        truth = [e for e in clip.truth()["events"] if e["kind"] == "micro"]
        out.append((compute_signals(_clip_frames(clip), SpotterConfig()), truth))
    return out


def _planted_on_real(seeds: int) -> list[tuple[Signals, list[dict[str, Any]]]]:
    from mestudio.shareddata import shared_data_dir

    data = shared_data_dir()
    if data is None or seeds <= 0:
        return []
    t0 = time.perf_counter()
    out = planted_on_real([data / n for n in PLANTED_REAL if (data / n).is_file()])
    print(f"{len(out)} real moving faces with planted micro-expressions in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return out


def _print_real(rows: list[dict[str, Any]]) -> None:
    if not any("annotated" in r or "planted_real" in r for r in rows):
        return
    print(f"{'sens':>5} {'real: hit':>10} {'IoU F1':>7} {'false/min':>10} {'in talk/min':>12} "
          f"{'planted-on-real µR':>19} {'µP':>6}")
    for r in rows:
        a, pr = r.get("annotated") or {}, r.get("planted_real")
        micro = pr["micro"] if pr else {}
        print(f"{r['sensitivity']:>5.2f} {_fmt(a.get('hit_rate')):>10} {_fmt(a.get('iou_f1')):>7} "
              f"{_fmt(a.get('false_per_min')):>10} "
              f"{_fmt(a.get('false_in_non_expression_per_min')):>12} "
              f"{_fmt(micro.get('recall')):>19} {_fmt(micro.get('precision')):>6}")
    print("real: the annotated development set (hit rate of clear expressions, IoU >= 0.5 F1, "
          "false events per minute); planted-on-real: micro-expressions planted on real "
          "moving faces (recall, precision of kind micro)")
