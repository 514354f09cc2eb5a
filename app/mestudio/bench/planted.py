"""Recognition of planted action-unit patterns: how often a model names the pattern that
:mod:`mestudio.synth` planted into real faces, and how its ensemble agreement separates
events from frame pairs without one.

The events: for every face of the shared data (:func:`mestudio.synth.faces.collect_faces`),
every synthetic class and ``per_class`` repetitions, a short clip with one micro-expression
(:func:`mestudio.synth.clip.synthesize_sample`, light head motion and sensor noise
included) at ``amplitude`` (fraction of the face width). Its onset, apex and offset frames
go through the application's own path: :func:`mestudio.preprocess.align_keyframes` (one
similarity transform) and :func:`mestudio.preprocess.keyframe_inputs_batch` with the recipe
in the model's metadata. The no-event pair of the same clip takes two neutral frames (the
first frame and the onset) as onset and apex: what a spotter false alarm looks like.

Scores are on the 3-class MEGC2019 scheme (:data:`mestudio.synth.aus.CLASS_TO_3CLASS`):
UAR (mean per-class recall, chance 1/3) and accuracy; a model with the synthetic classes is
mapped onto it too, so models with other class sets are compared on the same events.
These are patterns, not people's emotions: the figure says whether a model responds to the
facial movement it should, never that it reads feelings.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HELP = ("recognition of action-unit patterns planted into real faces: 3-class UAR of each "
        "model, and how ensemble agreement separates events from no-event frame pairs")

log = logging.getLogger(__name__)

THREE_CLASSES = ("negative", "positive", "surprise")


@dataclass
class PlantedSet:
    """Aligned key-frame crops of planted events and of no-event pairs.

    Attributes:
        labels: the planted synthetic class of each event.
        events: ``(onset, apex, offset)`` aligned BGR crops per event.
        neutral: ``(neutral, neutral, neutral)`` aligned crops of the same clips (no event).
        amplitude: the planted amplitude range (fraction of the face width).
    """

    labels: list[str]
    events: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    neutral: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    amplitude: tuple[float, float]


def make_planted_set(per_class: int = 2, amplitude: tuple[float, float] = (0.01, 0.03),
                     data_dir: str | os.PathLike[str] | None = None, seed: int = 0,
                     max_faces: int | None = None, crop_size: int = 128) -> PlantedSet:
    """Plant events into the shared faces (see the module docstring); faces whose first
    frame has no detectable face are skipped."""
    from mestudio.errors import FaceNotFoundError
    from mestudio.preprocess import align_keyframes
    from mestudio.synth.aus import CLASSES
    from mestudio.synth.clip import synthesize_samples_for
    from mestudio.synth.faces import collect_faces

    faces = collect_faces(data_dir, video_frames=1)
    if max_faces is not None:
        faces = faces[:max_faces]
    labels, events, neutral = [], [], []
    for _face, label, _rep, frames, ev in synthesize_samples_for(
            faces, per_class, seed=seed, classes=CLASSES, amplitude=amplitude):
        try:
            crops = align_keyframes([frames[ev.onset], frames[ev.apex], frames[ev.offset],
                                     frames[0]], crop_size)
        except FaceNotFoundError:
            continue
        labels.append(label)
        events.append((crops[0], crops[1], crops[2]))
        neutral.append((crops[3], crops[0], crops[3]))
    return PlantedSet(labels, events, neutral, (float(amplitude[0]), float(amplitude[1])))


def _to_three(label: str) -> str | None:
    from mestudio.synth.aus import CLASS_TO_3CLASS

    if label in THREE_CLASSES:
        return label
    return CLASS_TO_3CLASS.get(label)


def scores(truth: Sequence[str], pred: Sequence[str | None],
           classes: Sequence[str] = THREE_CLASSES) -> dict[str, Any]:
    """:func:`mestudio.training.metrics.compute_metrics` of label lists: samples whose true
    label is not in ``classes`` are left out, predictions outside ``classes`` (or None)
    count as wrong."""
    from mestudio.training.metrics import compute_metrics

    index = {c: i for i, c in enumerate(classes)}
    names = [*classes, "(other)"]  # never a true label: no support, no part of UAR
    keep = [i for i, t in enumerate(truth) if t in index]
    predicted = [index.get(pred[i] or "", len(classes)) for i in keep]
    onehot = np.eye(len(names))[predicted].reshape(len(keep), len(names))
    return compute_metrics([index[truth[i]] for i in keep], onehot, names)


def uar(truth: Sequence[str], pred: Sequence[str | None],
        classes: Sequence[str] = THREE_CLASSES) -> float:
    """Mean per-class recall over the classes present in ``truth`` (NaN without samples)."""
    return float(scores(truth, pred, classes)["uar"])


def evaluate_model(path: str | os.PathLike[str], planted: PlantedSet,
                   thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9)) -> dict[str, Any]:
    """Scores of one model file on ``planted`` (see the module docstring)."""
    from mestudio.inference.engine import InferenceEngine
    from mestudio.preprocess import PreprocessConfig, keyframe_inputs_batch

    engine = InferenceEngine(path)
    cfg = PreprocessConfig.from_metadata(engine.preprocess_config)
    preds = engine.predict(keyframe_inputs_batch(planted.events, cfg), cam=False)
    truth = [_to_three(label) or "" for label in planted.labels]
    pred3 = [_to_three(p.label) for p in preds]
    three = scores(truth, pred3)
    result: dict[str, Any] = {
        "model": Path(path).name, "events": len(preds),
        "amplitude": list(planted.amplitude),
        "uar_3class": float(three["uar"]),
        "accuracy_3class": float(three["accuracy"]),
        "recall_3class": {c: float(three["per_class"][c]["recall"]) for c in THREE_CLASSES},
    }
    result.update(_against_torch_solver(engine, planted, cfg, preds, truth))
    if set(engine.classes) != set(THREE_CLASSES):
        native = [p.label for p in preds]
        result["uar_native"] = uar(planted.labels, native, engine.classes)
    if engine.has_agreement:
        neutral = engine.predict(keyframe_inputs_batch(planted.neutral, cfg), cam=False)
        a_ev = np.array([p.agreement for p in preds], dtype=float)
        a_ne = np.array([p.agreement for p in neutral], dtype=float)
        rows = []
        for t in thresholds:
            kept = a_ev >= t
            kept_truth = [x for x, k in zip(truth, kept, strict=True) if k]
            kept_pred = [x for x, k in zip(pred3, kept, strict=True) if k]
            rows.append({"threshold": t, "events_kept": float(kept.mean()),
                         "no_event_rejected": float((a_ne < t).mean()),
                         "uar_of_kept": uar(kept_truth, kept_pred) if kept_truth else None})
        result["agreement"] = {
            "events": {"median": float(np.median(a_ev)), "p25": float(np.quantile(a_ev, 0.25))},
            "no_event": {"median": float(np.median(a_ne)), "p75": float(np.quantile(a_ne, 0.75))},
            "thresholds": rows,
        }
    return result


def _against_torch_solver(engine: Any, planted: PlantedSet, cfg: Any, preds: list[Any],
                          truth: list[str]) -> dict[str, Any]:
    """The same events with the inputs made by torch's TV-L1 solver instead of the ONNX
    graph the application runs: UAR, top-class agreement and the largest probability
    difference (nothing when torch is not installed)."""
    import importlib.util

    from mestudio.preprocess import keyframe_inputs_batch, torch_flow_solver

    if importlib.util.find_spec("torch") is None:
        return {}
    with torch_flow_solver():
        ref = engine.predict(keyframe_inputs_batch(planted.events, cfg), cam=False)
    diff = max((float(np.max(np.abs(np.asarray(a.probs) - np.asarray(b.probs))))
                for a, b in zip(preds, ref, strict=True)), default=0.0)
    return {
        "uar_3class_torch_solver": float(scores(truth, [_to_three(p.label) for p in ref])["uar"]),
        "same_top_class_torch_solver": float(np.mean([a.label == b.label for a, b in
                                                      zip(preds, ref, strict=True)])),
        "max_prob_diff_torch_solver": diff,
    }


def print_result(res: dict[str, Any]) -> None:
    """The figures of :func:`evaluate_model` as a few lines."""
    lo, hi = res["amplitude"]
    rec = ", ".join(f"{c} {v:.2f}" for c, v in res["recall_3class"].items())
    line = (f"{res['model']}: planted patterns at {lo * 100:.0f}-{hi * 100:.0f} % of face width, "
            f"{res['events']} events: UAR {res['uar_3class']:.3f} (3 classes, chance 0.333; "
            f"recall {rec}), accuracy {res['accuracy_3class']:.3f}")
    if "uar_native" in res:
        line += f"; UAR on its own classes {res['uar_native']:.3f}"
    print(line)
    if "uar_3class_torch_solver" in res:
        same = abs(res["uar_3class_torch_solver"] - res["uar_3class"]) < 5e-4
        print(f"  inputs by torch's TV-L1 solver instead of the ONNX graph: UAR "
              f"{res['uar_3class_torch_solver']:.3f} ({'equal' if same else 'DIFFERENT'} to the "
              f"third decimal), same top class {res['same_top_class_torch_solver']:.1%}, "
              f"largest probability difference {res['max_prob_diff_torch_solver']:.4f}")
    ag = res.get("agreement")
    if ag:
        print(f"  agreement: events median {ag['events']['median']:.2f} (p25 "
              f"{ag['events']['p25']:.2f}); no-event pairs median {ag['no_event']['median']:.2f} "
              f"(p75 {ag['no_event']['p75']:.2f})")
        for row in ag["thresholds"]:
            kept_uar = "n/a" if row["uar_of_kept"] is None else f"{row['uar_of_kept']:.3f}"
            print(f"  threshold {row['threshold']:.2f}: events kept {row['events_kept']:.0%}, "
                  f"no-event pairs rejected {row['no_event_rejected']:.0%}, UAR of kept "
                  f"{kept_uar}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, action="append", default=None,
                        help="an exported .onnx to score (repeatable; default: every model "
                             "`mestudio models list` finds)")
    parser.add_argument("--per-class", type=int, default=4,
                        help="events per face and class (default 4)")
    parser.add_argument("--amplitudes", default="0.01:0.03,0.04:0.06",
                        help="planted amplitude ranges, fraction of face width "
                             "(default 0.01:0.03,0.04:0.06)")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with images/ and video/ of real faces (default: the "
                             "shared test data when found)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")


def _amplitudes(text: str) -> list[tuple[float, float]]:
    from mestudio.errors import ConfigError

    out = []
    for part in text.split(","):
        try:
            lo, hi = (float(x) for x in part.split(":"))
        except ValueError:
            raise ConfigError(f"--amplitudes: {part!r} is not LOW:HIGH (e.g. 0.01:0.03)") from None
        if not 0 < lo <= hi < 0.5:
            raise ConfigError(f"--amplitudes: {part!r} must satisfy 0 < LOW <= HIGH < 0.5")
        out.append((lo, hi))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from mestudio.errors import ConfigError
    from mestudio.inference.catalog import find_models
    from mestudio.shareddata import shared_data_dir, use_shared_models

    use_shared_models()  # YuNet for the alignment when the shared models are there
    models = list(args.model or []) or [e.path for e in find_models()]
    if not models:
        raise ConfigError("no recognition model to score (pass --model FILE.onnx)")
    data = args.data or shared_data_dir()
    results: dict[str, Any] = {}
    for amp in _amplitudes(args.amplitudes):
        planted = make_planted_set(args.per_class, amp, data, seed=args.seed)
        if not planted.labels:
            raise ConfigError("no face found to plant events into (pass --data FOLDER with "
                              "images/ or video/ of real faces)")
        key = f"{amp[0]:g}-{amp[1]:g}"
        results[key] = []
        for path in models:
            res = evaluate_model(path, planted)
            print_result(res)
            results[key].append(res)
    return results
