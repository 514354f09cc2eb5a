"""``mestudio data ACTION``: work with the licensed micro-expression datasets.

Actions:
    ``check``    read a release (annotation sheet + frame folders) and report what is usable:
                 missing folders/frames, bad rows, class counts (native and mapped), subjects,
                 annotation fixes applied. Exit 0 when usable, 2 when it cannot be used.
    ``prepare``  registered only when :mod:`mestudio.training.prepare` exists. That module
                 provides ``HELP`` (str), ``add_arguments(parser)`` and ``run(args) -> int``
                 and keeps heavy imports (torch, cv2) inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
from pathlib import Path
from types import ModuleType

NAME = "data"
HELP = "check a micro-expression dataset release (and prepare features for training)"

logger = logging.getLogger(__name__)

PREPARE_MODULE = "mestudio.training.prepare"


def _prepare_module() -> ModuleType | None:
    """The ``prepare`` implementation when the training module provides one."""
    try:
        module = importlib.import_module(PREPARE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name in (PREPARE_MODULE, "mestudio.training"):
            return None  # not written yet: `data prepare` is simply not offered
        logger.warning("`mestudio data prepare` unavailable: %s", exc)
        return None
    except Exception as exc:  # a broken module must not break `mestudio --help`
        logger.warning("`mestudio data prepare` unavailable: %s: %s", type(exc).__name__, exc)
        return None
    if not (hasattr(module, "add_arguments") and hasattr(module, "run")):
        logger.warning("%s lacks add_arguments()/run(): `data prepare` not registered",
                       PREPARE_MODULE)
        return None
    return module


def _dataset_help() -> str:
    from mestudio.training.datasets import DATASETS

    return ", ".join(DATASETS)


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_action", metavar="ACTION")
    check = sub.add_parser(
        "check", help="report what of a dataset release is usable",
        description="Read the annotation sheet and frame folders of a release; report missing "
                    "folders/frames, bad rows, class counts, subjects and the annotation fixes "
                    "applied. Exit status 0 when usable, 2 when not.")
    check.add_argument("--dataset", required=True, metavar="NAME",
                       help=f"dataset: {_dataset_help()}")
    check.add_argument("--root", required=True, type=Path, metavar="PATH",
                       help="folder holding the release as distributed (sheet + frames)")
    check.add_argument("--layout", default="auto",
                       choices=("auto", "raw", "selected", "cropped"),
                       help="frame layout to use (default: the first present)")
    check.add_argument("--sheet", type=Path, default=None, metavar="FILE",
                       help="annotation file, when not found under --root")
    check.add_argument("--json", type=Path, default=None, metavar="FILE",
                       help="also write the report as JSON")
    check.add_argument("--max-lines", type=int, default=12, metavar="N",
                       help="issues listed per kind (default 12; 0 = all)")
    check.set_defaults(_data_run=run_check)
    prepare = _prepare_module()
    if prepare is not None:
        help_text = getattr(prepare, "HELP", "compute and cache model inputs for a dataset")
        p = sub.add_parser("prepare", help=help_text, description=help_text)
        prepare.add_arguments(p)
        p.set_defaults(_data_run=prepare.run)


def run_check(args: argparse.Namespace) -> int:
    """``data check``: print the report; exit 0 when usable (DatasetError otherwise)."""
    from mestudio.errors import DatasetError
    from mestudio.training.datasets import get_dataset

    kwargs: dict[str, object] = {"layout": args.layout}
    if args.sheet is not None:
        kwargs["sheet"] = args.sheet
    dataset = get_dataset(args.dataset, **kwargs)
    report = dataset.check(args.root)
    max_lines = args.max_lines if args.max_lines > 0 else 10**9
    print(report.to_text(max_lines=max_lines))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    if not report.usable:
        raise DatasetError(
            f"no usable {report.title} sample under {report.root}: see the issues above"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "_data_run", None)
    if action is None:
        names = ["check"] + (["prepare"] if _prepare_module() is not None else [])
        print(f"usage: mestudio data {{{','.join(names)}}} ... (see mestudio data --help)")
        return 2
    return int(action(args) or 0)
