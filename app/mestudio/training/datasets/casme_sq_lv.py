"""CAS(ME)² long videos for spotting (30 fps): ``rawpic/`` and both kinds of coded rows.

Release layout (DATASETS.md; the same files as :mod:`.casme_sq`)::

    CAS(ME)^2code_final.xlsx        sheet 'CASFEcode_final' (no header row): subject, clip,
                                    onset, apex, offset (0 = unknown), AUs, emotion, type
                                    ('micro-expression' / 'macro-expression'), self-report;
                                    'naming rule1' (subject -> folder number),
                                    'naming rule2' (code -> video name)
    rawpic/s15/15_0101disgustingteeth/img001.jpg     one folder per long video

Every row of either type is a spotting interval (:attr:`Sample.kind` ``micro``/``macro``);
every folder ``rawpic/s<NN>/<NN>_<CCCC>*`` is a long video (id ``s15/15_0101disgustingteeth``),
with or without coded rows. An offset of 0 means "unknown" (DATASETS.md): the interval ends at
the apex (fix ``casme_sq_lv-offset-unknown``, listed by ``data check``).

Assumptions (:attr:`CasmeSqLv.ASSUMPTIONS`): onset/offset are the numbers in the image file
names of the long video (``img001`` = frame 1), as in the short-clip use of the release.
"""

from __future__ import annotations

import re
from pathlib import Path

from mestudio.training.datasets import frames as framelib
from mestudio.training.datasets.base import Annotation, DatasetReport
from mestudio.training.datasets.casme_sq import CasmeSq
from mestudio.training.datasets.longvideo import LongVideoDataset, SpottingReport


class CasmeSqLv(LongVideoDataset, CasmeSq):
    """CAS(ME)² long videos: micro and macro intervals of every ``rawpic`` video."""

    name = "casme_sq_lv"
    title = "CAS(ME)^2 long videos"
    ASSUMPTIONS = (
        "onset/apex/offset are the numbers in the frame file names of the long video "
        "(img001.jpg = frame 1)",
        "a long video is every folder rawpic/s<NN>/<NN>_<CCCC>*; one without coded rows is "
        "scored too",
    )

    def __init__(self, *, layout: str = "auto", sheet: str | Path | None = None):
        super().__init__(layout=layout, sheet=sheet, kinds=("micro", "macro"))

    def _read_release(self, root: Path, report: DatasetReport
                      ) -> tuple[list[Annotation], list[Path]]:
        annotations, _ = super()._read_release(root, report)
        assert isinstance(report, SpottingReport)
        frames_root = report.frames_root
        if frames_root is not None:
            for subject_dir in framelib.child_dirs(frames_root):
                if not re.fullmatch(r"s\d+", subject_dir.name, re.IGNORECASE):
                    continue
                for video in framelib.child_dirs(subject_dir):
                    if re.match(r"\d+_\d{4}", video.name):
                        report.video_folders[video] = (f"{subject_dir.name}/{video.name}",
                                                       subject_dir.name)
        report.info["long videos found"] = str(len(report.video_folders))
        return annotations, []
