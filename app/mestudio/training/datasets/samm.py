"""SAMM (200 fps, grey, subjects 006-037 in the sheet, 159 micro-movements).

Release layout::

    SAMM_Micro_FACS_Codes_v2.xlsx     sheet 'MICRO_ONLY': 13 preamble rows, header on row 14
    SAMM/006/006_1_2/006_05562.jpg    frame number = integer after the last '_' (4 or 5 digits)

Sheet columns: ``Subject``, ``Filename``, ``Inducement Code``, ``Onset Frame``,
``Apex Frame``, ``Offset Frame``, ``Duration`` (a formula cell: recomputed as
offset - onset + 1, never read), ``Micro``, ``Action Units``, ``Estimated Emotion``,
``Objective Classes``, ``Notes``. The header row is searched (first 40 rows), so a copy
with a different preamble still reads.

Subject ids stay text (``'006'``); a subject stored as a number is padded to 3 digits.
Quirks handled: apex outside the interval (028_4_1, 032_3_1) -> middle frame (fix table);
AU strings with ``or`` and ``/`` kept verbatim (``Sample.au_codes`` lists every AU named);
subjects with a single sample are ordinary LOSO folds.
"""

from __future__ import annotations

import re
from pathlib import Path

from mestudio.errors import DatasetError
from mestudio.training.datasets import frames as framelib
from mestudio.training.datasets.base import (
    THREE_CLASSES,
    Annotation,
    DatasetReport,
    MEDataset,
    attach_folder,
    coded_rows,
    subject_dirs_probe,
    subject_number,
)
from mestudio.training.datasets.sheets import find_header, read_sheet

FIVE_CLASSES = ("anger", "happiness", "other", "surprise", "contempt")

SHEET_PATTERNS = (
    "SAMM_Micro_FACS_Codes_v2.xls*",
    "SAMM*Micro*FACS*Codes*.xls*",
    "SAMM*Micro*.xls*",
    "SAMM*FACS*.xls*",
)
REQUIRED = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("Onset Frame", "OnsetFrame", "Onset"),
    "apex": ("Apex Frame", "ApexFrame", "Apex"),
    "offset": ("Offset Frame", "OffsetFrame", "Offset"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
OPTIONAL = {
    "aus": ("Action Units", "AUs", "AU"),
    "inducement_code": ("Inducement Code",),
    "micro": ("Micro",),
    "objective_class": ("Objective Classes", "Objective Class"),
    "notes": ("Notes",),
}


class Samm(MEDataset):
    """SAMM loader. Mappings: native (8), 5class (anger, happiness, other, surprise,
    contempt: 136 samples in the release), 3class."""

    name = "samm"
    title = "SAMM"
    fps = 200.0
    native_classes = ("anger", "contempt", "disgust", "fear", "happiness", "other", "sadness",
                      "surprise")
    class_maps = {
        "5class": {c: c for c in FIVE_CLASSES},
        # MEGC2019: negative = anger + contempt + disgust + fear + sadness; other excluded.
        "3class": {"anger": "negative", "contempt": "negative", "disgust": "negative",
                   "fear": "negative", "sadness": "negative", "happiness": "positive",
                   "surprise": "surprise"},
    }
    class_orders = {"5class": FIVE_CLASSES, "3class": THREE_CLASSES}
    label_aliases = {"others": "other", "happy": "happiness", "angry": "anger",
                     "surprised": "surprise", "sad": "sadness"}
    LAYOUTS = {
        "raw": ("SAMM", "SAMM_raw", "SAMM_frames"),
        "cropped": ("SAMM_CROP", "SAMM_cropped", "SAMM-cropped", "SAMM_crop"),
    }

    def _read_release(self, root: Path, report: DatasetReport) -> tuple[list[Annotation], list[Path]]:
        path = self._find_sheet(root, SHEET_PATTERNS,
                                "SAMM coding sheet (SAMM_Micro_FACS_Codes_v2.xlsx)",
                                exclude=("*LongVideos*",), report=report)
        sheet = read_sheet(path, "MICRO_ONLY", single_fallback=False)
        header = find_header(sheet, REQUIRED, OPTIONAL, what="SAMM MICRO_ONLY")
        report.sheet, report.sheet_name = path, sheet.name
        report.info["header"] = f"row {header.row + 1} ({header.row} rows before it)"
        probe = subject_dirs_probe(r"\d{2,3}")
        frames_root = self._find_layout(root, report, probe=probe)
        if frames_root is None:
            raise DatasetError(
                f"no SAMM frame folder under {root} (looked for SAMM/ holding subject folders "
                "006, 007, ...): pass the release folder as --root"
            )
        subjects: dict[int, framelib.FolderIndex] = {}
        for d in framelib.child_dirs(frames_root):
            if re.fullmatch(r"\d+", d.name):
                subjects.setdefault(int(d.name), framelib.FolderIndex(d))
        annotations = coded_rows(sheet, header, report, subject_width=3)
        for ann in annotations:
            onset, offset = ann.onset, ann.offset
            if onset is not None and offset is not None:
                ann.extra["duration_frames"] = offset - onset + 1
            num = subject_number(ann.subject)
            index = subjects.get(num) if num is not None else None
            attach_folder(ann, index, f"{ann.subject}/{ann.filename}")
        folders = [c for idx in subjects.values() for c in idx.children]
        return annotations, folders
