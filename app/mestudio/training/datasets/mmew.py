"""MMEW (90 fps, 300 micro-expression samples).

Release layout (both arrangements of the frame folders are supported)::

    MMEW_Micro_Exp.xlsx
    Micro_Expression/<emotion>/<Filename>/<k>.jpg    emotion-first (used by most loaders)
    Micro_Expression/<Subject>/<Filename>/<k>.jpg    subject-first (official description)

Sheet columns: ``Subject``, ``Filename``, ``OnsetFrame``, ``ApexFrame``, ``OffsetFrame``,
``Action Units``, ``Estimated Emotion``, ``remarks`` (first sheet holding that header).

Sample folders are found by their name wherever they are under ``Micro_Expression``, so
either arrangement works. In the emotion-first arrangement some copies name the "others"
folder ``repression``: that folder name is an alias of ``others``; a folder whose emotion
disagrees with the sheet is reported (the sheet's label is used). Frame files are
``<k>.jpg``; when they are numbered within the clip (1..N) rather than with the sheet's
frame numbers, they are mapped to onset..offset in order (reported).

Mappings: native (7), 3class (negative = anger + disgust + fear + sadness; others excluded).
"""

from __future__ import annotations

from pathlib import Path

from mestudio.errors import DatasetError
from mestudio.training.datasets import frames as framelib
from mestudio.training.datasets.base import (
    AUS_COLUMN,
    LABEL_MISMATCH,
    THREE_CLASSES,
    Annotation,
    DatasetReport,
    MEDataset,
    coded_rows,
    coding_columns,
)
from mestudio.training.datasets.sheets import find_header, read_sheet, sheet_names

SHEET_PATTERNS = ("MMEW_Micro_Exp*.xls*", "MMEW*Micro*.xls*", "MMEW*.xls*")
REQUIRED = coding_columns()
OPTIONAL = {"aus": AUS_COLUMN, "remarks": ("remarks", "Remark", "Notes")}
FOLDER_ALIASES = {"repression": "others", "other": "others"}


class Mmew(MEDataset):
    """MMEW loader. Mappings: native, 3class."""

    name = "mmew"
    title = "MMEW"
    fps = 90.0
    native_classes = ("happiness", "surprise", "anger", "disgust", "fear", "sadness", "others")
    class_maps = {"3class": {"anger": "negative", "disgust": "negative", "fear": "negative",
                             "sadness": "negative", "happiness": "positive",
                             "surprise": "surprise"}}
    class_orders = {"3class": THREE_CLASSES}
    label_aliases = {"other": "others", "happy": "happiness", "angry": "anger",
                     "surprised": "surprise", "sad": "sadness"}
    LAYOUTS = {"raw": ("Micro_Expression", "Micro-Expression", "MicroExpression",
                       "Micro_Expressions")}

    def _read_release(self, root: Path, report: DatasetReport) -> tuple[list[Annotation], list[Path]]:
        path = self._find_sheet(root, SHEET_PATTERNS, "MMEW sheet (MMEW_Micro_Exp.xlsx)",
                                report=report)
        sheet = None
        error: DatasetError | None = None
        for name in sheet_names(path):
            candidate = read_sheet(path, name)
            try:
                header = find_header(candidate, REQUIRED, OPTIONAL, what="MMEW")
            except DatasetError as exc:
                error = error or exc
                continue
            sheet = candidate
            break
        if sheet is None:
            assert error is not None
            raise error
        report.sheet, report.sheet_name = path, sheet.name
        frames_root = self._require_layout(root, report, "Micro_Expression/")
        groups = framelib.child_dirs(frames_root)
        emotion_first = sum(
            self.normalize_label(FOLDER_ALIASES.get(g.name.lower(), g.name))
            in self.native_classes for g in groups) > len(groups) / 2
        report.info["folder arrangement"] = "emotion-first" if emotion_first else "subject-first"
        index: dict[str, tuple[Path, str]] = {}
        norm_index: dict[str, tuple[Path, str]] = {}
        folders: list[Path] = []
        for g in groups:
            children = framelib.child_dirs(g)
            if not children and framelib.list_frames(g):
                children = [g]  # frames directly under the group: a flat copy
            for c in children:
                folders.append(c)
                index.setdefault(c.name.lower(), (c, g.name))
                norm_index.setdefault(framelib.normalized_name(c.name), (c, g.name))
        annotations = coded_rows(sheet, header, report)
        for ann in annotations:
            hit = index.get(ann.filename.lower()) or norm_index.get(
                framelib.normalized_name(ann.filename))
            ann.expected_folder = f"<{'emotion' if emotion_first else 'subject'}>/{ann.filename}"
            if hit is None:
                continue
            ann.folder, group = hit
            if emotion_first:
                folder_label = self.normalize_label(FOLDER_ALIASES.get(group.lower(), group))
                if group.lower() in FOLDER_ALIASES:
                    ann.notes.append(f"emotion folder {group!r} read as {folder_label!r}")
                if folder_label != self.normalize_label(ann.label):
                    report.issue(LABEL_MISMATCH,
                                 f"{ann.where}: the sheet says {ann.label!r}, the folder "
                                 f"{group}/ says {folder_label!r}; the sheet's label is used",
                                 ann.key)
        return annotations, folders
