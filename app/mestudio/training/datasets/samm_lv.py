"""SAMM Long Videos for spotting (200 fps, grey): micro- and macro-movements of 147 long videos.

DATASETS.md does not describe this release; the layout below is ASSUMED from public loader
code (SOFTNet, MEGC baselines) and copies of the sheet seen in one source each, so the loader
is tolerant and ``mestudio data check`` prints the assumptions (:attr:`SammLv.ASSUMPTIONS`)::

    SAMM_LongVideos_V3_Release.xlsx (also V1/V2, .xls)   first sheet; a preamble of about
        9 rows, then the header row (searched in the first 40 rows): ``Subject``,
        ``Filename`` (``006_1_2`` = video ``006_1``, movement 2), ``Inducement Code``,
        ``Onset``, ``Apex``, ``Offset``, ``Duration`` (a formula: never read), ``Type``
        (``Macro`` or ``Micro - 1/2``), ``Action Units``, ``Notes``
    SAMM_longvideos/006_1/006_1_0001.jpg       one folder per long video ``<subject>_<n>``;
        frame number = integer after the last ``_`` (cropped copies:
        ``cropped_SAMM_longvideos/``)

The long-video sheet has no emotion column. When the SAMM micro sheet
(``SAMM_Micro_FACS_Codes_v2.xlsx``, sheet ``MICRO_ONLY``) is in the release folder too, a
micro row takes the ``Estimated Emotion`` of the row with the same ``Filename`` there;
every other row is labelled ``unlabelled`` (no emotion: it never counts for STRS).
``Type`` text starting with ``micro`` is micro, ``macro`` is macro; anything else is a bad
row. An offset of 0 or blank is taken as unknown (interval ends at the apex: fix
``samm_lv-offset-unknown``, marked unverified).
"""

from __future__ import annotations

import re
from pathlib import Path

from mestudio.training.datasets import frames as framelib
from mestudio.training.datasets.base import (
    AUS_COLUMN,
    BAD_ROW,
    THREE_CLASSES,
    Annotation,
    DatasetReport,
    subject_dirs_probe,
    subject_number,
)
from mestudio.training.datasets.longvideo import LongVideoDataset, SpottingReport
from mestudio.training.datasets.samm import SHEET_PATTERNS as MICRO_SHEET_PATTERNS
from mestudio.training.datasets.samm import Samm
from mestudio.training.datasets.sheets import (
    cell_id,
    cell_int,
    cell_text,
    find_header,
    is_blank_row,
    read_sheet,
)

SHEET_PATTERNS = (
    "SAMM_LongVideos_V*_Release.xls*",
    "SAMM*Long*Video*.xls*",
    "SAMM*LV*.xls*",
)
REQUIRED = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("Onset", "Onset Frame", "OnsetFrame"),
    "apex": ("Apex", "Apex Frame", "ApexFrame"),
    "offset": ("Offset", "Offset Frame", "OffsetFrame"),
    "type": ("Type",),
}
OPTIONAL = {
    "aus": AUS_COLUMN,
    "inducement_code": ("Inducement Code",),
    "notes": ("Notes",),
    "emotion": ("Estimated Emotion", "Emotion"),
}
UNLABELLED = "unlabelled"


def movement_kind(text: str) -> str | None:
    """``"micro"`` for ``Micro - 1/2`` (any text starting with micro), ``"macro"`` for
    ``Macro``; None otherwise."""
    low = text.strip().lower()
    if low.startswith("micro"):
        return "micro"
    if low.startswith("macro"):
        return "macro"
    return None


class SammLv(LongVideoDataset):
    """SAMM Long Videos loader (micro and macro movements; see the module docstring)."""

    name = "samm_lv"
    title = "SAMM Long Videos"
    fps = 200.0
    native_classes = (*Samm.native_classes, UNLABELLED)
    class_maps = {"3class": dict(Samm.class_maps["3class"])}
    class_orders = {"3class": THREE_CLASSES}
    label_aliases = dict(Samm.label_aliases)
    LAYOUTS = {
        "raw": ("SAMM_longvideos", "SAMM_long_videos", "SAMM_LongVideos", "SAMMLV"),
        "cropped": ("cropped_SAMM_longvideos", "SAMM_longvideos_cropped"),
    }
    ASSUMPTIONS = (
        "sheet SAMM_LongVideos_V*_Release.xlsx: first sheet, header row found by its column "
        "names (Subject, Filename, Onset, Apex, Offset, Type); Type 'Micro - 1/2' = micro, "
        "'Macro' = macro",
        "frames SAMM_longvideos/<subject>_<n>/<subject>_<n>_<frame>.jpg; Filename "
        "'006_1_2' belongs to video folder '006_1'",
        "onset/apex/offset are the numbers in the frame file names",
        "an offset of 0 or blank means unknown: the interval ends at the apex",
        "emotions only for micro rows found in SAMM_Micro_FACS_Codes_v2.xlsx (same "
        "Filename) when that sheet is in the release folder; others 'unlabelled'",
    )

    def _read_release(self, root: Path, report: DatasetReport
                      ) -> tuple[list[Annotation], list[Path]]:
        assert isinstance(report, SpottingReport)
        path = self._find_sheet(root, SHEET_PATTERNS,
                                "SAMM Long Videos sheet (SAMM_LongVideos_V3_Release.xlsx)",
                                report=report)
        sheet = read_sheet(path, None)
        header = find_header(sheet, REQUIRED, OPTIONAL, what="SAMM Long Videos")
        report.sheet, report.sheet_name = path, sheet.name
        report.info["header"] = f"row {header.row + 1} ({header.row} rows before it)"
        emotions = self._micro_emotions(root, path, report)
        frames_root = self._require_layout(
            root, report, "SAMM_longvideos/ holding video folders 006_1, 006_2, ...",
            probe=subject_dirs_probe(r"\d{2,3}_\d+"))
        videos: dict[str, Path] = {}
        for d in framelib.child_dirs(frames_root):
            m = re.fullmatch(r"(\d{2,3})_(\d+)", d.name)
            if m:
                subject = m.group(1).zfill(3)
                key = f"{subject}_{int(m.group(2))}"
                videos.setdefault(key, d)
                report.video_folders[d] = (f"{subject}/{d.name}", subject)
        report.info["long videos found"] = str(len(videos))

        annotations: list[Annotation] = []
        for r in range(header.row + 1, len(sheet.rows)):
            row = sheet.rows[r]
            if is_blank_row(row):
                continue
            report.rows += 1
            subject = cell_id(header.get(sheet, r, "subject"), width=3)
            filename = cell_text(header.get(sheet, r, "filename"))
            kind_text = cell_text(header.get(sheet, r, "type"))
            kind = movement_kind(kind_text)
            where = f"row {r + 1} ({subject}/{filename})"
            parts = filename.split("_")
            if not subject or len(parts) < 2:
                report.issue(BAD_ROW, f"{where}: no subject, or a filename that names no "
                             "video (<subject>_<video>_<n>)")
                continue
            if kind is None:
                report.issue(BAD_ROW, f"{where}: Type {kind_text!r} is neither Micro nor Macro")
                continue
            number = subject_number(parts[0])
            head = str(number).zfill(3) if number is not None else parts[0]
            video_key = f"{head}_{int(parts[1]) if parts[1].isdigit() else parts[1]}"
            cells = {k: header.get(sheet, r, k) for k in ("onset", "apex", "offset")}
            label = cell_text(header.get(sheet, r, "emotion")) or emotions.get(filename, "")
            if kind != "micro" and not cell_text(header.get(sheet, r, "emotion")):
                label = ""
            ann = Annotation(
                subject=subject, filename=filename,
                onset=cell_int(cells["onset"]), apex=cell_int(cells["apex"]),
                offset=cell_int(cells["offset"]), label=label or UNLABELLED,
                aus=cell_text(header.get(sheet, r, "aus")), row=r + 1,
                texts={k: cell_text(v) for k, v in cells.items()}, kind=kind,
                expected_folder=f"{video_key}/",
                extra={"type": kind_text, "video": video_key,
                       "notes": cell_text(header.get(sheet, r, "notes")),
                       "inducement_code": cell_text(header.get(sheet, r, "inducement_code"))},
            )
            ann.folder = videos.get(video_key)
            annotations.append(ann)
        return annotations, []

    def _micro_emotions(self, root: Path, lv_sheet: Path, report: DatasetReport
                        ) -> dict[str, str]:
        """``Filename -> Estimated Emotion`` from the SAMM micro sheet, when present."""
        found = [p for p in framelib.find_files(root, MICRO_SHEET_PATTERNS, max_depth=2)
                 if p != lv_sheet and "long" not in p.name.lower()]
        if not found:
            report.info["emotions"] = ("none (SAMM_Micro_FACS_Codes_v2.xlsx not in the "
                                       "release folder): every row 'unlabelled'")
            return {}
        from mestudio.errors import DatasetError
        from mestudio.training.datasets.samm import OPTIONAL as MICRO_OPTIONAL
        from mestudio.training.datasets.samm import REQUIRED as MICRO_REQUIRED

        try:
            sheet = read_sheet(found[0], "MICRO_ONLY", single_fallback=False)
            header = find_header(sheet, MICRO_REQUIRED, MICRO_OPTIONAL, what="SAMM MICRO_ONLY")
        except DatasetError as exc:
            report.info["emotions"] = f"none ({found[0].name} unreadable: {exc})"
            return {}
        out: dict[str, str] = {}
        for r in range(header.row + 1, len(sheet.rows)):
            name = cell_text(header.get(sheet, r, "filename"))
            emotion = cell_text(header.get(sheet, r, "emotion"))
            if name and emotion:
                out.setdefault(name, emotion)
        report.info["emotions"] = (f"micro rows matched by Filename in {found[0].name} "
                                   f"({len(out)} coded there)")
        return out
