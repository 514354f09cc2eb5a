"""Recognition metrics on predictions pooled over the folds of a protocol.

DATASETS.md: pool the predictions of all folds, then compute; align predictions and labels
by SAMPLE ID, never by order. Figures:

* accuracy;
* macro precision, recall and F1 (mean over classes of the per-class figures; a class
  that is never predicted has precision 0);
* macro one-vs-rest AUC (Mann-Whitney rank statistic with average ranks for ties; mean
  over the classes that have both positive and negative samples);
* UF1 = mean over classes of ``2TP / (2TP + FP + FN)`` and UAR = mean over classes of
  ``TP / N_c`` (the MEGC figures; classes without any sample are left out of both);
* per-class precision, recall, F1, AUC and support; the confusion matrix (rows = true
  class, columns = predicted class) and a PNG of it (matplotlib, Agg back-end).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.errors import DatasetError


@dataclass
class PooledPredictions:
    """Predictions and labels aligned by sample id.

    Attributes:
        ids: sample ids, sorted.
        y_true: ``(N,)`` int class indices.
        probs: ``(N, K)`` float class probabilities.
        classes: the ``K`` class names.
        folds: ``(N,)`` fold id of each sample (where it was tested).
        groups: ``(N,)`` a grouping for per-dataset figures (e.g. the source dataset).
    """

    ids: list[str]
    y_true: np.ndarray
    probs: np.ndarray
    classes: tuple[str, ...]
    folds: list[str]
    groups: list[str]

    @property
    def y_pred(self) -> np.ndarray:
        """``(N,)`` arg-max class of each sample."""
        return self.probs.argmax(axis=1)

    def subset(self, group: str) -> PooledPredictions:
        """Only the samples of ``group``."""
        keep = [i for i, g in enumerate(self.groups) if g == group]
        return PooledPredictions([self.ids[i] for i in keep], self.y_true[keep],
                                 self.probs[keep], self.classes,
                                 [self.folds[i] for i in keep], [self.groups[i] for i in keep])


def pool_predictions(fold_predictions: Iterable[Mapping[str, Sequence[float]]],
                     labels: Mapping[str, int], classes: Sequence[str], *,
                     folds: Mapping[str, str] | None = None,
                     groups: Mapping[str, str] | None = None,
                     require_all: bool = True) -> PooledPredictions:
    """Pool per-fold predictions ``{sample id: probabilities}`` and align them with the labels.

    Args:
        fold_predictions: one mapping per fold, sample id -> ``K`` probabilities.
        labels: sample id -> true class index (every predicted id must be here).
        classes: the class names (``K``).
        folds, groups: sample id -> fold id / group name (default: "" for all).
        require_all: every labelled sample must have exactly one prediction.

    Raises:
        DatasetError: an id predicted twice (a sample in two test folds), an id without a
            label, or (``require_all``) a labelled id without a prediction.
    """
    pooled: dict[str, np.ndarray] = {}
    k = len(classes)
    for preds in fold_predictions:
        for sid, p in preds.items():
            if sid in pooled:
                raise DatasetError(f"sample {sid} was predicted in two folds: each sample must be "
                                   "tested exactly once")
            if sid not in labels:
                raise DatasetError(f"prediction for unknown sample {sid}")
            arr = np.asarray(p, dtype=np.float64).ravel()
            if arr.size != k:
                raise DatasetError(f"sample {sid}: {arr.size} probabilities for {k} classes")
            pooled[sid] = arr
    if require_all:
        missing = sorted(set(labels) - set(pooled))
        if missing:
            raise DatasetError(f"{len(missing)} samples have no prediction (e.g. {missing[0]}): "
                               "a fold is missing")
    ids = sorted(pooled)
    y = np.array([int(labels[i]) for i in ids], dtype=np.int64)
    probs = np.stack([pooled[i] for i in ids]) if ids else np.zeros((0, k))
    return PooledPredictions(ids, y, probs, tuple(classes),
                             [(folds or {}).get(i, "") for i in ids],
                             [(groups or {}).get(i, "") for i in ids])


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts; rows = true class, columns = predicted class."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    sx = x[order]
    ranks = np.empty(x.size, dtype=np.float64)
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def binary_auc(positive: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray
               ) -> float:
    """Area under the ROC curve of ``scores`` for the ``positive`` samples.

    The probability that a random positive scores higher than a random negative (ties
    count 1/2), via the Mann-Whitney U statistic. NaN when there are no positives or no
    negatives.
    """
    pos = np.asarray(positive, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _ranks(s)
    u = r[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _safe_div(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def compute_metrics(y_true: Sequence[int] | np.ndarray, probs: np.ndarray,
                    classes: Sequence[str]) -> dict[str, Any]:
    """Every figure of the module docstring for one set of pooled predictions.

    Args:
        y_true: ``(N,)`` true class indices.
        probs: ``(N, K)`` probabilities (or scores; the arg-max is the prediction).
        classes: class names (``K``).

    Returns:
        ``{"n", "accuracy", "precision", "recall", "f1", "auc", "uf1", "uar",
        "per_class": {name: {"precision", "recall", "f1", "auc", "support"}},
        "confusion": K x K list, "classes": [...]}``. NaN where undefined (no sample).
    """
    k = len(classes)
    y = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape != (y.size, k):
        raise ValueError(f"probs must have shape ({y.size}, {k}), got {p.shape}")
    pred = p.argmax(axis=1) if y.size else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(y, pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    fp = predicted - tp
    fn = support - tp
    per_class: dict[str, dict[str, float]] = {}
    precisions, recalls, f1s, aucs, uf1_terms, uar_terms = [], [], [], [], [], []
    for c in range(k):
        prec = _safe_div(tp[c], predicted[c])
        rec = _safe_div(tp[c], support[c])
        f1 = _safe_div(2 * tp[c], 2 * tp[c] + fp[c] + fn[c])
        auc = binary_auc(y == c, p[:, c]) if y.size else float("nan")
        per_class[str(classes[c])] = {"precision": prec, "recall": rec, "f1": f1, "auc": auc,
                                      "support": int(support[c])}
        if support[c] > 0:
            precisions.append(prec)
            recalls.append(rec)
            f1s.append(f1)
            uf1_terms.append(f1)
            uar_terms.append(rec)
        if not math.isnan(auc):
            aucs.append(auc)

    def mean(v: list[float]) -> float:
        return float(np.mean(v)) if v else float("nan")

    return {
        "n": int(y.size),
        "accuracy": float((pred == y).mean()) if y.size else float("nan"),
        "precision": mean(precisions),
        "recall": mean(recalls),
        "f1": mean(f1s),
        "auc": mean(aucs),
        "uf1": mean(uf1_terms),
        "uar": mean(uar_terms),
        "per_class": per_class,
        "confusion": cm.tolist(),
        "classes": [str(c) for c in classes],
    }


def pooled_metrics(pooled: PooledPredictions) -> dict[str, Any]:
    """:func:`compute_metrics` of pooled predictions, plus per-group figures when the
    predictions span several groups (e.g. the source datasets of the composite)."""
    out = compute_metrics(pooled.y_true, pooled.probs, pooled.classes)
    names = sorted({g for g in pooled.groups if g})
    if len(names) > 1:
        out["groups"] = {}
        for g in names:
            sub = pooled.subset(g)
            m = compute_metrics(sub.y_true, sub.probs, sub.classes)
            out["groups"][g] = {k: v for k, v in m.items() if k not in ("classes",)}
    return out


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation, ignoring NaN; NaN when empty."""
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())


SUMMARY_KEYS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "auc", "uf1", "uar")


def summarise_seeds(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std", "values"}}`` over the seeds' pooled metrics."""
    out: dict[str, dict[str, Any]] = {}
    for key in SUMMARY_KEYS:
        vals = [float(m[key]) for m in per_seed if key in m]
        mu, sd = mean_std(vals)
        out[key] = {"mean": mu, "std": sd, "values": vals}
    return out


def save_confusion_png(confusion: Sequence[Sequence[int]] | np.ndarray, classes: Sequence[str],
                       path: str | os.PathLike[str], title: str = "") -> Path:
    """Write the confusion matrix as a PNG (counts and row-normalised colours).

    Uses matplotlib's Agg back-end (no display needed).
    """
    from mestudio.fsutil import agg_matplotlib

    agg_matplotlib()
    from matplotlib.figure import Figure

    cm = np.asarray(confusion, dtype=np.int64)
    k = len(classes)
    rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=np.float64), where=rows > 0)
    side = 1.2 + 0.75 * k
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title, fontsize=10)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.6 else "black", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    from mestudio.fsutil import atomic_path

    with atomic_path(out, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=110)
    return out
