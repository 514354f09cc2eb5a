"""MEGC spotting metrics: interval IoU, one-to-one matching, precision/recall/F1.

The protocol (SPOTTING.md):

* intervals are *inclusive* frame ranges ``(onset, offset)``;
  ``inter = max(0, min(e1, e2) - max(s1, s2) + 1)``, ``union = len1 + len2 - inter``,
  ``IoU = inter / union``;
* a prediction is a true positive when its IoU with a ground-truth interval is >= 0.5;
  every ground truth is matched at most once and every prediction at most once;
* ``FP = N_pred - TP``, ``FN = M_gt - TP``; ``P = TP/N``, ``R = TP/M``, ``F1 = 2TP/(M+N)``;
* over several videos TP/FP/FN are summed first, then P, R and F1 are computed.

Matching is one-to-one and maximises the number of true positives (a maximum bipartite
matching over the pairs with IoU >= the threshold), with ties broken towards higher IoU;
this is never worse than the greedy "best IoU first" matching of the MEGC scripts and equal
to it whenever predictions do not compete for the same truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Interval = tuple[int, int]
"""An inclusive ``(onset, offset)`` frame range."""


def interval_of(item: Any) -> Interval:
    """The inclusive ``(onset, offset)`` frame interval of a SpotEvent, a dict with
    ``onset``/``offset`` keys or a 2-sequence."""
    if isinstance(item, dict):
        return int(item["onset"]), int(item["offset"])
    if hasattr(item, "onset") and hasattr(item, "offset"):
        return int(item.onset), int(item.offset)
    s, e = item
    return int(s), int(e)


def interval_iou(a: Interval, b: Interval) -> float:
    """IoU of two inclusive frame intervals (frames counted, so ``(3, 3)`` has length 1)."""
    s1, e1 = a
    s2, e2 = b
    len1 = e1 - s1 + 1
    len2 = e2 - s2 + 1
    if len1 <= 0 or len2 <= 0:
        raise ValueError(f"empty interval: {a} / {b} (offset must be >= onset)")
    inter = max(0, min(e1, e2) - max(s1, s2) + 1)
    union = len1 + len2 - inter
    return inter / union


@dataclass(frozen=True)
class SpotScore:
    """Spotting counts and scores (MEGC).

    Attributes:
        tp, fp, fn: true positives, false positives, false negatives (summed over videos).
        precision, recall, f1: ``TP/N``, ``TP/M``, ``2TP/(M+N)``, or ``None`` when undefined
            (the denominator is 0): precision with no prediction, recall with no truth, and
            all three when there is neither (nothing to score). ``as_dict`` writes ``None``
            as JSON ``null``; :func:`format_score` prints it as ``n/a``.
    """

    tp: int
    fp: int
    fn: int

    @property
    def n_pred(self) -> int:
        return self.tp + self.fp

    @property
    def n_truth(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float | None:
        return self.tp / self.n_pred if self.n_pred else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.n_truth if self.n_truth else None

    @property
    def f1(self) -> float | None:
        denom = self.n_pred + self.n_truth
        return 2 * self.tp / denom if denom else None

    def __add__(self, other: SpotScore) -> SpotScore:
        return SpotScore(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_dict(self) -> dict[str, float | None]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


def format_score(value: float | None, width: int = 6, digits: int = 3) -> str:
    """``value`` right-aligned in ``width`` characters with ``digits`` decimals, or ``n/a``
    when it is undefined (``None``, see :class:`SpotScore`)."""
    if value is None:
        return f"{'n/a':>{width}}"
    return f"{value:>{width}.{digits}f}"


def match_intervals(pred: Sequence[Any], truth: Sequence[Any], iou: float = 0.5,
                    ) -> list[tuple[int, int, float]]:
    """One-to-one matching of predicted to ground-truth intervals.

    Args:
        pred: predicted intervals (SpotEvents, dicts with ``onset``/``offset`` or pairs),
            inclusive frame indices.
        truth: ground-truth intervals, same forms.
        iou: minimum IoU for a match (MEGC: 0.5; a pair with IoU exactly ``iou`` matches).

    Returns:
        ``[(pred_index, truth_index, iou), ...]`` of the matched pairs, sorted by pred index.
        ``len(result)`` is the number of true positives.
    """
    p_iv = [interval_of(p) for p in pred]
    t_iv = [interval_of(t) for t in truth]
    cand: dict[int, list[tuple[float, int]]] = {}
    for i, a in enumerate(p_iv):
        for j, b in enumerate(t_iv):
            v = interval_iou(a, b)
            if v >= iou - 1e-12:
                cand.setdefault(i, []).append((v, j))
    # Highest-IoU options first, so augmenting paths prefer good pairs.
    for opts in cand.values():
        opts.sort(key=lambda x: (-x[0], x[1]))
    truth_owner: dict[int, int] = {}

    def _augment(i: int, seen: set[int]) -> bool:
        for _v, j in cand.get(i, []):
            if j in seen:
                continue
            seen.add(j)
            if j not in truth_owner or _augment(truth_owner[j], seen):
                truth_owner[j] = i
                return True
        return False

    # Process predictions by their best IoU (greedy order) then augment (maximum matching).
    order = sorted(cand, key=lambda i: (-cand[i][0][0], i))
    for i in order:
        _augment(i, set())
    ious = {(i, j): v for i, opts in cand.items() for v, j in opts}
    return sorted(((i, j, ious[(i, j)]) for j, i in truth_owner.items()), key=lambda m: m[0])


def score_intervals(pred: Sequence[Any], truth: Sequence[Any], iou: float = 0.5) -> SpotScore:
    """TP/FP/FN of one video (see :func:`match_intervals`)."""
    tp = len(match_intervals(pred, truth, iou))
    return SpotScore(tp=tp, fp=len(pred) - tp, fn=len(truth) - tp)


def score_videos(pairs: Iterable[tuple[Sequence[Any], Sequence[Any]]], iou: float = 0.5,
                 ) -> SpotScore:
    """Sum TP/FP/FN over videos given ``(pred, truth)`` per video, then score (MEGC)."""
    total = SpotScore(0, 0, 0)
    for pred, truth in pairs:
        total = total + score_intervals(pred, truth, iou)
    return total


def _kind_of(item: Any) -> str | None:
    if isinstance(item, dict):
        return item.get("kind")
    return getattr(item, "kind", None)


def score_by_kind(pairs: Iterable[tuple[Sequence[Any], Sequence[Any]]], iou: float = 0.5,
                  kinds: Sequence[str] = ("micro", "macro")) -> dict[str, SpotScore]:
    """Per-kind scores summed over videos: predictions of kind ``k`` against truths of kind
    ``k`` (truth entries of other kinds, e.g. ``"blink"``, are not spotting targets).

    Also returns ``"all"``: every micro/macro prediction against every micro/macro truth,
    kinds ignored (a macro predicted as micro still counts as found).
    """
    pairs = list(pairs)
    out: dict[str, SpotScore] = {}
    for k in kinds:
        out[k] = score_videos(
            ([p for p in pred if _kind_of(p) == k], [t for t in truth if _kind_of(t) == k])
            for pred, truth in pairs)
    out["all"] = score_videos(
        ([p for p in pred if _kind_of(p) in kinds], [t for t in truth if _kind_of(t) in kinds])
        for pred, truth in pairs)
    return out
