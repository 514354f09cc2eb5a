"""``mestudio export CHECKPOINT -o models/NAME.onnx``: ONNX with in-graph Grad-CAM + model card."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export"
HELP = "export a trained checkpoint to ONNX (logits, probs, Grad-CAM) with its sha256 and model card"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint written by `mestudio train` (.pt)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="ONNX file to write (default: models/<checkpoint name>.onnx)")
    parser.add_argument("--fp16", action="store_true",
                        help="store weights as float16 (half the file; inputs/outputs stay float32)")
    parser.add_argument("--int8", action="store_true",
                        help="int8 weights for the linear layers (ONNX Runtime dynamic "
                             "quantization; faster on CPU, checked by agreement with float32)")
    parser.add_argument("--validate-features", type=Path, default=None, metavar="NPZ_DIR",
                        help="with --int8: also measure agreement (and accuracy) on the cached "
                             "inputs (.npz from `mestudio data prepare`) in this folder")
    parser.add_argument("--no-cam", action="store_true",
                        help="leave out the Grad-CAM output (logits and probs only)")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the ONNX Runtime vs torch check after export")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17; default 17)")
    parser.add_argument("--name", default=None, help="display name stored in the model (default: file name)")


def run(args: argparse.Namespace) -> int:
    from mestudio.errors import ConfigError
    from mestudio.inference.card import card_paths, read_card
    from mestudio.inference.export import export_onnx
    from mestudio.modelfiles import REPO_MODELS_DIR

    if args.opset < 17:
        raise ConfigError(f"--opset must be >= 17, got {args.opset}")
    if args.int8 and args.fp16:
        raise ConfigError("--int8 and --fp16 exclude each other: choose one")
    if args.validate_features is not None and not args.int8:
        raise ConfigError("--validate-features applies to --int8 exports only")
    if args.validate_features is not None and not args.validate_features.is_dir():
        raise ConfigError(f"--validate-features: {args.validate_features} is not a folder")
    out = args.output or (REPO_MODELS_DIR / (args.checkpoint.stem + ".onnx"))
    if out.suffix != ".onnx":
        raise ConfigError(f"the output must be a .onnx file, got {out}")
    path = export_onnx(args.checkpoint, out, fp16=args.fp16, cam=not args.no_cam,
                       verify=not args.no_check, opset=args.opset, name=args.name,
                       int8=args.int8, validate_features=args.validate_features)
    card = read_card(path) or {}
    check = card.get("export_check") or {}
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {card.get('architecture')}, "
          f"{len(card.get('classes', []))} classes, precision {card.get('precision')})")
    if "int8_check" in check:
        from mestudio.inference.export import _int8_text

        for line in _int8_text(check["int8_check"]):
            print(f"check: {line} — passed")
    elif check:
        cam_txt = (f", Grad-CAM vs autograd {check['cam_max_abs_diff']:.1e}"
                   if "cam_max_abs_diff" in check else "")
        print(f"check: ONNX Runtime vs torch logits {check['logits_max_abs_diff']:.1e}{cam_txt} "
              f"(tolerance {check['atol']:g}) — passed")
    if "fp16_check" in check:
        f16 = check["fp16_check"]
        print(f"fp16 vs fp32 weights: top class agrees on {f16['argmax_agreement'] * 100:.1f} % of "
              f"{f16['samples']} random samples, probabilities within {f16['probs_max_abs_diff']:.1e}")
    json_card, md_card = card_paths(path)
    print(f"sha256 {card.get('file_sha256')} -> {path.name}.sha256")
    print(f"model card: {json_card.name}, {md_card.name}")
    if card.get("synthetic"):
        print("note: trained on synthetic data — it recognises synthetic AU patterns, not emotions")
    return 0
