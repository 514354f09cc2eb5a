"""Reproducing the papers' tables: ``mestudio reproduce m3enet`` / ``im3dr-mfer``.

* :mod:`mestudio.reproduce.tables`: the tables as data (the papers' rows, datasets and
  metrics, in their order) and the published numbers (``paper_numbers.toml``: every published
  cell, with the source of each table; rows named without numbers are marked so);
* :mod:`mestudio.reproduce.run`: dataset discovery under one root, resumable cells (each
  cell's result stored; finished cells are not re-run), complexity measurements;
* :mod:`mestudio.reproduce.complexity`: FLOPs counted the way that reproduces the M3ENet
  paper's Table 4, and the baseline configurations that reproduce its counts;
* :mod:`mestudio.reproduce.report`: the report, every published cell with ours beside it
  (or why ours is absent), Markdown and CSV, written atomically.

Training cells run ``mestudio train`` through a function the command layer supplies, with
the options a user would type (so ``--workers`` and ``--ray`` work as they do there).
"""

from __future__ import annotations

from mestudio.reproduce.report import write_report
from mestudio.reproduce.run import (
    Options,
    discover_datasets,
    run_tables,
    select_tables,
)
from mestudio.reproduce.tables import (
    IM3DR_DATASETS,
    PAPER_DATASETS,
    PAPERS,
    paper_cells,
    paper_numbers,
)

__all__ = ["IM3DR_DATASETS", "PAPERS", "PAPER_DATASETS", "Options", "discover_datasets",
           "paper_cells", "paper_numbers", "run_tables", "select_tables", "write_report"]
