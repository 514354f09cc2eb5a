"""CASME II (200 fps, 640x480, 26 subjects, 255 coded samples).

Release layout (any of the three frame layouts; the first present in this order is used
unless ``layout`` says otherwise)::

    CASME2-coding-20190701.xlsx   (or the older CASME2-coding-20140508.xlsx), sheet 'Sheet1'
    CASME2-RAW/subNN/<Filename>/imgN.jpg           layout "raw": whole clips
    CASME2_RAW_selected/subNN/<Filename>/imgN.jpg  layout "selected": onset..offset only
    Cropped/subNN/<Filename>/reg_imgN.jpg          layout "cropped": onset..offset, faces

Sheet columns (header on row 1): ``Subject``, ``Filename``, (blank), ``OnsetFrame``,
``ApexFrame``, ``OffsetFrame``, (blank), ``Action Units``, ``Estimated Emotion`` and, in the
2019 version, ``Objective Classes``.

Subject ids: text cells are kept as written (``'01'``); a subject stored as a number has lost
its padding and is written with 2 digits (the folders are ``subNN``).

Quirks handled: apex ``'/'`` (sub04/EP12_01f) -> middle frame, ``apex_estimated``; irregular
names (``EP01_2``, ``EP06_02_01``, ``EP09f``) matched exactly, then ignoring case/padding;
folders without a row and rows without a folder are reported; Cropped sub16/EP01_08 lacks
frames 97-110 (fix table).
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

FIVE_CLASSES = ("happiness", "disgust", "surprise", "repression", "others")
THREE_CLASS_MAP = {"disgust": "negative", "repression": "negative",
                   "happiness": "positive", "surprise": "surprise"}
"""MEGC2019's 3-class rule for CASME II (also used for CASME): negative = disgust +
repression; others, fear, sadness (and CASME's tense, contempt) excluded."""

SHEET_PATTERNS = (
    "CASME2-coding-*.xls*",
    "CASME2*coding*.xls*",
    "CASME2*label*.xls*",
    "CASME2*.xls*",
    "CASME2*coding*.csv",
)
REQUIRED = coding_columns()
OPTIONAL = {"aus": AUS_COLUMN, "objective_class": OBJECTIVE_CLASS_COLUMN}


class Casme2(MEDataset):
    """CASME II loader. Mappings: native (7), 5class (drops fear, sadness), 3class."""

    name = "casme2"
    title = "CASME II"
    fps = 200.0
    native_classes = ("happiness", "disgust", "surprise", "repression", "others", "fear",
                      "sadness")
    class_maps = {
        "5class": {c: c for c in FIVE_CLASSES},
        "3class": dict(THREE_CLASS_MAP),
    }
    class_orders = {"5class": FIVE_CLASSES, "3class": THREE_CLASSES}
    label_aliases = {"other": "others", "happy": "happiness", "surprised": "surprise",
                     "disgusted": "disgust", "sad": "sadness"}
    LAYOUTS = {
        "raw": ("CASME2-RAW", "CASME2_RAW", "CASME2 RAW", "CASME2-RAW-data"),
        "selected": ("CASME2_RAW_selected", "CASME2-RAW-selected", "CASME2_RAW_Selected",
                     "CASME2_selected"),
        "cropped": ("Cropped", "CASME2_Cropped", "CASME2-Cropped", "Cropped-updated"),
    }

    def _read_release(self, root: Path, report: DatasetReport) -> tuple[list[Annotation], list[Path]]:
        path = self._find_sheet(root, SHEET_PATTERNS,
                                "CASME II coding sheet (CASME2-coding-20190701.xlsx)",
                                report=report)
        sheet = read_sheet(path, "Sheet1")
        header = find_header(sheet, REQUIRED, OPTIONAL, what="CASME II coding")
        report.sheet, report.sheet_name = path, sheet.name
        report.info["sheet version"] = (
            "2019 (with Objective Classes)" if "objective_class" in header.columns
            else "2014 (no Objective Classes)")
        frames_root = self._require_layout(
            root, report,
            f"{', '.join(n for names in self.LAYOUTS.values() for n in names[:1])} holding "
            "subNN folders", probe=subject_dirs_probe(r"sub\d+"))
        annotations = coded_rows(sheet, header, report, subject_width=2)
        folders = attach_subject_folders(annotations, frames_root, r"sub\d+",
                                         "sub{subject}/{filename}")
        return annotations, folders
