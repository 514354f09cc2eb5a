"""The papers' tables as data (rows, metrics) and the published numbers beside them.

A table is a :class:`TableSpec`: rows (:class:`Row`: which network, ablation and training
settings) and the metrics it reports. ``kind`` says how it is filled:

* ``per-dataset``: one training cell per row and dataset found (M3ENet Table 2);
* ``averaged``: one cell per row and dataset, figures averaged over the datasets (M3ENet
  Table 3, the IM3DR-MFER ablations);
* ``complexity``: no training: parameters, FLOPs and batch-1 latency per row (Table 4).

The published numbers are data too (``paper_numbers.toml`` beside this module, read by
:func:`paper_numbers`); a cell the file does not hold is *missing*, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import tomllib

PAPER_DATASETS: tuple[str, ...] = ("casme", "casme2", "casme_sq", "samm", "mmew")
"""The five datasets of the M3ENet paper's Table 2, in its order (registry names of
:mod:`mestudio.training.datasets`)."""

DATASET_LABELS = {"casme": "CASME", "casme2": "CASME II", "casme_sq": "CAS(ME)²",
                  "samm": "SAMM", "mmew": "MMEW", "synthetic": "synthetic"}


@dataclass(frozen=True)
class Row:
    """One row of a table.

    Attributes:
        key: id of the row (``"alexnet"``, ``"no-flow"``); the key of the paper's numbers.
        label: the name printed in the report.
        model: registry name of the network; None = not implemented here (reported missing).
        ablation: ``mestudio train --ablation`` value.
        settings: extra ``--set KEY=VALUE`` assignments of the row.
        note: what the row means, when not obvious.
    """

    key: str
    label: str
    model: str | None
    ablation: str = "none"
    settings: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One table of a paper: ``key`` (``"2"``, ``"ablations"``), title, kind, rows, metrics."""

    key: str
    title: str
    kind: str
    rows: tuple[Row, ...]
    metrics: tuple[str, ...]
    numbers_key: str = ""

    @property
    def paper_key(self) -> str:
        """The table's key in ``paper_numbers.toml`` (``table2``, ``ablations``)."""
        return self.numbers_key or f"table{self.key}"


TRAINING_METRICS = ("accuracy", "precision", "recall", "f1", "auc", "uf1", "uar")
COMPLEXITY_METRICS = ("params", "macs", "paper_flops", "latency_cpu_ms", "latency_cuda_ms")

_M3ENET_TABLE2 = TableSpec("2", "Table 2: M3ENet and the baselines on each dataset (LOSO)",
                           "per-dataset", (
    Row("m3enet", "M3ENet", "m3enet"),
    Row("alexnet", "AlexNet", "alexnet", note="u, v, strain + key frames stacked"),
    Row("vgg16", "VGG16", "vgg16", note="VGG16-BN, u, v, strain + key frames stacked"),
    Row("resnet18", "ResNet18", "resnet18", note="u, v, strain + key frames stacked"),
    Row("googlenet", "GoogLeNet", "googlenet", note="u, v, strain + key frames stacked"),
    Row("offapexnet", "OFF-ApexNet", "offapexnet", note="u, v"),
    Row("ststnet", "STSTNet", "ststnet", note="u, v, strain"),
    Row("htnet", "HTNet", "htnet", note="u, v, strain in four facial regions"),
    Row("laenet", "LAENet", "laenet", note="re-implemented; u, v, strain + key frames stacked"),
    Row("ssrlts-vit", "SSRLTS-ViT", "ssrlts_vit",
        note="re-implemented; u, v, strain + key frames stacked"),
    Row("cnncapsnet", "CNNCapsNet", "cnncapsnet",
        note="re-implemented; u, v, strain + key frames stacked"),
), ("accuracy", "precision", "recall", "f1", "auc"))

_M3ENET_TABLE3 = TableSpec("3", "Table 3: M3ENet ablations (averaged over the datasets)",
                           "averaged", (
    Row("full", "M3ENet (all streams, augmentation)", "m3enet"),
    Row("no-flow", "without flow (u, v, strain zero)", "m3enet", "no-flow"),
    Row("no-rgb", "without frames (key frames zero)", "m3enet", "no-rgb"),
    Row("single-rgb", "apex frame only", "m3enet", "single-rgb"),
    Row("shuffled-rgb", "key frames shuffled per sample", "m3enet", "shuffled-rgb"),
    Row("permuted-rgb", "key frames in a fixed wrong order", "m3enet", "permuted-rgb"),
    Row("no-aug", "without augmentation", "m3enet", "no-aug"),
), ("accuracy", "f1", "uf1", "uar"))

_M3ENET_TABLE4 = TableSpec("4", "Table 4: complexity (K = 5, 48 px grey inputs, batch 1)",
                           "complexity", (
    Row("m3enet", "M3ENet", "m3enet"),
    Row("alexnet", "AlexNet", "alexnet"),
    Row("vgg16", "VGG16", "vgg16"),
    Row("resnet18", "ResNet18", "resnet18"),
    Row("googlenet", "GoogLeNet", "googlenet"),
    Row("efficientnet_b0", "EfficientNet-B0", "efficientnet_b0"),
    Row("offapexnet", "OFF-ApexNet", "offapexnet"),
    Row("ststnet", "STSTNet", "ststnet"),
    Row("htnet", "HTNet", "htnet"),
), COMPLEXITY_METRICS)

EVM_DEFAULT = "alpha=8,low=0.5,high=8,levels=3"

_IM3DR_ABLATIONS = TableSpec("ablations", "IM3DR-MFER ablations (averaged over the datasets)",
                             "averaged", (
    Row("baseline", "baseline: 3D ResNet18, frames + flow", "im3dr_mfer_baseline",
        note="plain convolutions, no MSCAF, no CASANet"),
    Row("flow-only", "flow clip only", "im3dr_mfer",
        settings=('model_kwargs={"modalities": "flow"}',),
        note="IM3DR-MFER on the flow clip alone"),
    Row("mscaf", "baseline + MSCAF", "im3dr_mfer_baseline",
        settings=('model_kwargs={"mscaf": true}',)),
    Row("no-casanet", "IM3DR-MFER without CASANet", "im3dr_mfer",
        settings=('model_kwargs={"casa": false}',)),
    Row("full", "IM3DR-MFER", "im3dr_mfer"),
    Row("evm", "IM3DR-MFER + EVM", "im3dr_mfer", settings=(f"evm={EVM_DEFAULT}",),
        note="Eulerian magnification of the clip's frames before the frame and flow inputs "
             "(mestudio train --set evm=..., mestudio.nets.evm)"),
), ("accuracy", "f1", "uf1", "uar"), numbers_key="ablations")

PAPERS: dict[str, dict[str, TableSpec]] = {
    "m3enet": {"2": _M3ENET_TABLE2, "3": _M3ENET_TABLE3, "4": _M3ENET_TABLE4},
    "im3dr-mfer": {"ablations": _IM3DR_ABLATIONS},
}
"""Paper name -> table key -> spec."""

NUMBERS_FILE = Path(__file__).with_name("paper_numbers.toml")


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


def paper_source(paper: str, table: TableSpec) -> str:
    """Where the table's published numbers come from (the file's ``source``)."""
    return str(paper_numbers().get(paper, {}).get(table.paper_key, {}).get("source", ""))


def paper_value(paper: str, table: TableSpec, row: str, metric: str,
                dataset: str | None = None) -> float | None:
    """The published figure of one cell; None when the file does not hold it."""
    node: Any = paper_numbers().get(paper, {}).get(table.paper_key, {}).get(row, {})
    if dataset is not None:
        node = node.get(dataset, {}) if isinstance(node, dict) else {}
    value = node.get(metric) if isinstance(node, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def paper_note(paper: str, table: TableSpec, row: str, key: str) -> str:
    """A text field of a row in the numbers file (e.g. ``latency_device``), or ``""``."""
    node = paper_numbers().get(paper, {}).get(table.paper_key, {}).get(row, {})
    value = node.get(key) if isinstance(node, dict) else None
    return str(value) if value is not None else ""
