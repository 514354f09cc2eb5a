"""Model cards written beside every exported model: ``NAME.card.json`` and ``NAME.card.md``.

A card says what the model is, what it was trained on, how it was evaluated, how fast and
big it is, and — for models trained on synthetic data — plainly that it recognises the
synthetic action-unit patterns of mestudio's synthesiser and is **not** a validated emotion
recogniser.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CARD_FORMAT = "mestudio-card/1"

SYNTHETIC_WARNING = (
    "This model was trained on synthetic data only: it recognises the synthetic action-unit "
    "patterns that mestudio's synthesiser plants into face videos. It is NOT a validated "
    "emotion recogniser and must not be used to judge what a real person feels."
)
REAL_DATA_NOTE = (
    "Micro-expression datasets are small and posed in laboratory conditions; figures from "
    "leave-one-subject-out evaluation do not transfer to other cameras, people or settings. "
    "Micro-expressions are not a lie detector."
)
HOW_TO_TRAIN = (
    "To train a model on licensed data (e.g. CASME II): obtain the dataset from its owners, "
    "then run `mestudio data prepare --dataset casme2 --root PATH --cache DIR`, "
    "`mestudio train --dataset casme2 --root PATH --model m3enet --protocol loso` and "
    "`mestudio export CHECKPOINT -o models/NAME.onnx`."
)

TRAIN_REAL_COMMAND = (
    "mestudio data prepare --dataset casme2 --root /data/CASME2 --cache CACHE && "
    "mestudio train --dataset casme2 --root /data/CASME2 --cache CACHE --model m3enet "
    "--protocol loso && "
    "mestudio export runs/casme2-m3enet-loso/m3enet_casme2.pt -o models/m3enet_casme2.onnx "
    "--fp16"
)
"""One shell line that trains and exports a real model (CASME II; ``mestudio doctor`` prints
it when the shipped model is synthetic)."""


def card_paths(onnx_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(NAME.card.json, NAME.card.md)`` beside ``NAME.onnx``."""
    p = Path(onnx_path)
    stem = p.name.removesuffix(".onnx")
    return p.with_name(stem + ".card.json"), p.with_name(stem + ".card.md")


def build_card(onnx_path: str | os.PathLike[str], meta: Mapping[str, Any],
               checks: Mapping[str, Any], file_sha256: str) -> dict[str, Any]:
    """The card as a dict (what ``NAME.card.json`` holds)."""
    synthetic = bool(meta.get("synthetic"))
    p = Path(onnx_path)
    return {
        "format": CARD_FORMAT,
        "name": meta.get("name", p.stem),
        "file": p.name,
        "file_sha256": file_sha256,
        "file_bytes": p.stat().st_size if p.exists() else None,
        "weights_sha256": meta.get("weights_sha256"),
        "architecture": meta.get("architecture"),
        "input_kind": meta.get("input_kind"),
        "classes": list(meta.get("classes", [])),
        "streams": list(meta.get("streams", [])),
        "inputs": {"input_size": meta.get("input_size"), "color": meta.get("color"),
                   "clip_len": meta.get("clip_len"), "flow_method": meta.get("flow_method"),
                   "flow_params": meta.get("flow_params"),
                   "normalisation": meta.get("normalisation")},
        "params": meta.get("params"),
        "macs": meta.get("macs"),
        "precision": meta.get("precision"),
        "has_cam": meta.get("has_cam"),
        "cam_size": meta.get("cam_size"),
        "synthetic": synthetic,
        "training": meta.get("training", {}),
        "training_data": meta.get("training_data"),
        "protocol": meta.get("protocol"),
        "metrics": meta.get("metrics", {}),
        "export_check": dict(checks),
        "intended_use": meta.get("intended_use") or (
            "Demonstration of the mestudio pipeline (spotting -> recognition -> Grad-CAM) on "
            "synthetic micro-expressions." if synthetic else
            "Research on facial micro-expression recognition under the evaluation protocol "
            "stated here."),
        "limitations": ([SYNTHETIC_WARNING] if synthetic else [])
        + [str(n) for n in meta.get("card_notes", [])]
        + [str(meta.get("data_note", REAL_DATA_NOTE))],
        "description": meta.get("description"),
        "paper": meta.get("paper"),
        "source": meta.get("source"),
        "terms": meta.get("terms"),
        "ensemble": meta.get("ensemble"),
        "how_to_train_a_real_model": str(meta.get("how_to_train", HOW_TO_TRAIN)),
        "created": meta.get("created"),
        "mestudio_version": meta.get("mestudio_version"),
    }


def _fmt_metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_fmt_metric(v)}" for k, v in value.items())
    return str(value)


def card_markdown(card: Mapping[str, Any]) -> str:
    """Human-readable Markdown version of a card."""
    lines = [f"# Model card: {card['name']}", ""]
    if card.get("synthetic"):
        lines += [f"> **{SYNTHETIC_WARNING}**", ""]
    params = card.get("params")
    macs = card.get("macs")
    lines += [
        f"- **Architecture:** `{card.get('architecture')}` ({card.get('input_kind')} inputs)",
        f"- **Classes:** {', '.join(card.get('classes', []))}",
        f"- **Grad-CAM streams:** {', '.join(card.get('streams', []))}"
        + (f" (maps {card['cam_size'][0]}x{card['cam_size'][1]})" if card.get("cam_size") else ""),
        f"- **Inputs:** {card['inputs'].get('input_size')} px, "
        f"{'colour' if card['inputs'].get('color') else 'grey'} frames, flow "
        f"`{card['inputs'].get('flow_method')}`"
        + (f", clip of {card['inputs']['clip_len']} frames" if card["inputs"].get("clip_len") else ""),
        f"- **Size:** {params / 1e6:.2f} M parameters, {macs / 1e6:.1f} M multiply-accumulates "
        f"per sample; {card.get('precision')} weights" if params and macs else "- **Size:** n/a",
        f"- **Training data:** {card.get('training_data')}"
        + (f": {card['training']['dataset']}" if isinstance(card.get("training"), Mapping)
           and card["training"].get("dataset") and card.get("training_data") == "real" else "")
        + f" (protocol: {card.get('protocol')})",
        *([f"- **Paper:** {card['paper']}"] if card.get("paper") else []),
        *([f"- **Weights from:** {card['source']}"] if card.get("source") else []),
        *([f"- **Ensemble:** {card['ensemble'].get('folds')} folds; "
           f"{card['ensemble'].get('combination')}"] if isinstance(card.get("ensemble"), Mapping)
          else []),
        *([f"- **Terms:** {card['terms']}"] if card.get("terms") else []),
        f"- **File:** `{card.get('file')}`, sha256 `{card.get('file_sha256')}`",
        "",
        "## Evaluation",
        "",
    ]
    metrics = card.get("metrics") or {}
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt_metric(v)} |" for k, v in metrics.items()]
    else:
        lines.append("No evaluation figures were recorded for this model.")
    check = card.get("export_check") or {}
    lines += ["", "## Export check", ""]
    if check:
        what, key = (("probabilities", "probs_max_abs_diff") if "logits_max_abs_diff" not in check
                     else ("logits", "logits_max_abs_diff"))
        lines.append(
            f"ONNX Runtime vs torch on {check.get('inputs') or str(check.get('batch')) + ' random samples'}: "
            f"{what} differ by {check.get(key, float('nan')):.1e}"
            + (f", Grad-CAM vs torch autograd by {check['cam_max_abs_diff']:.1e}"
               if "cam_max_abs_diff" in check else "")
            + f" (tolerance {check.get('atol')}).")
        tfl = check.get("tflite")
        if isinstance(tfl, Mapping):
            lines.append(f"Independent check against {tfl.get('reference')}: probabilities "
                         f"differ by at most {tfl.get('probs_max_abs_diff', float('nan')):.3f}, "
                         f"same top class on {tfl.get('same_top_class')} of {tfl.get('of')}.")
        elif tfl:
            lines.append(f"TFLite check: {tfl}")
        if "fp16_check" in check:
            f16 = check["fp16_check"]
            lines.append(f"float16 weights vs float32: top class agrees on "
                         f"{f16['argmax_agreement'] * 100:.1f} % of {f16['samples']} random "
                         f"samples, probabilities differ by at most {f16['probs_max_abs_diff']:.1e}.")
    else:
        lines.append("Not checked at export.")
    lines += ["", "## Intended use and limitations", "", str(card.get("intended_use")), ""]
    lines += [f"- {text}" for text in card.get("limitations", [])]
    how = card.get("how_to_train_a_real_model", HOW_TO_TRAIN)
    if how:
        lines += ["", "## Training a real model", "", str(how)]
    lines.append("")
    return "\n".join(lines)


def write_card(onnx_path: str | os.PathLike[str], meta: Mapping[str, Any],
               checks: Mapping[str, Any], file_sha256: str) -> tuple[Path, Path]:
    """Write ``NAME.card.json`` and ``NAME.card.md`` beside ``onnx_path``."""
    from mestudio.fsutil import atomic_write_text

    card = build_card(onnx_path, meta, checks, file_sha256)
    json_path, md_path = card_paths(onnx_path)
    atomic_write_text(json_path, json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
    atomic_write_text(md_path, card_markdown(card))
    return json_path, md_path


def read_card(onnx_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The card of a model file, or None when it has none."""
    json_path, _ = card_paths(onnx_path)
    if not json_path.is_file():
        return None
    data: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8"))
    return data
