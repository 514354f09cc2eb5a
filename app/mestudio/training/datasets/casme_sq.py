"""CAS(ME)² (30 fps): long videos with coded micro- and macro-expressions.

Release layout::

    CAS(ME)^2code_final.xlsx
        sheet 'CASFEcode_final' (some copies: 'CASMEcode_final'), NO header row; columns by
            position: 0 subject (1-22), 1 clip name ('anger1_1'), 2 onset, 3 apex,
            4 offset (0 = unknown: the apex is used), 5 AUs, 6 emotion (positive, negative,
            surprise, others), 7 type ('macro-expression' / 'micro-expression'), 8 self-report
        sheet 'naming rule1': subject -> folder number (1 -> 15, 2 -> 16, 3 -> 19, ...);
            columns: folder number, folder name, subject (a two-column copy: subject, folder)
        sheet 'naming rule2': code -> video name ('0101' disgust1, '0401' anger1, '0502'
            happy1, ...); codes stored as numbers are padded to 4 digits
    rawpic/s15/15_0101disgustingteeth/img001.jpg     (cropped copies: rawpic_crop/, cropped/)

A row's frames are found in ``rawpic/s<folder>/<folder>_<code>*`` (matched by the
``NN_CCCC`` prefix) and are frames onset..offset of that long video; ``Sample.folder`` is the
whole video (for spotting). Subject ids are the folder names (``"s15"``).

By default only ``micro-expression`` rows become samples (recognition); the number of macro
rows is reported. ``CasmeSq(kinds=("micro", "macro"))`` loads both (``Sample.kind``).
Mappings: native (positive, negative, surprise, others), 3class (others excluded).
"""

from __future__ import annotations

import re
from pathlib import Path

from mestudio.errors import DatasetError
from mestudio.training.datasets import frames as framelib
from mestudio.training.datasets.base import (
    BAD_ROW,
    THREE_CLASSES,
    Annotation,
    DatasetReport,
    MEDataset,
    subject_dirs_probe,
)
from mestudio.training.datasets.sheets import Sheet, cell_int, cell_text, is_blank_row, read_sheet

SHEET_PATTERNS = (
    "CAS(ME)^2code_final*.xls*",
    "CAS(ME)*code*final*.xls*",
    "CAS*ME*2*code*.xls*",
    "*code_final*.xls*",
)
CODE_SHEETS = ("CASFEcode_final", "CASMEcode_final", "code_final")
RULE1_SHEETS = ("naming rule1", "naming rule 1", "naming_rule1")
RULE2_SHEETS = ("naming rule2", "naming rule 2", "naming_rule2")
KINDS = {"micro-expression": "micro", "macro-expression": "macro", "micro": "micro",
         "macro": "macro"}


def _digits(value: object) -> int | None:
    number = cell_int(value)
    if number is not None:
        return number
    m = re.search(r"\d+", cell_text(value))
    return int(m.group()) if m else None


def read_naming_rule1(sheet: Sheet) -> dict[int, int]:
    """Subject number (1-22) -> folder number (15, 16, 19, ...); header rows are skipped."""
    mapping: dict[int, int] = {}
    for row in sheet.rows:
        cells = list(row) + [None] * 3
        if is_blank_row(cells):
            continue
        if cell_text(cells[2]):
            folder = cell_int(cells[0])
            if folder is None:
                folder = _digits(cells[1])
            subject = cell_int(cells[2])
        else:  # two-column copy: subject, folder
            subject, folder = cell_int(cells[0]), _digits(cells[1])
        if subject is not None and folder is not None:
            mapping.setdefault(subject, folder)
    return mapping


def read_naming_rule2(sheet: Sheet) -> dict[str, str]:
    """Video name (``"anger1"``, lower case) -> 4-digit code (``"0401"``)."""
    mapping: dict[str, str] = {}
    for row in sheet.rows:
        cells = list(row) + [None] * 2
        code_text, name = cell_text(cells[0]), cell_text(cells[1])
        if not code_text.isdigit() or not name:
            continue
        mapping.setdefault(name.lower(), code_text.zfill(4))
    return mapping


class CasmeSq(MEDataset):
    """CAS(ME)² loader (micro-expressions by default).

    Args:
        kinds: which coded expressions become samples: ``("micro",)`` (recognition) or
            ``("micro", "macro")``.
    """

    name = "casme_sq"
    title = "CAS(ME)^2"
    fps = 30.0
    native_classes = ("negative", "positive", "surprise", "others")
    class_maps = {"3class": {"negative": "negative", "positive": "positive",
                             "surprise": "surprise"}}
    class_orders = {"3class": THREE_CLASSES}
    label_aliases = {"other": "others", "surprised": "surprise"}
    LAYOUTS = {
        "raw": ("rawpic", "rawpic_raw"),
        "cropped": ("rawpic_crop", "cropped", "rawpic_cropped", "crop"),
    }

    def __init__(self, *, layout: str = "auto", sheet: str | Path | None = None,
                 kinds: tuple[str, ...] = ("micro",)):
        super().__init__(layout=layout, sheet=sheet)
        bad = [k for k in kinds if k not in ("micro", "macro")]
        if bad:
            raise DatasetError(f"CAS(ME)^2 kinds are 'micro' and 'macro', not {bad}")
        self.kinds = tuple(kinds)

    def _read_release(self, root: Path, report: DatasetReport) -> tuple[list[Annotation], list[Path]]:
        path = self._find_sheet(root, SHEET_PATTERNS,
                                "CAS(ME)^2 coding sheet (CAS(ME)^2code_final.xlsx)",
                                report=report)
        codes = read_sheet(path, CODE_SHEETS, single_fallback=False)
        rule1 = read_naming_rule1(read_sheet(path, RULE1_SHEETS, single_fallback=False))
        rule2 = read_naming_rule2(read_sheet(path, RULE2_SHEETS, single_fallback=False))
        report.sheet, report.sheet_name = path, codes.name
        if not rule1:
            raise DatasetError(f"{path.name}: sheet 'naming rule1' maps no subject to a folder "
                               "number: use the official CAS(ME)^2 coding file")
        if not rule2:
            raise DatasetError(f"{path.name}: sheet 'naming rule2' maps no code to a video "
                               "name: use the official CAS(ME)^2 coding file")
        width = max((len(r) for r in codes.rows), default=0)
        if width < 8:
            raise DatasetError(
                f"{path.name} (sheet '{codes.name}') has {width} columns; the CAS(ME)^2 coding "
                "sheet has 9 (subject, clip, onset, apex, offset, AUs, emotion, type, "
                "self-report): use the official file"
            )
        frames_root = self._require_layout(root, report, "rawpic/ holding s15, s16, ...",
                                           probe=subject_dirs_probe(r"s\d+"))
        videos: dict[int, framelib.FolderIndex] = {}
        for d in framelib.child_dirs(frames_root):
            m = re.fullmatch(r"s(\d+)", d.name, re.IGNORECASE)
            if m:
                videos.setdefault(int(m.group(1)), framelib.FolderIndex(d))

        annotations: list[Annotation] = []
        skipped: dict[str, int] = {}
        for r, row in enumerate(codes.rows):
            cells = list(row) + [None] * (9 - len(row))
            if is_blank_row(cells):
                continue
            subject_num = cell_int(cells[0])
            if subject_num is None and r == 0:
                continue  # a copy with a header row
            report.rows += 1
            clip = cell_text(cells[1])
            kind_text = cell_text(cells[7]).lower()
            kind = KINDS.get(kind_text)
            where = f"row {r + 1} ({cell_text(cells[0])}/{clip})"
            if subject_num is None or not clip:
                report.issue(BAD_ROW, f"{where}: no subject number or clip name")
                continue
            if kind is None:
                report.issue(BAD_ROW, f"{where}: type {kind_text!r} is neither "
                             "micro-expression nor macro-expression")
                continue
            if kind not in self.kinds:
                what = f"{kind_text} rows (not used for recognition)"
                skipped[what] = skipped.get(what, 0) + 1
                continue
            folder_num = rule1.get(subject_num)
            video_name = clip.rsplit("_", 1)[0].lower() if "_" in clip else clip.lower()
            code = rule2.get(video_name)
            subject = f"s{folder_num}" if folder_num is not None else f"subject{subject_num}"
            ann = Annotation(
                subject=subject,
                filename=clip,
                onset=cell_int(cells[2]),
                apex=cell_int(cells[3]),
                offset=cell_int(cells[4]),
                label=cell_text(cells[6]),
                aus=cell_text(cells[5]),
                row=r + 1,
                texts={"onset": cell_text(cells[2]), "apex": cell_text(cells[3]),
                       "offset": cell_text(cells[4])},
                kind=kind,
                extra={"sheet_subject": str(subject_num), "self_report": cell_text(cells[8]),
                       "video_code": code or ""},
            )
            if folder_num is None:
                report.issue(BAD_ROW, f"{where}: subject {subject_num} is not in 'naming rule1'")
                continue
            if code is None:
                report.issue(BAD_ROW, f"{where}: video {video_name!r} is not in 'naming rule2'")
                continue
            prefix = f"{folder_num:02d}_{code}"
            ann.expected_folder = f"s{folder_num}/{prefix}*"
            index = videos.get(folder_num)
            ann.folder = index.prefixed(prefix) if index is not None else None
            if ann.folder is not None:
                ann.extra["video"] = ann.folder.name
            annotations.append(ann)
        report.skipped.update(skipped)
        report.info["naming rules"] = f"{len(rule1)} subjects, {len(rule2)} videos"
        return annotations, []  # long videos without a micro row are normal: not reported
