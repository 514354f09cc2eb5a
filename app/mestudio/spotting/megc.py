"""Spotting measured on long-video datasets under the MEGC protocol (``mestudio spot-eval
--dataset``): running the application's own online spotter over every long video, scoring
micro, macro and overall spotting per video and pooled, the spot-then-recognise score, and
replaying the spotter on its recorded inputs for a sensitivity sweep.

Protocol (SPOTTING.md, :mod:`mestudio.spotting.metrics`): inclusive frame intervals, a
spotted interval is a true positive when its IoU with a coded interval of the same kind is
>= 0.5, one-to-one matching; per kind TP/FP/FN are summed over the videos and then
``P = TP/N``, ``R = TP/M``, ``F1 = 2TP/(N+M)``. **Overall** is the MEGC2020/2021 figure:
the micro and macro counts added (``TP = TP_micro + TP_macro``, same for FP and FN); the
kind-agnostic matching (a macro spotted as micro still found) is reported as ``any``.
Intervals are in the release's frame numbers: frame ``i`` of the image sequence is the
video's ``i``-th frame file, :attr:`LongVideo.frames[i]`.

Spot-then-recognise (``--model``), micro-expressions only:

* ``STRS`` (strict): a spotted micro interval counts when it is a spotting TP (matched as
  above) AND its recognised class equals the class of its coded interval mapped to the
  model's classes (the dataset's class mapping whose classes are the model's, e.g. 3class
  negative/positive/surprise; a coded emotion outside the mapping, ``others`` or
  ``unlabelled``, can never count). ``STRS = 2·hits / (N_micro + M_micro)``: the spotting
  F1 with "correctly recognised TP" in place of TP. An event without a prediction (or an
  uncertain one) is not a hit.
* ``STRS×`` (SPOTTING.md's product): ``F1_spot(micro) × UF1`` where UF1 is the
  unweighted F1 of recognition over the spotting TPs whose coded class maps to a model class
  (mean over the classes present among them of ``2tp / (2tp + fp + fn)``).

Sweep: the per-frame inputs of the spotter (frame index, timestamp, per-ROI signal) are
recorded while the video is analysed (``spotter-inputs.npz``); replaying them through a new
:class:`~mestudio.spotting.spotter.OnlineSpotter` gives exactly the events of a full re-run
for any setting that only the spotter reads (:data:`REPLAYABLE`: sensitivity, thresholds,
durations; the ROI signal does not depend on them). ``frames.csv`` cannot serve: it holds the
*low-passed*, rounded signal, not the spotter's input. A setting chosen on the same videos
it is scored on is optimistic.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mestudio.spotting.metrics import SpotScore, match_intervals, score_by_kind

log = logging.getLogger(__name__)

RECORD_NAME = "megc-video.json"
RECORD_FORMAT = "mestudio-megc-video/1"
INPUTS_NAME = "spotter-inputs.npz"
#: Reported kinds, in table order.
KINDS = ("micro", "macro", "overall", "any")

#: Published figures for scale (MEGC protocol, IoU >= 0.5).
LITERATURE: tuple[tuple[str, str, str], ...] = (
    ("CAS(ME)^2", "MEGC2020 baseline (MDMD)", "micro F1 0.0082"),
    ("SAMM Long Videos", "MEGC2020 baseline (MDMD)", "micro F1 0.0364"),
    ("CAS(ME)^2", "best self-reported methods", "micro F1 ≈ 0.25; overall F1 ≈ 0.44–0.46"),
)
OPTIMISM_WARNING = ("A setting chosen on the same videos it is scored on is optimistic (it is "
                    "selected on the test data): report the fixed default, or choose the "
                    "setting on other videos.")

#: Spotter settings that the ROI signal does not read: a replay of the recorded spotter
#: inputs with other values of these gives exactly the events of a full re-run.
REPLAYABLE = frozenset({
    "sensitivity", "lowpass_hz", "calibration_s", "min_duration_s", "micro_max_s",
    "max_duration_s", "offset_fraction", "emit_delay_s", "threshold_k_low",
    "threshold_k_high", "min_rise_px", "split_valley_fraction", "merge_gap_s",
    "recalibrate_after_s",
})


# ---------------------------------------------------------------------- recording / replay
class SpotterInputRecorder:
    """Records every input of a pipeline's spotter (``Pipeline(spotter_inputs=...)``): frame
    index, timestamp, ROI values and vectors, the spotter's whole input."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, index: int, timestamp_s: float, signal: dict[str, float] | None,
                 vectors: Any = None) -> None:
        self.calls.append((int(index), float(timestamp_s),
                           None if signal is None else {k: float(v) for k, v in signal.items()},
                           None if vectors is None or signal is None
                           else np.array(vectors, np.float64)))


#: One recorded spotter call: frame index, timestamp, ROI magnitudes (None: no face) and
#: the ROIs' displacement vectors ``(R, 2)`` (None: not recorded).
Call = tuple[int, float, "dict[str, float] | None", "np.ndarray | None"]


def save_spotter_inputs(path: Path, calls: Sequence[Call]) -> None:
    """Write the recorded calls to ``path`` (npz, atomically): ``index`` (N,) int64,
    ``timestamp`` (N,) float64, ``signal`` (N, R) float64 (NaN = key absent), ``face`` (N,)
    bool (False = ``signal`` None), ``rois`` (R,) names in first-seen order, ``vectors``
    (N, V, 2) float64 (NaN = not recorded; V the vectors' rows, in the signal's ROI order)."""
    from mestudio.fsutil import atomic_path

    rois: list[str] = []
    for _, _, sig, _ in calls:
        for k in sig or {}:
            if k not in rois:
                rois.append(k)
    values = np.full((len(calls), len(rois)), np.nan, dtype=np.float64)
    col = {k: j for j, k in enumerate(rois)}
    rows = max((len(c[3]) for c in calls if c[3] is not None), default=0)
    vectors = np.full((len(calls), rows, 2), np.nan, dtype=np.float64)
    for i, (_, _, sig, vec) in enumerate(calls):
        for k, v in (sig or {}).items():
            values[i, col[k]] = v
        if vec is not None and len(vec) == rows:
            vectors[i] = np.asarray(vec, np.float64).reshape(rows, 2)
    with atomic_path(path, keep_suffix=True) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, index=np.array([c[0] for c in calls], dtype=np.int64),
                     timestamp=np.array([c[1] for c in calls], dtype=np.float64),
                     signal=values, face=np.array([c[2] is not None for c in calls], bool),
                     rois=np.array(rois, dtype=str), vectors=vectors)


def load_spotter_inputs(path: Path) -> list[Call]:
    """The calls written by :func:`save_spotter_inputs`, as they were made (files of
    earlier versions have no vectors: None)."""
    with np.load(path) as z:
        rois = [str(r) for r in z["rois"]]
        vectors = z["vectors"] if "vectors" in z.files else None
        out: list[Call] = []
        for n, (i, t, row, face) in enumerate(zip(z["index"], z["timestamp"], z["signal"],
                                                  z["face"], strict=True)):
            sig = ({k: float(v) for k, v in zip(rois, row, strict=True) if not math.isnan(v)}
                   if face else None)
            vec = None
            if vectors is not None and vectors.shape[1] and np.isfinite(vectors[n]).all():
                vec = np.array(vectors[n])
            out.append((int(i), float(t), sig, vec))
    return out


def replay_spotter(calls: Sequence[Call], config: Any) -> list[Any]:
    """The events a fresh spotter with ``config`` (a SpotterConfig) emits for the recorded
    calls, ``finish()`` included, in emission order."""
    from mestudio.spotting.config import make_spotter

    spotter = make_spotter(config)
    events: list[Any] = []
    for index, t, sig, vec in calls:
        events += spotter.update(index, t, sig, vectors=vec)
    events += spotter.finish()
    return events


class AnalysedVideo(Protocol):
    """Where a video's analysis was written (:class:`mestudio.engine.videojobs.VideoJob`)."""

    @property
    def video_id(self) -> str: ...
    @property
    def out_dir(self) -> str: ...


# ---------------------------------------------------------------------------- scoring
def to_frame_numbers(events: Sequence[Any], frames: Sequence[int]) -> list[dict[str, Any]]:
    """Spotted events (source frame indices) as interval dicts in the video's frame numbers:
    ``{"onset", "apex", "offset", "kind", "label"}`` (``label`` None without a usable
    prediction)."""
    out = []
    last = len(frames) - 1
    for ev in events:
        def number(i: int) -> int:
            return int(frames[min(max(int(i), 0), last)])
        pred = getattr(ev, "prediction", None)
        label = None
        if pred is not None and not getattr(pred, "uncertain", False):
            label = pred.label
        out.append({"onset": number(ev.onset), "apex": number(ev.apex),
                    "offset": number(ev.offset), "kind": ev.kind, "label": label})
    return out


def score_kinds(pairs: Sequence[tuple[Sequence[Any], Sequence[Any]]], iou: float = 0.5
                ) -> dict[str, SpotScore]:
    """``micro``, ``macro``, ``overall`` (micro + macro counts) and ``any`` (kinds ignored)
    scores summed over the ``(pred, truth)`` pairs."""
    s = score_by_kind(pairs, iou=iou)
    return {"micro": s["micro"], "macro": s["macro"], "overall": s["micro"] + s["macro"],
            "any": s["all"]}


@dataclass
class StrScore:
    """Spot-then-recognise figures (see the module docstring).

    Attributes:
        n_pred, n_truth: spotted and coded micro intervals.
        tp: spotting TPs (micro); hits: TPs whose recognised class is right.
        pairs: ``(true class, predicted class or None)`` of the TPs whose coded class maps to
            a model class.
    """

    n_pred: int = 0
    n_truth: int = 0
    tp: int = 0
    hits: int = 0
    pairs: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def spot_f1(self) -> float | None:
        d = self.n_pred + self.n_truth
        return 2 * self.tp / d if d else None

    @property
    def strs(self) -> float | None:
        d = self.n_pred + self.n_truth
        return 2 * self.hits / d if d else None

    @property
    def uf1(self) -> float | None:
        classes = sorted({t for t, _ in self.pairs})
        if not classes:
            return None
        f1s = []
        for c in classes:
            tp = sum(t == c and p == c for t, p in self.pairs)
            fp = sum(t != c and p == c for t, p in self.pairs)
            fn = sum(t == c and p != c for t, p in self.pairs)
            f1s.append(2 * tp / (2 * tp + fp + fn))
        return float(np.mean(f1s))

    @property
    def strs_product(self) -> float | None:
        f, u = self.spot_f1, self.uf1
        return None if f is None or u is None else f * u

    def __add__(self, other: StrScore) -> StrScore:
        return StrScore(self.n_pred + other.n_pred, self.n_truth + other.n_truth,
                        self.tp + other.tp, self.hits + other.hits, self.pairs + other.pairs)

    def as_dict(self) -> dict[str, Any]:
        return {"n_pred": self.n_pred, "n_truth": self.n_truth, "tp": self.tp,
                "hits": self.hits, "spot_f1": self.spot_f1, "uf1": self.uf1,
                "strs": self.strs, "strs_product": self.strs_product}


def str_score(pred: Sequence[dict[str, Any]], truth: Sequence[dict[str, Any]],
              to_model_class: Callable[[str], str | None], iou: float = 0.5) -> StrScore:
    """Spot-then-recognise counts of one video (micro intervals only).

    Args:
        pred: spotted intervals with ``kind`` and ``label`` (recognised class or None).
        truth: coded intervals with ``kind`` and ``label`` (the dataset's native emotion).
        to_model_class: native emotion -> model class, None when outside the model's
            classes.
    """
    p = [x for x in pred if x.get("kind") == "micro"]
    t = [x for x in truth if x.get("kind") == "micro"]
    score = StrScore(n_pred=len(p), n_truth=len(t))
    for i, j, _ in match_intervals(p, t, iou):
        score.tp += 1
        cls = to_model_class(str(t[j].get("label") or ""))
        if cls is None:
            continue
        got = p[i].get("label")
        score.pairs.append((cls, got))
        if got == cls:
            score.hits += 1
    return score


def class_mapper(dataset: Any, model_classes: Sequence[str]
                 ) -> tuple[str, Callable[[str], str | None]]:
    """The dataset mapping that turns its emotions into the model's classes, and the
    function ``native -> model class or None``.

    The mapping whose class set equals the model's wins; else the one sharing most classes
    with it (ties: the dataset's order, ``native`` first). Class names compare case-
    insensitively and the model's spelling is returned.
    """
    by_lower = {c.lower(): c for c in model_classes}
    best = ("native", -1)
    for m in dataset.mappings():
        classes = {c.lower() for c in dataset.classes(m)}
        overlap = len(classes & set(by_lower))
        if classes == set(by_lower):
            best = (m, 10**6)
            break
        if overlap > best[1]:
            best = (m, overlap)
    mapping = best[0]

    def to_model(native: str) -> str | None:
        mapped = dataset.map_label(native.lower(), mapping) if native else None
        return by_lower.get(mapped.lower()) if mapped else None

    return mapping, to_model


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``"sensitivity=0.3:0.9:0.1"`` -> ``("sensitivity", [0.3, 0.4, ..., 0.9])`` (ends
    included); ``"sensitivity=0.4,0.5,0.7"`` lists values.

    Raises:
        ValueError: bad syntax, a step <= 0, or a setting that cannot be replayed.
    """
    name, sep, spec = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not spec.strip():
        raise ValueError(f"--sweep {text!r}: write NAME=START:STOP:STEP or NAME=V1,V2,...")
    if name not in REPLAYABLE:
        raise ValueError(f"--sweep {name!r}: only spotter settings can be swept (the ROI "
                         f"signal is recorded once): {', '.join(sorted(REPLAYABLE))}")
    try:
        if ":" in spec:
            start, stop, step = (float(x) for x in spec.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = [round(start + k * step, 10) for k in range(n)]
        else:
            values = [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--sweep {text!r}: write NAME=START:STOP:STEP (STEP > 0, STOP >= "
                         "START) or NAME=V1,V2,...") from None
    if not values:
        raise ValueError(f"--sweep {text!r}: no value")
    return name, values


# --------------------------------------------------------------------------- evaluation
@dataclass
class VideoRow:
    """Scores of one long video (``scores`` None when it could not be analysed)."""

    video: str
    subject: str
    frames: int
    status: str
    n_truth: dict[str, int]
    scores: dict[str, SpotScore] | None = None
    str_score: StrScore | None = None
    error: str = ""


@dataclass
class Evaluation:
    """What :func:`evaluate` computed.

    Attributes:
        rows: one :class:`VideoRow` per video (dataset order).
        pooled: TP/FP/FN summed over the analysed videos, per kind (:data:`KINDS`).
        str_pooled: spot-then-recognise counts summed (None without recognition).
        mapping: the dataset mapping used for STRS; model_classes: the model's classes.
        sweep_name, sweep: ``[(value, pooled scores)]`` of a sweep (empty without).
        replay_mismatches: videos whose replay at the run's settings did not reproduce
            their events.json (0 expected; the sweep is then flagged).
    """

    rows: list[VideoRow]
    pooled: dict[str, SpotScore]
    str_pooled: StrScore | None = None
    mapping: str | None = None
    model_classes: tuple[str, ...] = ()
    sweep_name: str = ""
    sweep: list[tuple[float, dict[str, SpotScore]]] = field(default_factory=list)
    replay_mismatches: list[str] = field(default_factory=list)


def _intervals(events: Sequence[Any]) -> list[tuple[int, int, int, str]]:
    return sorted((int(e.onset), int(e.apex), int(e.offset), str(e.kind)) for e in events)


def evaluate(videos: Sequence[Any], jobs: Sequence[AnalysedVideo], results: Sequence[dict[str, Any]],
             dataset: Any, *, iou: float = 0.5, recognition: bool = False,
             sweep: tuple[str, list[float]] | None = None, base_config: Any = None
             ) -> Evaluation:
    """Score every analysed video against its coded intervals (see the module docstring).

    With ``max_frames`` runs (``events.json`` ``last_frame`` before the video's end) only the
    coded intervals that end within the analysed frames are scored.
    """
    from mestudio.events_io import read_events_json

    rows: list[VideoRow] = []
    pairs: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
    preds_events: list[tuple[Any, AnalysedVideo, list[Any], list[dict[str, Any]]]] = []
    model_classes: tuple[str, ...] = ()
    for video, job, res in zip(videos, jobs, results, strict=True):
        truth = video.truth_intervals()
        n_truth = {k: sum(t["kind"] == k for t in truth) for k in ("micro", "macro")}
        row = VideoRow(video=video.id, subject=video.subject, frames=video.n_frames,
                       status=str(res.get("status", "failed")), n_truth=n_truth,
                       error=str(res.get("error", "")))
        rows.append(row)
        path = Path(job.out_dir) / "events.json"
        if row.status == "failed" or not path.is_file():
            continue
        events, meta = read_events_json(path)
        last = meta.get("last_frame")
        if isinstance(last, int) and 0 <= last < video.n_frames - 1:
            end = video.frames[last]
            truth = [t for t in truth if t["offset"] <= end]
        pred = to_frame_numbers(events, video.frames)
        for event in events:
            if event.prediction is not None and not model_classes:
                model_classes = tuple(event.prediction.classes)
        row.scores = score_kinds([(pred, truth)], iou)
        pairs.append((pred, truth))
        preds_events.append((video, job, events, truth))
    ev = Evaluation(rows=rows, pooled=score_kinds(pairs, iou))
    if recognition:
        ev.model_classes = model_classes
        mapper: Callable[[str], str | None] = lambda _native: None  # noqa: E731
        if model_classes:
            ev.mapping, mapper = class_mapper(dataset, model_classes)
        total = StrScore()
        row_of = {r.video: r for r in rows}
        for video, _job, events, truth in preds_events:
            s = str_score(to_frame_numbers(events, video.frames), truth, mapper, iou)
            row_of[video.id].str_score = s
            total = total + s
        ev.str_pooled = total
    if sweep is not None and base_config is not None:
        name, values = sweep
        calls_of = {}
        for video, job, events, _truth in preds_events:
            path = Path(job.out_dir) / INPUTS_NAME
            calls_of[video.id] = load_spotter_inputs(path)
            if _intervals(replay_spotter(calls_of[video.id], base_config)) != _intervals(events):
                ev.replay_mismatches.append(video.id)
        ev.sweep_name = name
        for value in values:
            cfg = dataclasses.replace(base_config, **{name: value})
            sweep_pairs = [(to_frame_numbers(replay_spotter(calls_of[v.id], cfg), v.frames), t)
                           for v, _, _, t in preds_events]
            ev.sweep.append((value, score_kinds(sweep_pairs, iou)))
    return ev


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def format_summary(ev: Evaluation, iou: float = 0.5) -> str:
    """The table ``spot-eval --dataset`` prints: pooled scores, STRS, the sweep."""
    done = sum(r.scores is not None for r in ev.rows)
    lines = [f"MEGC spotting, IoU >= {iou:g}, {done} of {len(ev.rows)} long video(s) scored",
             f"{'kind':<8} {'TP':>5} {'FP':>6} {'FN':>5} {'P':>7} {'R':>7} {'F1':>7}"]
    for k in KINDS:
        s = ev.pooled[k]
        lines.append(f"{k:<8} {s.tp:>5} {s.fp:>6} {s.fn:>5} {_fmt(s.precision):>7} "
                     f"{_fmt(s.recall):>7} {_fmt(s.f1):>7}")
    if ev.str_pooled is not None:
        s2 = ev.str_pooled
        lines.append(f"STRS {_fmt(s2.strs)} ({s2.hits} of {s2.tp} micro TPs recognised right; "
                     f"mapping {ev.mapping or 'n/a'}); F1_spot x UF1 = {_fmt(s2.strs_product)}")
    if ev.sweep:
        lines.append(f"sweep of {ev.sweep_name} (spotter replayed on its recorded inputs):")
        lines.append(f"{ev.sweep_name:>12} {'micro F1':>9} {'macro F1':>9} {'overall F1':>11}"
                     f" {'TP':>5} {'FP':>6}")
        for value, sc in ev.sweep:
            o = sc["overall"]
            lines.append(f"{value:>12g} {_fmt(sc['micro'].f1):>9} {_fmt(sc['macro'].f1):>9} "
                         f"{_fmt(o.f1):>11} {o.tp:>5} {o.fp:>6}")
        lines.append(OPTIMISM_WARNING)
        if ev.replay_mismatches:
            lines.append("WARNING: the replay did not reproduce events.json for "
                         + ", ".join(ev.replay_mismatches))
    return "\n".join(lines)


CSV_KIND_FIELDS = ("tp", "fp", "fn", "precision", "recall", "f1")


def _csv_row(video: str, subject: str, frames: Any, status: str, scores: dict[str, SpotScore]
             | None, strs: StrScore | None, with_str: bool) -> list[str]:
    cells = [video, subject, str(frames), status]
    for k in KINDS:
        d = scores[k].as_dict() if scores is not None else {}
        for f in CSV_KIND_FIELDS:
            v = d.get(f)
            cells.append("" if v is None else (str(v) if isinstance(v, int) else f"{v:.6f}"))
    if with_str:
        d2 = strs.as_dict() if strs is not None else {}
        for f in ("hits", "strs", "uf1", "strs_product"):
            v = d2.get(f)
            cells.append("" if v is None else (str(v) if isinstance(v, int) else f"{v:.6f}"))
    return cells


def write_report(out: Path, ev: Evaluation, *, dataset: Any, report: Any,
                 spotter: dict[str, Any], command: str, iou: float,
                 max_frames: int | None = None) -> list[Path]:
    """Write ``report.md``, ``scores.csv``, ``scores.json`` (and ``sweep.csv``) into
    ``out``, each atomically. Returns the paths."""
    import csv
    import io

    from mestudio.fsutil import atomic_write_text

    with_str = ev.str_pooled is not None
    header = ["video", "subject", "frames", "status"] + \
        [f"{k}_{f}" for k in KINDS for f in CSV_KIND_FIELDS] + \
        (["str_hits", "strs", "recognition_uf1", "strs_product"] if with_str else [])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in ev.rows:
        w.writerow(_csv_row(r.video, r.subject, r.frames, r.status, r.scores, r.str_score,
                            with_str))
    w.writerow(_csv_row("POOLED", "", sum(r.frames for r in ev.rows if r.scores is not None),
                        "pooled", ev.pooled, ev.str_pooled, with_str))
    paths = [atomic_write_text(out / "scores.csv", buf.getvalue())]
    doc = {"dataset": dataset.name, "title": dataset.title, "fps": dataset.fps, "iou": iou,
           "command": command, "spotter": spotter, "max_frames": max_frames,
           "pooled": {k: v.as_dict() for k, v in ev.pooled.items()},
           "strs": ev.str_pooled.as_dict() if ev.str_pooled is not None else None,
           "strs_mapping": ev.mapping, "model_classes": list(ev.model_classes),
           "videos": [{"video": r.video, "status": r.status, "frames": r.frames,
                       "truth": r.n_truth, "error": r.error,
                       "scores": {k: v.as_dict() for k, v in r.scores.items()}
                       if r.scores is not None else None} for r in ev.rows],
           "sweep": {"setting": ev.sweep_name,
                     "values": [{"value": v, **{k: s.as_dict() for k, s in sc.items()}}
                                for v, sc in ev.sweep],
                     "replay_mismatches": ev.replay_mismatches} if ev.sweep else None,
           "literature": [list(x) for x in LITERATURE]}
    paths.append(atomic_write_text(out / "scores.json", json.dumps(doc, indent=2) + "\n"))
    if ev.sweep:
        sbuf = io.StringIO()
        sw = csv.writer(sbuf, lineterminator="\n")
        sw.writerow([ev.sweep_name] + [f"{k}_{f}" for k in KINDS for f in CSV_KIND_FIELDS])
        for value, sc in ev.sweep:
            sw.writerow([f"{value:g}"] + _csv_row("", "", "", "", sc, None, False)[4:])
        paths.append(atomic_write_text(out / "sweep.csv", sbuf.getvalue()))
    paths.insert(0, atomic_write_text(out / "report.md", _markdown(ev, dataset, report, spotter,
                                                                    command, iou, max_frames)))
    return paths


def _markdown(ev: Evaluation, dataset: Any, report: Any, spotter: dict[str, Any],
              command: str, iou: float, max_frames: int | None) -> str:
    scored = [r for r in ev.rows if r.scores is not None]
    kinds = report.kind_counts() if hasattr(report, "kind_counts") else {}
    md = [f"# Spotting on {dataset.title} (MEGC protocol)", "",
          f"Command: `{command}`", "",
          f"Release: `{report.root}`, {dataset.fps:g} fps; {len(ev.rows)} long video(s), "
          f"{len(scored)} scored; coded intervals usable: {kinds.get('micro', 0)} micro, "
          f"{kinds.get('macro', 0)} macro (`mestudio data check --dataset {dataset.name}` "
          "lists the rows left out and the fixes)." + (
              f" Only the first {max_frames} frames of each video were analysed (intervals "
              "ending later are not scored)." if max_frames else ""), "",
          f"Protocol: inclusive frame intervals; a spotted interval is a true positive when "
          f"its IoU with a coded interval of the same kind is >= {iou:g}; one-to-one "
          "matching; TP/FP/FN summed over the videos, then P = TP/N, R = TP/M, "
          "F1 = 2TP/(N+M). Overall = micro + macro counts (MEGC2020/2021); 'any' ignores "
          "the kind.", "",
          "## Pooled scores", "",
          "| kind | TP | FP | FN | precision | recall | F1 |", "|---|---|---|---|---|---|---|"]
    for k in KINDS:
        s = ev.pooled[k]
        md.append(f"| {k} | {s.tp} | {s.fp} | {s.fn} | {_fmt(s.precision)} | "
                  f"{_fmt(s.recall)} | {_fmt(s.f1)} |")
    if ev.str_pooled is not None:
        s2 = ev.str_pooled
        md += ["", "## Spot-then-recognise", "",
               f"Model classes: {', '.join(ev.model_classes) or 'none (no prediction arrived)'}"
               f"; coded emotions mapped with the `{ev.mapping or 'n/a'}` mapping.", "",
               f"- STRS (a micro TP counts only when the recognised class equals the coded "
               f"class mapped to the model's classes; 2·hits/(N+M)): **{_fmt(s2.strs)}** "
               f"({s2.hits} hits of {s2.tp} micro TPs)",
               f"- F1_spot(micro) × UF1(recognition on the TPs): {_fmt(s2.strs_product)} "
               f"(UF1 {_fmt(s2.uf1)} over {len(s2.pairs)} TPs with a mappable class)"]
    md += ["", "## Published figures for scale", "", "| dataset | method | figure |",
           "|---|---|---|"]
    md += [f"| {d} | {m} | {f} |" for d, m, f in LITERATURE]
    md += ["", "These use the same protocol but other spotting methods, tuned by their authors; "
           "they give the scale of the task, not a target reached here."]
    if ev.sweep:
        md += ["", f"## Sweep of `{ev.sweep_name}`", "",
               f"The spotter was replayed on its recorded per-frame inputs (exactly the events "
               f"of a full re-run: the ROI signal does not read `{ev.sweep_name}`).", "",
               f"| {ev.sweep_name} | micro F1 | macro F1 | overall F1 | overall TP | "
               "overall FP |", "|---|---|---|---|---|---|"]
        for value, sc in ev.sweep:
            md.append(f"| {value:g} | {_fmt(sc['micro'].f1)} | {_fmt(sc['macro'].f1)} | "
                      f"{_fmt(sc['overall'].f1)} | {sc['overall'].tp} | {sc['overall'].fp} |")
        md += ["", f"**{OPTIMISM_WARNING}**"]
        if ev.replay_mismatches:
            md += ["", "WARNING: the replay did not reproduce events.json for: "
                   + ", ".join(ev.replay_mismatches)]
    md += ["", "## Per video", "",
           "| video | frames | status | micro TP/FP/FN | micro F1 | macro TP/FP/FN | macro F1 |",
           "|---|---|---|---|---|---|---|"]
    for r in ev.rows:
        if r.scores is None:
            md.append(f"| {r.video} | {r.frames} | {r.status} {r.error} | | | | |")
            continue
        mi, ma = r.scores["micro"], r.scores["macro"]
        md.append(f"| {r.video} | {r.frames} | {r.status} | {mi.tp}/{mi.fp}/{mi.fn} | "
                  f"{_fmt(mi.f1)} | {ma.tp}/{ma.fp}/{ma.fn} | {_fmt(ma.f1)} |")
    assumptions = getattr(report, "assumptions", [])
    if assumptions:
        md += ["", "## Assumptions about the release", ""] + [f"- {a}" for a in assumptions]
    md += ["", "## Spotter settings", "", "```json", json.dumps(spotter, indent=2), "```", ""]
    return "\n".join(md)
