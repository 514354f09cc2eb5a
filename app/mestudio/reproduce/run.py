"""Filling the tables: dataset discovery, resumable cells, complexity measurements.

Every cell (one row on one dataset, or one row of a complexity table) is run once and its
result stored as ``OUT/cells/<table>/<row>/<dataset>/cell.json`` (atomically); a cell whose
file says ``done`` with the same settings is not run again, so an interrupted
``mestudio reproduce`` resumes where it stopped (and ``mestudio train`` inside a cell
resumes its finished folds as well). Failed cells are retried on the next run.

Training cells run ``mestudio train`` with the options a user would type (the command
layer hands a ``train(argv) -> exit code`` function to :func:`run_tables`, so this core
module does not import the command-line layer). Executor options (``--workers``,
``--ray``, ``--threads``, ``--device``, ...) are passed through and are not part of a
cell's settings: a cell trained on a cluster is not re-run on a laptop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mestudio.errors import ConfigError, DatasetError, MestudioError
from mestudio.fsutil import atomic_write_text
from mestudio.reproduce.tables import PAPER_DATASETS, PAPERS, TABLE_ALIASES, Row, TableSpec

logger = logging.getLogger(__name__)

CELL_FORMAT = "mestudio-reproduce-cell/1"
COMPLEXITY_FORMAT = "complexity/2"
"""Version of the complexity cells' content (FLOPs by thop's rules, reference counts): a
record of another version is measured again."""
TrainFn = Callable[[list[str]], int]


# ---- datasets ---------------------------------------------------------------------------------

_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"megc|composite|combined", "megc2019"),
    (r"cas\W*me\W*(\^|²|sq|square)|casme\W*2\W*sq|casme_?sq|cas\(me\)", "casme_sq"),
    (r"samm", "samm"),
    (r"mmew", "mmew"),
    (r"casme\W*(ii|2)", "casme2"),
    (r"casme\W*(i|1)?\b|casme$", "casme"),
)


COMPOSITES: frozenset[str] = frozenset({"megc2019"})
"""Datasets made of several releases: looked for in ``--root`` itself as well."""


def guess_dataset(folder_name: str) -> str | None:
    """The dataset a folder's name suggests (``CASME2`` -> ``casme2``,
    ``CAS(ME)^2`` -> ``casme_sq``, ``MEGC2019`` -> ``megc2019``), or None."""
    text = folder_name.strip().lower()
    for pattern, name in _NAME_RULES:
        if re.search(pattern, text):
            return name
    return None


def _usable(name: str, folder: Path) -> bool:
    from mestudio.training.datasets import get_dataset

    try:
        return get_dataset(name).scan(folder).usable
    except (DatasetError, OSError, ValueError, KeyError) as exc:
        logger.debug("%s is not a %s release: %s", folder, name, exc)
        return False


def _has_list(name: str, folder: Path) -> bool:
    """Whether ``folder`` holds the composite's list of samples (MEGC 2019:
    ``combined_3class_gt.csv``): without it the loader would build a composite from whatever
    releases lie there, which is not the published one."""
    from mestudio.training.datasets.megc2019 import CSV_PATTERNS

    return name == "megc2019" and any(any(folder.glob(p)) for p in CSV_PATTERNS)


def discover_datasets(root: Path, wanted: Sequence[str] = PAPER_DATASETS,
                      explicit: dict[str, Path] | None = None) -> dict[str, Path]:
    """``{dataset name: release folder}`` of the datasets found under ``root``.

    ``explicit`` (``--dataset NAME=PATH``) is taken as given. Otherwise every sub-folder of
    ``root`` whose name suggests one of ``wanted`` (:func:`guess_dataset`) is checked with
    that dataset's loader (a usable release: at least one sample); a composite of several
    releases (:data:`COMPOSITES`: the MEGC 2019 composite, whose releases and list usually sit
    side by side in ``root``) not found that way is taken from ``root`` itself when its list
    of samples is there; when nothing is found, ``root`` itself and then every sub-folder are
    tried with every loader.
    """
    found: dict[str, Path] = {k: Path(v) for k, v in (explicit or {}).items()}
    root = Path(root).expanduser()
    if not root.is_dir():
        if found:
            return found
        raise DatasetError(f"--root {root} is not a folder")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    for folder in subdirs:
        name = guess_dataset(folder.name)
        if name is not None and name in wanted and name not in found \
                and _usable(name, folder):
            found[name] = folder
    for name in wanted:
        if name in COMPOSITES and name not in found and _has_list(name, root) \
                and _usable(name, root):
            found[name] = root
    if not found:
        for folder in [root, *subdirs]:
            for name in wanted:
                if name not in found and folder not in found.values() and _usable(name, folder):
                    found[name] = folder
    return {name: found[name] for name in [*wanted, *found] if name in found}


# ---- options and cells ------------------------------------------------------------------------

@dataclass
class Options:
    """How the tables are filled.

    Attributes:
        out: results folder.
        epochs, seeds, batch_size, mapping, align, protocol: training settings of every cell
            (None: ``mestudio train``'s defaults).
        settings: extra ``--set KEY=VALUE`` for every training cell.
        train_args: further ``mestudio train`` arguments for every cell (settings).
        exec_args: executor arguments (``--workers``, ``--ray``, ...): not settings.
        cache: feature cache shared by the cells.
        rows: only these row keys of the training tables (empty: all); a complexity table
            (no training, seconds) is always measured whole.
        latency_iters: timed runs per latency measurement.
        light: IM3DR-MFER rows with width 16 (``im3dr_mfer_light``'s) instead of 64.
    """

    out: Path
    epochs: int | None = None
    seeds: str | None = None
    batch_size: int | None = None
    mapping: str | None = None
    align: str | None = None
    protocol: str = "loso"
    settings: list[str] = field(default_factory=list)
    train_args: list[str] = field(default_factory=list)
    exec_args: list[str] = field(default_factory=list)
    cache: Path | None = None
    rows: list[str] = field(default_factory=list)
    latency_iters: int = 30
    light: bool = False


@dataclass
class Cell:
    """One cell: ``table``, ``row``, ``dataset`` (``""`` for complexity rows) and where its
    record lives."""

    paper: str
    table: TableSpec
    row: Row
    dataset: str
    folder: Path

    @property
    def record_path(self) -> Path:
        return self.folder / "cell.json"

    @property
    def name(self) -> str:
        table = f"table{self.table.key}" if self.table.key.isdigit() else self.table.key
        return "/".join(p for p in (table, self.row.key, self.dataset) if p)


def cell_folder(out: Path, table: TableSpec, row: Row, dataset: str = "") -> Path:
    folder = Path(out, "cells", f"table{table.key}" if table.key.isdigit() else table.key,
                  row.key)
    return folder / dataset if dataset else folder


def load_record(cell: Cell) -> dict[str, Any] | None:
    """The cell's stored record, or None (absent or unreadable)."""
    try:
        return json.loads(cell.record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _digest(items: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps(list(items), sort_keys=True).encode()).hexdigest()[:16]


def unavailable_reason(row: Row) -> str:
    """Why ``row`` cannot be trained with this version (``""``: it can)."""
    from mestudio.nets import list_models
    from mestudio.training.config import ABLATIONS, TrainConfig

    if row.model is None:
        return "not implemented in mestudio"
    if row.model not in list_models():
        return f"network {row.model} is not registered"
    if row.ablation not in ABLATIONS:
        return f"the training side has no --ablation {row.ablation} yet"
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in row.settings:
        key = item.split("=", 1)[0].strip()
        if key not in fields:
            return f"the training side has no --set {key} yet"
    return ""


def train_argv(cell: Cell, root: Path, opts: Options) -> list[str]:
    """The ``mestudio train`` arguments of a training cell (settings only)."""
    row = cell.row
    model = row.model or f"({row.key}: not implemented)"
    argv = ["--dataset", cell.dataset, "--root", str(root), "--model", model,
            "--protocol", opts.protocol, "--no-final"]
    if row.ablation != "none":
        argv += ["--ablation", row.ablation]
    for name, value in (("--epochs", opts.epochs), ("--seeds", opts.seeds),
                        ("--batch-size", opts.batch_size),
                        ("--mapping", opts.mapping or cell.table.mapping),
                        ("--align", opts.align)):
        if value is not None:
            argv += [name, str(value)]
    settings = list(row.settings)
    if opts.light and model.startswith("im3dr_mfer"):
        settings = _with_model_kwargs(settings, {"width": 16})
    for item in [*opts.settings, *settings]:
        argv += ["--set", item]
    return argv + list(opts.train_args)


def _with_model_kwargs(settings: list[str], extra: dict[str, Any]) -> list[str]:
    out, merged = [], dict(extra)
    for item in settings:
        key, _, value = item.partition("=")
        if key.strip() == "model_kwargs":
            merged = {**json.loads(value), **extra}
        else:
            out.append(item)
    return [*out, f"model_kwargs={json.dumps(merged, sort_keys=True)}"]


def run_training_cell(cell: Cell, root: Path, opts: Options, train: TrainFn,
                      say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or skip, when done with the same settings) one training cell; its record."""
    settings = train_argv(cell, root, opts)
    key = _digest(settings)
    record = load_record(cell)
    if record and record.get("status") == "done" and record.get("key") == key:
        record["skipped"] = True
        return record
    reason = unavailable_reason(cell.row)
    base = {"format": CELL_FORMAT, "paper": cell.paper, "table": cell.table.key,
            "row": cell.row.key, "dataset": cell.dataset, "key": key,
            "argv": ["train", *settings]}
    if reason:
        return {**base, "status": "unavailable", "error": reason}
    run_dir = cell.folder / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").unlink(missing_ok=True)
    argv = [*settings, "--out", str(run_dir)]
    if opts.cache is not None:
        argv += ["--cache", str(opts.cache)]
    argv += list(opts.exec_args)
    started = time.time()
    error = ""
    if say is not None:
        say(f"cell      {cell.name}: training ...")
    try:
        code = train(argv)
    except MestudioError as exc:
        code, error = 2, str(exc)
    except SystemExit as exc:  # argparse: an option this version of train does not know
        code = int(exc.code) if isinstance(exc.code, int) else 2
        error = f"mestudio train rejected the arguments (exit {code})"
    report_file = run_dir / "report.json"
    if code != 0 or not report_file.is_file():
        record = {**base, "status": "failed",
                  "error": error or f"mestudio train exited with {code}"}
    else:
        report = json.loads(report_file.read_text(encoding="utf-8"))
        record = {**base, "status": "done", "seeds": report.get("seeds", []),
                  "samples": report.get("data", {}).get("samples"),
                  "classes": report.get("classes"),
                  "metrics": {k: {"mean": v.get("mean"), "std": v.get("std")}
                              for k, v in report.get("summary", {}).items()},
                  "seconds": round(time.time() - started, 1)}
    cell.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cell.record_path, json.dumps(record, indent=1, default=float) + "\n")
    return record


# ---- complexity -------------------------------------------------------------------------------

def measure_latency(model: Any, device: str, iters: int = 30, warmup: int = 5) -> float:
    """Median batch-1 forward time in ms of ``model`` (eval, inference mode) on ``device``."""
    import torch

    model = model.to(device).eval()
    inputs = [x.to(device) for x in model.example_inputs(1)]
    cuda = device.startswith("cuda")
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(*inputs)
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def run_complexity_cell(cell: Cell, opts: Options, num_classes: int = 5,
                        input_size: int = 48) -> dict[str, Any]:
    """Parameters, FLOPs counted the paper's way (:func:`~mestudio.reproduce.complexity.
    thop_flops`), MACs and batch-1 latency (CPU; CUDA when available) of one row, plus the
    counts of the row's reference configurations (the ones that reproduce the paper's
    figures, :data:`~mestudio.reproduce.complexity.REFERENCES`); stored and skipped like a
    training cell."""
    import torch

    from mestudio.nets import create_model
    from mestudio.nets.flops import count_params
    from mestudio.reproduce.complexity import reference_counts, thop_flops

    cuda = torch.cuda.is_available()
    settings = [COMPLEXITY_FORMAT, cell.row.model, num_classes, input_size, opts.latency_iters,
                cuda]
    key = _digest(settings)
    record = load_record(cell)
    if record and record.get("status") == "done" and record.get("key") == key:
        record["skipped"] = True
        return record
    base = {"format": CELL_FORMAT, "paper": cell.paper, "table": cell.table.key,
            "row": cell.row.key, "dataset": "", "key": key}
    reason = unavailable_reason(cell.row)
    if reason:
        return {**base, "status": "unavailable", "error": reason}
    assert cell.row.model is not None
    model = create_model(cell.row.model, num_classes, input_size=input_size)
    figs = thop_flops(model, *model.example_inputs(1))
    metrics: dict[str, dict[str, Any]] = {
        "params": {"mean": float(count_params(model)), "std": None},
        "flops": {"mean": float(figs["flops"]), "std": None},
        "macs": {"mean": float(figs["macs"]), "std": None},
        "latency_cpu_ms": {"mean": measure_latency(model, "cpu", opts.latency_iters),
                           "std": None}}
    devices = {"cpu": f"torch threads: {torch.get_num_threads()}"}
    if cuda:
        metrics["latency_gpu_ms"] = {"mean": measure_latency(model, "cuda", opts.latency_iters),
                                     "std": None}
        devices["cuda"] = torch.cuda.get_device_name(0)
    record = {**base, "status": "done", "metrics": metrics, "devices": devices,
              "config": model.config(), "num_classes": num_classes,
              "reference": reference_counts(cell.row.key, num_classes)}
    cell.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cell.record_path, json.dumps(record, indent=1, default=float) + "\n")
    return record


# ---- everything -------------------------------------------------------------------------------

def select_tables(paper: str, tables: Sequence[str] | None) -> list[TableSpec]:
    """The specs of ``tables`` (``["2", "4"]``; None/empty: all) of ``paper``.

    Raises:
        ConfigError: an unknown paper or table.
    """
    if paper not in PAPERS:
        raise ConfigError(f"unknown paper {paper!r}: use one of {', '.join(PAPERS)}")
    specs = PAPERS[paper]
    if not tables:
        return list(specs.values())
    out = []
    for t in tables:
        key = t.strip().lower().removeprefix("table")
        key = TABLE_ALIASES.get(paper, {}).get(key, key)
        if key not in specs:
            raise ConfigError(f"{paper} has no table {t!r}: use {', '.join(specs)}")
        out.append(specs[key])
    return out


def run_tables(paper: str, tables: Sequence[TableSpec], datasets: dict[str, Path],
               opts: Options, train: TrainFn,
               say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Fill ``tables`` (all their cells, skipping finished ones); the cells' records."""
    records: list[dict[str, Any]] = []
    for table in tables:
        rows = [r for r in table.rows if not opts.rows or r.key in opts.rows]
        if table.kind == "complexity":  # no training: always measured whole
            for row in table.rows:
                cell = Cell(paper, table, row, "", cell_folder(opts.out, table, row))
                rec = run_complexity_cell(cell, opts)
                say(_progress(cell, rec))
                records.append(rec)
            continue
        for row in rows:
            for name, root in datasets.items():
                cell = Cell(paper, table, row, name, cell_folder(opts.out, table, row, name))
                rec = run_training_cell(cell, root, opts, train, say)
                say(_progress(cell, rec))
                records.append(rec)
    return records


def _progress(cell: Cell, rec: dict[str, Any]) -> str:
    status = rec.get("status", "?")
    if rec.get("skipped"):
        status = "done earlier (skipped)"
    extra = f": {rec['error']}" if rec.get("error") else ""
    return f"cell      {cell.name}: {status}{extra}"
