"""``mestudio data ACTION``: work with the licensed micro-expression datasets.

Actions:
    ``check``    read a release (annotation sheet + frame folders) and report what is usable:
                 missing folders/frames, bad rows, class counts (native and mapped), subjects,
                 annotation fixes applied. Exit 0 when usable, 2 when it cannot be used.
    ``prepare``  compute and cache the model inputs of a release for training
                 (:mod:`mestudio.training.prepare`, which keeps its heavy imports inside
                 ``run``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

NAME = "data"
HELP = "check a micro-expression dataset release (and prepare features for training)"

logger = logging.getLogger(__name__)

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
    from mestudio.training import prepare

    p = sub.add_parser("prepare", help=prepare.HELP, description=prepare.HELP)
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
        names = ["check", "prepare"]
        print(f"usage: mestudio data {{{','.join(names)}}} ... (see mestudio data --help)")
        return 2
    return int(action(args) or 0)
