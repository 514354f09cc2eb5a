"""The papers' tables as data (rows, datasets, metrics) and the published numbers beside them.

A table is a :class:`TableSpec`: rows (:class:`Row`: which network, ablation and training
settings), the datasets of its columns and the metrics it reports, **in the paper's order and
with the paper's names**. ``kind`` says how it is filled:

* ``per-dataset``: one training cell per row and dataset (M3ENet Table 2, IM3DR-MFER); when
  the paper also prints an average over its datasets (``average``), ours is the mean of the
  row's datasets;
* ``averaged``: one cell per row and dataset, the figures averaged over the datasets (M3ENet
  Table 3: the paper prints the average only);
* ``complexity``: no training: parameters, FLOPs and batch-1 latency per row (Table 4).

The published numbers are data too (``paper_numbers.toml`` beside this module, read by
:func:`paper_numbers`; its header documents the format). Every cell of a table is either
*published* (a value), *not published* (the paper names the row but gives no number: the
IM3DR-MFER ablations) or *missing* (not transcribed: a defect, which the tests forbid).
:func:`paper_cells` lists them; the report prints the status of every one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import tomllib

PAPER_DATASETS: tuple[str, ...] = ("casme", "casme2", "casme_sq", "samm", "mmew")
"""The five datasets of the M3ENet paper's Tables 2 and 3, in its order (registry names of
:mod:`mestudio.training.datasets`)."""

IM3DR_DATASETS: tuple[str, ...] = ("casme2", "samm", "megc2019")
"""The IM3DR-MFER summary's datasets: CASME II, SAMM and the composite CASME II + SAMM + SMIC
(442 sequences: the MEGC 2019 composite)."""

DATASET_LABELS = {"casme": "CASME I", "casme2": "CASME II", "casme_sq": "CAS(ME)²",
                  "samm": "SAMM", "mmew": "MMEW", "megc2019": "Composite (MEGC 2019)",
                  "synthetic": "synthetic", "average": "Average"}

AVERAGE = "average"
"""Dataset key of a per-dataset table's average column (the paper's "Average")."""

NEEDS_DATASET = "needs the licensed dataset"
NEEDS_GPU = "needs a GPU"
NOT_PUBLISHED = "not published"
MISSING = "missing"


@dataclass(frozen=True)
class Row:
    """One row of a table.

    Attributes:
        key: id of the row (``"alexnet"``, ``"no-flow"``); the key of the paper's numbers.
        label: the row's name as the paper prints it.
        model: registry name of the network; None = not implemented here.
        ablation: ``mestudio train --ablation`` value.
        settings: extra ``--set KEY=VALUE`` assignments of the row.
        note: how the row is run here, when not obvious.
    """

    key: str
    label: str
    model: str | None
    ablation: str = "none"
    settings: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One table of a paper.

    Attributes:
        key: ``"2"``, ``"3"``, ``"4"``, ``"results"`` (``--tables`` value).
        title: the report's heading.
        kind: ``per-dataset``, ``averaged`` or ``complexity`` (module docstring).
        rows: the paper's rows, in its order.
        metrics: the paper's columns (metric keys), in its order.
        datasets: the paper's datasets (empty for ``complexity``).
        average: the paper prints an average over ``datasets`` (per-dataset tables).
        mapping: class set of the training cells unless ``--mapping`` says otherwise
            (None: ``mestudio train``'s default).
        ours_only: metrics we report without a published counterpart (MACs, CPU latency).
        numbers_key: the table's key in ``paper_numbers.toml`` (default ``table<key>``).
    """

    key: str
    title: str
    kind: str
    rows: tuple[Row, ...]
    metrics: tuple[str, ...]
    datasets: tuple[str, ...] = ()
    average: bool = False
    mapping: str | None = None
    ours_only: tuple[str, ...] = ()
    numbers_key: str = ""

    @property
    def paper_key(self) -> str:
        """The table's key in ``paper_numbers.toml`` (``table2``, ``results``)."""
        return self.numbers_key or f"table{self.key}"

    def paper_columns(self) -> tuple[str, ...]:
        """The dataset columns of the paper's numbers (``average`` included); ``("",)`` for
        tables whose rows hold their figures directly (averaged and complexity tables)."""
        if self.kind != "per-dataset":
            return ("",)
        return (*self.datasets, AVERAGE) if self.average else self.datasets


MEASURES = ("precision", "recall", "f1", "accuracy", "auc")
"""Tables 2 and 3's columns, in the paper's order."""

_M3ENET_TABLE2 = TableSpec(
    "2", "Table 2: the baselines and M3ENet on each dataset (LOSO)", "per-dataset", (
        Row("alexnet", "AlexNet", "alexnet", note="u, v, strain + key frames stacked"),
        Row("vgg16", "VGG-16", "vgg16", note="VGG16-BN, u, v, strain + key frames stacked"),
        Row("resnet18", "ResNet-18", "resnet18", note="u, v, strain + key frames stacked"),
        Row("googlenet", "GoogLeNet", "googlenet", note="u, v, strain + key frames stacked"),
        Row("offapexnet", "OFF-ApexNet", "offapexnet", note="u, v"),
        Row("ststnet", "STSTNet", "ststnet", note="u, v, strain"),
        Row("htnet", "HTNet", "htnet", note="u, v, strain in four facial regions"),
        Row("laenet", "LAENet", "laenet",
            note="re-implemented; u, v, strain + key frames stacked"),
        Row("ssrlts-vit", "SSRLTS-ViT", "ssrlts_vit",
            note="re-implemented; u, v, strain + key frames stacked"),
        Row("cnncapsnet", "CNNCapsNet", "cnncapsnet",
            note="re-implemented; u, v, strain + key frames stacked"),
        Row("m3enet", "M3ENet", "m3enet"),
    ), MEASURES, PAPER_DATASETS, average=True)

_M3ENET_TABLE3 = TableSpec(
    "3", "Table 3: M3ENet ablations (averaged over the five datasets)", "averaged", (
        Row("standard", "Standard", "m3enet", note="all streams, augmentation"),
        Row("no-aug", "w/o Data augmentation", "m3enet", "no-aug"),
        Row("no-flow", "w/o Optical flow input", "m3enet", "no-flow",
            note="u, v, strain set to zero"),
        Row("no-rgb", "w/o RGB input", "m3enet", "no-rgb", note="key frames set to zero"),
        Row("single-rgb", "Single RGB input", "m3enet", "single-rgb",
            note="the apex frame only"),
        Row("shuffled-rgb", "Shuffled RGB input", "m3enet", "shuffled-rgb",
            note="key frames shuffled per sample"),
    ), MEASURES, PAPER_DATASETS)

_M3ENET_TABLE4 = TableSpec(
    "4", "Table 4: complexity (K = 5, 48 px grey inputs, batch 1)", "complexity", (
        Row("m3enet", "M3ENet", "m3enet"),
        Row("ssrlts-vit", "SSRLTS-ViT", "ssrlts_vit", note="our re-implementation"),
        Row("resnet18", "ResNet-18", "resnet18", note="CIFAR-style stem (stride 1, no pool)"),
        Row("vgg16", "VGG-16", "vgg16", note="VGG16-BN, three pools, 512 x 6 x 6 flatten"),
        Row("googlenet", "GoogLeNet", "googlenet", note="small-input stem, 3x3 '5x5' branches"),
        Row("efficientnet", "EfficientNet", "efficientnet_b0",
            note="EfficientNet-B0, total stride 8"),
        Row("htnet", "HTNet", "htnet", note="our 1 M re-implementation"),
        Row("cnncapsnet", "CNNCapsNet", "cnncapsnet", note="our re-implementation"),
    ), ("params", "flops", "latency_gpu_ms"), ours_only=("macs", "latency_cpu_ms"))

EVM_DEFAULT = "alpha=8,low=0.5,high=8,levels=3"

_IM3DR_RESULTS = TableSpec(
    "results", "IM3DR-MFER: accuracy (LOSO, 3 classes) of the full model and the ablation rows",
    "per-dataset", (
        Row("baseline", "baseline 3D ResNet18", "im3dr_mfer_baseline",
            settings=('model_kwargs={"modalities": "frames"}',),
            note="our reading: plain 3D ResNet18 on the frame clip (no grouped convolutions, "
                 "MSCAF or CASANet)"),
        Row("flow-only", "LiteFlowNet-only (flow stream alone)", "im3dr_mfer_baseline",
            settings=('model_kwargs={"modalities": "flow"}',),
            note="plain 3D ResNet18 on the flow clip; our flow is mestudio's, not LiteFlowNet's"),
        Row("mscaf", "improved 3D ResNet18 with MSCAF", "im3dr_mfer",
            settings=('model_kwargs={"casa": false, "modalities": "frames"}',),
            note="our reading: grouped convolutions + channel shuffle + MSCAF on the frame clip"),
        Row("no-casanet", "dual-modal fusion without CASANet", "im3dr_mfer",
            settings=('model_kwargs={"casa": false}',),
            note="frames + flow fused (L2 normalisation, concatenation), MSCAF, no CASANet"),
        Row("full", "full model with CASANet and EVM pre-processing", "im3dr_mfer",
            settings=(f"evm={EVM_DEFAULT}",),
            note="IM3DR-MFER with Eulerian magnification of the clip's frames "
                 "(mestudio train --set evm=..., mestudio.preprocess.evm)"),
    ), ("accuracy",), IM3DR_DATASETS, mapping="3class", numbers_key="results")

PAPERS: dict[str, dict[str, TableSpec]] = {
    "m3enet": {"2": _M3ENET_TABLE2, "3": _M3ENET_TABLE3, "4": _M3ENET_TABLE4},
    "im3dr-mfer": {"results": _IM3DR_RESULTS},
}
"""Paper name -> table key -> spec."""

TABLE_ALIASES = {"im3dr-mfer": {"ablations": "results"}}
"""Former table keys still accepted by ``--tables``."""


def paper_datasets(paper: str) -> tuple[str, ...]:
    """The datasets of a paper's tables, in the paper's order (``reproduce``'s default
    ``--datasets``)."""
    out: list[str] = []
    for table in PAPERS.get(paper, {}).values():
        out += [d for d in table.datasets if d not in out]
    return tuple(out)

CHOICES: dict[str, tuple[str, ...]] = {
    "m3enet": (
        "Class sets: the paper gives only the number of classes per dataset (Table 1: CASME 8, "
        "CASME II 5, CAS(ME)² 4, SAMM 7, MMEW 7), not which. We use `mestudio train`'s "
        "default: the usual 5-class protocol where the dataset has one (CASME, CASME II, "
        "SAMM), the native labels elsewhere (CAS(ME)²: negative, positive, surprise, others; "
        "MMEW: its 7 emotions); `--mapping` changes it. The classes each finished cell used "
        "are listed below. (The paper's own Table 2 implies other counts: see 'Inconsistencies "
        "in the paper's numbers'.)",
        "Precision, recall and F1 are macro-averaged over the classes (mean of the per-class "
        "figures; a class never predicted has precision 0), AUC is the macro one-vs-rest AUC. "
        "The paper does not say; its one-class rows (HTNet's recall of exactly 1/K) fit macro "
        "averaging.",
        "Folds: leave-one-subject-out; the predictions of all folds are pooled and every "
        "figure is computed once on the pooled predictions (not a mean of per-fold figures); "
        "with several seeds, the mean (± std) over the seeds.",
        "Averages: Table 2's Average column and Table 3 are the plain mean of the five "
        "datasets' figures; with fewer datasets found, the mean of those found (marked *).",
        "Table 4: K = 5 classes, 48 px grey key frames (the baselines' stems as in "
        "mestudio.nets), batch 1. Parameters = every parameter; FLOPs counted the way that "
        "reproduces the paper's figures (thop's rules, see mestudio.reproduce.complexity); "
        "MACs = multiply-accumulates of convolutions and linear layers.",
    ),
    "im3dr-mfer": (
        "Protocol (the summary does not state it): leave-one-subject-out on CASME II, on SAMM "
        "and on the MEGC 2019 composite (CASME II + SAMM + SMIC-HS, 442 samples of 68 "
        "subjects, folds = dataset/subject), each trained and tested on its own; accuracy "
        "only, as the paper reports. Predictions of all folds pooled, accuracy computed once.",
        "Class sets: 3 classes (negative, positive, surprise; MEGC 2019's rule: negative = "
        "disgust + repression for CASME II, anger + contempt + disgust + fear + sadness for "
        "SAMM) on all three. The summary's sample counts, CASME II 145 and SAMM 133, are the "
        "composite's parts, whose classes are these three; its 'five emotion classes' for "
        "CASME II conflicts with 145 samples (CASME II has 247 in 5 classes) and is not "
        "followed (`--datasets casme2 --mapping 5class` runs that reading). Each cell's "
        "sample count is listed "
        "below: the rule applied to a full CASME II release may keep a few samples more than "
        "the composite's list of 145.",
        "Rows: the full model is the one whose accuracies are published; the four ablation "
        "rows are named as in the summary, which gives no numbers for them; how each is built "
        "here is our reading (row notes).",
    ),
}
"""The choices the papers leave open, as the report states them (per paper)."""

NUMBERS_FILE = Path(__file__).with_name("paper_numbers.toml")

#: Metric -> (key in the numbers file, factor to our unit) where they differ: the file keeps
#: the paper's units (millions, milliseconds) digit for digit.
PAPER_UNITS: dict[str, tuple[str, float]] = {"params": ("params_m", 1e6),
                                             "flops": ("flops_m", 1e6),
                                             "latency_gpu_ms": ("latency_ms", 1.0)}


@cache
def _numbers(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def paper_numbers(path: Path | None = None) -> dict[str, Any]:
    """The published numbers (``paper_numbers.toml``, or ``path``)."""
    return _numbers(Path(path) if path else NUMBERS_FILE)


def paper_title(paper: str) -> str:
    """The paper's title as the numbers file gives it."""
    return str(paper_numbers().get(paper, {}).get("title", paper))


def paper_source(paper: str, table: TableSpec | None = None) -> str:
    """Where the paper's (or the table's) numbers come from (the file's ``source``)."""
    node = paper_numbers().get(paper, {})
    if table is not None:
        node = node.get(table.paper_key, {})
    return str(node.get("source", ""))


def _row_node(paper: str, table: TableSpec, row: str) -> dict[str, Any]:
    node = paper_numbers().get(paper, {}).get(table.paper_key, {}).get(row, {})
    return node if isinstance(node, dict) else {}


def paper_value(paper: str, table: TableSpec, row: str, metric: str,
                dataset: str | None = None) -> float | None:
    """The published figure of one cell in our units (fractions, counts, ms); None when the
    file does not hold it."""
    node: Any = _row_node(paper, table, row)
    if dataset:
        node = node.get(dataset, {}) if isinstance(node, dict) else {}
    key, factor = PAPER_UNITS.get(metric, (metric, 1.0))
    value = node.get(key) if isinstance(node, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) * factor


def paper_status(paper: str, table: TableSpec, row: str, metric: str,
                 dataset: str | None = None) -> str:
    """``published``, :data:`NOT_PUBLISHED` (the numbers file marks the row
    ``published = false``) or :data:`MISSING`."""
    if paper_value(paper, table, row, metric, dataset) is not None:
        return "published"
    if _row_node(paper, table, row).get("published") is False:
        return NOT_PUBLISHED
    return MISSING


def paper_row_name(paper: str, table: TableSpec, row: str) -> str:
    """The row's name as the numbers file writes it (the paper's), or ``""``."""
    return str(_row_node(paper, table, row).get("name", ""))


def paper_note(paper: str, table: TableSpec, key: str) -> str:
    """A text field of a table in the numbers file (e.g. ``latency_device``), or ``""``."""
    value = paper_numbers().get(paper, {}).get(table.paper_key, {}).get(key)
    return str(value) if value is not None else ""


def paper_cells(paper: str, table: TableSpec) -> list[tuple[str, str, str, str]]:
    """Every cell the paper's table has: ``(row, dataset, metric, status)`` with status as
    :func:`paper_status` (dataset ``""`` for tables without datasets)."""
    return [(row.key, ds, m, paper_status(paper, table, row.key, m, ds or None))
            for row in table.rows for ds in table.paper_columns() for m in table.metrics]


def inconsistencies(paper: str) -> list[dict[str, Any]]:
    """The known inconsistencies of the paper's own numbers (the file's
    ``[[<paper>.inconsistencies]]``), each with ``table``, ``text`` and optionally ``row``,
    ``dataset``, ``metric``."""
    return list(paper_numbers().get(paper, {}).get("inconsistencies", []))
