"""Macro events named by the expression model, micro events by the micro-expression model:
routing, wording (live, review, kiosk, files) and the label scores of spot-eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mestudio.cli import main
from mestudio.engine.recognition import Recognizer
from mestudio.inference.engine import InferenceEngine
from mestudio.predtext import emotion_text, macro_caveat, named_by_text
from mestudio.spotting import annotated as an
from mestudio.types import FaceObservation, SpotEvent
from test_recognition import FakeEngine, fake_inputs

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _event(i: int, onset: int, apex: int, offset: int, kind: str) -> SpotEvent:
    return SpotEvent(onset=onset, apex=apex, offset=offset, onset_s=onset / 30,
                     apex_s=apex / 30, offset_s=offset / 30, kind=kind, roi="mouth", peak=3.0,
                     emitted_index=offset + 5, id=i)


def test_macro_events_go_to_the_expression_model_and_micro_ones_to_the_micro_model(
        expression_model: Path, data_dir: Path) -> None:
    import cv2

    from mestudio.preprocess import align_keyframes

    cap = cv2.VideoCapture(str(data_dir / "video" / "single_face.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 36)
    ok, frame = cap.read()
    cap.release()
    assert ok
    smile = align_keyframes([frame], 128)[0]
    micro_engine = FakeEngine()
    rec = Recognizer(micro_engine, inputs_fn=fake_inputs, buffer_s=10.0,
                     macro_engine=InferenceEngine(expression_model))
    assert rec.kinds == ("micro", "macro")
    for i in range(40):
        obs = FaceObservation(face_found=True, aligned=smile)
        rec.add_frame(i, i / 30, obs)
    micro, macro = _event(0, 2, 4, 8, "micro"), _event(1, 10, 20, 35, "macro")
    assert rec.submit(micro) and rec.submit(macro)
    rec.wait(30)
    rec.close()
    assert micro.prediction is not None and micro.prediction.source == "micro"
    assert macro.prediction is not None and macro.prediction.source == "expression"
    assert macro.prediction.label == "happy" and macro.prediction.classes[3] == "happy"
    assert sum(micro_engine.batches) == 1  # the macro event never reached the micro model
    assert emotion_text(macro.prediction, "macro") == "happiness (expression model)"
    assert named_by_text(macro.prediction, "macro").startswith(
        "macro-expression: happiness (expression model")
    assert "not a felt emotion" in macro_caveat(macro.prediction)
    assert named_by_text(micro.prediction, "micro").startswith("micro-expression: ")
    assert "micro-expressions" in macro_caveat(micro.prediction)


def _analyze(video: Path, out: Path, *extra: str) -> list[dict]:
    assert main(["analyze", str(video), "--out", str(out), "--no-progress", *extra]) == 0
    return json.loads((out / "events.json").read_text())["events"]


def test_analyze_names_the_smile_with_the_expression_model_and_says_so(
        expression_model: Path, video_dir: Path, tmp_path: Path) -> None:
    video = video_dir / "single_face.mp4"
    events = _analyze(video, tmp_path / "on", "--macro-model", str(expression_model))
    smiles = [e for e in events if e["kind"] == "macro" and e["onset"] <= 36 <= e["offset"]]
    assert smiles, events
    ev = smiles[0]
    assert ev["recognised_by"] == "expression" and ev["emotion"] == "happy"
    assert "prob_happy" in (tmp_path / "on" / "events.csv").read_text().splitlines()[0]
    doc = json.loads((tmp_path / "on" / "events.json").read_text())
    assert doc["model"]["macro_model"]["training_data"] == "real: FER2013"
    # turned off: the micro-expression model names the same smile, and the file says so
    off = _analyze(video, tmp_path / "off", "--macro-model", "off")
    macro = [e for e in off if e["kind"] == "macro"]
    assert macro and all(e["recognised_by"] in ("micro", None) for e in macro)


def test_kiosk_words_for_the_expression_models_classes() -> None:
    from mestudio.gui.kiosk_window import MOODS, visitor_headline

    assert visitor_headline("happy", "macro") == "You smiled"
    assert visitor_headline("surprise", "macro") == "You looked surprised"
    assert visitor_headline("sad", "macro") == "You looked sad"
    assert MOODS["happy"] == "happy" and MOODS["angry"] == "angry"


def test_annotation_descriptions_map_to_three_classes() -> None:
    assert an.expected_class("smile / laugh (open mouth, teeth)") == "positive"
    assert an.expected_class("asymmetric smirk (one lip corner pulled up)") is None
    assert an.expected_class("surprise: jaw drop, wide open O mouth") == "surprise"
    assert an.expected_class("lip corners down + chin raise (sad mouth)") == "negative"
    assert an.expected_class("tongue out") is None
    assert an.three_class("happy") == "positive" and an.three_class("neutral") is None
    assert an.three_class("fear") == "negative" and an.three_class("positive") == "positive"


def test_label_scores_and_confusion_table() -> None:
    from mestudio.types import Prediction

    def pred(label: str, source: str = "expression") -> Prediction:
        return Prediction(probs=np.ones(7, np.float32) / 7, label=label, confidence=0.9,
                          classes=("a",) * 7, source=source)

    rows = [an.AnnotatedRow("c", 0, 10, 20, 30, "macro", "smile", "high"),
            an.AnnotatedRow("c", 0, 40, 50, 60, "macro", "surprise: jaw drop", "high"),
            an.AnnotatedRow("c", 0, 70, 80, 90, "macro", "frown", "high"),
            an.AnnotatedRow("c", 0, 100, 105, 110, "macro", "tongue out", "high")]
    events = [_event(0, 12, 20, 28, "macro"), _event(1, 45, 50, 55, "macro")]
    events[0].prediction = pred("happy")
    events[1].prediction = pred("happy")
    labelled = an.label_rows("c", rows, events)
    assert [r.expected for r in labelled] == ["positive", "surprise", "negative"]
    assert [r.event_label for r in labelled] == ["positive", "positive", None]
    summary = an.label_summary(labelled)
    assert summary["spotted"] == 2 and summary["events"]["right"] == 1
    assert summary["events"]["confusion"]["surprise"]["positive"] == 1
    assert summary["events_by_model"]["expression"]["n"] == 2
    text = an.format_labels(summary)
    assert "1/2 right" in text and "truth \\ said" in text


def test_review_names_a_macro_event_with_the_expression_model(
        expression_model: Path, video_dir: Path) -> None:
    from mestudio.capture import open_source
    from mestudio.engine.event_details import compute_event_details

    source = open_source(str(video_dir / "single_face.mp4"))
    try:
        ev = _event(0, 17, 36, 60, "macro")
        details = compute_event_details(source.read, ev, engine=FakeEngine(),
                                        macro_engine=InferenceEngine(expression_model))
    finally:
        source.close()
    pred = details.prediction
    assert pred is not None and pred.source == "expression" and pred.label == "happy"
    assert set(details.cams) == {"face"} and details.cams["face"].ndim == 3
    assert any("not a felt emotion" in n for n in details.notes)


def test_a_missing_macro_model_is_one_line_and_exit_2(video_dir: Path, tmp_path: Path,
                                                      capsys) -> None:
    out = tmp_path / "out"
    code = main(["analyze", str(video_dir / "single_face.mp4"), "--out", str(out),
                 "--no-progress", "--macro-model", str(tmp_path / "nothing.onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--macro-model" in err[0] and "or off" in err[0]
    assert not out.exists()
