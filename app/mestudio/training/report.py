"""Reports of a protocol run: JSON + Markdown laid out like the M3ENet paper's tables.

* Table 2 layout: one row per (model, dataset) with Acc, Precision, Recall, F1 and AUC
  (macro, one-vs-rest AUC), as mean ± std over seeds;
* UF1/UAR table: UF1 and UAR per dataset — for the MEGC2019 composite one row per source
  dataset plus the full composite (the MEGC layout; NOT the paper's Table 3, which is its
  ablation table: a row per ablation run, see ``--ablation``);
* what was run: protocol, class set (mapping name, file and SHA-256), min-class-samples and
  the classes it dropped, seeds, epochs, augmentation mode and stage, focal-loss alpha,
  Eulerian magnification (when on), the network's parameter count and streams, and the
  exact command;
* per-class figures, the confusion matrix (summed over seeds, PNG), per-seed figures and a
  per-fold list.

Figures are fractions in JSON and percentages in the Markdown (as the paper prints them).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.training.metrics import SUMMARY_KEYS, mean_std, save_confusion_png

REPORT_FORMAT = "mestudio-train-report/1"
TABLE2_KEYS = ("accuracy", "precision", "recall", "f1", "auc")
UF1_UAR_KEYS = ("uf1", "uar")
TABLE3_KEYS = UF1_UAR_KEYS  # old name (the table is not the paper's Table 3)
LABELS = {"accuracy": "Acc", "precision": "Precision", "recall": "Recall", "f1": "F1",
          "auc": "AUC", "uf1": "UF1", "uar": "UAR"}


def _pct(mean: float, std: float | None = None, n: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    text = f"{100 * mean:.2f}"
    if std is not None and n > 1 and not math.isnan(std):
        text += f" ± {100 * std:.2f}"
    return text


def group_summaries(per_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{dataset group: {metric: {"mean", "std", "values"}}}`` over seeds (composite runs)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for m in per_seed.values():
        for g, gm in (m.get("groups") or {}).items():
            groups.setdefault(g, []).append(gm)
    out: dict[str, dict[str, Any]] = {}
    for g, ms in groups.items():
        out[g] = {}
        for key in SUMMARY_KEYS:
            mu, sd = mean_std(float(x[key]) for x in ms)
            out[g][key] = {"mean": mu, "std": sd, "values": [float(x[key]) for x in ms]}
    return out


def build_report(result: Any, *, dataset: str, model: str, protocol: str,
                 classes: Sequence[str], config: Mapping[str, Any],
                 data: Mapping[str, Any] | None = None,
                 extra: Mapping[str, Any] | None = None,
                 class_set: Mapping[str, Any] | None = None,
                 command: str | None = None) -> dict[str, Any]:
    """The report dict (what ``report.json`` holds) of a :class:`~.runner.ProtocolResult`.

    Args:
        class_set: what the class set is
            (:meth:`mestudio.training.cliargs.ClassSet.describe`: mapping name, file,
            SHA-256, min-class-samples, dropped classes).
        command: the command line of the run (:func:`mestudio.training.cliargs.invocation`).
    """
    per_seed = {int(s): m for s, m in result.per_seed.items()}
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    for m in per_seed.values():
        confusion += np.asarray(m["confusion"], dtype=np.int64)
    per_class: dict[str, dict[str, Any]] = {}
    for c in classes:
        per_class[c] = {}
        for key in ("precision", "recall", "f1", "auc"):
            mu, sd = mean_std(float(m["per_class"][c][key]) for m in per_seed.values())
            per_class[c][key] = {"mean": mu, "std": sd}
        supports = [m["per_class"][c]["support"] for m in per_seed.values()]
        per_class[c]["support"] = int(supports[0]) if supports else 0
    folds = []
    if per_seed:
        first = min(result.pooled)
        pooled = result.pooled[first]
        for name in result.folds:
            idx = [i for i, f in enumerate(pooled.folds) if f == name]
            if protocol == "lodo":
                idx = [i for i, g in enumerate(pooled.groups) if g == name]
            if not idx:
                continue
            acc = float((pooled.y_pred[idx] == pooled.y_true[idx]).mean())
            folds.append({"fold": name, "n_test": len(idx), "accuracy": acc})
    return {
        "format": REPORT_FORMAT,
        "dataset": dataset,
        "model": model,
        "protocol": protocol,
        "classes": list(classes),
        "seeds": sorted(per_seed),
        "summary": result.summary,
        "groups": group_summaries(per_seed),
        "per_seed": {str(s): {key: m[key] for key in (*SUMMARY_KEYS, "n")}
                     for s, m in per_seed.items()},
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "confusion_note": "rows = true class, columns = predicted; summed over seeds",
        "folds": folds,
        "epochs_chosen": list(result.best_epochs),
        "config": dict(config),
        "data": dict(data or {}),
        "class_set": dict(class_set or {}),
        "model_info": dict(getattr(result, "model_info", {}) or {}),
        "command": command or "",
        "seconds": round(float(result.seconds), 1),
        **dict(extra or {}),
    }


def _row_name(report: Mapping[str, Any]) -> str:
    ablation = report.get("config", {}).get("ablation", "none")
    return report["model"] + (f" ({ablation})" if ablation not in ("none", None) else "")


def markdown(report: Mapping[str, Any], confusion_png: str | None = None) -> str:
    """The Markdown text of a report."""
    s = report["summary"]
    n_seeds = len(report.get("seeds", []))
    cfg = report.get("config", {})
    data = report.get("data", {})
    name = _row_name(report)
    proto = report["protocol"].upper()
    lines = [f"# {name} on {report['dataset']} — {proto}", ""]
    if data.get("synthetic"):
        lines += ["> Synthetic data: the classes are action-unit patterns planted by mestudio's "
                  "synthesiser, not emotions; these figures say how well the pipeline recovers "
                  "them, nothing about real micro-expressions.", ""]
    cs = report.get("class_set") or {}
    mi = report.get("model_info") or {}
    mapping = cs.get("mapping") or data.get("mapping")
    if cs.get("mapping_sha256"):
        mapping = (f"{mapping} ({cs.get('mapping_source') or 'built-in'}, SHA-256 "
                   f"{str(cs['mapping_sha256'])[:16]})")
    dropped = cs.get("dropped_classes") or {}
    min_text = None
    if cs:
        min_text = str(cs.get("min_class_samples", 0) or 0)
        if dropped:
            min_text += " — dropped: " + ", ".join(f"{c} ({n} samples)"
                                                   for c, n in dropped.items())
    alpha = cfg.get("focal_alpha", cfg.get("class_weights"))
    alpha_text = {"paper": "paper (1 - n_t/N)", "inverse": "inverse (N/(K n_t))",
                  "none": "none (1)"}.get(str(alpha), str(alpha))
    augmented = cfg.get("augment") and cfg.get("ablation") != "no-aug"
    mode = cfg.get("aug_mode", "online")
    stage = f", stage {cfg.get('aug_stage', 'maps')}" if mode == "offline" else ""
    facts = [
        ("samples", data.get("samples")), ("subjects", data.get("subjects")),
        ("protocol", proto),
        ("class set", mapping),
        ("classes", ", ".join(report["classes"])),
        ("min-class-samples", min_text),
        ("seeds", ", ".join(str(x) for x in report.get("seeds", []))),
        ("epochs", cfg.get("epochs")), ("batch", cfg.get("batch_size")),
        ("optimiser", f"AdamW lr {cfg.get('lr')}, weight decay {cfg.get('weight_decay')}, "
                      f"betas {tuple(cfg.get('betas', ()))}, {cfg.get('schedule')} schedule"),
        ("loss", f"focal, gamma {cfg.get('focal_gamma')}, alpha {alpha_text}"),
        ("augmentation", (f"{mode}{stage}, x{cfg.get('aug_expansion')} (flip "
                          f"{cfg.get('aug_flip')}, rotation ±{cfg.get('aug_rotation_deg')}°, "
                          f"noise {cfg.get('aug_noise')})") if augmented else "none"),
        ("network", (f"{mi.get('arch')}: {mi['parameters']:,} parameters; streams "
                     f"{', '.join(mi.get('streams') or []) or '-'}"
                     + (f"; removed: {', '.join(mi['removed_streams'])}"
                        if mi.get("removed_streams") else "")
                     + (f" ({mi['note']})" if mi.get("note") else ""))
         if mi.get("parameters") else None),
        ("model selection", "none: fixed schedule, last epoch" if cfg.get("validation") == "none"
         else f"epoch chosen on {cfg.get('val_fraction')} of the TRAINING subjects "
              f"({cfg.get('val_metric')}); test folds never used"),
        ("ablation", cfg.get("ablation")),
        ("Eulerian magnification", cfg.get("evm") or None),
        ("device", data.get("device")),
        ("time", f"{report.get('seconds', 0):.0f} s"),
        ("command", f"`{report['command']}`" if report.get("command") else None),
    ]
    lines += [f"- **{k}:** {v}" for k, v in facts if v not in (None, "")]
    lines += ["", f"Predictions of all {len(report.get('folds', []))} folds pooled, aligned by "
              "sample id; figures in %, mean ± std over seeds.", ""]
    # Table 2 layout
    lines += ["## Table 2 layout (accuracy, macro precision/recall/F1, macro one-vs-rest AUC)",
              "", "| Model | Dataset | Acc | Precision | Recall | F1 | AUC |",
              "|---|---|---|---|---|---|---|"]
    groups = report.get("groups") or {}
    for g, gs in groups.items():
        cells = [_pct(gs[k]["mean"], gs[k]["std"], n_seeds) for k in TABLE2_KEYS]
        lines.append(f"| {name} | {g} | " + " | ".join(cells) + " |")
    cells = [_pct(s[k]["mean"], s[k]["std"], n_seeds) for k in TABLE2_KEYS]
    lines.append(f"| {name} | {report['dataset']}{' (all)' if groups else ''} | "
                 + " | ".join(cells) + " |")
    # UF1 / UAR (the MEGC layout; the paper's Table 3 is its ablation table)
    lines += ["", "## UF1 and UAR (MEGC layout; the paper's Table 3 is its ablation table)", "",
              "| Model | Dataset | UF1 | UAR |", "|---|---|---|---|"]
    for g, gs in groups.items():
        lines.append(f"| {name} | {g} | {_pct(gs['uf1']['mean'], gs['uf1']['std'], n_seeds)} | "
                     f"{_pct(gs['uar']['mean'], gs['uar']['std'], n_seeds)} |")
    full = "Full composite" if groups else report["dataset"]
    lines.append(f"| {name} | {full} | {_pct(s['uf1']['mean'], s['uf1']['std'], n_seeds)} | "
                 f"{_pct(s['uar']['mean'], s['uar']['std'], n_seeds)} |")
    # per class
    lines += ["", "## Per class", "", "| class | support | precision | recall | F1 | AUC |",
              "|---|---|---|---|---|---|"]
    for c, pc in report["per_class"].items():
        lines.append(f"| {c} | {pc['support']} | " + " | ".join(
            _pct(pc[k]["mean"], pc[k]["std"], n_seeds) for k in ("precision", "recall", "f1",
                                                                  "auc")) + " |")
    # confusion
    lines += ["", "## Confusion matrix (rows = true, columns = predicted; summed over seeds)", ""]
    classes = report["classes"]
    lines += ["| true \\ predicted | " + " | ".join(classes) + " |",
              "|---|" + "---|" * len(classes)]
    for c, row in zip(classes, report["confusion"], strict=True):
        lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
    if confusion_png:
        lines += ["", f"![confusion matrix]({confusion_png})"]
    # seeds
    if n_seeds > 1:
        lines += ["", "## Per seed", "", "| seed | Acc | F1 | AUC | UF1 | UAR |",
                  "|---|---|---|---|---|---|"]
        for seed, m in report["per_seed"].items():
            lines.append(f"| {seed} | " + " | ".join(_pct(m[k]) for k in
                                                     ("accuracy", "f1", "auc", "uf1", "uar"))
                         + " |")
    if report.get("folds"):
        lines += ["", f"## Folds (seed {report['seeds'][0]})", "", "| fold | test samples | Acc |",
                  "|---|---|---|"]
        for f in report["folds"]:
            lines.append(f"| {f['fold']} | {f['n_test']} | {_pct(f['accuracy'])} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: str | os.PathLike[str],
                 stem: str = "report") -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>_confusion.png`` into ``out_dir``."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    png = save_confusion_png(report["confusion"], report["classes"],
                             out / f"{stem}_confusion.png",
                             title=f"{_row_name(report)} on {report['dataset']} "
                                   f"({report['protocol'].upper()})")
    from mestudio.fsutil import atomic_write_text

    js = atomic_write_text(out / f"{stem}.json",
                           json.dumps(report, indent=1, default=float) + "\n")
    md = atomic_write_text(out / f"{stem}.md", markdown(report, png.name))
    return {"json": js, "markdown": md, "confusion": png}


def headline(report: Mapping[str, Any]) -> str:
    """One line: ``UF1 71.2 ± 1.3, UAR ..., Acc ..., AUC ...``."""
    s = report["summary"]
    n = len(report.get("seeds", []))
    return ", ".join(f"{LABELS[k]} {_pct(s[k]['mean'], s[k]['std'], n)} %"
                     for k in ("uf1", "uar", "accuracy", "f1", "auc"))
