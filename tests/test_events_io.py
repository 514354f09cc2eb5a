"""events.json / events.csv round trips, truth.json reading and ``mestudio spot-eval``."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from mestudio.cli import main
from mestudio.errors import MestudioError
from mestudio.events_io import (
    EVENTS_FORMAT,
    EventsFileError,
    event_from_dict,
    event_to_dict,
    read_events_csv,
    read_events_json,
    read_truth_json,
    write_events_csv,
    write_events_json,
)
from mestudio.types import Prediction, SpotEvent

FPS = 30.0


def _ev(i: int, onset: int, apex: int, offset: int, kind: str = "micro",
        prediction: Prediction | None = None) -> SpotEvent:
    return SpotEvent(onset=onset, apex=apex, offset=offset, onset_s=onset / FPS,
                     apex_s=apex / FPS, offset_s=offset / FPS, kind=kind,  # type: ignore[arg-type]
                     roi="mouth_left", peak=0.8125, emitted_index=offset + 5, prediction=prediction,
                     id=i)


def _pred() -> Prediction:
    return Prediction(probs=np.array([0.7, 0.2, 0.1], np.float32), label="happiness",
                      confidence=0.7, classes=("happiness", "surprise", "disgust"))


def _truth(path, events, fps=FPS, n_frames=600):
    doc = {"format": "mestudio-truth/1", "fps": fps, "n_frames": n_frames,
           "events": [{"onset": s, "apex": s + 2, "offset": e, "onset_s": s / fps,
                       "apex_s": (s + 2) / fps, "offset_s": e / fps, "kind": k,
                       "label": "happiness", "aus": ["AU12"], "amplitude": 0.02}
                      for s, e, k in events]}
    path.write_text(json.dumps(doc))
    return path


def test_json_round_trip_keeps_every_field(tmp_path):
    events = [_ev(0, 10, 13, 19), _ev(1, 100, 120, 160, "macro"), _ev(2, 200, 203, 209,
                                                                     prediction=_pred())]
    meta = {"source": "clip.mp4", "fps": FPS, "n_frames": 600, "model": None,
            "spotter": {"sensitivity": 0.5}}
    path = write_events_json(tmp_path / "out" / "events.json", events, meta)
    doc = json.loads(path.read_text())
    assert doc["format"] == EVENTS_FORMAT and doc["source"] == "clip.mp4"
    assert doc["model"] is None and doc["spotter"] == {"sensitivity": 0.5}
    first = doc["events"][0]
    assert first["emotion"] is None and first["confidence"] is None
    assert first["probabilities"] == {}
    assert first["duration_s"] == pytest.approx(9 / FPS, abs=1e-6)
    assert doc["events"][2]["probabilities"]["happiness"] == pytest.approx(0.7)
    back, meta_back = read_events_json(path)
    assert meta_back["fps"] == FPS and meta_back["n_frames"] == 600
    assert [event_to_dict(e) for e in back] == [event_to_dict(e) for e in events]
    assert back[2].prediction is not None and back[2].prediction.label == "happiness"
    assert back[2].prediction.classes == ("happiness", "surprise", "disgust")


def test_csv_round_trip_with_empty_emotion_cells(tmp_path):
    events = [_ev(0, 10, 13, 19), _ev(1, 200, 203, 209, prediction=_pred())]
    path = write_events_csv(tmp_path / "events.csv", events)
    rows = list(csv.DictReader(path.open()))
    assert rows[0]["emotion"] == "" and rows[0]["prob_happiness"] == ""
    assert rows[1]["emotion"] == "happiness" and float(rows[1]["prob_surprise"]) == pytest.approx(0.2)
    assert int(rows[0]["onset"]) == 10 and float(rows[0]["offset_s"]) == pytest.approx(19 / FPS)
    back = read_events_csv(path)
    assert [event_to_dict(e) for e in back] == [event_to_dict(e) for e in events]


def test_nan_peak_is_written_as_null(tmp_path):
    ev = _ev(0, 1, 2, 3)
    ev.peak = math.nan
    path = write_events_json(tmp_path / "e.json", [ev], {"fps": FPS})
    assert json.loads(path.read_text())["events"][0]["peak"] is None
    assert math.isnan(read_events_json(path)[0][0].peak)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("{not json", "not valid JSON"),
    ('{"format": "something-else", "events": []}', "not a mestudio events file"),
    ('{"format": "mestudio-events/1", "events": [{"onset": 5}]}', "no 'apex' field"),
    ('{"format": "mestudio-events/1", "events": [{"onset": 5, "apex": 3, "offset": 9}]}',
     "onset <= apex <= offset"),
])
def test_bad_events_files_raise_a_clear_error(tmp_path, content, message):
    path = tmp_path / "events.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(EventsFileError, match=message) as info:
        read_events_json(path)
    assert isinstance(info.value, MestudioError)


def test_event_from_dict_rejects_an_unknown_kind():
    d = event_to_dict(_ev(0, 1, 2, 3))
    d["kind"] = "blink"
    with pytest.raises(EventsFileError, match="kind"):
        event_from_dict(d)


def test_truth_file_is_read_and_checked(tmp_path):
    events, meta = read_truth_json(_truth(tmp_path / "truth.json", [(10, 20, "micro"),
                                                                    (50, 55, "blink")]))
    assert [(e["onset"], e["offset"], e["kind"]) for e in events] == [(10, 20, "micro"),
                                                                      (50, 55, "blink")]
    assert meta["fps"] == FPS
    (tmp_path / "bad.json").write_text(json.dumps({"format": "mestudio-truth/1",
                                                   "events": [{"onset": 9, "offset": 3,
                                                               "kind": "micro"}]}))
    with pytest.raises(EventsFileError, match="offset 3 < onset 9"):
        read_truth_json(tmp_path / "bad.json")


def test_spot_eval_prints_micro_and_macro_scores(tmp_path, capsys):
    truth = _truth(tmp_path / "truth.json", [(10, 20, "micro"), (100, 150, "macro"),
                                             (300, 306, "blink"), (400, 410, "micro")])
    pred = write_events_json(tmp_path / "events.json",
                             [_ev(0, 11, 14, 20), _ev(1, 102, 120, 148, "macro"),
                              _ev(2, 300, 302, 306)], {"fps": FPS})
    out_json = tmp_path / "scores.json"
    assert main(["spot-eval", "--pred", str(pred), "--truth", str(truth),
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.split()}
    # micro: 1 TP, 1 FP (the blink), 1 FN; macro: 1 TP.
    assert lines["micro"][1:4] == ["1", "1", "1"]
    assert float(lines["micro"][6]) == pytest.approx(0.5)
    assert lines["macro"][1:4] == ["1", "0", "0"] and float(lines["macro"][6]) == 1.0
    scores = json.loads(out_json.read_text())["scores"]
    assert scores["micro"]["f1"] == pytest.approx(0.5)


def test_spot_eval_prints_n_a_when_a_kind_has_nothing_to_score(tmp_path, capsys):
    """No macro-expression in the truth nor in the prediction: P, R and F1 are undefined
    (printed n/a, JSON null), not 0, 0 and 1."""
    truth = _truth(tmp_path / "truth.json", [(10, 20, "micro")])
    pred = write_events_json(tmp_path / "events.json", [_ev(0, 11, 14, 20)], {"fps": FPS})
    out_json = tmp_path / "scores.json"
    assert main(["spot-eval", "--pred", str(pred), "--truth", str(truth),
                 "--json", str(out_json)]) == 0
    lines = {ln.split()[0]: ln.split() for ln in capsys.readouterr().out.splitlines()
             if ln.split()}
    assert lines["macro"][1:] == ["0", "0", "0", "n/a", "n/a", "n/a"]
    assert lines["micro"][1:] == ["1", "0", "0", "1.000", "1.000", "1.000"]
    scores = json.loads(out_json.read_text())["scores"]
    assert scores["macro"] == {"tp": 0, "fp": 0, "fn": 0, "precision": None, "recall": None,
                               "f1": None}
    assert scores["micro"]["f1"] == 1.0


def test_spot_eval_sums_several_videos(tmp_path, capsys):
    t1 = _truth(tmp_path / "t1.json", [(10, 20, "micro")])
    t2 = _truth(tmp_path / "t2.json", [(30, 40, "micro"), (60, 70, "micro")])
    p1 = write_events_json(tmp_path / "p1.json", [_ev(0, 10, 12, 20)], {"fps": FPS})
    p2 = write_events_json(tmp_path / "p2.json", [_ev(0, 30, 33, 40), _ev(1, 90, 93, 99)],
                           {"fps": FPS})
    assert main(["spot-eval", "--pred", str(p1), "--truth", str(t1),
                 "--pred", str(p2), "--truth", str(t2)]) == 0
    micro = next(ln.split() for ln in capsys.readouterr().out.splitlines()
                 if ln.startswith("micro"))
    assert micro[1:4] == ["2", "1", "1"]          # TP, FP, FN summed over both videos
    assert float(micro[6]) == pytest.approx(2 * 2 / (3 + 3), abs=1e-3)


def test_spot_eval_exits_2_on_a_bad_file(tmp_path, capsys):
    truth = _truth(tmp_path / "truth.json", [(10, 20, "micro")])
    (tmp_path / "broken.json").write_text("{")
    assert main(["spot-eval", "--pred", str(tmp_path / "broken.json"),
                 "--truth", str(truth)]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and len(err.strip().splitlines()) == 1
    assert main(["spot-eval", "--pred", str(tmp_path / "missing.json"),
                 "--truth", str(truth)]) == 2
    # A truth file given as prediction (wrong format) and unpaired arguments.
    assert main(["spot-eval", "--pred", str(truth), "--truth", str(truth)]) == 2
    assert main(["spot-eval", "--pred", str(truth), "--truth", str(truth),
                 "--truth", str(truth)]) == 2
