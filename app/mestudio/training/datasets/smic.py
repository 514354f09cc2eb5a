"""SMIC (HS 100 fps, 16 subjects, 164 samples; VIS and NIR 25 fps).

Release layout (no annotation sheet in the basic release)::

    SMIC_all_raw/HS/s1/micro/{negative,positive,surprise}/s1_ne_01/image036237.bmp
    SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/reg_image036237.bmp    layout "cropped"
    (VIS and NIR: the same below SMIC_all_raw/VIS, SMIC_all_raw/NIR)

The label is the emotion folder's name; ``non_micro`` folders are ignored. A sample folder
holds exactly onset..offset: onset = its first frame, offset = its last. There is no apex
annotation: apex = the middle frame (fix ``smic-apex-middle``; ``apex_estimated`` is True and
the preprocessing may refine it). Frame numbers are 6-digit padded and absolute.
Subject ids are the folder names (``"s1"``).
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
)

VARIANTS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}


class Smic(MEDataset):
    """SMIC loader for one camera: ``variant`` = ``"HS"`` (default), ``"VIS"`` or ``"NIR"``."""

    title = "SMIC"
    native_classes = THREE_CLASSES
    class_maps = {"3class": {c: c for c in THREE_CLASSES}}
    class_orders = {"3class": THREE_CLASSES}
    label_aliases = {"neg": "negative", "pos": "positive", "sur": "surprise",
                     "surprised": "surprise"}
    RAW_ROOTS = ("SMIC_all_raw", "SMIC_raw", "SMIC-raw", "SMIC_all_raw_images", "SMIC")
    CROPPED_ROOTS = ("SMIC_all_cropped", "SMIC_cropped", "SMIC-cropped", "SMIC_all_crop")

    def __init__(self, variant: str = "HS", *, layout: str = "auto",
                 sheet: str | Path | None = None):
        variant = variant.upper()
        if variant not in VARIANTS:
            raise DatasetError(f"SMIC has the cameras HS, VIS and NIR, not {variant!r}")
        self.LAYOUTS = {"raw": (variant,), "cropped": (variant,)}
        super().__init__(layout=layout, sheet=sheet)
        self.variant = variant
        self.name = "smic" if variant == "HS" else f"smic-{variant.lower()}"
        self.title = f"SMIC-{variant}"
        self.fps = VARIANTS[variant]

    def _variant_dirs(self, root: Path) -> dict[str, Path]:
        """layout -> the ``HS`` (VIS, NIR) folder holding subject folders ``sN``."""
        def holds_subjects(d: Path) -> bool:
            return any(re.fullmatch(r"s\d+", c.name, re.I) for c in framelib.child_dirs(d))

        found: dict[str, Path] = {}
        for folder in framelib.find_dirs(root, (self.variant,), max_depth=4):
            if not holds_subjects(folder):
                continue
            text = folder.relative_to(root).as_posix().lower() if folder != root else ""
            layout = "cropped" if "crop" in text else "raw"
            found.setdefault(layout, folder)
        return found

    def _read_release(self, root: Path, report: DatasetReport) -> tuple[list[Annotation], list[Path]]:
        present = self._variant_dirs(root)
        if not present:
            raise DatasetError(
                f"no SMIC-{self.variant} frame folder under {root} (looked for "
                f"SMIC_all_raw/{self.variant}/s1/micro/...): pass the SMIC release folder as --root"
            )
        if self.layout != "auto":
            if self.layout not in present:
                raise DatasetError(f"no {self.layout} SMIC-{self.variant} folder under {root} "
                                   f"(present: {', '.join(present)})")
            chosen = self.layout
        else:
            chosen = "raw" if "raw" in present else next(iter(present))
        report.layout = chosen
        report.frames_root = present[chosen]
        report.other_layouts = [k for k in present if k != chosen]
        annotations: list[Annotation] = []
        for subject_dir in framelib.child_dirs(present[chosen]):
            if not re.fullmatch(r"s\d+", subject_dir.name, re.I):
                continue
            micro = next((d for d in framelib.child_dirs(subject_dir)
                          if d.name.lower() == "micro"), None)
            if micro is None:
                continue
            for emotion_dir in framelib.child_dirs(micro):
                for sample_dir in framelib.child_dirs(emotion_dir):
                    report.rows += 1
                    numbers = [n for n, _ in framelib.list_frames(sample_dir)]
                    onset = numbers[0] if numbers else None
                    offset = numbers[-1] if numbers else None
                    annotations.append(Annotation(
                        subject=subject_dir.name,
                        filename=sample_dir.name,
                        onset=onset,
                        apex=None,
                        offset=offset,
                        label=emotion_dir.name,
                        folder=sample_dir,
                        expected_folder=f"{subject_dir.name}/micro/{emotion_dir.name}/"
                                        f"{sample_dir.name}",
                        texts={"onset": "(first frame)" if numbers else "(no frame)",
                               "apex": "", "offset": "(last frame)" if numbers else "(no frame)"},
                    ))
        report.info["annotation"] = "none in the release: label from the emotion folder, " \
                                    "onset/offset = first/last frame of the folder"
        return annotations, []
