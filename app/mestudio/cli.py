"""Command-line entry point: thin argument parsing over the modules of the package.

Each sub-command lives in its own module of :mod:`mestudio.commands` and exposes::

    NAME: str                 # the sub-command, e.g. "analyze"
    HELP: str                 # one line for ``mestudio --help``
    def register(parser: argparse.ArgumentParser) -> None   # add its arguments
    def run(args: argparse.Namespace) -> int                # do the work, return exit code

Command modules import heavy libraries (torch, Qt) inside ``run`` only, so that
``mestudio --help`` stays fast. Errors a user can cause raise
:class:`mestudio.errors.MestudioError`; they are printed on one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from mestudio import __version__
from mestudio.errors import MestudioError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def _command_modules() -> list:
    from mestudio import commands

    modules = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        modules.append(importlib.import_module(f"mestudio.commands.{info.name}"))
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="mestudio",
        description="Facial micro-expression spotting and recognition (live, review, kiosk, "
        "training). Not a lie detector.",
    )
    parser.add_argument("--version", action="version", version=f"mestudio {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.register(p)
        p.set_defaults(_run=module.run)
    return parser


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record, so a stream that was
    swapped and closed (a test's capture, a GUI redirect) is never written to."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Configure ``logging`` for the command line (stderr, one line per record)."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = _CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if verbose < 2:
        for noisy in ("matplotlib", "PIL", "onnxscript", "torch.onnx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 failure, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return EXIT_USAGE
    setup_logging(args.verbose, args.quiet)
    try:
        return int(args._run(args) or 0)
    except MestudioError as exc:
        print(f"mestudio {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"mestudio {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
