"""CASME (I) (60 fps, 19 subjects).

Release layout (frame folders partly unverified: matched tolerantly)::

    CASME-coded-20190721.xls                        (.xls, read with xlrd; first sheet)
    CASME_raw_selected/subNN/<Filename>/<Filename>-<N>.jpg   layout "selected"
    CASME_cropped/subNN/<Filename>/reg_<Filename>-<N>.jpg    layout "cropped"

``N`` is padded to 3 digits for some samples only: the frame number is the last run of
digits of the file name, whatever the padding.

Sheet columns: ``Subject`` (a number), ``Filename``, (blank), ``OnsetF``, ``ApexF1``,
``ApexF2``, ``OffsetF``, (blank), ``Onset`` (ms), ``Total`` (ms), ``AU``, ``Emotion``.
A missing ``ApexF2`` is written ``\\``. The apex used is ``ApexF1`` (``ApexF2``, when coded,
is kept in ``Sample.extra["apex2"]``). Subjects are numbers in the sheet: ids are written
with 2 digits (``"01"``), as the ``subNN`` folders.

Mappings (not given by DATASETS.md; mestudio's documented choice):
    5class: the five classes with enough samples, disgust, repression, surprise, tense,
            happiness (fear, sadness, contempt dropped);
    3class: as CASME II's MEGC rule: negative = disgust + repression, positive = happiness,
            surprise; tense (CASME's "others"), fear, sadness, contempt excluded.
"""

from __future__ import annotations

from pathlib import Path

from mestudio.training.datasets.base import (
    THREE_CLASSES,
    Annotation,
    DatasetReport,
    MEDataset,
    attach_subject_folders,
    coded_rows,
    subject_dirs_probe,
)
from mestudio.training.datasets.casme2 import THREE_CLASS_MAP
from mestudio.training.datasets.sheets import cell_int, find_header, read_sheet

FIVE_CLASSES = ("disgust", "repression", "surprise", "tense", "happiness")

SHEET_PATTERNS = ("CASME-coded-*.xls*", "CASME*coded*.xls*", "CASME_*cod*.xls*")
REQUIRED = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("OnsetF", "Onset Frame", "OnsetFrame"),
    "apex": ("ApexF1", "ApexF", "Apex Frame", "ApexFrame"),
    "offset": ("OffsetF", "Offset Frame", "OffsetFrame"),
    "emotion": ("Emotion", "Estimated Emotion"),
}
OPTIONAL = {
    "apex2": ("ApexF2",),
    "aus": ("AU", "AUs", "Action Units"),
    "onset_ms": ("Onset",),
    "total_ms": ("Total",),
}


class Casme(MEDataset):
    """CASME (I) loader. Mappings: native (8), 5class, 3class (see module docstring)."""

    name = "casme"
    title = "CASME"
    fps = 60.0
    native_classes = ("happiness", "tense", "repression", "disgust", "surprise", "fear",
                      "sadness", "contempt")
    class_maps = {
        "5class": {c: c for c in FIVE_CLASSES},
        "3class": dict(THREE_CLASS_MAP),  # CASME II's MEGC rule
    }
    class_orders = {"5class": FIVE_CLASSES, "3class": THREE_CLASSES}
    label_aliases = {"happy": "happiness", "tension": "tense", "surprised": "surprise",
                     "disgusted": "disgust", "sad": "sadness"}
    LAYOUTS = {
        "selected": ("CASME_raw_selected", "CASME_RAW_selected", "CASME-raw-selected",
                     "CASME_selected"),
        "cropped": ("CASME_cropped", "CASME_Cropped", "CASME-cropped", "Cropped"),
        "raw": ("CASME_raw", "CASME_RAW", "CASME-raw"),
    }

    def _read_release(self, root: Path, report: DatasetReport) -> tuple[list[Annotation], list[Path]]:
        path = self._find_sheet(root, SHEET_PATTERNS,
                                "CASME coding sheet (CASME-coded-20190721.xls)",
                                exclude=("CASME2*", "CAS(ME)*"), report=report)
        sheet = read_sheet(path)
        header = find_header(sheet, REQUIRED, OPTIONAL, what="CASME coding")
        report.sheet, report.sheet_name = path, sheet.name
        frames_root = self._require_layout(
            root, report, "CASME_raw_selected/ or CASME_cropped/ holding subNN folders",
            probe=subject_dirs_probe(r"sub\d+"))
        annotations = coded_rows(sheet, header, report, subject_width=2)
        for ann in annotations:
            ann.extra["apex2"] = cell_int(ann.extra.get("apex2"))
        folders = attach_subject_folders(annotations, frames_root, r"sub\d+",
                                         "sub{subject}/{filename}")
        return annotations, folders
