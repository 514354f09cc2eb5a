"""Review-mode annotation model: edits, undo/redo, save/reload and coding-sheet export."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from mestudio.annotations import (
    CODING_COLUMNS,
    AnnotationDocument,
    AnnotationError,
    default_annotation_path,
    find_annotation_file,
)
from mestudio.events_io import write_events_json
from mestudio.types import Prediction, SpotEvent

FPS = 30.0


def _ev(onset, apex, offset, ev_id, label=None, kind="micro"):
    pred = None
    if label:
        pred = Prediction(probs=np.array([0.6, 0.4], np.float32), label=label, confidence=0.6,
                          classes=(label, "other"))
    return SpotEvent(onset, apex, offset, onset / FPS, apex / FPS, offset / FPS, kind, "brows",
                     0.9, emitted_index=offset + 9, prediction=pred, id=ev_id)


@pytest.fixture()
def doc():
    return AnnotationDocument([_ev(40, 45, 50, 0, "surprise"), _ev(10, 12, 16, 1),
                               _ev(100, 110, 150, 2, kind="macro")],
                              fps=FPS, n_frames=300, source="EP02_01f.avi", subject="01")


def test_document_orders_events_and_takes_predicted_label(doc):
    assert [a.onset for a in doc.annotations] == [10, 40, 100]
    assert doc.get(0).label == "surprise" and doc.get(1).label is None
    assert not doc.modified and not doc.can_undo
    assert doc.next_after(10).id == 0 and doc.previous_before(40).id == 1
    assert [a.id for a in doc.at_frame(45)] == [0]


def test_set_onset_apex_offset_recomputes_times_and_kind(doc):
    doc.set_onset(0, 42)
    a = doc.get(0)
    assert (a.onset, a.apex, a.offset) == (42, 45, 50)
    assert a.event.onset_s == pytest.approx(42 / FPS) and a.origin == "edited"
    doc.set_onset(0, 48)  # past the apex: the apex follows
    assert (doc.get(0).onset, doc.get(0).apex) == (48, 48)
    doc.set_offset(0, 70)  # 22 frames = 0.73 s: now a macro-expression
    assert doc.get(0).kind == "macro"
    doc.set_apex(0, 60)
    assert doc.get(0).apex == 60 and doc.get(0).event.apex_s == pytest.approx(2.0)
    with pytest.raises(AnnotationError, match="after the offset"):
        doc.set_onset(0, 71)
    with pytest.raises(AnnotationError, match="between"):
        doc.set_apex(0, 80)
    with pytest.raises(AnnotationError, match="outside the video"):
        doc.set_offset(0, 300)
    assert doc.get(0).event.prediction.label == "surprise"  # the model's estimate is kept


def test_undo_redo_walks_back_and_forth_through_every_edit(doc):
    original = doc.get(0)
    doc.set_offset(0, 55)
    doc.set_label(0, "happiness")
    doc.delete(1)
    new = doc.add(200, 190)  # reversed: swapped
    assert doc.get(new).onset == 190 and doc.get(new).apex == 195
    assert doc.get(new).origin == "manual" and len(doc) == 3
    assert doc.undo_text == "add event"
    for expect_len in (2, 3, 3, 3):
        assert doc.undo()
        assert len(doc) == expect_len
    assert doc.get(0) == original and not doc.undo() and not doc.modified
    assert doc.redo() and doc.get(0).offset == 55
    assert doc.redo() and doc.get(0).label == "happiness"
    doc.set_aus(0, "AU1+AU2")  # a new edit clears the redo stack
    assert not doc.can_redo
    assert doc.get(0).aus == "AU1+AU2" and 1 in doc


def test_mark_twice_adds_an_event_with_the_chosen_apex(doc):
    seen = []
    doc.add_listener(lambda what, i: seen.append((what, i)))
    assert doc.mark(220) is None and doc.pending_onset == 220
    new = doc.mark(210, apex=lambda on, off: off - 1)
    a = doc.get(new)
    assert (a.onset, a.apex, a.offset) == (210, 219, 220) and a.kind == "micro"
    assert doc.pending_onset is None
    assert seen[-1] == ("add event", new) and seen[0] == ("mark onset", None)
    doc.undo()
    assert new not in doc


def test_save_reload_round_trip_keeps_every_field(doc, tmp_path):
    doc.set_label(1, "disgust")
    doc.set_aus(1, "AU4+AU7")
    doc.set_note(1, "brow lowerer, short")
    doc.set_apex(2, 120)
    new = doc.add(250, 260, label="happiness")
    path = doc.save(tmp_path / "clip.annotations.json")
    assert not doc.modified and doc.path == path
    again = AnnotationDocument.load(path)
    assert again.fps == FPS and again.n_frames == 300 and again.subject == "01"
    assert again.filename == "EP02_01f"
    fields = ("id", "onset", "apex", "offset", "kind", "label", "aus", "note", "origin",
              "emotion", "probabilities")
    assert [{k: a.to_dict()[k] for k in fields} for a in again.annotations] == \
        [{k: a.to_dict()[k] for k in fields} for a in doc.annotations]
    assert again.get(1).note == "brow lowerer, short" and again.get(1).aus == "AU4+AU7"
    # saving the reloaded document reproduces the file
    assert again.get(new).origin == "manual" and math.isnan(again.get(new).event.peak)
    assert again.get(0).event.prediction.label == "surprise"
    assert not again.modified and again.path == path
    # keep editing the reloaded document and save in place
    again.delete(new)
    assert again.modified
    again.save()
    assert len(AnnotationDocument.load(path)) == 3
    # saving a reloaded document reproduces the file
    reloaded = AnnotationDocument.load(path)

    def strip(events):
        return [{k: v for k, v in e.items() if k != "duration_s"} for e in events]

    first = json.loads(path.read_text())["events"]
    assert strip(json.loads(reloaded.save(tmp_path / "copy.json").read_text())["events"]) == \
        strip(first)


def test_events_json_opens_as_auto_annotations(tmp_path):
    path = write_events_json(tmp_path / "events.json", [_ev(5, 7, 9, 3, "sadness")],
                             {"source": "clip.mp4", "fps": FPS, "n_frames": 60})
    doc = AnnotationDocument.load(path)
    (a,) = doc.annotations
    assert a.label == "sadness" and a.origin == "auto" and a.id == 3
    assert doc.path is None  # saving asks for a new name instead of overwriting events.json


def test_bad_annotation_files_are_user_errors(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(AnnotationError, match="not a readable JSON"):
        AnnotationDocument.load(p)
    p.write_text(json.dumps({"format": "something-else", "events": []}))
    with pytest.raises(AnnotationError, match="neither"):
        AnnotationDocument.load(p)
    p.write_text(json.dumps({"format": "mestudio-annotations/1", "fps": 30,
                             "events": [{"onset": 9, "apex": 3, "offset": 5}]}))
    with pytest.raises(AnnotationError, match="onset <= apex <= offset"):
        AnnotationDocument.load(p)


def test_coding_sheet_export_csv_and_xlsx(doc, tmp_path):
    doc.set_aus(0, "AU1+AU2")
    doc.set_label(1, "others")
    rows = list(csv.reader(doc.export_csv(tmp_path / "sheet.csv").open()))
    assert tuple(rows[0]) == CODING_COLUMNS
    assert rows[1] == ["01", "EP02_01f", "10", "12", "16", "", "others"]
    assert rows[2] == ["01", "EP02_01f", "40", "45", "50", "AU1+AU2", "surprise"]
    assert len(rows) == 4
    import openpyxl

    xlsx = doc.export_xlsx(tmp_path / "sheet.xlsx", frame_base=1)
    ws = openpyxl.load_workbook(xlsx).active
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert tuple(values[0]) == CODING_COLUMNS
    assert values[2] == ["01", "EP02_01f", 41, 46, 51, "AU1+AU2", "surprise"]
    assert values[3][2:5] == [101, 111, 151]


def test_annotation_file_is_found_beside_the_video(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    other = tmp_path / "other.mp4"
    other.write_bytes(b"")
    assert find_annotation_file(video) is None
    write_events_json(tmp_path / "events.json", [], {"source": "clip.mp4", "fps": FPS})
    assert find_annotation_file(video) == tmp_path / "events.json"
    assert find_annotation_file(other) is None  # events.json of another video
    ann = default_annotation_path(video)
    assert ann.name == "clip.annotations.json"
    AnnotationDocument([], fps=FPS, source="clip.mp4").save(ann)
    assert find_annotation_file(video) == ann
