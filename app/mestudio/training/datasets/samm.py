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

from pathlib import Path

from mestudio.training.datasets.base import (
    AUS_COLUMN,
    OBJECTIVE_CLASS_COLUMN,
    THREE_CLASSES,
    Annotation,
    DatasetReport,
    MEDataset,
    attach_subject_folders,
    coded_rows,
    coding_columns,
    subject_dirs_probe,
)
from mestudio.training.datasets.sheets import find_header, read_sheet

FIVE_CLASSES = ("anger", "happiness", "other", "surprise", "contempt")

SHEET_PATTERNS = (
    "SAMM_Micro_FACS_Codes_v2.xls*",
    "SAMM*Micro*FACS*Codes*.xls*",
    "SAMM*Micro*.xls*",
    "SAMM*FACS*.xls*",
)
REQUIRED = coding_columns(spaced_first=True)
OPTIONAL = {
    "aus": AUS_COLUMN,
    "inducement_code": ("Inducement Code",),
    "micro": ("Micro",),
    "objective_class": OBJECTIVE_CLASS_COLUMN,
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
        frames_root = self._require_layout(
            root, report, "SAMM/ holding subject folders 006, 007, ...",
            probe=subject_dirs_probe(r"\d{2,3}"))
        annotations = coded_rows(sheet, header, report, subject_width=3)
        for ann in annotations:
            onset, offset = ann.onset, ann.offset
            if onset is not None and offset is not None:
                ann.extra["duration_frames"] = offset - onset + 1
        folders = attach_subject_folders(annotations, frames_root, r"\d+",
                                         "{subject}/{filename}")
        return annotations, folders
