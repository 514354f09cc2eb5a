"""MEGC spotting metrics on hand-made intervals: IoU edge cases, one-to-one matching, sums."""

from __future__ import annotations

import pytest

from mestudio.spotting.metrics import (
    SpotScore,
    format_score,
    interval_iou,
    match_intervals,
    score_by_kind,
    score_intervals,
    score_videos,
)
from mestudio.types import SpotEvent


def _ev(onset: int, offset: int, kind: str = "micro") -> SpotEvent:
    return SpotEvent(onset=onset, apex=onset, offset=offset, onset_s=onset / 30,
                     apex_s=onset / 30, offset_s=offset / 30, kind=kind,  # type: ignore[arg-type]
                     roi="brow_left", peak=1.0)


def test_iou_counts_frames_inclusively():
    assert interval_iou((10, 10), (10, 10)) == 1.0           # one frame each, same frame
    assert interval_iou((0, 9), (10, 19)) == 0.0              # adjacent, no common frame
    assert interval_iou((0, 10), (10, 20)) == pytest.approx(1 / 21)  # share frame 10
    assert interval_iou((0, 9), (0, 19)) == pytest.approx(10 / 20)
    assert interval_iou((5, 14), (0, 19)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        interval_iou((5, 4), (0, 10))


def test_iou_exactly_half_is_a_match_and_just_below_is_not():
    # truth 0..19 (20 frames); prediction 0..9 -> 10/20 = 0.5 exactly: true positive.
    assert len(match_intervals([(0, 9)], [(0, 19)])) == 1
    # prediction 0..8 -> 9/20 = 0.45: no match.
    assert match_intervals([(0, 8)], [(0, 19)]) == []
    # prediction 0..20 vs truth 0..9: 10/21 < 0.5.
    assert match_intervals([(0, 20)], [(0, 9)]) == []


def test_one_truth_is_matched_by_one_prediction_only():
    sc = score_intervals([(0, 10), (1, 10), (0, 9)], [(0, 10)])
    assert (sc.tp, sc.fp, sc.fn) == (1, 2, 0)
    m = match_intervals([(0, 9), (0, 10)], [(0, 10)])
    assert [(p, t) for p, t, _ in m] == [(1, 0)]   # the better (IoU 1.0) prediction wins


def test_one_prediction_matches_one_truth_only():
    # A long prediction overlapping two truths with IoU >= 0.5 each counts once.
    sc = score_intervals([(0, 21)], [(0, 11), (0, 13)])
    assert (sc.tp, sc.fp, sc.fn) == (1, 0, 1)


def test_matching_maximises_true_positives():
    # Greedy "best IoU first" would give A to X and leave B unmatched; the one-to-one
    # assignment A->Y, B->X finds both.
    truth = [(0, 9), (0, 15)]          # X, Y
    pred = [(0, 10), (0, 6)]           # A: IoU 10/11 with X, 11/16 with Y; B: 7/10 with X only
    sc = score_intervals(pred, truth)
    assert sc.tp == 2 and sc.fp == 0 and sc.fn == 0


def test_scores_are_summed_over_videos_before_the_ratios():
    v1 = ([(0, 9)], [(0, 9)])                         # 1 TP
    v2 = ([(100, 109), (200, 209)], [(300, 309)])     # 2 FP, 1 FN
    sc = score_videos([v1, v2])
    assert (sc.tp, sc.fp, sc.fn) == (1, 2, 1)
    assert sc.precision == pytest.approx(1 / 3)
    assert sc.recall == pytest.approx(1 / 2)
    assert sc.f1 == pytest.approx(2 * 1 / (3 + 2))
    # Not the mean of per-video F1s (1.0 and 0.0).
    assert sc.f1 != pytest.approx(0.5)


def test_empty_cases():
    # Nothing to find, nothing found: no score is defined (not P 0, R 0 and F1 1).
    sc = score_intervals([], [])
    assert (sc.precision, sc.recall, sc.f1) == (None, None, None)
    assert sc.as_dict() == {"tp": 0, "fp": 0, "fn": 0, "precision": None, "recall": None,
                            "f1": None}
    # No prediction: precision undefined, the truth was missed (R 0, F1 0).
    sc = score_intervals([], [(0, 5)])
    assert (sc.precision, sc.recall, sc.f1) == (None, 0.0, 0.0)
    # No truth: every prediction is false (P 0, F1 0), recall undefined.
    sc = SpotScore(0, 3, 0)
    assert (sc.precision, sc.recall, sc.f1) == (0.0, None, 0.0)


def test_format_score_prints_n_a_for_undefined_scores():
    assert format_score(None) == "   n/a"
    assert format_score(0.5) == " 0.500"
    assert format_score(1.0, width=4, digits=1) == " 1.0"


def test_per_kind_scoring_keeps_micro_and_macro_apart_and_ignores_blinks():
    truth = [{"onset": 10, "offset": 20, "kind": "micro"},
             {"onset": 100, "offset": 160, "kind": "macro"},
             {"onset": 200, "offset": 205, "kind": "blink"}]
    pred = [_ev(10, 19, "micro"),           # micro TP
            _ev(100, 150, "micro"),         # a macro reported as micro: micro FP, macro FN
            _ev(200, 205, "micro")]         # the blink: micro FP
    sc = score_by_kind([(pred, truth)])
    assert (sc["micro"].tp, sc["micro"].fp, sc["micro"].fn) == (1, 2, 0)
    assert (sc["macro"].tp, sc["macro"].fp, sc["macro"].fn) == (0, 0, 1)
    # "all" ignores the kind: the macro is found, the blink prediction is still false.
    assert (sc["all"].tp, sc["all"].fp, sc["all"].fn) == (2, 1, 0)
