"""MEGC scoring against hand-computed examples: inclusive IoU, one-to-one matching,
micro/macro/overall pooling, per video vs pooled, STRS, frame-number mapping, sweep syntax."""

from __future__ import annotations

import pytest

from mestudio.spotting.megc import (
    StrScore,
    class_mapper,
    parse_sweep,
    score_kinds,
    str_score,
    to_frame_numbers,
)
from mestudio.spotting.metrics import interval_iou, match_intervals, score_intervals
from mestudio.training.datasets import get_dataset
from mestudio.types import Prediction, SpotEvent


def iv(onset, offset, kind="micro", label=None):
    return {"onset": onset, "offset": offset, "kind": kind, "label": label}


def test_inclusive_interval_iou_by_hand():
    assert interval_iou((10, 19), (15, 24)) == pytest.approx(5 / 15)  # 5 shared of 15 frames
    assert interval_iou((10, 19), (10, 19)) == 1.0
    assert interval_iou((3, 3), (3, 3)) == 1.0                        # one frame, length 1
    assert interval_iou((0, 9), (10, 19)) == 0.0                      # touching, no overlap
    assert interval_iou((10, 19), (12, 21)) == pytest.approx(8 / 12)


def test_one_prediction_over_two_truths_counts_once():
    # [10, 29] vs [10, 19]: 10/20 = 0.5 and vs [20, 29]: 0.5 -> both qualify, one match
    s = score_intervals([(10, 29)], [(10, 19), (20, 29)])
    assert (s.tp, s.fp, s.fn) == (1, 0, 1)


def test_two_predictions_on_one_truth_one_tp_one_fp():
    s = score_intervals([(10, 19), (11, 20)], [(10, 19)])
    assert (s.tp, s.fp, s.fn) == (1, 1, 0)
    assert match_intervals([(10, 19), (11, 20)], [(10, 19)]) == [(0, 0, 1.0)]  # best IoU wins


def test_iou_exactly_half_is_a_tp_just_below_is_not():
    assert score_intervals([(10, 19)], [(15, 24)]).tp == 0            # 1/3
    assert score_intervals([(10, 19)], [(10, 29)]).tp == 1            # 10/20 = 0.5
    assert score_intervals([(10, 19)], [(10, 30)]).tp == 0            # 10/21


def test_micro_macro_overall_and_any_pooling_by_hand():
    video1 = ([iv(10, 19), iv(100, 159, "macro"), iv(300, 309)],
              [iv(10, 19), iv(100, 149, "macro"), iv(500, 509)])
    video2 = ([iv(40, 99, "micro")],                                  # a macro spotted as micro
              [iv(40, 99, "macro"), iv(200, 209)])
    s = score_kinds([video1, video2])
    # micro: v1 TP 1 ([10,19]), FP 1 ([300,309]), FN 1 ([500,509]); v2 TP 0, FP 1, FN 1
    assert (s["micro"].tp, s["micro"].fp, s["micro"].fn) == (1, 2, 2)
    assert s["micro"].f1 == pytest.approx(2 * 1 / (3 + 3))
    # macro: v1 [100,159] vs [100,149] IoU 50/60 -> TP; v2 nothing predicted -> FN 1
    assert (s["macro"].tp, s["macro"].fp, s["macro"].fn) == (1, 0, 1)
    # overall = the sums
    assert (s["overall"].tp, s["overall"].fp, s["overall"].fn) == (2, 2, 3)
    assert s["overall"].f1 == pytest.approx(4 / 9)
    # any kind: the macro spotted as micro in video 2 is found
    assert (s["any"].tp, s["any"].fp, s["any"].fn) == (3, 1, 2)


def test_pooled_f1_is_not_the_mean_of_per_video_f1():
    v1 = ([iv(10, 19)], [iv(10, 19)])                                  # F1 1.0
    v2 = ([iv(0, 9), iv(50, 59), iv(70, 79)], [iv(200, 209)])          # F1 0.0
    per_video = [score_kinds([v])["micro"].f1 for v in (v1, v2)]
    assert per_video == [1.0, 0.0]
    pooled = score_kinds([v1, v2])["micro"]
    assert (pooled.tp, pooled.fp, pooled.fn) == (1, 3, 1)
    assert pooled.f1 == pytest.approx(2 / 6)                           # not 0.5


def test_strs_counts_a_tp_only_when_the_mapped_class_is_recognised():
    dataset = get_dataset("casme_sq_lv")
    mapping, to_model = class_mapper(dataset, ("negative", "positive", "surprise"))
    assert mapping == "3class" and to_model("others") is None and to_model("negative") == "negative"
    pred = [iv(10, 19, label="negative"), iv(30, 39, label="positive"),
            iv(50, 59, label="negative"), iv(70, 79, label=None), iv(900, 909, label="surprise"),
            iv(100, 159, "macro")]
    truth = [iv(10, 19, label="negative"),      # TP, right class -> hit
             iv(30, 39, label="negative"),      # TP, wrong class
             iv(50, 59, label="others"),        # TP, class outside the model's -> never a hit
             iv(70, 79, label="surprise"),      # TP, no prediction
             iv(500, 509, label="positive")]    # FN
    s = str_score(pred, truth, to_model)
    assert (s.n_pred, s.n_truth, s.tp, s.hits) == (5, 5, 4, 1)
    assert s.spot_f1 == pytest.approx(8 / 10)
    assert s.strs == pytest.approx(2 / 10)
    assert s.pairs == [("negative", "negative"), ("negative", "positive"), ("surprise", None)]
    # UF1 over the mappable TPs: negative 2*1/(2+0+1)=2/3; surprise 0 -> mean 1/3
    assert s.uf1 == pytest.approx(1 / 3)
    assert s.strs_product == pytest.approx(0.8 / 3)
    total = s + StrScore(n_pred=1, n_truth=0)
    assert total.strs == pytest.approx(2 / 11)


def test_events_map_to_the_videos_frame_numbers():
    frames = [1, 2, 3, 5, 6, 7]                         # frame 4 missing from the folder
    pred = Prediction(probs=None, label="positive", confidence=0.9,  # type: ignore[arg-type]
                      classes=("negative", "positive", "surprise"))
    ev = SpotEvent(onset=2, apex=3, offset=5, onset_s=0, apex_s=0, offset_s=0, kind="micro",
                   roi="mouth", peak=1.0, prediction=pred)
    assert to_frame_numbers([ev], frames) == [
        {"onset": 3, "apex": 5, "offset": 7, "kind": "micro", "label": "positive"}]


def test_sweep_syntax():
    assert parse_sweep("sensitivity=0.3:0.9:0.1") == (
        "sensitivity", [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert parse_sweep("min_rise_px=0.1,0.2") == ("min_rise_px", [0.1, 0.2])
    for bad in ("sensitivity", "sensitivity=0.9:0.3:0.1", "sensitivity=0.3:0.9:0",
                "signal_size=64:96:16"):
        with pytest.raises(ValueError):
            parse_sweep(bad)
