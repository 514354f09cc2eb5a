"""``mestudio bench NAME``: speed and memory figures (tracking, flow, model, train, soak)."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
from pathlib import Path

NAME = "bench"
HELP = ("run a benchmark (tracking, flow, model, train, live, soak, spotting, or all) and print "
        "its figures")


def _benchmarks() -> dict:
    from mestudio import bench

    return {
        info.name: importlib.import_module(f"mestudio.bench.{info.name}")
        for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name)
        if not info.name.startswith("_")
    }


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    sub = parser.add_subparsers(dest="bench", metavar="NAME")
    sub.add_parser("all", help="run every benchmark with its defaults (soak: 1 minute)")
    for name, module in _benchmarks().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    benches = _benchmarks()
    if not args.bench:
        print("available benchmarks: " + ", ".join([*benches, "all"]))
        return 2
    names = list(benches) if args.bench == "all" else [args.bench]
    figures = {}
    for name in names:
        module = benches[name]
        if args.bench == "all":
            p = argparse.ArgumentParser()
            module.add_arguments(p)
            sub_args = p.parse_args([])
        else:
            sub_args = args
        print(f"\n== mestudio bench {name} ==", flush=True)
        figures[name] = module.run(sub_args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=float))
    return 0
