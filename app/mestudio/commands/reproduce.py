"""``mestudio reproduce PAPER``: fill a paper's tables with our networks and write the
comparison with every published cell.

::

    mestudio reproduce m3enet --root /data/ME [--tables 2,3,4] [--out runs/reproduce]
        [--epochs N] [--seeds 1,2,3] [--workers N] [--ray [ADDRESS]]
    mestudio reproduce im3dr-mfer --root /data/ME [--light]

``m3enet``: Table 2 (the ten baselines and M3ENet, LOSO, on CASME I, CASME II, CAS(ME)², SAMM
and MMEW, and their average), Table 3 (the six ablation rows, averaged over the datasets),
Table 4 (parameters and FLOPs of the eight networks, counted the way that reproduces the
paper's figures, beside the configurations that reproduce them; batch-1 latency on CUDA when
present, on the CPU for reference). ``im3dr-mfer``: accuracy of the full model and the four
ablation rows the summary names, LOSO with 3 classes on CASME II, SAMM and the MEGC 2019
composite (CASME II + SAMM + SMIC, 442 samples).

Every cell runs ``mestudio train`` with the options a user would type and stores its result
(``OUT/cells/...``); running the command again skips the cells already done, and a cell
interrupted mid-way resumes its finished folds. The report is ``OUT/reproduce_<paper>.md``
and ``.csv``: every published cell with ours beside it, or why ours is absent ("needs the
licensed dataset", "needs a GPU"), rewritten atomically after every table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "reproduce"
HELP = "reproduce a paper's tables (M3ENet, IM3DR-MFER): train every cell, compare with the paper"

EXECUTOR_FLAGS = ("--workers", "--threads", "--device", "--prepare-workers", "--gpus-per-fold")


def register(parser: argparse.ArgumentParser) -> None:
    from mestudio.raysupport import add_ray_argument

    parser.add_argument("paper", choices=("m3enet", "im3dr-mfer"), help="whose tables")
    parser.add_argument("--root", type=Path, required=True, metavar="DIR",
                        help="folder holding the dataset releases (one sub-folder each, e.g. "
                             "CASME2/, SAMM/, MMEW/; found with the dataset loaders)")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=PATH",
                        dest="dataset_paths",
                        help="a release that is not found under --root (repeatable)")
    parser.add_argument("--datasets", default=None, metavar="LIST",
                        help="only these datasets (e.g. casme2,samm; default: the paper's, "
                             "all found)")
    parser.add_argument("--tables", default=None, metavar="LIST",
                        help="tables to fill (m3enet: 2,3,4; im3dr-mfer: results; default: "
                             "all)")
    parser.add_argument("--rows", default=None, metavar="LIST",
                        help="only these rows of the training tables (e.g. m3enet,ststnet,"
                             "standard,no-aug; im3dr-mfer: baseline,flow-only,mscaf,"
                             "no-casanet,full); Table 4 is always measured whole")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="results folder (default runs/reproduce-<paper>)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fold (train's default)")
    parser.add_argument("--seeds", default=None, metavar="LIST", help="seeds, e.g. 1,2,3")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--mapping", default=None, metavar="MAP",
                        help="class mapping of every dataset (m3enet: train's default, "
                             "5class / native; im3dr-mfer: 3class)")
    parser.add_argument("--align", default=None, choices=("tracker", "keyframes", "none"),
                        help="how frames become aligned crops (train's default: tracker)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        dest="overrides", help="a training setting for every cell (repeatable)")
    parser.add_argument("--train-arg", action="append", default=[], metavar="ARG",
                        help="a further `mestudio train` argument for every cell, e.g. "
                             "--train-arg=--preprocess=input_size=64 (repeatable)")
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="feature cache (default: train's, shared with train)")
    parser.add_argument("--light", action="store_true",
                        help="im3dr-mfer: width 16 (im3dr_mfer_light) instead of the paper's 64")
    parser.add_argument("--latency-iters", type=int, default=30, metavar="N",
                        help="timed runs per latency figure (Table 4, default 30)")
    parser.add_argument("--workers", type=int, default=None,
                        help="folds trained in parallel processes (passed to train)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--device", default=None, help="auto (default), cuda, mps or cpu")
    parser.add_argument("--prepare-workers", type=int, default=None, metavar="N",
                        help="processes computing features (passed to train)")
    parser.add_argument("--gpus-per-fold", type=float, default=None, metavar="G",
                        help="with --ray: GPUs per fold task (passed to train)")
    add_ray_argument(parser, "train every cell's folds")


def _list(text: str | None) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


def _train_function():  # noqa: ANN202 - Callable[[list[str]], int]
    """``train(argv) -> exit code``: ``mestudio train`` in this process."""
    from mestudio.commands import train as train_command

    def train(argv: list[str]) -> int:
        parser = argparse.ArgumentParser(prog="mestudio train")
        train_command.register(parser)
        return int(train_command.run(parser.parse_args(argv)))

    return train


def run(args: argparse.Namespace) -> int:
    from mestudio.errors import ConfigError
    from mestudio.reproduce import (
        Options,
        discover_datasets,
        run_tables,
        select_tables,
        write_report,
    )
    from mestudio.reproduce.tables import paper_datasets

    tables = select_tables(args.paper, _list(args.tables))
    explicit = {}
    for item in args.dataset_paths:
        name, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"--dataset expects NAME=PATH, got {item!r}")
        explicit[name.strip()] = Path(path).expanduser()
    wanted = _list(args.datasets) or list(paper_datasets(args.paper))
    needs_data = any(t.kind != "complexity" for t in tables)
    datasets = discover_datasets(args.root, wanted, explicit) if needs_data else {}
    datasets = {k: v for k, v in datasets.items() if k in wanted or k in explicit}
    if needs_data and not datasets:
        raise ConfigError(f"no dataset release found under {args.root} (looked for "
                          f"{', '.join(wanted)}; pass --dataset NAME=PATH)")
    out = args.out or Path("runs") / f"reproduce-{args.paper}"
    out.mkdir(parents=True, exist_ok=True)
    exec_args: list[str] = []
    for flag in EXECUTOR_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            exec_args += [flag, str(value)]
    if args.ray is not None:
        exec_args += ["--ray", args.ray] if args.ray else ["--ray"]
    exec_args.append("--no-progress")
    opts = Options(out=out, epochs=args.epochs, seeds=args.seeds, batch_size=args.batch_size,
                   mapping=args.mapping, align=args.align, settings=list(args.overrides),
                   train_args=list(args.train_arg), exec_args=exec_args, cache=args.cache,
                   rows=_list(args.rows), latency_iters=args.latency_iters, light=args.light)
    print(f"reproduce {args.paper}: tables {', '.join(t.key for t in tables)}; datasets "
          f"{', '.join(f'{k} ({v})' for k, v in datasets.items()) or 'none needed'}")
    options = {"epochs": args.epochs, "seeds": args.seeds, "mapping": args.mapping,
               "settings": ", ".join(args.overrides), "light": args.light}
    records: list[dict] = []
    paths: dict[str, Path] = {}
    train = _train_function()
    for table in tables:
        records += run_tables(args.paper, [table], datasets, opts, train)
        paths = write_report(args.paper, tables, records, datasets, out, options)
    failed = [r for r in records if r.get("status") == "failed"]
    print(f"report    {paths['markdown']} (+ {paths['csv'].name}); "
          f"{sum(r.get('status') == 'done' for r in records)} cells done, {len(failed)} failed, "
          f"{sum(r.get('status') == 'unavailable' for r in records)} unavailable")
    return 1 if failed else 0
