"""MEGC2019 composite: CASME II + SMIC-HS + SAMM in 3 classes (442 samples, 68 subjects).

Expected ``--root``: a folder holding ``combined_3class_gt.csv`` and the three releases
(each laid out as its own loader expects, anywhere a few levels below), e.g.::

    combined_3class_gt.csv
    CASME2/CASME2-coding-20190701.xlsx, CASME2/CASME2-RAW/...
    SAMM/SAMM_Micro_FACS_Codes_v2.xlsx, SAMM/SAMM/...
    SMIC/SMIC_all_raw/HS/...

``combined_3class_gt.csv``: no header; columns dataset, subject, filename, label
(0 negative, 1 positive, 2 surprise); CRLF line ends; some copies have empty rows (skipped).
The list of samples and their labels come from this file. The csv writes subject ids its own
way (``sub01``, ``s01``, ``6``) and SMIC file names with a padded subject (``s01_ne_01`` for
the folder ``s1_ne_01``): rows are matched to the releases' samples by subject NUMBER and
file name ignoring case and zero padding.

Each sample keeps its source dataset (``Sample.dataset`` = ``casme2``, ``samm``, ``smic``)
and the source's subject id, so LOSO folds are ``dataset/subject`` (68 folds); its
``native_label`` is the composite class and ``extra["source_label"]`` the source emotion.
The csv's label is checked against the mapping rules (DATASETS.md: CASME II negative =
disgust + repression, positive = happiness, surprise; SAMM negative = anger + contempt +
disgust + fear + sadness, positive = happiness, surprise; SMIC by folder); a disagreement is
reported and the csv wins. Without the csv the composite is built from those rules
(reported: the count then differs from the official 442).
"""

from __future__ import annotations

import re
from pathlib import Path

from mestudio.errors import DatasetError
from mestudio.training.datasets import frames as framelib
from mestudio.training.datasets.base import (
    BAD_ROW,
    LABEL_MISMATCH,
    MISSING_FOLDER,
    NOTE,
    RELEASE,
    THREE_CLASSES,
    DatasetReport,
    MEDataset,
    Sample,
    subject_number,
)
from mestudio.training.datasets.casme2 import Casme2
from mestudio.training.datasets.fixes import AppliedFix
from mestudio.training.datasets.samm import Samm
from mestudio.training.datasets.sheets import cell_text, is_blank_row, read_csv
from mestudio.training.datasets.smic import Smic

CSV_PATTERNS = ("combined_3class_gt.csv", "combined*3class*.csv", "*3class*gt*.csv")
LABEL_CODES = {"0": "negative", "1": "positive", "2": "surprise"}
SOURCE_NAMES = {"casme2": "casme2", "casmeii": "casme2", "casme": "casme2",
                "samm": "samm", "smic": "smic", "smichs": "smic"}


def _source_key(text: str) -> str | None:
    return SOURCE_NAMES.get(re.sub(r"[^a-z0-9]", "", text.lower()))


def _sample_key(subject: str, filename: str) -> tuple[int | None, str]:
    return subject_number(subject), framelib.normalized_name(filename)


class Megc2019(MEDataset):
    """The MEGC2019 cross-dataset composite. Mappings: native = 3class."""

    name = "megc2019"
    title = "MEGC2019 composite (CASME II + SMIC-HS + SAMM)"
    fps = 0.0  # per source: Sample.fps
    native_classes = THREE_CLASSES
    class_maps = {"3class": {c: c for c in THREE_CLASSES}}
    class_orders = {"3class": THREE_CLASSES}

    def __init__(self, *, layout: str = "auto", sheet: str | Path | None = None):
        super().__init__(layout="auto", sheet=sheet)
        self.source_layout = layout

    def _sources(self) -> dict[str, MEDataset]:
        sources: dict[str, MEDataset] = {}
        for key, cls in (("casme2", Casme2), ("smic", Smic), ("samm", Samm)):
            layout = self.source_layout
            valid = layout in ("raw", "cropped") if cls is Smic else layout in cls.LAYOUTS
            sources[key] = cls(layout=layout if valid else "auto")
        return sources

    def scan(self, root: str | Path) -> DatasetReport:
        root_path = Path(root).expanduser()
        if not root_path.is_dir():
            raise DatasetError(f"dataset root {root_path} is not a folder: pass --root the "
                               "folder holding combined_3class_gt.csv and the CASME II, SAMM "
                               "and SMIC releases")
        report = self._new_report(root_path)
        csv_path = self.sheet
        if csv_path is None:
            found = framelib.find_files(root_path, CSV_PATTERNS, max_depth=2)
            csv_path = found[0] if found else None
        elif not csv_path.is_file():
            raise DatasetError(f"composite label file {csv_path} does not exist")

        sources = self._sources()
        by_key: dict[str, dict[tuple[int | None, str], Sample]] = {}
        sub_reports: dict[str, DatasetReport] = {}
        errors: dict[str, str] = {}
        for key, loader in sources.items():
            try:
                sub = loader.scan(root_path)
            except DatasetError as exc:
                errors[key] = str(exc)
                report.issue(RELEASE, f"{loader.title} release not usable: {exc}")
                continue
            sub_reports[key] = sub
            by_key[key] = {_sample_key(s.subject, s.filename): s for s in sub.samples}
        if not sub_reports:
            raise DatasetError(
                f"none of CASME II, SAMM, SMIC-HS found under {root_path}: "
                + "; ".join(f"{k}: {v}" for k, v in errors.items())
            )

        used: dict[str, set[str]] = {k: set() for k in sub_reports}
        if csv_path is not None:
            report.sheet = csv_path
            self._from_csv(csv_path, sources, sub_reports, by_key, used, report)
        else:
            report.issue(RELEASE, "combined_3class_gt.csv not found: composite built from the "
                         "3-class mapping rules (the count differs from the official 442)")
            for key, sub in sub_reports.items():
                loader = sources[key]
                for s in sub.samples:
                    label = loader.map_label(s.native_label, "3class")
                    if label is not None:
                        report.samples.append(self._composite(s, label))
                        used[key].add(s.id)

        for key, sub in sub_reports.items():
            for f in sub.fixes:
                if f"{sources[key].name}/{f.sample}" in used[key]:
                    report.fixes.append(AppliedFix(f.fix_id, f"{key}/{f.sample}", f.field,
                                                   f.old, f.new, f.reason))
            if sub.issues:
                report.issue(NOTE, f"{sub.title}: {len(sub.issues)} issue(s) in the release — "
                             f"see `mestudio data check --dataset {sources[key].name}`")
        counts = {k: sum(1 for s in report.samples if s.dataset == sources[k].name)
                  for k in sub_reports}
        report.info["sources"] = ", ".join(f"{k} {n}" for k, n in counts.items())
        report.info["frames"] = "; ".join(
            f"{k}: {r.frames_root} ({r.layout})" for k, r in sub_reports.items())
        report.samples.sort(key=lambda s: (s.dataset, framelib.natural_key(s.subject),
                                           framelib.natural_key(s.filename)))
        return report

    @staticmethod
    def _composite(s: Sample, label: str) -> Sample:
        out = s.with_label(label)
        out.extra["source_label"] = s.native_label
        out.native_label = label
        return out

    def _from_csv(self, csv_path: Path, sources: dict[str, MEDataset],
                  sub_reports: dict[str, DatasetReport],
                  by_key: dict[str, dict[tuple[int | None, str], Sample]],
                  used: dict[str, set[str]], report: DatasetReport) -> None:
        table = read_csv(csv_path)
        by_name: dict[str, dict[str, list[Sample]]] = {}
        for key, index in by_key.items():
            names: dict[str, list[Sample]] = {}
            for s in index.values():
                names.setdefault(framelib.normalized_name(s.filename), []).append(s)
            by_name[key] = names
        empty = 0
        for r, row in enumerate(table.rows):
            if is_blank_row(row):
                empty += 1
                continue
            cells = [cell_text(v) for v in row] + [""] * 4
            dataset_text, subject, filename, label_text = cells[:4]
            label = LABEL_CODES.get(label_text) or (
                label_text.lower() if label_text.lower() in THREE_CLASSES else None)
            where = f"row {r + 1} ({dataset_text}/{subject}/{filename})"
            if label is None and r == 0:
                continue  # a copy with a header row
            report.rows += 1
            source = _source_key(dataset_text)
            if source is None or label is None or not filename:
                report.issue(BAD_ROW, f"{where}: expected dataset (casme2, samm, smic), "
                             f"subject, filename, label 0/1/2; got {', '.join(cells[:4])}")
                continue
            if source not in sub_reports:
                report.issue(MISSING_FOLDER, f"{where}: the {source} release is not usable")
                continue
            sample = by_key[source].get(_sample_key(subject, filename))
            if sample is None:
                candidates = by_name[source].get(framelib.normalized_name(filename), [])
                sample = candidates[0] if len(candidates) == 1 else None
            if sample is None:
                report.issue(MISSING_FOLDER, f"{where}: no such usable sample in the "
                             f"{sources[source].title} release", f"{source}/{subject}/{filename}")
                continue
            if sample.id in used[source]:
                report.issue(BAD_ROW, f"{where}: sample {sample.id} listed twice")
                continue
            rule = sources[source].map_label(sample.native_label, "3class")
            if rule != label:
                report.issue(LABEL_MISMATCH,
                             f"{where}: csv label {label!r} but the {source} label "
                             f"{sample.native_label!r} maps to {rule!r}; the csv's label is used",
                             sample.id)
            used[source].add(sample.id)
            report.samples.append(self._composite(sample, label))
        if empty:
            report.info["empty csv rows"] = str(empty)
