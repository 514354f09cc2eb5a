"""Fixture releases of the long-video spotting datasets: CAS(ME)² long videos, SAMM Long
Videos and CAS(ME)³ part A (layouts and sheet quirks as the loaders document them).

Tiny synthetic frames (32 px faces from :mod:`training.fixtures`), a few dozen frames per
long video. Each builder returns a :class:`~training.fixtures.FixtureRelease` whose
``expected`` holds what a correct loader must find.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.fixtures import (
    CodedRow,
    FixtureRelease,
    _image_fn,
    _write_xlsx,
    build_casme_sq,
    casme_sq_rows,
    write_frames,
)

# ---- CAS(ME)^2 long videos ----------------------------------------------------------------

def build_casme_sq_lv(root: Path, *, n_frames: int = 40, size: int = 32) -> FixtureRelease:
    """The CAS(ME)^2 fixture (:func:`training.fixtures.build_casme_sq`: micro and macro rows,
    an offset of 0) plus a long video without any coded row and a row whose apex lies
    outside its interval."""
    rows = casme_sq_rows() + [
        CodedRow(2, "happy1_2", 20, 35, 30, "12", "positive",
                 extra={"type": "macro-expression"}),  # apex outside [20, 30]
    ]
    release = build_casme_sq(root, rows=rows, n_frames=n_frames, size=size)
    empty = Path(root) / "rawpic" / "s19" / "19_0401girlcrashing"  # no row names it
    write_frames(empty, rows[0], range(1, n_frames + 1), lambda n: f"img{n:03d}.jpg",
                 _image_fn(None, size))
    release.expected.update({
        "videos": ["s15/15_0101disgustingteeth", "s15/15_0401girlcrashing",
                   "s16/16_0502funnyerrors", "s19/19_0101disgustingteeth",
                   "s19/19_0401girlcrashing"],
        "micro": 5, "macro": 3, "n_frames": n_frames,
    })
    return release


# ---- SAMM Long Videos ------------------------------------------------------------------------

SAMM_LV_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset",
                  "Duration", "Type", "Action Units", "Notes"]
SAMM_MICRO_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
                     "Offset Frame", "Duration", "Micro", "Action Units", "Estimated Emotion",
                     "Objective Classes", "Notes"]


def samm_lv_rows() -> list[CodedRow]:
    """SAMM-LV rows (extra: type; emotion only matters for micro rows via the micro sheet)."""
    micro, macro = "Micro - 1/2", "Macro"
    return [
        CodedRow("006", "006_1_1", 5, 9, 14, "R12", "Happiness", extra={"type": micro}),
        CodedRow("006", "006_1_2", 20, 30, 40, "4+7", "", extra={"type": macro}),
        CodedRow(6, "006_2_1", 8, 12, 0, "12", "Anger", extra={"type": micro}),  # offset 0
        CodedRow("007", "007_1_1", 10, 30, 16, "1+2", "Surprise",
                 extra={"type": micro}),                                  # apex outside
        CodedRow("007", "007_1_2", 25, 28, 36, "", "", extra={"type": "Macro"}),
        CodedRow("007", "007_3_1", 5, 6, 9, "14", "", extra={"type": micro},
                 folder=False),                                           # no folder
        CodedRow("007", "007_1_3", 3, 4, 6, "", "", extra={"type": "blink?"}),  # bad type
    ]


def build_samm_lv(root: Path, *, rows: Sequence[CodedRow] | None = None, n_frames: int = 48,
                  size: int = 32, micro_sheet: bool = True, preamble: int = 9,
                  gap: Sequence[int] = (44, 45)) -> FixtureRelease:
    """A SAMM Long Videos release: ``SAMM_LongVideos_V3_Release.xlsx`` (first sheet,
    ``preamble`` rows before the header; ``Type`` ``Micro - 1/2``/``Macro``), optionally the
    SAMM micro sheet with the micro rows' emotions, and
    ``SAMM_longvideos/<subject>_<n>/<subject>_<n>_<frame:04d>.jpg`` frames 1..n_frames
    (video 007_1 lacks the frames in ``gap``; video 008_1 has no row)."""
    root = Path(root)
    rows = list(rows) if rows is not None else samm_lv_rows()
    draw = _image_fn(None, size, gray=True)
    table: list[list[Any]] = [["SAMM Long Videos - FACS coding"]] + \
        [[None] for _ in range(preamble - 1)] + [SAMM_LV_HEADER]
    for r in rows:
        onset, offset = r.onset, r.offset
        duration = f"=F{len(table) + 1}-D{len(table) + 1}+1"  # a formula cell, never read
        table.append([r.subject, r.filename, "1", onset, r.apex, offset, duration,
                      r.extra.get("type", "Micro - 1/2"), r.aus, ""])
    sheet = _write_xlsx(root / "SAMM_LongVideos_V3_Release.xlsx", [("FACS_Movement_Only", table)])
    if micro_sheet:
        micro = [["SAMM micro-movements"]] + [[None]] * 12 + [SAMM_MICRO_HEADER]
        for r in rows:
            if r.emotion:
                micro.append([r.subject, r.filename, "1", r.onset, r.apex, r.offset, None,
                              "Micro", r.aus, r.emotion, 1, ""])
        _write_xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", [("MICRO_ONLY", micro)])
    videos: dict[str, CodedRow] = {}
    for r in rows:
        if r.folder:
            videos.setdefault("_".join(r.filename.split("_")[:2]), r)
    videos.setdefault("008_1", rows[0])
    for name, r in videos.items():
        numbers = [n for n in range(1, n_frames + 1) if not (name == "007_1" and n in gap)]
        write_frames(root / "SAMM_longvideos" / name, r, numbers,
                     lambda n, name=name: f"{name}_{n:04d}.jpg", draw)
    return FixtureRelease(root=root, sheet=sheet, rows=rows, expected={
        "rows": len(rows), "videos": ["006/006_1", "006/006_2", "007/007_1", "008/008_1"],
        "micro": 3, "macro": 2, "bad_rows": 1, "missing_folders": 1,
    })


# ---- CAS(ME)^3 part A ----------------------------------------------------------------------

CASME3_ME_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class",
                    "emotion", "shade"]
CASME3_MAE_HEADER = ["sub", "seq", "onset", "apex", "offset"]


def casme3_rows() -> list[CodedRow]:
    """CAS(ME)^3 rows (extra: kind 'micro'/'macro', shade)."""
    return [
        CodedRow("spNO.1", "a", 4, 7, 10, "12", "happy", extra={"kind": "micro"}),
        CodedRow("spNO.1", "a", 0, 3, 6, "4", "disgust", extra={"kind": "micro"}),  # onset 0
        CodedRow("spNO.1", "b", 12, 15, 0, "1+2", "surprise",
                 extra={"kind": "micro", "shade": 1}),                              # offset 0
        CodedRow("spNO.2", "a", 10, 20, 30, "", "", extra={"kind": "macro"}),
        CodedRow("spNO.1", "b", 20, 24, 34, "", "", extra={"kind": "macro"}),
    ]


def build_casme3(root: Path, *, rows: Sequence[CodedRow] | None = None, n_frames: int = 40,
                 size: int = 32, macro_sheet: bool = True) -> FixtureRelease:
    """A CAS(ME)^3 part A release: ``annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``
    (sheet ``label``), optionally ``annotation/cas(me)3_part_A_MaE_label_JpgIndex_v2.xlsx``
    (``Sheet1``: sub, seq, onset, apex, offset) and
    ``data/part_A/spNO.<n>/<seq>/color/<frame>.jpg`` frames 0..n_frames-1 (plus an empty
    ``depth/``)."""
    root = Path(root)
    rows = list(rows) if rows is not None else casme3_rows()
    draw = _image_fn(None, size)
    me = [CASME3_ME_HEADER] + [[r.subject, r.filename, r.onset, r.apex, r.offset, r.aus, "",
                                r.emotion, r.extra.get("shade", 0)]
                               for r in rows if r.extra["kind"] == "micro"]
    sheet = _write_xlsx(root / "annotation" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
                        [("label", me)])
    if macro_sheet:
        mae = [CASME3_MAE_HEADER] + [[r.subject, r.filename, r.onset, r.apex, r.offset]
                                     for r in rows if r.extra["kind"] == "macro"]
        _write_xlsx(root / "annotation" / "cas(me)3_part_A_MaE_label_JpgIndex_v2.xlsx",
                    [("Sheet1", mae)])
    videos: dict[tuple[str, str], CodedRow] = {}
    for r in rows:
        videos.setdefault((r.subject, r.filename), r)
    for (subject, seq), r in videos.items():
        base = root / "data" / "part_A" / subject / seq
        write_frames(base / "color", r, range(n_frames), lambda n: f"{n}.jpg", draw)
        (base / "depth").mkdir(parents=True, exist_ok=True)
    n_macro = sum(r.extra["kind"] == "macro" for r in rows) if macro_sheet else 0
    return FixtureRelease(root=root, sheet=sheet, rows=rows, expected={
        "videos": ["spNO.1/a", "spNO.1/b", "spNO.2/a"],
        "micro": sum(r.extra["kind"] == "micro" for r in rows), "macro": n_macro,
    })


# ---- a CAS(ME)^2 long-video release with a real face and planted movements -------------------

def build_synthetic_casme_sq_lv(root: Path, *, duration_s: float = 3.0, fps: float = 30.0,
                                videos: int = 1, size: tuple[int, int] = (320, 240),
                                seed: int = 0) -> FixtureRelease:
    """A CAS(ME)^2 long-video release whose videos are :func:`mestudio.synth.
    synthesize_clip` clips (the astronaut's face, one planted micro-expression, no
    distractors), written as ``rawpic/s15/15_<code>.../img001.jpg``; the sheet codes the
    planted micro-expressions (frame number = clip index + 1) plus one macro row."""
    import cv2

    from mestudio.synth.clip import synthesize_clip
    from training.fixtures import CASME_SQ_RULE1, CASME_SQ_RULE2, CASME_SQ_VIDEOS

    root = Path(root)
    names = ["disgust1", "anger1", "happy1"][:videos]
    codes = {name: str(c).zfill(4) for c, name in CASME_SQ_RULE2}
    code_rows: list[list[Any]] = []
    planted: dict[str, list[dict[str, Any]]] = {}
    for k, name in enumerate(names):
        clip = synthesize_clip(None, fps=fps, duration_s=duration_s, seed=seed + k, size=size,
                               n_micro=1, distractors=False)
        folder = root / "rawpic" / "s15" / f"15_{codes[name]}{CASME_SQ_VIDEOS[name]}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(clip):
            cv2.imwrite(str(folder / f"img{i + 1:03d}.jpg"), frame)
        events = [e for e in clip.truth()["events"] if e["kind"] == "micro"]
        planted[folder.name] = events
        for j, e in enumerate(events, start=1):
            code_rows.append([1, f"{name}_{j}", e["onset"] + 1, e["apex"] + 1, e["offset"] + 1,
                              "4", "negative", "micro-expression", ""])
        code_rows.append([1, f"{name}_{len(events) + 1}", 2, 0, 0, "12", "positive",
                          "macro-expression", ""])  # apex 0 and offset 0: left out (bad row)
    sheet = _write_xlsx(root / "CAS(ME)^2code_final.xlsx", [
        ("CASFEcode_final", code_rows),
        ("naming rule1", [list(x) for x in CASME_SQ_RULE1]),
        ("naming rule2", [list(x) for x in CASME_SQ_RULE2]),
    ])
    return FixtureRelease(root=root, sheet=sheet, rows=[], expected={
        "planted": planted, "n_frames": int(round(duration_s * fps))})
