"""Command-line entry point: thin argument parsing over the modules of the package.

Each sub-command lives in its own module of :mod:`mestudio.commands` and exposes::

    NAME: str                 # the sub-command, e.g. "analyze"
    HELP: str                 # one line for ``mestudio --help``
    def register(parser: argparse.ArgumentParser) -> None   # add its arguments
    def run(args: argparse.Namespace) -> int                # do the work, return exit code

Command modules import heavy libraries (torch, Qt) inside ``run`` only, so that
``mestudio --help`` stays fast. Errors a user can cause raise
:class:`mestudio.errors.MestudioError`; they are printed on one line and exit with code 2.
So are the errors of the machine a user can fix (a full disk, a read-only or unwritable
folder: :class:`OSError`; a damaged database: :class:`sqlite3.Error`): one line that says
what and where, exit 2, never a traceback. Ctrl+C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sqlite3
import sys
from collections.abc import Sequence

from mestudio import __version__
from mestudio.errors import MestudioError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = ("exit codes: 0 done; 1 failure of mestudio itself; 2 an error you can fix "
                   "(bad input or argument, missing file or model, disk full, read-only or "
                   "unwritable folder, damaged database); 130 interrupted (Ctrl+C: `analyze` "
                   "still writes the events found so far, marked incomplete)")


def _command_modules() -> list:
    from mestudio import commands

    modules = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        modules.append(importlib.import_module(f"mestudio.commands.{info.name}"))
    return modules


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every sub-command; ``only``: the arguments of that command
    alone are registered (the others keep their name and help), which spares a command
    the imports the others' options need (a quarter of a second before the live window)."""
    parser = argparse.ArgumentParser(
        prog="mestudio",
        description="Facial micro-expression spotting and recognition (live, review, kiosk, "
        "training). Not a lie detector.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"mestudio {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP,
                           epilog=getattr(module, "EPILOG", None) or EXIT_CODES_HELP)
        if only is None or module.NAME == only:
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


def describe_os_error(exc: OSError) -> str:
    """One line for an :class:`OSError` of the machine: what happened and where.

    >>> import errno
    >>> describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/media/x"))
    'disk full (No space left on device): /media/x; free some space or write elsewhere'
    """
    import errno

    from mestudio.fsutil import temp_target

    where = None
    if exc.filename is not None:
        where = os.fsdecode(exc.filename)
        # A hidden temporary file of mestudio.fsutil: name the file it was to become.
        target = temp_target(where)
        if target is not None:
            where = target
        if exc.filename2 is not None and target is None:
            where = f"{where} -> {os.fsdecode(exc.filename2)}"
    what = exc.strerror or str(exc) or type(exc).__name__
    hint = {
        errno.ENOSPC: ("disk full", "free some space or write elsewhere"),
        getattr(errno, "EDQUOT", -1): ("disk quota exceeded", "free some space or write "
                                                              "elsewhere"),
        errno.EROFS: ("read-only file system", "write to another folder"),
        errno.EACCES: ("permission denied", "check the permissions or write elsewhere"),
        errno.EPERM: ("operation not permitted", "check the permissions or write elsewhere"),
    }.get(exc.errno or 0)
    text = what
    if hint:
        text = hint[0] if hint[0].lower() == what.lower() else f"{hint[0]} ({what})"
    if where is not None:
        text += f": {where}"
    if hint:
        text += f"; {hint[1]}"
    return text


def run() -> None:
    """The ``mestudio`` program (console script and ``python -m mestudio``): :func:`main`,
    then the process ends."""
    fast_exit(main())


def fast_exit(code: int) -> None:
    """End the process with ``code`` once everything it started is finished, without the
    interpreter's module teardown: torch's takes about half a second, paid by every
    ``mestudio analyze`` after its files are written.

    What a normal exit does first is done here too: threads are joined (and thread pools
    shut down), ``atexit`` handlers run (logging, multiprocessing, Ray), the streams are
    flushed. A process that loaded Qt exits normally, since Qt objects save state when they
    are destroyed."""
    if any(name.startswith("PySide6") for name in sys.modules):
        sys.exit(code)
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # CPython: what exit does first
    if shutdown is None:  # pragma: no cover - other interpreters
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


def _non_finite_option(args: argparse.Namespace) -> str | None:
    """The message for a number option given as ``nan`` or ``inf`` (argparse's ``float``
    accepts them; no option of mestudio means anything by them), else None."""
    import math

    for name, value in vars(args).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            shown = ", ".join(str(v) for v in values)
            return f"--{name.replace('_', '-')} must be a finite number, got {shown}"
    return None


def _is_torch(exc: ImportError) -> bool:
    return (exc.name or "").split(".")[0] == "torch"


def _command_of(argv: Sequence[str] | None) -> str:
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    return words[0] if words else ""


def _say_torch_missing(command: str) -> None:
    """One line for a command that needs torch in an installation without it (the
    application runs without torch; training, export, importing published weights and
    evaluation need it)."""
    print(f"mestudio {command}: error: this needs torch, which is not installed (the "
          "application runs without it; training, export, importing published weights and "
          "evaluation need it): pip install 'mestudio[train]'", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 failure, 2 an error the user can
    fix: bad input, disk full, read-only folder, damaged database; 130 interrupted)."""
    try:
        parser = build_parser(only=_command_of(argv) or None)
        args = parser.parse_args(argv)
    except ImportError as exc:  # the help of a training command lists torch's models
        if not _is_torch(exc):
            raise
        _say_torch_missing(_command_of(argv))
        return EXIT_USAGE
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return EXIT_USAGE
    setup_logging(args.verbose, args.quiet)
    bad = _non_finite_option(args)
    if bad is not None:
        print(f"mestudio {args.command}: error: {bad}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except MestudioError as exc:
        print(f"mestudio {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:
        if not _is_torch(exc):
            raise
        _say_torch_missing(args.command)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"mestudio {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into e.g. `head`: not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        # A full disk, a read-only or unwritable folder: the user's machine, not a bug.
        logging.getLogger(__name__).debug("OSError in %s", args.command, exc_info=True)
        print(f"mestudio {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.Error as exc:
        logging.getLogger(__name__).debug("sqlite3 error in %s", args.command, exc_info=True)
        print(f"mestudio {args.command}: error: database: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
