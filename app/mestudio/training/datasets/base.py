"""The one sample interface of every dataset, the loader base class and the check report.

A loader reads a release as users receive it (DATASETS.md) and turns every annotation row
into a :class:`Sample`: ids as strings, frames sorted by their parsed number, annotation
fixes from the single table in :mod:`.fixes`. What cannot be used is REPORTED (rows without
a folder, folders without a row, missing frames, bad rows), never a crash; a release that
cannot be read at all (no sheet, wrong sheet, missing columns) raises
:class:`~mestudio.errors.DatasetError`.

Class mappings (``mapping`` argument):
    ``"native"``  the dataset's own emotion labels (lower case);
    ``"5class"``  the usual 5-class protocol where the dataset has one (CASME II, SAMM, CASME);
    ``"3class"``  negative / positive / surprise as in the MEGC2019 composite;
    a :class:`ClassMapping` (:func:`load_mapping`): a TOML mapping file, shipped in
    ``mestudio/resources/mappings`` (by name) or the user's own (by path)::

        # where the class set comes from
        classes = ["negative", "positive", "surprise"]   # the model's output order
        [labels]                  # native label -> class, every dataset
        disgust = "negative"
        happiness = "positive"
        [labels.samm]             # for samples of one dataset (over [labels]); "" = left out
        anger = "negative"

    Native labels the mapping does not name are left out, with their samples.
    :func:`drop_small_classes` then drops classes with too few samples
    (``--min-class-samples``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mestudio.errors import DatasetError
from mestudio.training.datasets import frames as framelib
from mestudio.training.datasets.fixes import AppliedFix, FixTarget, apply_fixes

logger = logging.getLogger(__name__)

MAPPINGS: tuple[str, ...] = ("native", "5class", "3class")
THREE_CLASSES: tuple[str, ...] = ("negative", "positive", "surprise")
"""MEGC2019 composite classes, in the order of its label codes 0, 1, 2."""

MAPPINGS_DIR = Path(__file__).resolve().parents[2] / "resources" / "mappings"
"""Where the shipped mapping files live (``mestudio/resources/mappings/<name>.toml``, package
data)."""


@dataclass(frozen=True)
class ClassMapping:
    """A class set and how native labels map to it (a mapping file, :func:`load_mapping`).

    Attributes:
        name: what reports call it (the file's ``name``, else its stem).
        classes: the classes in the model's output order.
        labels: native label (lower case) -> class, for every dataset.
        per_dataset: dataset name -> {native label -> class}, over :attr:`labels` for that
            dataset's samples (``""``: left out).
        source: the file it was read from (``""``: made in code).
        sha256: hash of the file's bytes (of a canonical JSON form when made in code).
        description: the file's leading comment (where the class set comes from).
    """

    name: str
    classes: tuple[str, ...]
    labels: dict[str, str]
    per_dataset: dict[str, dict[str, str]] = field(default_factory=dict)
    source: str = ""
    sha256: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise DatasetError(f"mapping {self.name}: 'classes' must list at least two "
                               f"distinct classes, got {list(self.classes)}")
        known = set(self.classes)
        tables = [("labels", self.labels)] + [(f"labels.{d}", t)
                                             for d, t in self.per_dataset.items()]
        for where, table in tables:
            bad = sorted({v for v in table.values() if v and v not in known})
            if bad:
                raise DatasetError(f"mapping {self.name}: [{where}] maps to {', '.join(bad)}, "
                                   f"not in classes ({', '.join(self.classes)})")
        if not self.sha256:
            canon = json.dumps({"classes": list(self.classes), "labels": self.labels,
                                "per_dataset": self.per_dataset}, sort_keys=True)
            object.__setattr__(self, "sha256", hashlib.sha256(canon.encode()).hexdigest())

    @classmethod
    def builtin(cls, dataset: str, mapping: str, table: dict[str, str] | None,
                classes: Sequence[str]) -> ClassMapping:
        """A dataset's built-in ``native``/``5class``/``3class`` mapping as an object."""
        labels = dict(table) if table is not None else {c: c for c in classes}
        return cls(name=mapping, classes=tuple(classes), labels=labels,
                   source=f"built-in {dataset} {mapping}")

    def table(self, dataset: str) -> dict[str, str]:
        """Native label -> class for samples of ``dataset`` (left-out labels absent)."""
        merged = {**self.labels, **self.per_dataset.get(dataset, {})}
        return {k: v for k, v in merged.items() if v}

    def map(self, native: str, dataset: str) -> str | None:
        """The class of a native label of ``dataset``; None when the mapping leaves it out."""
        return self.table(dataset).get(native.strip().lower()) or None

    def restricted(self, classes: Sequence[str]) -> ClassMapping:
        """The mapping with only ``classes`` (in this mapping's order); labels mapped to the
        others are left out. Keeps name, source and hash (the file it came from)."""
        keep = [c for c in self.classes if c in set(classes)]
        return dataclasses.replace(
            self, classes=tuple(keep),
            labels={k: v for k, v in self.labels.items() if v in keep},
            per_dataset={d: {k: (v if v in keep else "") for k, v in t.items()}
                         for d, t in self.per_dataset.items()})

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (reports)."""
        return {"name": self.name, "source": self.source, "sha256": self.sha256,
                "classes": list(self.classes), "labels": dict(self.labels),
                "per_dataset": {d: dict(t) for d, t in self.per_dataset.items()},
                "description": self.description}


def shipped_mappings() -> dict[str, Path]:
    """Name -> file of the mapping files shipped with mestudio (sorted by name)."""
    if not MAPPINGS_DIR.is_dir():  # pragma: no cover - broken installation
        return {}
    return {p.stem: p for p in sorted(MAPPINGS_DIR.glob("*.toml"))}


def _leading_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            lines.append(stripped.lstrip("#").strip())
        elif stripped:
            break
    return " ".join(x for x in lines if x)


def load_mapping(spec: str | Path) -> ClassMapping:
    """A mapping file: a shipped one by name (:func:`shipped_mappings`) or a path.

    Raises:
        DatasetError: no such file, not TOML, or not a mapping (see the module docstring).
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    shipped = shipped_mappings()
    path = shipped.get(str(spec))
    if path is None:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise DatasetError(f"unknown class mapping {str(spec)!r}: use native, 5class, "
                               f"3class, a shipped mapping ({', '.join(shipped) or 'none'}) "
                               "or a TOML mapping file")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DatasetError(f"mapping file {path}: not valid TOML ({exc})") from None
    classes = data.get("classes")
    table = data.get("labels")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) \
            or not isinstance(table, dict):
        raise DatasetError(f"mapping file {path}: needs classes = [\"...\", ...] and a "
                           "[labels] table (native label = \"class\")")
    labels: dict[str, str] = {}
    per_dataset: dict[str, dict[str, str]] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            if not all(isinstance(v, str) for v in value.values()):
                raise DatasetError(f"mapping file {path}: [labels.{key}] values must be "
                                   "class names (or \"\" to leave a label out)")
            per_dataset[str(key).strip().lower()] = {str(k).strip().lower(): v.strip()
                                                     for k, v in value.items()}
        elif isinstance(value, str):
            labels[str(key).strip().lower()] = value.strip()
        else:
            raise DatasetError(f"mapping file {path}: labels.{key} must be a class name")
    return ClassMapping(name=str(data.get("name") or path.stem),
                        classes=tuple(c.strip() for c in classes), labels=labels,
                        per_dataset=per_dataset, source=path.name,
                        sha256=hashlib.sha256(raw).hexdigest(),
                        description=str(data.get("description") or _leading_comment(
                            raw.decode("utf-8"))))


def drop_small_classes(samples: Sequence[Sample], classes: Sequence[str], min_samples: int
                       ) -> tuple[list[Sample], list[str], dict[str, int]]:
    """Leave out the classes with fewer than ``min_samples`` samples, with their samples.

    Returns:
        ``(samples kept, classes kept in their order, {dropped class: its sample count})``.

    Raises:
        DatasetError: fewer than two classes remain.
    """
    counts = Counter(s.label for s in samples)
    dropped = {c: counts.get(c, 0) for c in classes if counts.get(c, 0) < min_samples}
    kept = [c for c in classes if c not in dropped]
    if len(kept) < 2:
        raise DatasetError(f"--min-class-samples {min_samples} leaves {len(kept)} class(es) "
                           f"({', '.join(f'{c} {counts.get(c, 0)}' for c in classes)})")
    return [s for s in samples if s.label in set(kept)], kept, dropped


# Issue kinds (DatasetReport.issues)
BAD_ROW = "bad row"
MISSING_FOLDER = "row without folder"
UNMATCHED_FOLDER = "folder without row"
MISSING_FRAMES = "missing frames"
UNEXPECTED_LABEL = "unexpected label"
LABEL_MISMATCH = "label mismatch"
DUPLICATE = "duplicate"
RELEASE = "release"
NOTE = "note"

_AU_NUMBER = re.compile(r"\d+")


def parse_action_units(text: str) -> tuple[str, ...]:
    """Action units named in an AU cell, alternatives included.

    The sheets write ``"12"``, ``"4+7"``, ``"R12 + R15 or R14"``, ``"L14"``, ``"R14A"``,
    ``"1+2/43"``, ``"AU4"``; every number becomes ``"AU<n>"`` (side and intensity letters
    dropped, both sides of ``or``/``/`` kept).

    Returns:
        Sorted unique codes, e.g. ``("AU12", "AU14", "AU15")``.
    """
    numbers = {int(n) for n in _AU_NUMBER.findall(text or "")}
    return tuple(f"AU{n}" for n in sorted(numbers))


@dataclass
class Sample:
    """One micro-expression sample of a dataset.

    Attributes:
        id: unique, stable id ``"<dataset>/<subject>/<filename>"`` (CAS(ME)² clips that hold
            several expressions: the clip name is the sheet's, e.g. ``anger1_2``).
        dataset: registry name of the dataset the frames come from (``"casme2"``, ``"samm"``,
            ``"smic"``, ...); for the MEGC2019 composite the source dataset.
        subject: subject id as the release writes it, as a string (``"01"``, ``"006"``,
            ``"s1"``); LOSO folds are :attr:`fold` = ``"dataset/subject"``.
        label: the class under the mapping the samples were loaded with.
        native_label: the dataset's own label, lower case (``"happiness"``, ``"anger"``;
            composite: ``"negative"``...).
        onset, apex, offset: frame numbers as in the annotation (after fixes), inclusive.
        frame_paths: image files of frames ``onset..offset`` that exist, sorted by frame
            number (never lexically).
        fps: frames per second of the recording.
        aus: the action-unit cell as written (``"R12 + R15 or R14"``); :attr:`au_codes`
            parses it.
        frames: the frame numbers of ``frame_paths`` (same order).
        filename: the sample's clip/folder name in the annotation (``"EP02_01f"``).
        folder: the sample's frame folder; :meth:`folder_frames` lists ALL its frames
            (RAW layouts hold frames before the onset and after the offset, for clip models;
            CAS(ME)²: the whole long video).
        apex_estimated: True when the apex is not the coded one (missing, outside the
            interval, at a bound, SMIC): the middle frame; the preprocessing may refine it.
        annotated_apex: the apex as coded, None when not coded.
        kind: ``"micro"`` (CAS(ME)² also codes ``"macro"``).
        layout: frame layout used: ``"raw"``, ``"selected"``, ``"cropped"``.
        fixes: applied annotation fixes (``"apex-missing: apex '/' -> 291"``).
        notes: other things a user may want to know (missing frames, tolerant matches).
        extra: dataset-specific columns (objective class, inducement code, ...).
    """

    id: str
    dataset: str
    subject: str
    label: str
    onset: int
    apex: int
    offset: int
    frame_paths: list[Path]
    fps: float
    aus: str
    native_label: str
    frames: list[int]
    filename: str = ""
    folder: Path | None = None
    apex_estimated: bool = False
    annotated_apex: int | None = None
    kind: str = "micro"
    layout: str = ""
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fold(self) -> str:
        """LOSO fold id ``"dataset/subject"`` (subject ids differ across datasets)."""
        return f"{self.dataset}/{self.subject}"

    @property
    def n_frames(self) -> int:
        """Number of frame files between onset and offset."""
        return len(self.frames)

    @property
    def duration_s(self) -> float:
        """Coded duration ``(offset - onset + 1) / fps`` in seconds."""
        return (self.offset - self.onset + 1) / self.fps

    @property
    def au_codes(self) -> tuple[str, ...]:
        """Action units of :attr:`aus`, e.g. ``("AU12", "AU15")``."""
        return parse_action_units(self.aus)

    def frame_path(self, number: int) -> Path:
        """Image file of frame ``number`` (one of :attr:`frames`).

        Raises:
            KeyError: the frame is not part of the sample.
        """
        try:
            return self.frame_paths[self.frames.index(number)]
        except ValueError:
            raise KeyError(f"{self.id}: no frame {number}") from None

    @property
    def keyframe_paths(self) -> tuple[Path, Path, Path]:
        """Image files of the onset, apex and offset frames."""
        return self.frame_path(self.onset), self.frame_path(self.apex), self.frame_path(self.offset)

    def folder_frames(self) -> list[framelib.FrameFile]:
        """Every frame of the sample's folder, ``[(number, path), ...]`` sorted by number.

        For clip models that want context around the interval (RAW layouts).
        """
        return framelib.list_frames(self.folder) if self.folder is not None else []

    def with_label(self, label: str) -> Sample:
        """A copy with another :attr:`label` (lists are copied)."""
        return dataclasses.replace(
            self, label=label, frame_paths=list(self.frame_paths), frames=list(self.frames),
            fixes=list(self.fixes), notes=list(self.notes), extra=dict(self.extra),
        )


@dataclass
class Annotation:
    """One annotation row as a loader read it, before fixes and frame look-up."""

    subject: str
    filename: str
    onset: int | None
    apex: int | None
    offset: int | None
    label: str
    aus: str = ""
    row: int | None = None
    texts: dict[str, str] = field(default_factory=dict)
    kind: str = "micro"
    folder: Path | None = None
    expected_folder: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """``subject/filename`` (as in the sheet)."""
        return f"{self.subject}/{self.filename}"

    @property
    def where(self) -> str:
        """``row 12 (04/EP12_01f)`` for messages."""
        return f"row {self.row} ({self.key})" if self.row is not None else self.key


@dataclass
class Issue:
    """Something in the release that a user should know about."""

    kind: str
    message: str
    sample: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass
class DatasetReport:
    """What a scan of a release found (``mestudio data check`` prints it).

    Attributes:
        dataset, title: registry name and display name.
        root: the release folder given by the user.
        sheet: annotation file used (None for SMIC), ``sheet_name`` its sheet.
        frames_root: folder of the frame layout used; ``layout`` its name;
            ``other_layouts`` further layouts present.
        rows: annotation rows read (csv/sheet data rows, blank rows excluded).
        samples: usable samples (native labels).
        issues: what was reported.
        fixes: annotation fixes applied.
        skipped: counts of rows deliberately not used (e.g. CAS(ME)² macro-expressions).
        info: further facts (sheet version, header row, ...).
    """

    dataset: str
    title: str
    root: Path
    fps: float
    class_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    class_orders: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sheet: Path | None = None
    sheet_name: str = ""
    frames_root: Path | None = None
    layout: str = ""
    other_layouts: list[str] = field(default_factory=list)
    rows: int = 0
    samples: list[Sample] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    fixes: list[AppliedFix] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)

    def issue(self, kind: str, message: str, sample: str = "") -> None:
        """Record an issue (also logged at debug level)."""
        self.issues.append(Issue(kind, message, sample))
        logger.debug("%s %s: %s", self.dataset, kind, message)

    @property
    def usable(self) -> bool:
        """True when at least one sample can be used."""
        return bool(self.samples)

    def mappings(self) -> tuple[str, ...]:
        """Mappings available for this dataset (``"native"`` first)."""
        return ("native", *self.class_maps)

    def mapped(self, mapping: str | ClassMapping = "native") -> list[Sample]:
        """The usable samples under ``mapping``; samples outside the mapping are left out."""
        if isinstance(mapping, ClassMapping):
            out = []
            for s in self.samples:
                label = mapping.map(s.native_label, s.dataset)
                if label is not None:
                    out.append(s.with_label(label))
            return out
        if mapping == "native":
            return list(self.samples)
        table = self.class_maps[mapping]
        return [s.with_label(table[s.native_label]) for s in self.samples
                if s.native_label in table]

    def class_counts(self, mapping: str | ClassMapping = "native") -> dict[str, int]:
        """Samples per class under ``mapping``, in the mapping's class order."""
        counts = Counter(s.label for s in self.mapped(mapping))
        order = list(mapping.classes if isinstance(mapping, ClassMapping)
                     else self.class_orders.get(mapping, ()))
        for label, _ in counts.most_common():
            if label not in order:
                order.append(label)
        return {c: counts.get(c, 0) for c in order}

    def subjects(self) -> dict[str, int]:
        """Samples per subject id, in natural order (fold ids ``dataset/subject`` for samples
        of another dataset, i.e. in the MEGC2019 composite)."""
        counts = Counter(s.subject if s.dataset == self.dataset else s.fold
                         for s in self.samples)
        return {k: counts[k] for k in sorted(counts, key=framelib.natural_key)}

    def folds(self) -> list[str]:
        """LOSO fold ids ``dataset/subject`` present."""
        return sorted({s.fold for s in self.samples}, key=framelib.natural_key)

    def issue_counts(self) -> dict[str, int]:
        """Issues per kind."""
        return dict(Counter(i.kind for i in self.issues))

    def fix_counts(self) -> dict[str, int]:
        """Applied fixes per fix id."""
        return dict(Counter(f.fix_id for f in self.fixes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (``mestudio data check --json``)."""
        return {
            "dataset": self.dataset,
            "title": self.title,
            "root": str(self.root),
            "fps": self.fps,
            "sheet": str(self.sheet) if self.sheet else None,
            "sheet_name": self.sheet_name,
            "frames_root": str(self.frames_root) if self.frames_root else None,
            "layout": self.layout,
            "other_layouts": list(self.other_layouts),
            "rows": self.rows,
            "samples": len(self.samples),
            "usable": self.usable,
            "subjects": self.subjects(),
            "class_counts": {m: self.class_counts(m) for m in self.mappings()},
            "fixes": [dataclasses.asdict(f) for f in self.fixes],
            "issues": [dataclasses.asdict(i) for i in self.issues],
            "skipped": dict(self.skipped),
            "info": dict(self.info),
            "sample_ids": [s.id for s in self.samples],
        }

    def to_text(self, max_lines: int = 12) -> str:
        """Human-readable report; at most ``max_lines`` lines per issue kind."""
        fps = f"{self.fps:g} fps" if self.fps else "fps of each source"
        lines = [f"dataset   {self.title} ({self.dataset}), {fps}"]
        lines.append(f"root      {self.root}")
        if self.sheet is not None:
            sheet = f"{self.sheet}" + (f" (sheet '{self.sheet_name}')" if self.sheet_name else "")
            lines.append(f"sheet     {sheet}, {self.rows} annotation rows")
        for k, v in self.info.items():
            lines.append(f"          {k}: {v}")
        if self.frames_root is not None:
            other = f"; also present: {', '.join(self.other_layouts)}" if self.other_layouts else ""
            lines.append(f"frames    {self.frames_root} (layout: {self.layout}{other})")
        for what, n in self.skipped.items():
            lines.append(f"skipped   {n} {what}")
        subjects = self.subjects()
        lines.append(f"samples   {len(self.samples)} usable; {len(subjects)} subjects")
        if subjects:
            lines.append("subjects  " + ", ".join(f"{k} ({v})" for k, v in subjects.items()))
        lines.append("classes")
        for m in self.mappings():
            counts = self.class_counts(m)
            total = sum(counts.values())
            body = ", ".join(f"{c} {n}" for c, n in counts.items())
            lines.append(f"  {m:<8}{total:>5}: {body}")
        lines.append(f"fixes applied ({len(self.fixes)})")
        if not self.fixes:
            lines.append("  none")
        by_id: dict[str, list[AppliedFix]] = {}
        for f in self.fixes:
            by_id.setdefault(f.fix_id, []).append(f)
        for fix_id, applied in by_id.items():
            lines.append(f"  {fix_id} x{len(applied)} — {applied[0].reason}")
            for f in applied[:max_lines]:
                lines.append(f"    {f.sample}: {f.field} {f.old} -> {f.new}")
            if len(applied) > max_lines:
                lines.append(f"    ... {len(applied) - max_lines} more")
        lines.append(f"issues ({len(self.issues)})")
        if not self.issues:
            lines.append("  none")
        by_kind: dict[str, list[Issue]] = {}
        for i in self.issues:
            by_kind.setdefault(i.kind, []).append(i)
        for kind, issues in by_kind.items():
            lines.append(f"  {kind} x{len(issues)}")
            for i in issues[:max_lines]:
                lines.append(f"    {i.message}")
            if len(issues) > max_lines:
                lines.append(f"    ... {len(issues) - max_lines} more")
        verdict = "usable" if self.usable else "NOT usable (no sample could be loaded)"
        lines.append(f"verdict   {verdict}")
        return "\n".join(lines)


class MEDataset:
    """Base class of the dataset loaders (one subclass per release).

    Subclasses set the class attributes and implement :meth:`_read_release`, which finds
    the annotation file and the frame folders and returns one :class:`Annotation` per row
    (with ``folder`` set when found) plus every sample folder present on disk.

    Args:
        layout: frame layout to use (``"auto"`` picks the first present of
            :attr:`LAYOUTS`' order).
        sheet: explicit annotation file (default: searched under the root).
    """

    name: str = ""
    title: str = ""
    fps: float = 0.0
    native_classes: tuple[str, ...] = ()
    class_maps: dict[str, dict[str, str]] = {}
    class_orders: dict[str, tuple[str, ...]] = {}
    label_aliases: dict[str, str] = {}
    LAYOUTS: dict[str, tuple[str, ...]] = {}
    """layout name -> folder names of that layout, in order of preference."""

    def __init__(self, *, layout: str = "auto", sheet: str | Path | None = None):
        if layout != "auto" and self.LAYOUTS and layout not in self.LAYOUTS:
            raise DatasetError(
                f"{self.title} has no layout {layout!r}: use one of "
                f"{', '.join(['auto', *self.LAYOUTS])}"
            )
        self.layout = layout
        self.sheet = Path(sheet).expanduser() if sheet else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, layout={self.layout!r})"

    # ---- classes ----------------------------------------------------------------------
    def mappings(self) -> tuple[str, ...]:
        """Available mappings, ``"native"`` first."""
        return ("native", *self.class_maps)

    def classes(self, mapping: str | ClassMapping = "native") -> tuple[str, ...]:
        """Class names under ``mapping`` in their fixed order (the model's output order).

        Raises:
            DatasetError: the dataset has no such mapping.
        """
        if isinstance(mapping, ClassMapping):
            return mapping.classes
        if mapping == "native":
            return self.native_classes
        self._check_mapping(mapping)
        return self.class_orders[mapping]

    def map_label(self, native: str, mapping: str | ClassMapping = "native") -> str | None:
        """Class of a native label under ``mapping``; None when the mapping excludes it."""
        if isinstance(mapping, ClassMapping):
            return mapping.map(native, self.name)
        if mapping == "native":
            return native
        self._check_mapping(mapping)
        return self.class_maps[mapping].get(native)

    def resolve_mapping(self, mapping: str | ClassMapping = "auto") -> str | ClassMapping:
        """``auto`` -> ``5class`` where the dataset has one, else ``native``; a built-in name
        as it is; anything else a mapping file (:func:`load_mapping`).

        Raises:
            DatasetError: neither a built-in mapping nor a readable mapping file.
        """
        if isinstance(mapping, ClassMapping):
            return mapping
        if mapping == "auto":
            return "5class" if "5class" in self.mappings() else "native"
        if mapping in self.mappings():
            return mapping
        if mapping in MAPPINGS:
            self._check_mapping(mapping)
        return load_mapping(mapping)

    def mapping_object(self, mapping: str | ClassMapping) -> ClassMapping:
        """Any mapping as a :class:`ClassMapping` (built-ins included; for reports)."""
        if isinstance(mapping, ClassMapping):
            return mapping
        if mapping == "native":
            return ClassMapping.builtin(self.name, "native", None, self.native_classes)
        self._check_mapping(mapping)
        return ClassMapping.builtin(self.name, mapping, self.class_maps[mapping],
                                    self.class_orders[mapping])

    def _check_mapping(self, mapping: str) -> None:
        if mapping not in self.class_maps:
            raise DatasetError(
                f"{self.title} has no {mapping!r} class mapping: use one of "
                f"{', '.join(self.mappings())}"
            )

    def normalize_label(self, raw: str) -> str:
        """Native label from a sheet/folder text: lower case, aliases resolved
        (e.g. SAMM ``Others`` -> ``other``)."""
        text = re.sub(r"\s+", " ", raw.strip().lower())
        return self.label_aliases.get(text, text)

    # ---- loading ----------------------------------------------------------------------
    def load(self, root: str | Path, mapping: str | ClassMapping = "native") -> list[Sample]:
        """Usable samples of the release at ``root`` with labels under ``mapping``.

        Samples whose native class the mapping excludes are left out (e.g. fear and sadness
        in CASME II 5-class). Problems are logged as one warning; ``check()`` details them.

        Raises:
            DatasetError: the release cannot be read, or no sample is usable.
        """
        if not isinstance(mapping, ClassMapping) and mapping != "native":
            self._check_mapping(mapping)
        report = self.scan(root)
        if not report.usable:
            raise DatasetError(
                f"no usable {self.title} sample under {report.root}: run `mestudio data check "
                f"--dataset {self.name} --root {report.root}` for the details"
            )
        samples = report.mapped(mapping)
        if isinstance(mapping, ClassMapping):
            outside = Counter(s.native_label for s in report.samples
                              if mapping.map(s.native_label, s.dataset) is None)
            if outside:
                logger.info("%s: mapping %s leaves out %s", self.name, mapping.name,
                            ", ".join(f"{k} ({n})" for k, n in outside.most_common()))
        if report.issues or report.fixes:
            logger.warning(
                "%s: %d samples (%s mapping); %d annotation fixes applied, %d issues — see "
                "`mestudio data check --dataset %s --root %s`", self.name, len(samples),
                getattr(mapping, "name", mapping), len(report.fixes), len(report.issues),
                self.name, report.root)
        if not samples:
            name = mapping.name if isinstance(mapping, ClassMapping) else mapping
            raise DatasetError(f"no {self.title} sample falls in the {name} classes")
        return samples

    def check(self, root: str | Path) -> DatasetReport:
        """Scan the release and return the full report (same as :meth:`scan`)."""
        return self.scan(root)

    def scan(self, root: str | Path) -> DatasetReport:
        """Read the annotations, apply fixes, find frames; report everything.

        Raises:
            DatasetError: the root is not a folder, or the annotations cannot be read.
        """
        root_path = Path(root).expanduser()
        if not root_path.is_dir():
            raise DatasetError(
                f"dataset root {root_path} is not a folder: pass --root the folder that holds "
                f"the {self.title} release"
            )
        report = self._new_report(root_path)
        annotations, folders = self._read_release(root_path, report)
        used: set[Path] = set()
        for ann in annotations:
            if ann.folder is not None:
                used.add(ann.folder)
            sample = self._make_sample(ann, report)
            if sample is not None:
                report.samples.append(sample)
        for folder in folders:
            if folder not in used:
                rel = _relative(folder, report.frames_root or root_path)
                report.issue(UNMATCHED_FOLDER, f"{rel}: no annotation row names this folder",
                             rel)
        self._unique_ids(report)
        report.samples.sort(key=lambda s: (framelib.natural_key(s.subject),
                                           framelib.natural_key(s.filename), s.onset))
        return report

    def _new_report(self, root: Path) -> DatasetReport:
        return DatasetReport(
            dataset=self.name, title=self.title, root=root, fps=self.fps,
            class_maps=dict(self.class_maps),
            class_orders={"native": self.native_classes, **self.class_orders},
        )

    def _read_release(self, root: Path, report: DatasetReport) -> tuple[list[Annotation], list[Path]]:
        raise NotImplementedError

    # ---- helpers for subclasses -------------------------------------------------------
    def _find_sheet(self, root: Path, patterns: Sequence[str], what: str,
                    exclude: Sequence[str] = (), report: DatasetReport | None = None) -> Path:
        """The annotation file: the explicit ``sheet`` or the first match under ``root``."""
        if self.sheet is not None:
            if not self.sheet.is_file():
                raise DatasetError(f"annotation sheet {self.sheet} does not exist")
            return self.sheet
        import fnmatch

        found = [p for p in framelib.find_files(root, patterns, max_depth=2)
                 if not any(fnmatch.fnmatchcase(p.name.lower(), e.lower()) for e in exclude)]
        if not found:
            raise DatasetError(
                f"no {what} found under {root} (looked for {', '.join(patterns)}): pass the "
                f"{self.title} release folder as --root, or the file as --sheet"
            )
        if len(found) > 1 and report is not None:
            report.info["other sheets"] = ", ".join(p.name for p in found[1:4])
        return found[0]

    def _find_layout(self, root: Path, report: DatasetReport, probe: Any = None,
                     max_depth: int = 4) -> Path | None:
        """Frame folder of the chosen layout (``self.layout`` or the first present).

        ``probe(folder) -> bool`` says whether a folder directly holds subject folders; a
        found layout folder that fails it is searched one level down (``CASME2-RAW/CASME2-RAW``).
        When no layout folder exists but ``root`` itself passes the probe, ``root`` is used
        with the first layout's name.
        """
        layout_of = {n.lower(): layout for layout, names in self.LAYOUTS.items()
                     for n in names}
        found: dict[str, Path] = {}
        # One search for every layout name: a matched folder is never walked into.
        for candidate in framelib.find_dirs(root, list(layout_of), max_depth=max_depth):
            layout = layout_of[candidate.name.lower()]
            folder = _unwrap(candidate, probe)
            if folder is not None:
                found.setdefault(layout, folder)
        present = {k: found[k] for k in self.LAYOUTS if k in found}
        if self.layout != "auto":
            chosen = self.layout
            if chosen not in present:
                wanted = ", ".join(self.LAYOUTS[chosen])
                raise DatasetError(
                    f"no {chosen} frame folder ({wanted}) under {root}: check --root or pick "
                    f"another --layout (present: {', '.join(present) or 'none'})"
                )
        elif present:
            chosen = next(iter(present))
        elif probe is not None and probe(root):
            chosen = next(iter(self.LAYOUTS), "raw")
            present[chosen] = root
        else:
            return None
        report.layout = chosen
        report.frames_root = present[chosen]
        report.other_layouts = [k for k in present if k != chosen]
        return present[chosen]

    def _require_layout(self, root: Path, report: DatasetReport, looked_for: str,
                        probe: Any = None) -> Path:
        """:meth:`_find_layout`, raising when no frame folder is found.

        Raises:
            DatasetError: "no <title> frame folder under ROOT (looked for ``looked_for``):
                pass the release folder as --root".
        """
        frames_root = self._find_layout(root, report, probe=probe)
        if frames_root is None:
            raise DatasetError(f"no {self.title} frame folder under {root} (looked for "
                               f"{looked_for}): pass the release folder as --root")
        return frames_root

    def _make_sample(self, ann: Annotation, report: DatasetReport) -> Sample | None:
        where = ann.where
        if ann.onset is None or ann.offset is None:
            bad = [f"{k} {ann.texts.get(k, '')!r}" for k in ("onset", "offset")
                   if getattr(ann, k) is None]
            report.issue(BAD_ROW, f"{where}: {' and '.join(bad)} is not a frame number",
                         ann.key)
            return None
        target = FixTarget(onset=ann.onset, apex=ann.apex, offset=ann.offset,
                           texts=dict(ann.texts), derived=set())
        applied = apply_fixes(self.name, ann.key, report.layout, target)
        report.fixes.extend(applied)
        if target.dropped:
            report.issue(NOTE, f"{where}: left out by an annotation fix ({target.dropped})",
                         ann.key)
            return None
        onset, offset = target.onset, target.offset
        if onset is None or offset is None or offset < onset:
            report.issue(BAD_ROW, f"{where}: offset {offset} before onset {onset}", ann.key)
            return None
        apex = target.apex if target.apex is not None else (onset + offset) // 2
        label = self.normalize_label(ann.label)
        if not label:
            report.issue(BAD_ROW, f"{where}: no emotion label", ann.key)
            return None
        if self.native_classes and label not in self.native_classes:
            report.issue(UNEXPECTED_LABEL,
                         f"{where}: label {ann.label!r} is not one of "
                         f"{', '.join(self.native_classes)} (kept as native class only)",
                         ann.key)
        if ann.folder is None:
            expected = ann.expected_folder or ann.filename
            report.issue(MISSING_FOLDER, f"{where}: frame folder {expected} not found", ann.key)
            return None
        files = framelib.list_frames(ann.folder)
        rel = _relative(ann.folder, report.frames_root or report.root)
        if not files:
            report.issue(MISSING_FRAMES, f"{where}: folder {rel} holds no frame image", ann.key)
            return None
        notes = list(ann.notes)
        numbers = [n for n, _ in files]
        in_range = [(n, p) for n, p in files if onset <= n <= offset]
        if not in_range:
            if len(files) == offset - onset + 1:
                # Frames numbered within the clip (1..N) instead of absolutely.
                shift = onset - numbers[0]
                in_range = [(n + shift, p) for n, p in files]
                notes.append(f"frame files numbered {numbers[0]}..{numbers[-1]} within the "
                             f"clip; mapped to the coded {onset}..{offset}")
                report.issue(NOTE, f"{where}: frame files of {rel} are numbered "
                             f"{numbers[0]}..{numbers[-1]}, the sheet codes {onset}..{offset}: "
                             "mapped in order", ann.key)
            else:
                report.issue(MISSING_FRAMES,
                             f"{where}: frames {onset}..{offset} not in {rel} (it holds "
                             f"{framelib.format_ranges(numbers)})", ann.key)
                return None
        present = {n for n, _ in in_range}
        missing = [n for n in range(onset, offset + 1) if n not in present]
        if missing:
            report.issue(MISSING_FRAMES,
                         f"{where}: {len(missing)} of {offset - onset + 1} frames missing in "
                         f"{rel}: {framelib.format_ranges(missing)}", ann.key)
            notes.append(f"missing frames {framelib.format_ranges(missing)}")
        if len(in_range) < 2:
            report.issue(MISSING_FRAMES, f"{where}: fewer than 2 frames in {rel}; left out",
                         ann.key)
            return None
        first, last = in_range[0][0], in_range[-1][0]
        if onset not in present:
            notes.append(f"onset frame {onset} missing: using {first}")
            onset = first
        if offset not in present:
            notes.append(f"offset frame {offset} missing: using {last}")
            offset = last
        if apex not in present:  # also when missing frames moved onset/offset past it
            nearest = min(present, key=lambda n: (abs(n - apex), n))
            notes.append(f"apex frame {apex} missing: using {nearest}")
            apex = nearest
        return Sample(
            id=f"{self.name}/{ann.subject}/{ann.filename}",
            dataset=self.name,
            subject=ann.subject,
            label=label,
            onset=onset,
            apex=apex,
            offset=offset,
            frame_paths=[p for _, p in in_range],
            fps=self.fps,
            aus=ann.aus,
            native_label=label,
            frames=[n for n, _ in in_range],
            filename=ann.filename,
            folder=ann.folder,
            apex_estimated=target.apex_estimated,
            annotated_apex=ann.apex,
            kind=ann.kind,
            layout=report.layout,
            fixes=[str(f) for f in applied],
            notes=notes,
            extra=dict(ann.extra),
        )

    @staticmethod
    def _unique_ids(report: DatasetReport) -> None:
        seen: Counter[str] = Counter(s.id for s in report.samples)
        for s in report.samples:
            if seen[s.id] > 1:
                s.id = f"{s.id}@{s.onset}"
        again = Counter(s.id for s in report.samples)
        counter: Counter[str] = Counter()
        for s in report.samples:
            if again[s.id] > 1:
                counter[s.id] += 1
                if counter[s.id] > 1:
                    report.issue(DUPLICATE, f"{s.id}: the same sample is coded twice", s.id)
                    s.id = f"{s.id}#{counter[s.id]}"


def _unwrap(folder: Path, probe: Any) -> Path | None:
    """``folder`` if it passes ``probe``; else its first child (one level) that does."""
    if probe is None or probe(folder):
        return folder
    for child in framelib.child_dirs(folder):
        if probe(child):
            return child
    return None


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def subject_dirs_probe(pattern: str) -> Any:
    """A probe for :meth:`MEDataset._find_layout`: the folder has a child matching ``pattern``."""
    rx = re.compile(pattern, re.IGNORECASE)

    def probe(folder: Path) -> bool:
        return any(rx.fullmatch(c.name) for c in framelib.child_dirs(folder))

    return probe


def subject_number(text: str) -> int | None:
    """The number in a subject id: ``"sub01"`` -> 1, ``"s01"`` -> 1, ``"006"`` -> 6."""
    m = re.search(r"\d+", text)
    return int(m.group()) if m else None


def coded_rows(sheet: Any, header: Any, report: DatasetReport, *,
               subject_width: int | None = None, label_key: str = "emotion") -> list[Annotation]:
    """Annotation rows of a sheet with a header (CASME II, SAMM, CASME, MMEW).

    Uses the header fields ``subject``, ``filename``, ``onset``, ``apex``, ``offset``,
    ``label_key`` and ``aus``; any other field of the header goes to ``extra``. Blank rows
    are skipped; rows without subject or filename are reported as bad rows.

    Args:
        sheet: :class:`~.sheets.Sheet`; header: its :class:`~.sheets.Header`.
        subject_width: zero padding for subject ids stored as numbers (see
            :func:`~.sheets.cell_id`).
    """
    from mestudio.training.datasets.sheets import cell_id, cell_int, cell_text, is_blank_row

    core = {"subject", "filename", "onset", "apex", "offset", label_key, "aus"}
    annotations: list[Annotation] = []
    for r in range(header.row + 1, len(sheet.rows)):
        row = sheet.rows[r]
        if is_blank_row(row):
            continue
        report.rows += 1
        subject = cell_id(header.get(sheet, r, "subject"), width=subject_width)
        filename = cell_text(header.get(sheet, r, "filename"))
        if not subject or not filename:
            report.issue(BAD_ROW, f"row {r + 1}: no subject or filename "
                         f"({', '.join(cell_text(v) for v in row if v is not None)})")
            continue
        cells = {k: header.get(sheet, r, k) for k in ("onset", "apex", "offset")}
        annotations.append(Annotation(
            subject=subject,
            filename=filename,
            onset=cell_int(cells["onset"]),
            apex=cell_int(cells["apex"]),
            offset=cell_int(cells["offset"]),
            label=cell_text(header.get(sheet, r, label_key)),
            aus=cell_text(header.get(sheet, r, "aus")),
            row=r + 1,
            texts={k: cell_text(v) for k, v in cells.items()},
            extra={k: cell_text(header.get(sheet, r, k)) for k in header.columns
                   if k not in core},
        ))
    return annotations


AUS_COLUMN: tuple[str, ...] = ("Action Units", "AUs", "AU")
"""Header names of the action-unit column (CASME II, SAMM, MMEW sheets)."""

OBJECTIVE_CLASS_COLUMN: tuple[str, ...] = ("Objective Classes", "Objective Class")
"""Header names of the objective-class column (CASME II 2019, SAMM sheets)."""


def coding_columns(*, spaced_first: bool = False) -> dict[str, tuple[str, ...]]:
    """The required columns of the CASME II-style coding sheets (CASME II, SAMM, MMEW) for
    :func:`~.sheets.find_header`: ``subject``, ``filename``, ``onset``/``apex``/``offset``
    (``OnsetFrame``, ``Onset Frame`` or ``Onset``, ...) and ``emotion``.

    ``spaced_first``: list ``Onset Frame`` before ``OnsetFrame`` (the spelling of the
    release, SAMM's; the first name is the one an error message asks for).
    """
    def frame(kind: str) -> tuple[str, ...]:
        names = (f"{kind}Frame", f"{kind} Frame")
        return (*(names[::-1] if spaced_first else names), kind)

    return {
        "subject": ("Subject",),
        "filename": ("Filename", "File name"),
        "onset": frame("Onset"),
        "apex": frame("Apex"),
        "offset": frame("Offset"),
        "emotion": ("Estimated Emotion", "Emotion"),
    }


def attach_subject_folders(annotations: Sequence[Annotation], frames_root: Path, pattern: str,
                           expected: str) -> list[Path]:
    r"""Find every annotation's sample folder under its subject's folder.

    Args:
        annotations: the sheet's rows (:func:`coded_rows`); their ``folder`` and
            ``expected_folder`` are set (see :func:`attach_folder`).
        frames_root: the folder holding one folder per subject.
        pattern: regular expression a subject folder's whole name matches (case-insensitive),
            e.g. ``r"sub\d+"`` (CASME, CASME II) or ``r"\d{2,3}"`` (SAMM); folders and rows are
            paired by the number in the name (:func:`subject_number`: ``sub01`` = ``01`` = 1).
        expected: where the folder should be, for the report: a format string with
            ``{subject}`` and ``{filename}``, e.g. ``"sub{subject}/{filename}"``.

    Returns:
        every sample folder found under the subject folders (rows or not).
    """
    rx = re.compile(pattern, re.IGNORECASE)
    subjects: dict[int, framelib.FolderIndex] = {}
    for d in framelib.child_dirs(frames_root):
        num = subject_number(d.name)
        if rx.fullmatch(d.name) and num is not None:
            subjects.setdefault(num, framelib.FolderIndex(d))
    for ann in annotations:
        num = subject_number(ann.subject)
        index = subjects.get(num) if num is not None else None
        attach_folder(ann, index, expected.format(subject=ann.subject, filename=ann.filename))
    return [c for idx in subjects.values() for c in idx.children]


def attach_folder(ann: Annotation, index: framelib.FolderIndex | None, expected: str) -> None:
    """Set ``ann.folder`` from a :class:`~.frames.FolderIndex` of the subject's folder;
    a case-insensitive or normalized match is noted on the sample."""
    ann.expected_folder = expected
    if index is None:
        return
    folder, how = index.get(ann.filename)
    ann.folder = folder
    if folder is not None and how != "exact":
        ann.notes.append(f"folder {folder.name!r} matched the sheet's {ann.filename!r} ({how})")
