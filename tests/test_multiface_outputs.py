"""Every face, its own micro-expressions: the outputs. ``--faces``/``--max-faces`` on
``analyze``, ``live`` and ``kiosk`` and in the settings dialog; ``frames.csv`` in the long
format (one row per face per frame, ``face_id``) and read back per face; ``face_id`` in
``events.csv``/``events.json`` (0 in the single-face mode, missing = 0); the coding sheet's
``Subject`` per face; the batch settings hash. The end-to-end part analyses a composite of two
real faces side by side (``single_face.mp4`` on the left, the demo clip on the right)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from mestudio.cli import main
from mestudio.config import AppConfig
from mestudio.csvio import (
    ALIGN_COLUMNS,
    BASE_COLUMNS,
    LONG_BASE_COLUMNS,
    FaceRowBuffer,
    FramesCsvWriter,
    read_frames_csv,
    read_frames_csv_faces,
    spotter_columns,
)
from mestudio.events_io import (
    CSV_COLUMNS,
    read_events_csv,
    read_events_json,
    write_events_csv,
    write_events_json,
)
from mestudio.types import FaceObservation, FaceResult, Frame, FrameResult, SpotEvent, SpotterState

N_FRAMES = 150  # 5 s at 30 fps: the demo face has a planted micro-expression at ~4 s


def _analyze(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["analyze", *argv, "--no-progress", "--no-recognition", "--fps", "30"])
    return code, out.getvalue()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f))


# ------------------------------------------------------------------ the two-face composite
@pytest.fixture(scope="module")
def composite(video_dir: Path, models_dir: Path, tmp_path_factory) -> Path:  # noqa: ANN001
    """An image-sequence folder: single_face.mp4 (left, ping-pong) beside the demo clip."""
    cv2 = pytest.importorskip("cv2")
    from mestudio.capture import open_source

    if not any(models_dir.glob("*yunet*.onnx")):
        pytest.skip("the YuNet face detector is not in the shared models")
    cap = cv2.VideoCapture(str(video_dir / "single_face.mp4"))
    left = []
    while len(left) < N_FRAMES:
        ok, f = cap.read()
        if not ok:
            break
        left.append(cv2.resize(f, (640, 360)))
    cap.release()
    if not left:
        pytest.skip("single_face.mp4 could not be decoded")
    left = left + left[-2:0:-1]
    folder = tmp_path_factory.mktemp("twofaces") / "seq"
    folder.mkdir()
    with open_source(f"demo:duration={N_FRAMES / 30:g},seed=0") as demo:
        for fr in demo:
            right = cv2.resize(fr.image, (480, 360))
            img = np.concatenate([left[fr.index % len(left)], right], axis=1)
            cv2.imwrite(str(folder / f"{fr.index:05d}.png"), img)
    return folder


@pytest.fixture(scope="module")
def runs(composite: Path, tmp_path_factory) -> dict[str, Path]:  # noqa: ANN001
    """``all``: --faces all; ``default``: no option; ``primary``: --faces primary
    --max-faces 2 (must equal ``default`` byte for byte)."""
    out = {}
    for name, extra in (("all", ["--faces", "all"]), ("default", []),
                        ("primary", ["--faces", "primary", "--max-faces", "2"])):
        d = tmp_path_factory.mktemp(f"out_{name}")
        code, stdout = _analyze(str(composite), "--out", str(d), *extra)
        assert code == 0, stdout
        out[name] = d
    return out


def test_all_faces_frames_csv_is_long_one_row_per_face_per_frame(runs) -> None:  # noqa: ANN001
    path = runs["all"] / "frames.csv"
    header = _header(path)
    assert header[:len(LONG_BASE_COLUMNS)] == list(LONG_BASE_COLUMNS)
    assert header[:3] == ["frame", "timestamp", "face_id"]
    lm = header[len(LONG_BASE_COLUMNS):header.index("align_m00")]
    assert lm and all(c.startswith(("x_", "y_")) for c in lm)
    # each face's alignment transform follows its landmarks (review cuts the same crops)
    assert header[header.index("align_m00"):header.index("status")] == list(ALIGN_COLUMNS)
    rois = [c for c in header if c.startswith("signal_") and c != "signal_combined"]
    assert header[header.index("status"):] == [
        "status", *spotter_columns([c[len("signal_"):] for c in rois])]
    rows = _rows(path)
    frames = [int(r["frame"]) for r in rows]
    assert frames == sorted(frames) and set(frames) == set(range(N_FRAMES))
    per_frame: dict[int, list[str]] = {}
    for r in rows:
        per_frame.setdefault(int(r["frame"]), []).append(r["face_id"])
    # two faces, numbered from 1, each frame's faces in face_id order
    ids = {fid for v in per_frame.values() for fid in v if fid}
    assert ids == {"1", "2"}, ids
    assert all(v == sorted(v, key=lambda x: int(x or 0)) for v in per_frame.values())
    assert sum(v == ["1", "2"] for v in per_frame.values()) >= 0.8 * N_FRAMES
    found = [r for r in rows if r["face_found"] == "1"]
    # each face row has its own box: face 1 and face 2 are on different sides
    xs = {fid: np.median([float(r["box_x"]) for r in found if r["face_id"] == fid])
          for fid in ("1", "2")}
    assert abs(xs["1"] - xs["2"]) > 300
    assert all(r["status"] == "ok" for r in rows)
    assert sum(r["signal_combined"] != "" for r in found) >= 0.8 * len(found)


def test_long_frames_csv_reads_back_per_face(runs) -> None:  # noqa: ANN001
    path = runs["all"] / "frames.csv"
    sig = read_frames_csv(path, N_FRAMES)
    assert sig is not None and set(sig.faces) == {1, 2}
    assert sig.face_id in (1, 2) and sig.of_face(sig.face_id).combined is not None
    faces = read_frames_csv_faces(path)
    for fid, s in faces.items():
        assert s.face_id == fid and len(s.times) == N_FRAMES
        assert np.isfinite(s.times).all()              # every frame's time is known
        assert np.isfinite(s.combined).sum() >= 0.8 * N_FRAMES
        assert set(s.rois) == set(faces[1].rois) and s.rois
    assert not np.allclose(np.nan_to_num(faces[1].combined), np.nan_to_num(faces[2].combined))
    # a single-face file reads as before: one face numbered 0
    single = read_frames_csv(runs["default"] / "frames.csv", N_FRAMES)
    assert single is not None and single.faces == {} and single.face_id is None
    assert set(read_frames_csv_faces(runs["default"] / "frames.csv")) == {0}


def test_all_faces_events_carry_face_id_and_meta_says_the_mode(runs) -> None:  # noqa: ANN001
    d = runs["all"]
    events, meta = read_events_json(d / "events.json")
    assert meta["faces"] == "all" and meta["max_faces"] == 4
    raw = json.loads((d / "events.json").read_text())["events"]
    assert all(list(e)[:2] == ["id", "face_id"] for e in raw)
    assert [e.face_id for e in events] == [e["face_id"] for e in raw]
    # the planted micro-expression is found on the right (demo) face, under its number
    rows = [r for r in _rows(d / "frames.csv") if r["face_found"] == "1"]
    right = {r["face_id"] for r in rows if float(r["box_x"]) > 600}
    assert len(right) == 1 and events
    assert {e.face_id for e in events if e.kind == "micro"} == {int(right.pop())}
    assert _header(d / "events.csv")[:len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    assert [e.face_id for e in read_events_csv(d / "events.csv")] == [e.face_id for e in events]


def test_primary_mode_is_unchanged(runs) -> None:  # noqa: ANN001
    default, primary = runs["default"], runs["primary"]
    # frames.csv: no face_id column, byte for byte the same with --faces primary
    assert _header(default / "frames.csv")[:len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert "face_id" not in _header(default / "frames.csv")
    assert len(_rows(default / "frames.csv")) == N_FRAMES
    assert (default / "frames.csv").read_bytes() == (primary / "frames.csv").read_bytes()
    assert (default / "events.csv").read_bytes() == (primary / "events.csv").read_bytes()
    events, meta = read_events_json(default / "events.json")
    assert meta["faces"] == "primary"
    assert all(e.face_id == 0 for e in events)
    assert all(r["face_id"] == "0" for r in _rows(default / "events.csv"))


def test_coding_sheet_subject_per_face_from_an_all_faces_run(runs, tmp_path) -> None:  # noqa: ANN001
    from mestudio.annotations import AnnotationDocument

    doc = AnnotationDocument.load(runs["all"] / "events.json", fps=30.0, n_frames=N_FRAMES)
    assert doc.faces == "all" and doc.per_face
    doc.subject = "S7"
    rows = doc.coding_rows()
    assert [r[0] for r in rows] == [f"S7-face{a.face_id}" for a in doc.annotations]
    saved = doc.save(tmp_path / "ann.json")
    again = AnnotationDocument.load(saved)
    assert again.faces == "all"
    assert [a.face_id for a in again.annotations] == [a.face_id for a in doc.annotations]


# ------------------------------------------------------------------------- options
def test_max_faces_below_one_is_one_line_exit_2(tmp_path, capsys) -> None:  # noqa: ANN001
    for argv in (["analyze", "demo", "--out", str(tmp_path), "--max-faces", "0"],
                 ["kiosk", "--max-faces", "-1", "--db", str(tmp_path / "k.sqlite")],
                 ["live", "--source", "demo", "--max-faces", "0"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "--max-faces must be at least 1" in err, err
    assert not (tmp_path / "frames.csv").exists()


def test_face_options_reach_the_settings_of_every_command() -> None:
    from mestudio.cli import build_parser
    from mestudio.commands.analyze import _settings, apply_face_arguments
    from mestudio.commands.kiosk import build_config

    parser = build_parser()
    args = parser.parse_args(["analyze", "demo", "--out", "x", "--faces", "all",
                              "--max-faces", "2"])
    cfg, _ = _settings(args)
    assert (cfg.tracker.faces, cfg.tracker.max_faces) == ("all", 2)
    args = parser.parse_args(["analyze", "demo", "--out", "x"])
    cfg, _ = _settings(args)
    assert (cfg.tracker.faces, cfg.tracker.max_faces) == ("primary", 4)
    args = parser.parse_args(["kiosk", "--faces", "all", "--max-faces", "3"])
    cfg = build_config(args)
    assert (cfg.tracker.faces, cfg.tracker.max_faces) == ("all", 3)
    args = parser.parse_args(["live", "--faces", "all"])
    cfg = apply_face_arguments(args, AppConfig())
    assert (cfg.tracker.faces, cfg.tracker.max_faces) == ("all", 4)


def test_batch_settings_hash_changes_with_the_face_mode() -> None:
    from mestudio.batch import settings_fingerprint

    cfg = AppConfig()
    base = settings_fingerprint(cfg, False, None)
    cfg.tracker.faces = "all"
    every = settings_fingerprint(cfg, False, None)
    cfg.tracker.max_faces = 2
    fewer = settings_fingerprint(cfg, False, None)
    assert len({base, every, fewer}) == 3


def test_settings_dialog_round_trips_the_face_mode(qtbot, tmp_path) -> None:  # noqa: ANN001
    from mestudio.config import load_settings
    from mestudio.gui.settings_dialog import SettingsDialog

    path = tmp_path / "settings.json"
    dialog = SettingsDialog(AppConfig(), settings_file=path)
    qtbot.addWidget(dialog)
    assert dialog.faces.currentData() == "primary" and dialog.max_faces.value() == 4
    assert not dialog.max_faces.isEnabled()          # only with every face
    dialog.faces.setCurrentIndex(dialog.faces.findData("all"))
    assert dialog.max_faces.isEnabled()
    dialog.max_faces.setValue(3)
    dialog.accept()
    saved = load_settings(path)
    assert (saved.tracker.faces, saved.tracker.max_faces) == ("all", 3)
    again = SettingsDialog(saved, settings_file=path)
    qtbot.addWidget(again)
    assert again.faces.currentData() == "all" and again.max_faces.value() == 3
    again.faces.setCurrentIndex(again.faces.findData("primary"))
    assert again.config().tracker.faces == "primary"
    again._load(AppConfig())                          # Restore Defaults
    assert again.faces.currentData() == "primary" and again.max_faces.value() == 4


# ------------------------------------------------------------- formats without a video
def _ev(i: int, face_id: int) -> SpotEvent:
    return SpotEvent(onset=10 * i, apex=10 * i + 2, offset=10 * i + 5, onset_s=i / 3,
                     apex_s=i / 3 + 0.07, offset_s=i / 3 + 0.17, kind="micro", roi="brows",
                     peak=0.5, id=i, face_id=face_id)


def test_event_files_keep_face_id_and_old_files_read_as_face_0(tmp_path) -> None:  # noqa: ANN001
    events = [_ev(0, 1), _ev(1, 3), _ev(2, 0)]
    write_events_json(tmp_path / "e.json", events, {"faces": "all", "max_faces": 4})
    write_events_csv(tmp_path / "e.csv", events)
    back, meta = read_events_json(tmp_path / "e.json")
    assert [e.face_id for e in back] == [1, 3, 0] and meta["faces"] == "all"
    assert [e.face_id for e in read_events_csv(tmp_path / "e.csv")] == [1, 3, 0]
    # files written before faces had numbers: no face_id → 0
    doc = json.loads((tmp_path / "e.json").read_text())
    for e in doc["events"]:
        del e["face_id"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    assert [e.face_id for e in read_events_json(tmp_path / "old.json")[0]] == [0, 0, 0]
    rows = _rows(tmp_path / "e.csv")
    with (tmp_path / "old.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, [c for c in rows[0] if c != "face_id"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    assert [e.face_id for e in read_events_csv(tmp_path / "old.csv")] == [0, 0, 0]


def test_coding_sheet_subject_per_face(tmp_path) -> None:  # noqa: ANN001
    from mestudio.annotations import AnnotationDocument

    doc = AnnotationDocument([_ev(0, 1), _ev(1, 2)], fps=30.0, n_frames=100, source="c.mp4",
                             subject="07")
    assert doc.per_face
    new = doc.add(60, 70)                               # by hand: no face said
    doc.add(80, 90, face_id=2)
    assert [r[0] for r in doc.coding_rows()] == ["07-face1", "07-face2", "07", "07-face2"]
    assert [r[0] for r in doc.coding_rows(per_face=False)] == ["07"] * 4
    doc.delete(new)
    doc.subject = ""
    assert [r[0] for r in doc.coding_rows()] == ["face1", "face2", "face2"]
    out = doc.export_csv(tmp_path / "sheet.csv")
    assert [r["Subject"] for r in _rows(out)] == ["face1", "face2", "face2"]
    # a single-face document keeps its one subject
    single = AnnotationDocument([_ev(0, 0), _ev(1, 0)], fps=30.0, subject="07")
    assert not single.per_face and [r[0] for r in single.coding_rows()] == ["07", "07"]


def _result(i: int, faces: list[tuple[int, bool, str]]) -> FrameResult:
    frs = []
    for fid, found, state in faces:
        obs = FaceObservation(found, n_faces=len(faces), confidence=0.9 if found else 0.0,
                              box=(100.0 * fid, 10.0, 50.0, 50.0) if found else None)
        frs.append(FaceResult(fid, obs, SpotterState({"brows": -1.0}, -1.0, 1.0, 0.5, state)))
    primary = frs[0].face if frs else FaceObservation(False)
    return FrameResult(Frame(i, i / 30, np.zeros((1, 1, 3), np.uint8)), primary,
                       faces=frs)


def test_face_row_buffer_waits_for_every_face_then_writes_in_face_order(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "frames.csv"
    with FramesCsvWriter(path, (), spotter_columns(("brows",)), long_format=True) as w:
        buf = FaceRowBuffer(w, ("brows",))
        final = lambda fid, i: (fid, i, i / 30, SpotterState({"brows": float(10 * fid + i)},  # noqa: E731
                                                             float(10 * fid + i), 1.0, 0.5,
                                                             "idle"))
        buf.add(_result(0, [(2, True, "idle"), (1, True, "idle")]))
        buf.add(_result(1, [(1, True, "idle"), (2, False, "no_face")]), [final(2, 0)])
        assert w.rows == 0                            # frame 0 waits for face 1
        buf.add(_result(2, []), [final(1, 0)])
        assert w.rows == 2                            # frame 0; frame 1 waits for face 1
        buf.flush([final(1, 1)])
    rows = _rows(path)
    assert [(r["frame"], r["face_id"]) for r in rows] == [
        ("0", "1"), ("0", "2"), ("1", "1"), ("1", "2"), ("2", "")]
    assert [r["signal_combined"] for r in rows] == ["10", "20", "11", "", ""]
    assert rows[3]["face_found"] == "0" and rows[3]["spot_state"] == "no_face"
    assert rows[4]["face_found"] == "0" and rows[4]["spot_state"] == ""
    assert rows[1]["box_x"] == "200"
    assert buf.live_rows == 0


def test_review_keeps_face_id_from_events_json_and_long_frames_csv(
        qtbot, composite, runs, tmp_path) -> None:  # noqa: ANN001
    from mestudio.gui.review_window import ReviewWindow

    events_json = runs["all"] / "events.json"
    expected = [e.face_id for e in read_events_json(events_json)[0]]
    win = ReviewWindow(composite, events=events_json, analyze=False,
                       engine_factory=lambda: None)
    win.ask_on_close = False
    qtbot.addWidget(win)
    try:
        assert win.signals is not None and set(win.signals.faces) == {1, 2}
        assert win.doc is not None and win.doc.faces == "all"
        assert [a.face_id for a in win.doc.annotations] == expected
        win.doc.subject = "S1"
        sheet = win.export_coding_sheet(tmp_path / "sheet.csv")
        assert [r["Subject"] for r in _rows(sheet)] == [f"S1-face{f}" for f in expected]
        out = win.export_events(tmp_path / "edited.json")
        back, meta = read_events_json(out)
        assert meta["faces"] == "all" and [e.face_id for e in back] == expected
    finally:
        win.shutdown()
