"""The reproduction report: every published cell with ours beside it, Markdown + CSV (atomic).

``reproduce_<paper>.md``: what was run and the choices the paper leaves open; one section per
table, in the paper's layout (its rows, datasets and metrics), every figure as
``ours / paper (ours − paper)`` with a status column saying why ours is absent where it is
(``needs the licensed dataset``, ``needs a GPU``, ``not run``, ``failed``); Table 4 adds the
configurations that reproduce the paper's counts and why ours differ; then the paper's own
inconsistencies, the classes and samples each dataset's cells used, and a count of every
cell by status (the paper's cells: published / not published / missing).

``reproduce_<paper>.csv``: one line per table, row, dataset and metric with ``ours``,
``ours_std``, ``paper_value``, ``difference`` (ours − paper), ``status`` (ours),
``paper_status`` (``published``, ``not published``, ``missing``) and ``note``. Per-dataset
tables with a published average add ``dataset = average`` lines; averaged tables
``dataset = mean`` lines (the mean over the datasets whose cell is done; ``status`` says how
many).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mestudio.fsutil import atomic_write_text
from mestudio.reproduce.tables import (
    AVERAGE,
    CHOICES,
    DATASET_LABELS,
    MISSING,
    NEEDS_DATASET,
    NEEDS_GPU,
    NOT_PUBLISHED,
    Row,
    TableSpec,
    inconsistencies,
    paper_note,
    paper_source,
    paper_status,
    paper_title,
    paper_value,
)

LABELS = {"accuracy": "Acc", "precision": "Precision", "recall": "Recall", "f1": "F1",
          "auc": "AUC", "uf1": "UF1", "uar": "UAR", "params": "Params (M)",
          "flops": "FLOPs (M)", "macs": "MACs (M), ours",
          "latency_gpu_ms": "GPU latency (ms)", "latency_cpu_ms": "CPU latency (ms), ours"}
CSV_FIELDS = ("paper", "table", "row", "label", "dataset", "metric", "ours", "ours_std",
              "paper_value", "difference", "status", "paper_status", "note")
MEAN = "mean"


def _scale(metric: str) -> tuple[float, int]:
    if metric in ("params", "macs", "flops"):
        return 1e-6, 2
    if metric.startswith("latency"):
        return 1.0, 2
    return 100.0, 1


def _fmt(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    k, nd = _scale(metric)
    return f"{value * k:.{nd}f}"


def _cell_text(metric: str, ours: float | None, paper: float | None, paper_status: str,
               ours_text: str = "") -> str:
    left = _fmt(metric, ours) if ours is not None else (ours_text or "—")
    if not paper_status:  # not a cell of the paper's: ours only
        return left
    right = _fmt(metric, paper) if paper is not None else (
        "n/p" if paper_status != MISSING else MISSING)
    text = f"{left} / {right}"
    if ours is not None and paper is not None:
        k, nd = _scale(metric)
        text += f" ({(ours - paper) * k:+.{nd}f})"
    return text


def _ours(rec: dict[str, Any] | None, metric: str) -> tuple[float | None, float | None]:
    if not rec or rec.get("status") != "done":
        return None, None
    m = (rec.get("metrics") or {}).get(metric) or {}
    mean, std = m.get("mean"), m.get("std")
    if isinstance(mean, float) and math.isnan(mean):
        mean = None
    return (float(mean) if mean is not None else None, float(std) if std is not None else None)


def table_datasets(table: TableSpec, datasets: Sequence[str]) -> list[str]:
    """The dataset columns of ``table`` in the report: the paper's, then any other dataset
    the run was given (``--dataset NAME=PATH``)."""
    extra = [d for d in datasets if d not in table.datasets]
    return [*table.datasets, *extra]


def build_rows(paper: str, tables: Sequence[TableSpec], records: Sequence[dict[str, Any]],
               datasets: Sequence[str]) -> list[dict[str, Any]]:
    """The CSV lines (dicts with :data:`CSV_FIELDS`) of every cell of ``tables``."""
    from mestudio.reproduce.run import unavailable_reason

    index = {(r.get("table"), r.get("row"), r.get("dataset", "")): r for r in records}
    found = set(datasets)
    lines: list[dict[str, Any]] = []
    reasons: dict[str, str] = {}

    def status_note(rec: dict[str, Any] | None, row: Row, dataset: str) -> tuple[str, str]:
        if rec:
            return rec.get("status", "?"), rec.get("error", "") or row.note
        if dataset and dataset not in found:
            return NEEDS_DATASET, row.note
        if row.key not in reasons:
            reasons[row.key] = unavailable_reason(row)
        if reasons[row.key]:
            return "unavailable", reasons[row.key]
        return "not run", row.note

    def add(table: TableSpec, row: Row, dataset: str, metric: str, ours: float | None,
            std: float | None, status: str, note: str, paper_cell: bool,
            paper_ds: str | None = None) -> None:
        pv = paper_value(paper, table, row.key, metric, paper_ds) if paper_cell else None
        pstatus = paper_status(paper, table, row.key, metric, paper_ds) if paper_cell else ""
        lines.append({"paper": paper, "table": table.key, "row": row.key, "label": row.label,
                      "dataset": dataset, "metric": metric, "ours": ours, "ours_std": std,
                      "paper_value": pv,
                      "difference": ours - pv if ours is not None and pv is not None else None,
                      "status": status, "paper_status": pstatus, "note": note})

    for table in tables:
        columns = table_datasets(table, datasets)
        for row in table.rows:
            if table.kind == "complexity":
                rec = index.get((table.key, row.key, ""))
                for metric in (*table.metrics, *table.ours_only):
                    ours, std = _ours(rec, metric)
                    status, note = status_note(rec, row, "")
                    if metric == "latency_gpu_ms" and ours is None and status == "done":
                        status = NEEDS_GPU
                    add(table, row, "", metric, ours, std, status, note,
                        metric in table.metrics)
                continue
            for metric in table.metrics:
                means = []
                for ds in columns:
                    rec = index.get((table.key, row.key, ds))
                    ours, std = _ours(rec, metric)
                    if ours is not None and ds in table.datasets:
                        means.append(ours)
                    status, note = status_note(rec, row, ds)
                    if ds not in table.datasets:
                        note = "not one of the paper's datasets"
                    add(table, row, ds, metric, ours, std, status, note,
                        table.kind == "per-dataset" and ds in table.datasets, ds)
                if table.kind == "averaged" or table.average:
                    n = len(table.datasets)
                    mean = statistics.fmean(means) if means else None
                    if len(means) == n:
                        status = "done"
                    elif means:
                        status = f"mean of {len(means)} of {n} datasets"
                    elif not found & set(table.datasets):
                        status = NEEDS_DATASET
                    else:
                        status = "not run"
                    if table.kind == "per-dataset":
                        add(table, row, AVERAGE, metric, mean, None, status, row.note, True,
                            AVERAGE)
                    else:
                        add(table, row, MEAN, metric, mean, None, status, row.note, True)
    return lines


def _ours_status(lines: Sequence[dict[str, Any]]) -> str:
    """One status for a report row (a model on a dataset): the first that is not done."""
    for ln in lines:
        if ln["status"] != "done" and ln["metric"] != "latency_gpu_ms":
            text = ln["status"]
            if ln["status"] in ("failed", "unavailable") and ln["note"]:
                text += f": {ln['note']}"
            return text
    return "done"


def _complexity_section(paper: str, table: TableSpec, by: dict[tuple, dict[str, Any]],
                        records: Sequence[dict[str, Any]]) -> list[str]:
    from mestudio.reproduce.complexity import EXPLANATIONS, NO_REFERENCE

    metrics = (*table.metrics, *table.ours_only)
    out = ["| Model | Ours | " + " | ".join(LABELS.get(m, m) for m in metrics) + " |",
           "|---" * (len(metrics) + 2) + "|"]
    for row in table.rows:
        lines = [by[(table.key, row.key, "", m)] for m in metrics]
        cells = [_cell_text(m, ln["ours"], ln["paper_value"], ln["paper_status"],
                            NEEDS_GPU if ln["status"] == NEEDS_GPU else "")
                 for m, ln in zip(metrics, lines, strict=True)]
        out.append(f"| {row.label} | {_ours_status(lines)} | " + " | ".join(cells) + " |")
    device = paper_note(paper, table, "latency_device")
    cpu = next((r.get("devices", {}).get("cpu") for r in records
                if r.get("table") == table.key and r.get("devices")), None)
    gpu = next((r.get("devices", {}).get("cuda") for r in records
                if r.get("table") == table.key and (r.get("devices") or {}).get("cuda")), None)
    out += ["", "Ours: K = 5 classes, 48 px grey key frames, batch 1; FLOPs by thop's rules "
            "(the count that reproduces the paper's figures, `mestudio.reproduce.complexity`); "
            "MACs = multiply-accumulates of convolutions and linear layers. The paper's latency "
            f"was measured on {device or 'a GPU'}; "
            + (f"ours on {gpu}." if gpu else f"ours {NEEDS_GPU} (none here).")
            + (f" Our CPU latency (torch eager, batch 1, {cpu}) is shown for reference only: "
               "it is not comparable with the paper's GPU figures." if cpu else ""), ""]
    out += ["### Why our counts differ from the paper's", "",
            "| Model | Configuration compared (computed here) | Params (M) | FLOPs (M) | "
            "Paper (M) | Verdict |", "|---|---|---|---|---|---|"]
    recs = {r.get("row"): r for r in records if r.get("table") == table.key}
    for row in table.rows:
        pp = paper_value(paper, table, row.key, "params")
        pf = paper_value(paper, table, row.key, "flops")
        paper_text = f"{_fmt('params', pp)} / {_fmt('flops', pf)}"
        rec = recs.get(row.key) or {}
        refs = rec.get("reference") or []
        ours_p, _ = _ours(rec, "params")
        ours_f, _ = _ours(rec, "flops")
        out.append(f"| {row.label} | ours (mestudio.nets `{row.model}`) | "
                   f"{_fmt('params', ours_p)} | {_fmt('flops', ours_f)} | {paper_text} | "
                   f"{_verdict(ours_p, ours_f, pp, pf)} |")
        for ref in refs:
            p, f = float(ref["params"]), float(ref["flops"])
            out.append(f"| | {ref['label']} | {_fmt('params', p)} | {_fmt('flops', f)} | "
                       f"{paper_text} | {_verdict(p, f, pp, pf)} |")
        if not refs and row.key in NO_REFERENCE and row.key != "m3enet":
            out.append(f"| | {NO_REFERENCE[row.key]} | | | {paper_text} | |")
    out += ["", "**matches** = parameters and FLOPs both within 0.01 M of the paper's printed "
            "figures (its last digit).", ""]
    for row in table.rows:
        if row.key in EXPLANATIONS:
            out.append(f"- **{row.label}**: {EXPLANATIONS[row.key]}")
    return [*out, ""]


def _verdict(params: float | None, flops: float | None, paper_params: float | None,
             paper_flops: float | None) -> str:
    """``matches`` (both within 0.01 M of the paper's printed figures), else the relative
    differences."""
    if None in (params, flops, paper_params, paper_flops):
        return ""
    assert params is not None and flops is not None
    assert paper_params is not None and paper_flops is not None
    dp, df = params - paper_params, flops - paper_flops
    if abs(dp) <= 0.01e6 + 1 and abs(df) <= 0.01e6 + 1:
        return "**matches**"
    parts = []
    for name, d, ref in (("params", dp, paper_params), ("FLOPs", df, paper_flops)):
        parts.append(f"{name} {d / ref * 100:+.1f} %" if ref else f"{name} {d * 1e-6:+.2f} M")
    return ", ".join(parts)


def markdown(paper: str, tables: Sequence[TableSpec], lines: Sequence[dict[str, Any]],
             datasets: dict[str, Path], options: dict[str, Any],
             records: Sequence[dict[str, Any]] = ()) -> str:
    """The Markdown report."""
    out = [f"# Reproducing {paper_title(paper)}", ""]
    src = paper_source(paper)
    if src:
        out += [f"Paper: {src}.", ""]
    out.append("Figures are `ours / paper (ours − paper)`: accuracy-like metrics in %, "
               "parameters and FLOPs in millions, latency in ms; `—` = ours not available "
               "(the row's status says why), `n/p` = the paper names the row but publishes "
               "no number, `*` = mean over fewer datasets than the paper's.")
    out.append("")
    ds_text = ", ".join(f"{DATASET_LABELS.get(k, k)} ({v})" for k, v in datasets.items())
    out.append(f"- datasets found: {ds_text or 'none'}")
    for k, v in options.items():
        if v not in (None, "", [], False):
            out.append(f"- {k}: {v}")
    out.append("")
    if CHOICES.get(paper):
        out += ["## Choices the paper leaves open", ""]
        out += [f"- {c}" for c in CHOICES[paper]] + [""]
    by = {(ln["table"], ln["row"], ln["dataset"], ln["metric"]): ln for ln in lines}
    for table in tables:
        out += [f"## {table.title}", ""]
        src = paper_source(paper, table)
        if src:
            out += [f"Paper's numbers: {src}.", ""]
        if table.kind == "complexity":
            out += _complexity_section(paper, table, by, records)
            continue
        metrics = list(table.metrics)
        if table.kind == "averaged":
            keys = [MEAN]
        else:
            keys = table_datasets(table, list(datasets)) + ([AVERAGE] if table.average else [])
        out.append("| Model | Dataset | Ours | " + " | ".join(LABELS.get(m, m) for m in metrics)
                   + " |")
        out.append("|---" * (len(metrics) + 3) + "|")
        for row in table.rows:
            for ds in keys:
                row_lines = [by[(table.key, row.key, ds, m)] for m in metrics
                             if (table.key, row.key, ds, m) in by]
                if not row_lines:
                    continue
                partial = any(ln["status"].startswith("mean of") for ln in row_lines)
                cells = []
                for ln in row_lines:
                    text = _cell_text(ln["metric"], ln["ours"], ln["paper_value"],
                                      ln["paper_status"])
                    if partial and ln["ours"] is not None:
                        text = text.replace(" / ", "* / ", 1)
                    cells.append(text)
                label = ("mean over the datasets" if ds == MEAN
                         else DATASET_LABELS.get(ds, ds))
                out.append(f"| {row.label} | {label} | {_ours_status(row_lines)} | "
                           + " | ".join(cells) + " |")
        out.append("")
        notes = [f"- **{row.label}**: {row.note}" for row in table.rows if row.note]
        if notes:
            out += ["How the rows are run here:", "", *notes, ""]
    known = inconsistencies(paper)
    if known:
        out += ["## Inconsistencies in the paper's numbers", ""]
        out += [f"- Table {k.get('table', '?')}: {k['text']}" for k in known] + [""]
    out += _classes_section(tables, records)
    out += _counts_section(lines)
    return "\n".join(out)


def _classes_section(tables: Sequence[TableSpec], records: Sequence[dict[str, Any]]
                     ) -> list[str]:
    seen: dict[str, tuple[Any, Any]] = {}
    keys = {t.key for t in tables}
    for rec in records:
        ds = rec.get("dataset")
        if rec.get("status") == "done" and ds and rec.get("table") in keys and ds not in seen:
            seen[ds] = (rec.get("classes"), rec.get("samples"))
    if not seen:
        return []
    out = ["## Classes and samples used", ""]
    for ds, (classes, samples) in seen.items():
        names = ", ".join(map(str, classes)) if isinstance(classes, list) else "?"
        out.append(f"- {DATASET_LABELS.get(ds, ds)}: {samples if samples is not None else '?'} "
                   f"samples, classes {names}")
    return [*out, ""]


def _counts_section(lines: Sequence[dict[str, Any]]) -> list[str]:
    cells = [ln for ln in lines if ln["paper_status"]]
    paper = Counter(ln["paper_status"] for ln in cells)
    compared = [ln for ln in cells if ln["paper_value"] is not None]
    ours = Counter(ln["status"] for ln in compared)
    out = ["## Cells by status", "",
           f"- the paper's cells: {paper.get('published', 0)} published"
           + (f", {paper[NOT_PUBLISHED]} {NOT_PUBLISHED} (rows named without numbers)"
              if paper.get(NOT_PUBLISHED) else "")
           + f", {paper.get(MISSING, 0)} missing from paper_numbers.toml",
           "- ours beside a published figure: "
           f"{sum(ln['status'] == 'done' and ln['ours'] is not None for ln in compared)} "
           f"of {len(compared)}; the others: "
           + (", ".join(f"{k} {v}" for k, v in sorted(ours.items()) if k != "done") or "none")]
    missing = [ln for ln in cells if ln["paper_status"] == MISSING]
    if missing:
        out.append(f"- WARNING: {len(missing)} paper cells are missing, e.g. Table "
                   f"{missing[0]['table']}, {missing[0]['label']}, {missing[0]['metric']}")
    return [*out, ""]


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
                           markdown(paper, tables, lines, datasets, options or {}, records))
    csv_path = atomic_write_text(Path(out) / f"{stem}.csv", to_csv(lines))
    return {"markdown": md, "csv": csv_path}
