"""Batch analysis of many recordings: one after the other, in local worker processes, or as
Ray tasks on a local Ray or a cluster.

Each input (a video file, an image-sequence folder, a demo spec) is one :class:`BatchJob`,
run by :func:`run_job` — the *same* function in all three modes, so the outputs are the
same byte for byte whatever ran them (apart from timing fields such as the recogniser's
latency in ``events.json``). A job writes ``frames.csv``, ``events.csv`` and
``events.json`` into its own folder (:func:`analyze_to_folder`, atomically, as a single
``mestudio analyze`` does) and then :data:`RECORD_NAME`, which says what was analysed:

* ``input_hash``: a fingerprint of the input (:data:`INPUT_HASH_METHOD`): for a file its
  size, its modification time (ns) and the SHA-256 of its first and last MiB; for an
  image-sequence folder the name, size and modification time of every image; for a demo
  spec the spec;
* ``settings_hash``: the SHA-256 of the analysis settings (spotter, tracker, capture,
  recognition except its thread count, ``--max-frames``, recognition on/off, the model
  file's size and time, the mestudio version).

An input whose folder holds a complete analysis (``events.json`` with ``"complete":
true``) with the same two hashes is skipped (status ``skipped``) unless ``force``; an input
interrupted midway (no ``events.json``, or ``"complete": false``) or changed is redone.

:func:`run_batch` runs the jobs: ``workers=1`` in this process (frame progress available);
``workers=N`` in N processes (:class:`concurrent.futures.ProcessPoolExecutor`, forked from a
fork server that imported the libraries once, :func:`worker_context`), biggest inputs first
(:func:`largest_first`), each with one thread per library (:func:`limit_threads`); ``use_ray`` as Ray tasks of one
CPU each (Ray is reached through :mod:`mestudio.raysupport`: the local Ray or the cluster,
and on a cluster the check that every node sees the inputs and the output folder). A stop request (Ctrl+C) cancels the inputs not started and lets the running ones
stop after their current frame (their outputs say ``"complete": false``); workers learn of
it from a stop file in the output folder (:data:`STOP_NAME`), which reaches Ray nodes too.

No Qt and no printing here: the caller gets callbacks.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import logging
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from mestudio.errors import MestudioError, SourceError

log = logging.getLogger(__name__)

#: File suffixes taken as videos when a folder of recordings is expanded.
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                            ".wmv", ".mts", ".m2ts", ".3gp", ".flv", ".ogv"})
#: The per-input record written after the outputs (hashes, status, figures).
RECORD_NAME = "batch-run.json"
RECORD_FORMAT = "mestudio-batch-run/1"
#: The one-row-per-input table in the output folder.
SUMMARY_NAME = "summary.csv"
SUMMARY_COLUMNS = ("input", "output", "status", "frames", "seconds", "face_pct", "events",
                   "micro", "macro", "recognised", "wall_s", "peak_rss_mb", "error")
#: Created in the output folder to ask running workers (local or on Ray nodes) to stop.
STOP_NAME = ".mestudio-batch-stop"
#: How the input fingerprint is made (written in the record).
INPUT_HASH_METHOD = ("file: sha256(size, mtime_ns, first MiB, last MiB); image folder: "
                     "sha256(name, size, mtime_ns of every image); demo: sha256(spec)")
HASH_EDGE_BYTES = 1 << 20
#: Environment variables that set the thread pools of OpenMP, MKL, OpenBLAS and friends.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
#: Statuses of a :class:`JobResult`.
STATUSES = ("ok", "failed", "skipped", "interrupted", "cancelled", "pending")
#: Seconds between two looks at the stop file (a stat per frame would be wasteful on NFS).
STOP_POLL_S = 0.25
_RAY_ADDRESS = re.compile(r"(ray://)?[A-Za-z0-9_.\-\[\]]+:\d+")

ProgressFn = Callable[[int, int | None], None]


# ------------------------------------------------------------------------------- inputs
def is_collection(spec: str) -> bool:
    """Whether a command-line input names several recordings: ``@list.txt``, or a folder
    without images of its own that holds videos or sub-folders (a folder of images is one
    image sequence)."""
    if spec.startswith("@"):
        return True
    from mestudio.capture import describe_spec

    if describe_spec(spec) != "folder":
        return False
    folder = Path(spec).expanduser()
    try:
        return not _has_images(folder) and any(_children(folder))
    except OSError:
        return False


def _has_images(folder: Path) -> bool:
    from mestudio.capture.imageseq import list_images

    return bool(list_images(folder))


def _children(folder: Path) -> Iterator[Path]:
    """The videos and sub-folders of ``folder`` (hidden ones left out)."""
    for p in folder.iterdir():
        if p.name.startswith("."):
            continue
        if p.is_dir() or (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
            yield p


def _expand_folder(folder: Path, seen: set[str] | None = None) -> list[str]:
    """A folder of recordings: its image-sequence sub-folders and videos, recursively, in
    name order; a folder that holds images is one image sequence. A folder reached again
    through a link (a loop such as ``sub/up -> ..``, or two links to one folder) is
    listed once, by its real path."""
    seen = set() if seen is None else seen
    real = os.path.realpath(folder)
    if real in seen:
        log.info("%s: a link to a folder already listed, skipped", folder)
        return []
    seen.add(real)
    if _has_images(folder):
        return [str(folder)]
    found: list[str] = []
    for child in sorted(_children(folder), key=lambda p: p.name):
        if child.is_dir():
            found.extend(_expand_folder(child, seen))
        else:
            found.append(str(child))
    return found


def _expand_one(spec: str, base: Path | None = None) -> list[str]:
    from mestudio.capture import describe_spec

    kind = describe_spec(spec)
    if kind == "demo":
        return [spec]
    if kind == "camera":
        raise MestudioError(f"{spec}: a camera cannot be part of a batch; analyse it on its "
                            "own with `mestudio analyze camera:N --max-frames N`")
    path = Path(spec).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    path = Path(os.path.abspath(path))
    if path.is_dir():
        try:
            found = _expand_folder(path)
        except OSError:
            return [str(path)]  # the job says what is wrong with it
        return found or [str(path)]
    return [str(path)]


def read_list_file(path: Path) -> list[str]:
    """The entries of a ``@list.txt``: one input per line; blank lines and ``#`` comments
    left out; relative paths are relative to the list file's folder."""
    try:
        text = path.expanduser().read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MestudioError(f"list file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MestudioError(f"cannot read list file {path}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append(line)
    return entries


def expand_inputs(specs: Sequence[str]) -> list[str]:
    """The recordings named by command-line inputs, in order, each once: video files and
    image-sequence folders as absolute paths, folders of recordings expanded
    (:func:`_expand_folder`), ``@list.txt`` files read (:func:`read_list_file`), demo specs
    as they are. A missing path stays in the list (its job fails and says so).

    Raises:
        MestudioError: a list file cannot be read, a camera is named, nothing is left.
    """
    out: list[str] = []
    for spec in specs:
        if spec.startswith("@"):
            lst = Path(spec[1:]).expanduser()
            for entry in read_list_file(lst):
                out.extend(_expand_one(entry, base=Path(os.path.abspath(lst)).parent))
        else:
            out.extend(_expand_one(spec))
    # Each recording once, by its real path (links and ``..`` name the same file twice).
    by_real = {(os.path.realpath(x) if os.path.exists(x) else x): x for x in reversed(out)}
    unique = [x for x in dict.fromkeys(out) if by_real.get(
        os.path.realpath(x) if os.path.exists(x) else x) == x]
    if len(unique) < len(out):
        log.info("%d input(s) named more than once: each is analysed once",
                 len(out) - len(unique))
    if not unique:
        raise MestudioError("no recordings to analyse (empty list file?)")
    return unique


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "input"
    return name[:120]


def output_names(inputs: Sequence[str]) -> list[str]:
    """One output folder name per input: the file's stem (the folder's name, the demo
    spec), made unique with ``-2``, ``-3``, ... in input order (case-insensitively, for
    file systems that ignore case)."""
    used = {SUMMARY_NAME.lower()}
    names = []
    for spec in inputs:
        p = Path(spec)
        base = _safe_name(spec if spec.startswith("demo") else (p.stem if p.suffix and
                                                                  not p.is_dir() else p.name))
        name, k = base, 2
        while name.lower() in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name.lower())
        names.append(name)
    return names


# ---------------------------------------------------------------------------- fingerprints
def input_fingerprint(spec: str) -> str:
    """The fingerprint of an input (:data:`INPUT_HASH_METHOD`).

    Raises:
        SourceError: nothing at ``spec``.
    """
    from mestudio.capture import describe_spec

    h = hashlib.sha256()
    kind = describe_spec(spec)
    if kind == "demo":
        h.update(b"demo\0" + spec.encode())
    elif kind in ("video", "image"):
        path = Path(spec).expanduser()
        st = path.stat()
        h.update(f"file\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        with path.open("rb") as f:
            h.update(f.read(HASH_EDGE_BYTES))
            if st.st_size > HASH_EDGE_BYTES:
                f.seek(max(HASH_EDGE_BYTES, st.st_size - HASH_EDGE_BYTES))
                h.update(f.read(HASH_EDGE_BYTES))
    elif kind == "folder":
        from mestudio.capture.imageseq import list_images

        h.update(b"folder\0")
        for p in list_images(Path(spec).expanduser()):
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    else:
        raise SourceError(f"{spec}: no such file or folder (give a video file, a folder of "
                          "images or a folder of videos)")
    return h.hexdigest()


def settings_fingerprint(config: Any, recognition: bool, max_frames: int | None) -> str:
    """SHA-256 of what decides the outputs: the settings (without the thread count and the
    kiosk section), recognition on/off, ``max_frames``, the model file (size and time) and
    the mestudio version."""
    from mestudio import __version__

    d = dataclasses.asdict(config)
    d.pop("kiosk", None)
    d.get("recognition", {}).pop("threads", None)
    stats = []
    for key in ("model", "macro_model"):
        model = str(d.get("recognition", {}).get(key) or "")
        model_stat = None
        if model and os.path.isfile(model):
            st = os.stat(model)
            model_stat = [st.st_size, st.st_mtime_ns]
        stats.append(model_stat)
    doc = {"settings": d, "recognition": bool(recognition), "max_frames": max_frames,
           "model_file": stats[0], "version": __version__}
    if stats[1] is not None:
        doc["macro_model_file"] = stats[1]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------------- one recording
def analyze_to_folder(source: Any, out: Path, config: Any, *, recognition: bool,
                      source_label: str, max_frames: int | None = None,
                      progress: ProgressFn | None = None,
                      stop: Callable[[], bool] | None = None,
                      on_result: Callable[[Any], None] | None = None,
                      stop_finish_s: float | None = None,
                      pipeline: Any = None) -> tuple[Any, tuple[Path, ...]]:
    """Analyse one open source into ``out``: ``frames.csv``, ``events.csv`` and
    ``events.json`` (``source_label`` is its ``source``), each written to a hidden
    temporary file that takes its name only when the analysis ended (completely or
    stopped), so a failed run leaves the folder as it was.

    Returns:
        the :class:`~mestudio.engine.analysis.AnalysisResult` and the three paths.

    Raises:
        MestudioError: the folder cannot be created, the source cannot be read.
        OSError: a file cannot be written (disk full, read-only folder).
    """
    from mestudio.engine.analysis import STOP_FINISH_S, analyze_video
    from mestudio.events_io import write_events_csv, write_events_json
    from mestudio.fsutil import atomic_path

    csv_path = out / "frames.csv"
    json_path = out / "events.json"
    events_csv_path = out / "events.csv"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MestudioError(f"cannot create output folder {out}: "
                            f"{exc.strerror or exc}") from exc
    from mestudio.fsutil import remove_stale_temps

    if remove_stale_temps(out, (csv_path.name, json_path.name, events_csv_path.name)):
        log.info("%s: removed the unfinished files of an earlier run that was killed", out)
    with contextlib.ExitStack() as outputs:
        tmp_csv = outputs.enter_context(atomic_path(csv_path))
        tmp_json = outputs.enter_context(atomic_path(json_path))
        tmp_events_csv = outputs.enter_context(atomic_path(events_csv_path))
        res = analyze_video(source, config, recognition=recognition, pipeline=pipeline,
                            max_frames=max_frames,
                            progress=progress, stop=stop, on_result=on_result,
                            frames_csv=tmp_csv,
                            stop_finish_s=STOP_FINISH_S if stop_finish_s is None
                            else stop_finish_s)
        write_events_json(tmp_json, res.events, res.events_meta(source_label))
        write_events_csv(tmp_events_csv, res.events)
    return res, (csv_path, events_csv_path, json_path)


@dataclass(frozen=True)
class BatchJob:
    """One input of a batch (picklable: it travels to worker processes and Ray nodes).

    Attributes:
        input: absolute path of the recording (or a demo spec).
        out_dir: absolute path of its output folder.
        config: the :class:`~mestudio.config.AppConfig` to use (the driver's settings: a
            Ray node never reads its own).
        recognition: recognise micro events.
        max_frames: stop after this many frames.
        settings_hash: :func:`settings_fingerprint` of the above.
        force: redo even when a complete analysis with the same hashes is there.
        stop_file: stop (after the current frame) when this file exists.
        limit_threads: call :func:`limit_threads` first (worker processes).
    """

    input: str
    out_dir: str
    config: Any
    recognition: bool
    max_frames: int | None
    settings_hash: str
    force: bool = False
    stop_file: str | None = None
    limit_threads: bool = False


@dataclass
class JobResult:
    """What one job did: a row of ``summary.csv`` (:data:`SUMMARY_COLUMNS`).

    ``status``: ``ok``; ``failed`` (``error`` says why); ``skipped`` (complete outputs with
    the same hashes were there; the figures are theirs); ``interrupted`` (stopped midway,
    outputs marked incomplete); ``cancelled`` (stopped before it started); ``pending``
    (not run yet). ``seconds`` is the length of the analysed video, ``wall_s`` the time the
    job took, ``peak_rss_mb`` the peak memory of the process that ran it (its whole life:
    worker processes run several jobs).
    """

    input: str
    output: str
    status: str = "pending"
    frames: int | None = None
    seconds: float | None = None
    face_pct: float | None = None
    events: int | None = None
    micro: int | None = None
    macro: int | None = None
    recognised: int | None = None
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    error: str = ""
    worker: str = ""
    node: str = ""

    @property
    def stats(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("frames", "seconds", "face_pct", "events",
                                              "micro", "macro", "recognised")}

    def row(self) -> list[Any]:
        """The ``summary.csv`` cells."""
        def num(v: float | None, digits: int) -> str:
            return "" if v is None else f"{v:.{digits}f}"

        def count(v: int | None) -> str:
            return "" if v is None else str(int(v))

        return [self.input, self.output, self.status, count(self.frames),
                num(self.seconds, 2), num(self.face_pct, 1), count(self.events),
                count(self.micro), count(self.macro), count(self.recognised),
                num(self.wall_s, 2), num(self.peak_rss_mb, 0), self.error]


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MB (None where unknown, e.g. Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    return rusage_mb(resource.getrusage(resource.RUSAGE_SELF))


def rusage_mb(usage: Any) -> float:
    """``ru_maxrss`` of a ``resource.struct_rusage`` in MB (kB on Linux, bytes on macOS)."""
    rss = usage.ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def limit_threads() -> None:
    """One thread per library in this process: the OpenMP/BLAS variables (read when those
    libraries load, so call this before the heavy imports), OpenCV and torch when loaded."""
    for var in THREAD_ENV:
        os.environ[var] = "1"
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class _Stop:
    """A stop check for the frame loop: the caller's (Ctrl+C), the worker's SIGINT flag, and
    the stop file (looked at every :data:`STOP_POLL_S`)."""

    def __init__(self, stop: Callable[[], bool] | None, stop_file: str | None) -> None:
        self._stop = stop
        self._file = stop_file
        self._next = 0.0
        self._seen = False

    def __call__(self) -> bool:
        if self._seen or _WORKER_STOP[0] or (self._stop is not None and self._stop()):
            self._seen = True
            return True
        if self._file is not None:
            now = time.monotonic()
            if now >= self._next:
                self._next = now + STOP_POLL_S
                if os.path.exists(self._file):
                    self._seen = True
        return self._seen


def read_record(out: Path) -> dict[str, Any] | None:
    """The :data:`RECORD_NAME` of an output folder, or None when absent or unreadable."""
    try:
        doc = json.loads((out / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == RECORD_FORMAT else None


def completed_record(out: Path, input_hash: str, settings_hash: str) -> dict[str, Any] | None:
    """The record of a complete analysis of the same input with the same settings in
    ``out`` (all three outputs there, ``events.json`` says ``"complete": true``), else
    None."""
    rec = read_record(out)
    if rec is None or rec.get("input_hash") != input_hash or \
            rec.get("settings_hash") != settings_hash or rec.get("complete") is not True:
        return None
    if not all((out / n).is_file() for n in ("frames.csv", "events.csv")):
        return None
    try:
        doc = json.loads((out / "events.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(doc, dict) and doc.get("complete") is True else None


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "error"


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, MestudioError):
        return _one_line(str(exc))
    if isinstance(exc, OSError):
        where = f": {os.fsdecode(exc.filename)}" if exc.filename is not None else ""
        return _one_line(f"{exc.strerror or exc}{where}")
    return _one_line(f"{type(exc).__name__}: {exc}")


def run_job(job: BatchJob, progress: ProgressFn | None = None,
            stop: Callable[[], bool] | None = None) -> JobResult:
    """Analyse one input of a batch into ``job.out_dir`` (the one job function of serial,
    process-pool and Ray runs). Never raises for a bad input: the result says ``failed``
    and why. ``progress(done, total)`` reports frames; ``stop()`` True stops after the
    current frame."""
    t0 = time.perf_counter()
    if job.limit_threads:
        limit_threads()
    result = JobResult(input=job.input, output=job.out_dir, status="failed",
                       worker=f"{socket.gethostname()}:{os.getpid()}")
    stopped = _Stop(stop, job.stop_file)
    try:
        if stopped():
            result.status = "cancelled"
            return result
        out = Path(job.out_dir)
        input_hash = input_fingerprint(job.input)
        if not job.force:
            rec = completed_record(out, input_hash, job.settings_hash)
            if rec is not None:
                result.status = "skipped"
                for k, v in (rec.get("stats") or {}).items():
                    if hasattr(result, k):
                        setattr(result, k, v)
                return result
        from mestudio.capture import open_source

        # The record goes first and comes back last: a run killed between the new outputs
        # and their record must not pass for the analysis the old record describes.
        with contextlib.suppress(FileNotFoundError):
            (out / RECORD_NAME).unlink()
        with open_source(job.input, job.config.capture) as source:
            res, _paths = analyze_to_folder(source, out, job.config,
                                            recognition=job.recognition,
                                            source_label=job.input,
                                            max_frames=job.max_frames, progress=progress,
                                            stop=stopped)
        result.status = "ok" if res.complete else "interrupted"
        n_micro = sum(e.kind == "micro" for e in res.events)
        result.frames = res.n_frames
        result.seconds = (res.last_frame + 1) / res.fps if res.fps else None
        result.face_pct = 100.0 * res.face_fraction
        result.events = len(res.events)
        result.micro = n_micro
        result.macro = len(res.events) - n_micro
        result.recognised = sum(e.prediction is not None for e in res.events)
        _write_record(out, job, input_hash, res.complete, result.stats)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # one input never stops the others: say why it failed
        log.debug("batch input %s failed", job.input, exc_info=True)
        result.status = "failed"
        result.error = _error_text(exc)
    finally:
        result.wall_s = time.perf_counter() - t0
        result.peak_rss_mb = peak_rss_mb()
    return result


def _write_record(out: Path, job: BatchJob, input_hash: str, complete: bool,
                  stats: dict[str, Any]) -> None:
    from mestudio.fsutil import atomic_write_text

    doc = {"format": RECORD_FORMAT, "input": job.input, "input_hash": input_hash,
           "input_hash_method": INPUT_HASH_METHOD, "settings_hash": job.settings_hash,
           "max_frames": job.max_frames, "recognition": job.recognition,
           "complete": bool(complete), "stats": stats}
    atomic_write_text(out / RECORD_NAME, json.dumps(doc, indent=2, sort_keys=True) + "\n")


# -------------------------------------------------------------------------- worker setup
#: Set by the first SIGINT in a worker process (the terminal sends Ctrl+C to all of them).
_WORKER_STOP = [False]


def _worker_sigint(signum: int, frame: FrameType | None) -> None:
    if _WORKER_STOP[0]:
        raise KeyboardInterrupt
    _WORKER_STOP[0] = True


def init_worker(log_level: int, parent_pid: int | None = None) -> None:
    """Initializer of the local worker processes: one thread per library before anything
    heavy is imported, Ctrl+C asks to stop after the current frame, warnings on stderr, and
    the worker ends when the ``mestudio`` process that started it is gone (killed with
    ``kill -9``: nobody would read its result, and the fork server and resource tracker
    live as long as a worker holds their pipes)."""
    limit_threads()
    signal.signal(signal.SIGINT, _worker_sigint)
    logging.basicConfig(level=max(log_level, logging.WARNING), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s", force=True)
    if parent_pid is not None:
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True,
                         name="mestudio-parent-watch").start()


def _exit_with_parent(parent_pid: int, every_s: float = 0.5) -> None:
    """End this worker process as soon as process ``parent_pid`` no longer exists."""
    import psutil

    while True:
        time.sleep(every_s)
        try:
            alive = psutil.pid_exists(parent_pid) and \
                psutil.Process(parent_pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            alive = False
        if not alive:
            os._exit(1)


def _ray_task(job: BatchJob) -> JobResult:
    """:func:`run_job` as a Ray task; notes the node that ran it. While it runs, SIGINT
    (Ctrl+C reaching the worker) asks it to stop after the current frame."""
    _WORKER_STOP[0] = False  # a reused worker process
    previous: Any = None
    with contextlib.suppress(ValueError):  # not the main thread
        previous = signal.signal(signal.SIGINT, _worker_sigint)
    try:
        result = run_job(job)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    with contextlib.suppress(Exception):
        import ray

        result.node = ray.get_runtime_context().get_node_id()
    return result


# ------------------------------------------------------------------------------ batches
@dataclass
class BatchReport:
    """The outcome of :func:`run_batch`: one :class:`JobResult` per input (input order),
    whether a stop was requested, how it ran."""

    results: list[JobResult]
    interrupted: bool = False
    mode: str = "serial"
    workers: int = 1
    wall_s: float = 0.0
    summary_path: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


def write_summary(path: Path, results: Sequence[JobResult], durable: bool = True) -> Path:
    """Write ``summary.csv`` (:data:`SUMMARY_COLUMNS`, one row per input; formula-like text
    neutralised, :func:`mestudio.csvio.safe_row`) atomically."""
    from mestudio.csvio import safe_row
    from mestudio.fsutil import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(safe_row(SUMMARY_COLUMNS))
    for r in results:
        w.writerow(safe_row(r.row()))
    return atomic_write_text(path, buf.getvalue(), durable=durable)


def is_ray_address(text: str) -> bool:
    """Whether ``text`` is a Ray address (``auto``, ``local``, ``host:port``,
    ``ray://host:port``) rather than an input."""
    return text in ("auto", "local") or _RAY_ADDRESS.fullmatch(text) is not None


def check_storage(out_root: Path, inputs: Sequence[str]) -> None:
    """The paths a Ray run needs, seen from the driver: the output folder's parent exists
    (the folder itself is created), inputs are absolute.

    Raises:
        MestudioError: one line saying which path is wrong.
    """
    if not out_root.is_absolute():
        raise MestudioError(f"--ray: the output folder {out_root} must be an absolute path")
    if not out_root.parent.is_dir():
        raise MestudioError(f"--ray: the output folder's parent {out_root.parent} does not "
                            "exist; give a folder on storage every Ray node sees (a shared "
                            "mount)")
    for spec in inputs:
        if not spec.startswith("demo") and not os.path.isabs(spec):
            raise MestudioError(f"--ray: input {spec} must be an absolute path")


def resolve_models(config: Any) -> Any:
    """``config`` with ``recognition.model`` and ``recognition.macro_model`` set to the files
    in use: the default model when none is named, the expression model when found (else
    ``"off"``). Named files are kept as they are (the worker reports a missing one)."""
    from mestudio.inference.engine import default_model_path, expression_model_path

    rc = config.recognition
    model = rc.model or str(default_model_path() or "")
    macro = str(rc.macro_model or "").strip()
    if rc.macro and not macro:
        found = expression_model_path(rc)
        macro = str(found) if found is not None else "off"
    return dataclasses.replace(config, recognition=dataclasses.replace(
        rc, model=model, macro_model=macro))


def make_jobs(inputs: Sequence[str], out_root: Path, config: Any, *, recognition: bool,
              max_frames: int | None, force: bool = False) -> list[BatchJob]:
    """One :class:`BatchJob` per input (output folders from :func:`output_names`).

    With recognition, the models are found here, once (:func:`resolve_models`): every worker
    process or Ray task uses the files this process found, whatever its own environment
    (user folders, ``$MESTUDIO_MODELS_DIR``) would find."""
    out_root = Path(os.path.abspath(out_root))
    config = dataclasses.replace(config, recognition=dataclasses.replace(
        config.recognition, threads=1))
    if recognition:
        config = resolve_models(config)
    shash = settings_fingerprint(config, recognition, max_frames)
    return [BatchJob(input=spec, out_dir=str(out_root / name), config=config,
                     recognition=recognition, max_frames=max_frames, settings_hash=shash,
                     force=force, stop_file=str(out_root / STOP_NAME))
            for spec, name in zip(inputs, output_names(inputs), strict=True)]


def run_batch(jobs: Sequence[BatchJob], out_root: Path, *, workers: int = 1,
              ray: str | None = None, use_ray: bool = False,
              stop: Callable[[], bool] | None = None,
              on_start: Callable[[int, BatchJob], None] | None = None,
              on_done: Callable[[int, JobResult], None] | None = None,
              frame_progress: ProgressFn | None = None) -> BatchReport:
    """Run the jobs and write ``out_root/summary.csv``.

    Inputs already done (:func:`completed_record`) are skipped here without starting a
    worker (unless their job has ``force``). The rest run in this process (``workers`` 1),
    in ``workers`` worker processes, or as Ray tasks (``use_ray``; ``ray`` the cluster's
    address, None or ``"local"`` for a local Ray of ``workers`` CPUs).

    Args:
        stop: True when the user asked to stop (Ctrl+C): inputs not started are
            ``cancelled``, running ones stop after their current frame.
        on_start, on_done: called (in this process) when an input starts (serial runs
            only) and when it is finished, with its index.
        frame_progress: frame progress of the input running (serial runs only).

    Raises:
        MestudioError: the output folder cannot be created; for Ray: Ray missing, the
            cluster unreachable, storage not shared.
    """
    t0 = time.perf_counter()
    out_root = Path(os.path.abspath(out_root))
    if use_ray:
        check_storage(out_root, [j.input for j in jobs])
    try:
        out_root.mkdir(parents=not use_ray, exist_ok=True)
    except OSError as exc:
        raise MestudioError(f"cannot create output folder {out_root}: "
                            f"{exc.strerror or exc}") from exc
    stop_file = out_root / STOP_NAME
    with contextlib.suppress(OSError):
        stop_file.unlink()  # left by a run that was killed
    results = [JobResult(input=j.input, output=j.out_dir) for j in jobs]
    summary = out_root / SUMMARY_NAME
    user_stop = stop or (lambda: False)

    def done(i: int, r: JobResult) -> None:
        results[i] = r
        with contextlib.suppress(OSError):
            write_summary(summary, results, durable=False)
        if on_done is not None:
            on_done(i, r)

    # What is already done needs no worker.
    todo: list[int] = []
    for i, job in enumerate(jobs):
        r = _precheck(job)
        if r is not None:
            done(i, r)
        else:
            todo.append(i)
    n = max(1, min(int(workers), len(todo))) if todo else 1
    mode = "ray" if use_ray else ("serial" if n == 1 else "processes")
    interrupted = False
    try:
        if todo and use_ray:
            interrupted = _run_ray(jobs, largest_first(jobs, todo), out_root, ray,
                                   max(1, int(workers)), user_stop, done)
        elif todo and n == 1:
            for i in todo:
                if user_stop():
                    interrupted = True
                    done(i, dataclasses.replace(results[i], status="cancelled"))
                    continue
                if on_start is not None:
                    on_start(i, jobs[i])
                done(i, run_job(jobs[i], progress=frame_progress, stop=user_stop))
            interrupted = interrupted or user_stop()
        elif todo:
            interrupted = _run_processes(jobs, largest_first(jobs, todo), n, stop_file,
                                         user_stop, done)
    finally:
        with contextlib.suppress(OSError):
            stop_file.unlink()
        for i, r in enumerate(results):
            if r.status == "pending":
                results[i] = dataclasses.replace(r, status="cancelled")
        write_summary(summary, results)
    report = BatchReport(results=results, interrupted=interrupted, mode=mode,
                         workers=n if not use_ray else max(1, int(workers)),
                         wall_s=time.perf_counter() - t0, summary_path=summary)
    report.counts = {s: report.count(s) for s in STATUSES if report.count(s)}
    return report


def largest_first(jobs: Sequence[BatchJob], todo: list[int]) -> list[int]:
    """``todo`` with the biggest inputs first (bytes on disk, a cheap stand-in for their
    work; folders: their files'): the workers then finish together instead of one long
    recording running alone at the end. Ties keep the given order."""
    def size(i: int) -> int:
        path = Path(jobs[i].input)
        try:
            if path.is_dir():
                return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
            return path.stat().st_size
        except OSError:  # a demo spec or an unreadable input: its job says why
            return 0

    sizes = {i: size(i) for i in todo}
    return sorted(todo, key=lambda i: -sizes[i])


def _precheck(job: BatchJob) -> JobResult | None:
    """The ``skipped`` result of an input already done, else None (also for inputs whose
    fingerprint fails: the job reports that)."""
    if job.force:
        return None
    try:
        rec = completed_record(Path(job.out_dir), input_fingerprint(job.input),
                               job.settings_hash)
    except (MestudioError, OSError):
        return None
    if rec is None:
        return None
    r = JobResult(input=job.input, output=job.out_dir, status="skipped", wall_s=0.0)
    for k, v in (rec.get("stats") or {}).items():
        if hasattr(r, k):
            setattr(r, k, v)
    return r


def _request_stop(stop_file: Path) -> None:
    with contextlib.suppress(OSError):
        stop_file.touch()


#: What a worker needs before its first frame; the fork server imports it once for all of
#: them. No torch: model inputs are made with ONNX Runtime (:mod:`mestudio.flow.graph`).
WORKER_PRELOAD = ("numpy", "cv2", "onnxruntime", "mestudio.engine.analysis", "mestudio.batch",
                  "mestudio.engine.pipeline", "mestudio.engine.recognition", "mestudio.flow.graph")


def worker_context() -> multiprocessing.context.BaseContext:
    """How worker processes start: from a fork server that has imported the libraries once
    (Linux and other POSIX systems: each worker then starts with them loaded, instead of
    paying about 1.5 s of CPU to import them again), else spawned. The server is a fresh,
    single-threaded process that only imports, so forking it is safe where forking this
    process (with its threads) would not be; it starts with one thread per library, as the
    workers run."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(WORKER_PRELOAD))
    # The server takes this process's environment when it starts: one thread per library
    # for OpenMP/BLAS (read when it loads them), without changing it for this process.
    saved = {var: os.environ.get(var) for var in THREAD_ENV}
    os.environ.update({var: "1" for var in THREAD_ENV})
    try:
        forkserver.ensure_running()
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
    return ctx


def _run_processes(jobs: Sequence[BatchJob], todo: list[int], n: int, stop_file: Path,
                   stop: Callable[[], bool], done: Callable[[int, JobResult], None]) -> bool:
    """Run ``todo`` in ``n`` worker processes, at most ``n`` submitted at a time (so a stop
    cancels everything not started). A worker that dies (killed, out of memory) breaks the
    pool and every input running in it (which one died cannot be told); those inputs are
    run again, once, in a new pool, and fail only when the pool breaks under them a
    second time."""
    queue = list(todo)
    retried: set[int] = set()
    interrupted = False
    level = logging.getLogger().getEffectiveLevel()
    ctx = worker_context()
    while queue and not interrupted:
        pool = cf.ProcessPoolExecutor(max_workers=n, mp_context=ctx,
                                      initializer=init_worker, initargs=(level, os.getpid()))
        running: dict[cf.Future[JobResult], int] = {}
        broken = False
        try:
            while queue or running:
                while queue and len(running) < n and not interrupted and not broken:
                    i = queue.pop(0)
                    job = dataclasses.replace(jobs[i], limit_threads=True)
                    running[pool.submit(run_job, job)] = i
                if not running:
                    break
                finished, _ = cf.wait(running, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    i = running.pop(fut)
                    try:
                        done(i, fut.result())
                    except cf.process.BrokenProcessPool as exc:
                        broken = True
                        if i not in retried and not interrupted:
                            retried.add(i)
                            queue.insert(0, i)
                            log.warning("%s: a worker process died while it ran; running "
                                        "it again", jobs[i].input)
                            continue
                        done(i, JobResult(input=jobs[i].input, output=jobs[i].out_dir,
                                          status="failed", error="the worker process "
                                          f"running it died twice ({_one_line(str(exc))[:120]})"))
                    except Exception as exc:
                        done(i, JobResult(input=jobs[i].input, output=jobs[i].out_dir,
                                          status="failed", error=_error_text(exc)))
                if not interrupted and stop():
                    interrupted = True
                    _request_stop(stop_file)
                    for i in queue:
                        done(i, JobResult(input=jobs[i].input, output=jobs[i].out_dir,
                                          status="cancelled"))
                    queue.clear()
                if broken and not running:
                    break
        except BaseException:
            _request_stop(stop_file)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return interrupted


def _storage_folders(inputs: Sequence[str]) -> list[str]:
    """The folders a Ray node must see to read the inputs that exist here: image-sequence
    folders, and the folders that hold the video files."""
    folders = []
    for spec in inputs:
        if spec.startswith("demo") or not os.path.exists(spec):
            continue
        folders.append(spec if os.path.isdir(spec) else os.path.dirname(spec))
    return list(dict.fromkeys(folders))


def _run_ray(jobs: Sequence[BatchJob], todo: list[int], out_root: Path, address: str | None,
             num_cpus: int, stop: Callable[[], bool],
             done: Callable[[int, JobResult], None]) -> bool:
    """Run ``todo`` as Ray tasks of one CPU each (:mod:`mestudio.raysupport`: a local Ray of
    ``num_cpus`` CPUs, or the cluster at ``address``); on a cluster, check first that every
    node sees the inputs' folders and ``out_root``. See :func:`run_batch`."""
    from mestudio.raysupport import check_shared_storage, ray_session, task_error

    cluster = None if address in (None, "", "local") else address
    with ray_session(cluster, num_cpus=num_cpus) as session:
        ray = session.ray
        check_shared_storage(session, read=_storage_folders([jobs[i].input for i in todo]),
                             write=[out_root])
        task = ray.remote(_ray_task).options(num_cpus=1, max_retries=0)
        refs = {task.remote(dataclasses.replace(jobs[i], limit_threads=True)): i for i in todo}
        interrupted = False
        stop_file = out_root / STOP_NAME
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.2)
                for ref in ready:
                    i = refs.pop(ref)
                    try:
                        done(i, ray.get(ref))
                    except Exception as exc:
                        done(i, JobResult(input=jobs[i].input, output=jobs[i].out_dir,
                                          status="failed",
                                          error="Ray task failed: " + task_error(exc)))
                if not interrupted and stop():
                    interrupted = True
                    _request_stop(stop_file)  # queued tasks start and stop at once
        except BaseException:
            _request_stop(stop_file)
            for ref in refs:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
    return interrupted
