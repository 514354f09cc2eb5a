"""CAS(ME)³ part A long videos for spotting (30 fps, colour + depth).

DATASETS.md does not describe this release; the layout below is ASSUMED from public loader
code seen in one source each, so the loader is tolerant and ``mestudio data check`` prints
the assumptions (:attr:`Casme3.ASSUMPTIONS`)::

    annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx    micro-expressions; sheet
        'label' (or the only sheet): Subject ('spNO.1'), Filename ('a'), Onset, Apex,
        Offset, AU, Objective class, emotion (happy, sad, disgust, fear, anger, surprise,
        others); some copies add 'shade' (1 = face partly hidden)
    annotation/cas(me)3_part_A_MaE_label_JpgIndex_v2*.xlsx  macro-expressions (optional):
        'Sheet1', columns sub, seq, onset, apex, offset (and emotion in the '_emotion' copy)
    data/part_A/spNO.1/a/color/0.jpg   one folder per long video (depth/ is ignored); the
        folder holding the spNO.* folders is searched (up to 5 levels below the root)

``JpgIndex`` sheets code frames by the number in the jpg file name; onset/offset are read
as such. Without the MaE sheet the macro-expressions are not scored (said by ``data
check``). An offset of 0 or blank is taken as unknown (fix ``casme3-offset-unknown``,
unverified); an onset of 0 is kept and listed as unverified.
"""

from __future__ import annotations

import re
from pathlib import Path

from mestudio.errors import DatasetError
from mestudio.training.datasets import frames as framelib
from mestudio.training.datasets.base import (
    BAD_ROW,
    NOTE,
    THREE_CLASSES,
    Annotation,
    DatasetReport,
)
from mestudio.training.datasets.longvideo import LongVideoDataset, SpottingReport
from mestudio.training.datasets.sheets import (
    Sheet,
    cell_int,
    cell_text,
    find_header,
    is_blank_row,
    read_sheet,
)

ME_PATTERNS = (
    "cas(me)3_part_A_ME_label*.xls*",
    "cas*me*3*part*A*ME_label*.xls*",
    "*part_A*ME*label*.xls*",
)
MAE_PATTERNS = (
    "cas(me)3_part_A_MaE_label*.xls*",
    "cas*me*3*part*A*MaE_label*.xls*",
    "*part_A*MaE*label*.xls*",
)
REQUIRED = {
    "subject": ("Subject", "sub"),
    "filename": ("Filename", "seq"),
    "onset": ("Onset", "Onset Frame", "OnsetFrame"),
    "apex": ("Apex", "Apex Frame", "ApexFrame"),
    "offset": ("Offset", "Offset Frame", "OffsetFrame"),
}
OPTIONAL = {
    "emotion": ("emotion", "Estimated Emotion"),
    "aus": ("AU", "AUs", "Action Units"),
    "objective_class": ("Objective class", "Objective classes"),
    "shade": ("shade",),
}
UNLABELLED = "unlabelled"
SUBJECT_DIR = re.compile(r"spNO\.?\d+", re.IGNORECASE)


def find_video_root(root: Path, max_depth: int = 5) -> Path | None:
    """The shallowest folder under ``root`` (itself included) with ``spNO.*`` sub-folders."""
    level = [root]
    for depth in range(max_depth + 1):
        nxt: list[Path] = []
        for folder in level:
            children = framelib.child_dirs(folder)
            if any(SUBJECT_DIR.fullmatch(c.name) for c in children):
                return folder
            if depth < max_depth:
                nxt.extend(c for c in children if not SUBJECT_DIR.fullmatch(c.name))
        level = nxt
        if not level:
            break
    return None


class Casme3(LongVideoDataset):
    """CAS(ME)³ part A loader (micro from the ME sheet, macro from the MaE sheet)."""

    name = "casme3"
    title = "CAS(ME)^3 part A"
    fps = 30.0
    native_classes = ("anger", "disgust", "fear", "happy", "others", "sad", "surprise",
                      UNLABELLED)
    class_maps = {"3class": {"anger": "negative", "disgust": "negative", "fear": "negative",
                             "sad": "negative", "happy": "positive", "surprise": "surprise"}}
    class_orders = {"3class": THREE_CLASSES}
    label_aliases = {"happiness": "happy", "sadness": "sad", "other": "others",
                     "surprised": "surprise", "angry": "anger"}
    LAYOUTS = {"raw": ("data",)}
    ASSUMPTIONS = (
        "micro sheet cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx (sheet 'label'), macro sheet "
        "cas(me)3_part_A_MaE_label_JpgIndex_v2*.xlsx (columns sub, seq, onset, apex, offset)",
        "frames <...>/spNO.<n>/<seq>/color/<frame>.jpg (depth/ ignored); onset/apex/offset "
        "are the jpg numbers (JpgIndex)",
        "an offset of 0 or blank means unknown: the interval ends at the apex; an onset of 0 "
        "is kept as coded",
        "30 fps",
    )

    def _read_release(self, root: Path, report: DatasetReport
                      ) -> tuple[list[Annotation], list[Path]]:
        assert isinstance(report, SpottingReport)
        me_path = self._find_sheet(root, ME_PATTERNS, "CAS(ME)^3 part A micro-expression "
                                   "sheet (cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx)",
                                   report=report)
        me = read_sheet(me_path, ("label", "Sheet1"))
        report.sheet, report.sheet_name = me_path, me.name
        mae_found = [p for p in framelib.find_files(root, MAE_PATTERNS, max_depth=3)
                     if p != me_path]
        video_root = find_video_root(root)
        if video_root is None:
            raise DatasetError(f"no CAS(ME)^3 frame folder under {root} (looked for a folder "
                               "holding spNO.1, spNO.2, ...): pass the part A folder as --root")
        report.frames_root, report.layout = video_root, "raw"
        videos: dict[tuple[str, str], Path] = {}
        for subject_dir in framelib.child_dirs(video_root):
            if not SUBJECT_DIR.fullmatch(subject_dir.name):
                continue
            for seq in framelib.child_dirs(subject_dir):
                colour = seq / "color"
                folder = colour if colour.is_dir() else seq
                videos[(subject_dir.name.lower(), seq.name.lower())] = folder
                report.video_folders[folder] = (f"{subject_dir.name}/{seq.name}",
                                                subject_dir.name)
        report.info["long videos found"] = str(len(videos))
        annotations = self._rows(me, "micro", videos, report)
        if mae_found:
            mae = read_sheet(mae_found[0], ("Sheet1", "label"))
            report.info["macro sheet"] = f"{mae_found[0].name} (sheet '{mae.name}')"
            annotations += self._rows(mae, "macro", videos, report)
        else:
            report.info["macro sheet"] = "not found: macro-expressions are not scored"
            report.issue(NOTE, "no CAS(ME)^3 macro-expression sheet "
                         "(cas(me)3_part_A_MaE_label_JpgIndex_v2*.xlsx): macro F1 is n/a")
        return annotations, []

    def _rows(self, sheet: Sheet, kind: str, videos: dict[tuple[str, str], Path],
              report: DatasetReport) -> list[Annotation]:
        header = find_header(sheet, REQUIRED, OPTIONAL, what=f"CAS(ME)^3 {kind} label")
        report.info[f"{kind} header"] = f"{sheet.label}, row {header.row + 1}"
        out: list[Annotation] = []
        shaded = 0
        for r in range(header.row + 1, len(sheet.rows)):
            row = sheet.rows[r]
            if is_blank_row(row):
                continue
            report.rows += 1
            subject = cell_text(header.get(sheet, r, "subject"))
            seq = cell_text(header.get(sheet, r, "filename"))
            if not subject or not seq:
                report.issue(BAD_ROW, f"{sheet.name} row {r + 1}: no subject or sequence")
                continue
            if re.fullmatch(r"\d+", subject):  # a copy writing the number only
                subject = f"spNO.{subject}"
            cells = {k: header.get(sheet, r, k) for k in ("onset", "apex", "offset")}
            if cell_int(header.get(sheet, r, "shade")) == 1:
                shaded += 1
            ann = Annotation(
                subject=subject, filename=seq,
                onset=cell_int(cells["onset"]), apex=cell_int(cells["apex"]),
                offset=cell_int(cells["offset"]),
                label=cell_text(header.get(sheet, r, "emotion")) or UNLABELLED,
                aus=cell_text(header.get(sheet, r, "aus")), row=r + 1,
                texts={k: cell_text(v) for k, v in cells.items()}, kind=kind,
                expected_folder=f"{subject}/{seq}/color",
                extra={"objective_class": cell_text(header.get(sheet, r, "objective_class")),
                       "sheet": sheet.name},
            )
            ann.folder = videos.get((subject.lower(), seq.lower()))
            out.append(ann)
        if shaded:
            report.issue(NOTE, f"{shaded} {kind} row(s) with shade = 1 (face partly hidden, "
                         "unverified meaning): kept")
        return out
