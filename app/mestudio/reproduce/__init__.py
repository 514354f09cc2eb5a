"""Reproducing the papers' tables: ``mestudio reproduce m3enet`` / ``im3dr-mfer``.

* :mod:`mestudio.reproduce.tables`: the tables as data (rows = networks, ablations and
  settings; metrics) and the published numbers (``paper_numbers.toml``; missing cells are
  reported as missing, never guessed);
* :mod:`mestudio.reproduce.run`: dataset discovery under one root, resumable cells (each
  cell's result stored; finished cells are not re-run), complexity measurements;
* :mod:`mestudio.reproduce.report`: the report, ours beside the paper's numbers, Markdown
  and CSV, written atomically.

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
from mestudio.reproduce.tables import PAPER_DATASETS, PAPERS, paper_numbers

__all__ = ["PAPERS", "PAPER_DATASETS", "Options", "discover_datasets", "paper_numbers",
           "run_tables", "select_tables", "write_report"]
