"""``mestudio evaluate``: score a model on a dataset release you hold.

::

    mestudio evaluate --model models/ststnet_megc2019.onnx --dataset megc2019 --root /data/MEGC2019
    mestudio evaluate --folds STSTNet_Weights/ --dataset megc2019 --root /data/MEGC2019 --out fig.json

``--model``: every sample of the release goes through the application's own preprocessing
with the configuration stored in the model, then the model; accuracy, UF1, UAR and the
confusion matrix are printed (class names from the model, the dataset's labels matched to
them by name). ``--folds``: a folder of the authors' STSTNet fold files; each fold scores
only its own held-out subject, the predictions are pooled (leave-one-subject-out) and set
beside the authors' UF1 0.7209 / UAR 0.725. Samples that cannot be scored (outside the
class mapping, a class the model lacks, no face found, a subject without a fold file) are
counted and listed. ``--mapping`` takes what ``mestudio train --mapping`` takes (built-in
names, shipped mapping files, your TOML file) and ``--min-class-samples N`` drops small
classes as training does; the class set is stated as in a training report. A model trained
with Eulerian magnification (``--set evm=...``) gets its inputs magnified the same way. See
:mod:`mestudio.training.evaluation`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mestudio.progress import add_progress_argument, show_progress

NAME = "evaluate"
HELP = ("score a model (.onnx) or the STSTNet fold files on a dataset release you hold: "
        "accuracy, UF1, UAR, confusion matrix")


def register(parser: argparse.ArgumentParser) -> None:
    from mestudio.training.cliargs import add_alignment_arguments, add_class_set_arguments
    from mestudio.training.datasets import DATASETS

    what = parser.add_argument_group("what to score (one of)")
    what.add_argument("--model", type=Path, default=None, metavar="FILE.onnx",
                      help="an exported mestudio model")
    what.add_argument("--folds", type=Path, default=None, metavar="DIR",
                      help="a folder of STSTNet fold files (006.pth, s01.pth, sub01.pth, ...): "
                           "each is scored on its own held-out subject only")
    parser.add_argument("--dataset", required=True, metavar="NAME",
                        help=f"dataset: {', '.join(DATASETS)}")
    parser.add_argument("--root", required=True, type=Path, metavar="PATH",
                        help="folder holding the release as distributed (sheet + frames)")
    add_class_set_arguments(parser, "the one under which most samples have a class of the "
                                    "model")
    parser.add_argument("--layout", default="auto", choices=("auto", "raw", "selected", "cropped"),
                        help="frame layout of the release (default: the first present)")
    parser.add_argument("--sheet", type=Path, default=None, metavar="FILE",
                        help="annotation file, when not found under --root")
    add_alignment_arguments(parser)
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="processes computing the model inputs (default 2)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the ONNX model runs (default auto)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE.json",
                        help="also write the figures, what was not scored and every "
                             "prediction to this JSON file")
    add_progress_argument(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from mestudio.errors import ConfigError
    from mestudio.fsutil import atomic_write_text
    from mestudio.training.datasets import get_dataset
    from mestudio.training.evaluation import (
        InputOptions,
        check_arguments,
        evaluate_folds,
        evaluate_model,
        format_result,
    )

    check_arguments(args.model, args.folds)
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.align_size < 16:
        raise ConfigError(f"--align-size must be >= 16, got {args.align_size}")
    if args.min_class_samples < 0:
        raise ConfigError(f"--min-class-samples must be >= 0, got {args.min_class_samples}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)  # fail now, not after the work
    kwargs: dict[str, object] = {"layout": args.layout}
    if args.sheet is not None:
        kwargs["sheet"] = args.sheet
    dataset = get_dataset(args.dataset, **kwargs)
    options = InputOptions(cache_dir=args.cache, align=args.align, align_size=args.align_size,
                           workers=args.workers, progress=show_progress(args))
    if args.model is not None:
        result = evaluate_model(args.model, dataset, args.root, mapping=args.mapping,
                                options=options, device=args.device,
                                min_class_samples=args.min_class_samples)
    else:
        result = evaluate_folds(args.folds, dataset, args.root, mapping=args.mapping,
                                options=options, min_class_samples=args.min_class_samples)
    print(format_result(result))
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.out}")
    return 0
