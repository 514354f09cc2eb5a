"""The reproduction report: ours beside the paper's numbers, Markdown + CSV (atomic writes).

``reproduce_<paper>.md``: one section per table, every figure as ``ours / paper (Δ)``
(percentages for accuracy-like metrics, millions for parameters and FLOPs, milliseconds for
latency; ``—`` where a side is missing), then what is missing and why (networks not
implemented, ablations the training side lacks, failed cells, paper numbers not
transcribed). ``reproduce_<paper>.csv``: one line per table, row, dataset and metric with
``ours``, ``ours_std``, ``paper``, ``difference`` (ours − paper), ``status`` and ``note``;
averaged tables add ``dataset = mean`` lines (the mean over the datasets whose cell is done).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mestudio.fsutil import atomic_write_text
from mestudio.reproduce.tables import (
    DATASET_LABELS,
    TableSpec,
    paper_note,
    paper_source,
    paper_title,
    paper_value,
)

LABELS = {"accuracy": "Acc", "precision": "Precision", "recall": "Recall", "f1": "F1",
          "auc": "AUC", "uf1": "UF1", "uar": "UAR", "params": "Params (M)",
          "macs": "MACs (M)", "paper_flops": "FLOPs, paper's count (M)",
          "latency_cpu_ms": "CPU latency (ms)", "latency_cuda_ms": "CUDA latency (ms)"}
CSV_FIELDS = ("paper", "table", "row", "label", "dataset", "metric", "ours", "ours_std",
              "paper_value", "difference", "status", "note")


def _scale(metric: str) -> tuple[float, int]:
    if metric in ("params", "macs", "paper_flops"):
        return 1e-6, 2
    if metric.startswith("latency"):
        return 1.0, 2
    return 100.0, 2


def _fmt(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    k, nd = _scale(metric)
    return f"{value * k:.{nd}f}"


def _cell_text(metric: str, ours: float | None, paper: float | None) -> str:
    text = f"{_fmt(metric, ours)} / {_fmt(metric, paper)}"
    if ours is not None and paper is not None:
        k, nd = _scale(metric)
        text += f" ({(ours - paper) * k:+.{nd}f})"
    return text


def _ours(rec: dict[str, Any] | None, metric: str) -> tuple[float | None, float | None]:
    if not rec or rec.get("status") != "done":
        return None, None
    m = (rec.get("metrics") or {}).get(metric) or {}
    mean, std = m.get("mean"), m.get("std")
    return (float(mean) if mean is not None else None, float(std) if std is not None else None)


def build_rows(paper: str, tables: Sequence[TableSpec], records: Sequence[dict[str, Any]],
               datasets: Sequence[str]) -> list[dict[str, Any]]:
    """The CSV lines (dicts with :data:`CSV_FIELDS`)."""
    from mestudio.reproduce.run import unavailable_reason

    index = {(r.get("table"), r.get("row"), r.get("dataset", "")): r for r in records}
    lines: list[dict[str, Any]] = []
    reasons: dict[str, str] = {}

    def status_note(rec: dict[str, Any] | None, row: Any) -> tuple[str, str]:
        if rec:
            return rec.get("status", "?"), rec.get("error", "") or row.note
        if row.key not in reasons:
            reasons[row.key] = unavailable_reason(row)
        if reasons[row.key]:
            return "unavailable", reasons[row.key]
        return "not run", row.note

    def add(table: TableSpec, row: Any, dataset: str, metric: str, ours: float | None,
            std: float | None, pv: float | None, status: str, note: str) -> None:
        lines.append({"paper": paper, "table": table.key, "row": row.key, "label": row.label,
                      "dataset": dataset, "metric": metric, "ours": ours, "ours_std": std,
                      "paper_value": pv,
                      "difference": ours - pv if ours is not None and pv is not None else None,
                      "status": status, "note": note})

    for table in tables:
        for row in table.rows:
            if table.kind == "complexity":
                rec = index.get((table.key, row.key, ""))
                for metric in table.metrics:
                    ours, std = _ours(rec, metric)
                    add(table, row, "", metric, ours, std,
                        paper_value(paper, table, row.key, metric), *status_note(rec, row))
                continue
            for metric in table.metrics:
                means = []
                for ds in datasets:
                    rec = index.get((table.key, row.key, ds))
                    ours, std = _ours(rec, metric)
                    if ours is not None:
                        means.append(ours)
                    # averaged tables compare on the mean only
                    pv = paper_value(paper, table, row.key, metric, dataset=ds) \
                        if table.kind == "per-dataset" else None
                    add(table, row, ds, metric, ours, std, pv, *status_note(rec, row))
                if table.kind == "averaged":
                    mean = statistics.fmean(means) if means else None
                    status = ("done" if len(means) == len(datasets) and means else
                              f"{len(means)} of {len(datasets)} datasets")
                    add(table, row, "mean", metric, mean, None,
                        paper_value(paper, table, row.key, metric), status, row.note)
    return lines


def markdown(paper: str, tables: Sequence[TableSpec], lines: Sequence[dict[str, Any]],
             datasets: dict[str, Path], options: dict[str, Any]) -> str:
    """The Markdown report."""
    out = [f"# Reproducing {paper_title(paper)}", ""]
    out.append("Figures are `ours / paper (ours − paper)`; accuracy-like metrics in %, "
               "parameters and FLOPs in millions, latency in ms; `—` = missing.")
    out.append("")
    ds_text = ", ".join(f"{DATASET_LABELS.get(k, k)} ({v})" for k, v in datasets.items())
    out.append(f"- datasets found: {ds_text or 'none'}")
    for k, v in options.items():
        if v not in (None, "", [], False):
            out.append(f"- {k}: {v}")
    out.append("")
    by = {(ln["table"], ln["row"], ln["dataset"], ln["metric"]): ln for ln in lines}
    for table in tables:
        out += [f"## {table.title}", ""]
        src = paper_source(paper, table)
        if src:
            out += [f"Paper's numbers: {src}.", ""]
        metrics = list(table.metrics)
        if table.kind == "complexity":
            out.append("| Model | " + " | ".join(LABELS.get(m, m) for m in metrics) + " |")
            out.append("|---" * (len(metrics) + 1) + "|")
            for row in table.rows:
                cells = [_cell_text(m, by[(table.key, row.key, "", m)]["ours"],
                                    by[(table.key, row.key, "", m)]["paper_value"])
                         for m in metrics]
                out.append(f"| {row.label} | " + " | ".join(cells) + " |")
            notes = {row.label: paper_note(paper, table, row.key, "latency_device")
                     for row in table.rows}
            for label, dev in notes.items():
                if dev:
                    out.append(f"\nThe paper's latency of {label} was measured on {dev}; ours "
                               "is torch eager, batch 1, on this machine.")
            out.append("")
            continue
        keys = list(datasets) if table.kind == "per-dataset" else ["mean"]
        out.append("| Model | Dataset | " + " | ".join(LABELS.get(m, m) for m in metrics) + " |")
        out.append("|---" * (len(metrics) + 2) + "|")
        for row in table.rows:
            for ds in keys:
                cells = []
                for m in metrics:
                    ln = by.get((table.key, row.key, ds, m))
                    cells.append(_cell_text(m, ln["ours"], ln["paper_value"]) if ln else "—")
                label = "mean over datasets" if ds == "mean" else DATASET_LABELS.get(ds, ds)
                out.append(f"| {row.label} | {label} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["## Missing", ""]
    missing = []
    seen = set()
    for ln in lines:
        if ln["dataset"] == "mean":
            continue
        if ln["status"] not in ("done",) and (ln["table"], ln["row"]) not in seen:
            seen.add((ln["table"], ln["row"]))
            missing.append(f"- Table {ln['table']}, {ln['label']}: {ln['status']}"
                           + (f" ({ln['note']})" if ln["note"] else ""))
    kinds = {t.key: t.kind for t in tables}
    compared = [ln for ln in lines
                if kinds[ln["table"]] != "averaged" or ln["dataset"] == "mean"]
    no_paper = sum(1 for ln in compared if ln["paper_value"] is None)
    missing.append(f"- paper numbers not transcribed: {no_paper} of {len(compared)} figures "
                   "(mestudio/reproduce/paper_numbers.toml holds the ones we are sure of)")
    out += missing + [""]
    return "\n".join(out)


def to_csv(lines: Sequence[dict[str, Any]]) -> str:
    """The CSV text."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for ln in lines:
        w.writerow({k: ("" if ln[k] is None else ln[k]) for k in CSV_FIELDS})
    return buf.getvalue()


def write_report(paper: str, tables: Sequence[TableSpec], records: Sequence[dict[str, Any]],
                 datasets: dict[str, Path], out: Path,
                 options: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``reproduce_<paper>.md`` and ``.csv`` into ``out`` (atomically); their paths."""
    lines = build_rows(paper, tables, records, list(datasets))
    stem = f"reproduce_{paper.replace('-', '_')}"
    md = atomic_write_text(Path(out) / f"{stem}.md",
                           markdown(paper, tables, lines, datasets, options or {}))
    csv_path = atomic_write_text(Path(out) / f"{stem}.csv", to_csv(lines))
    return {"markdown": md, "csv": csv_path}
