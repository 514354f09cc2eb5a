"""Ray, the optional cluster backend (``pip install "mestudio[cluster]"``).

The one place that imports Ray, starts a local Ray in this process or connects to a
cluster, and checks that the folders a job uses are shared storage every node sees. Used
by ``mestudio train --ray`` and ``mestudio data prepare --ray``; a local run never imports
Ray.

* :func:`import_ray` turns Ray's usage statistics off (``RAY_USAGE_STATS_ENABLED=0``)
  before the first import; without Ray it raises a :class:`~mestudio.errors.ConfigError`
  whose one line says ``pip install "mestudio[cluster]"`` (the CLI exits 2).
* :func:`ray_session` (a context manager; :func:`start_ray` without one): ``address`` None
  or ``""`` and no ``RAY_ADDRESS`` in the environment start a local Ray in this process
  (``num_cpus``, no dashboard, worker logs not echoed, its temporary folder under the
  user cache: :func:`default_temp_dir`, where the last :data:`SESSIONS_KEPT` sessions'
  folders are kept); an address (``auto``, ``ray://head:10001``,
  ``head:6379``) or ``RAY_ADDRESS`` connects to an existing cluster. A Ray already
  initialised in this process is used as it is and left running.
* :func:`check_shared_storage`: the folders must be absolute and exist; connected to a
  cluster, one tiny task per alive node checks that it sees them (a token file the driver
  writes into every folder the job writes to).

::

    from mestudio.raysupport import add_ray_argument, check_shared_storage, ray_session

    add_ray_argument(parser, "analyse the videos")           # --ray [ADDRESS]
    ...
    with ray_session(args.ray, num_cpus=4) as session:        # args.ray: None = not asked
        check_shared_storage(session, read=[videos], write=[out])
        task = session.ray.remote(work).options(num_cpus=1, max_retries=1,
                                                retry_exceptions=True)
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from mestudio.errors import ConfigError

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "mestudio[cluster]"'
ADDRESS_ENV = "RAY_ADDRESS"
#: seconds the storage probe waits for every node
PROBE_TIMEOUT_S = 120.0
#: ``session_*`` folders of a local Ray kept in its temporary folder (Ray removes none)
SESSIONS_KEPT = 3
#: Ray keeps unix sockets under its temporary folder: paths are limited to 107 bytes
_MAX_TEMP_DIR = 60


def import_ray() -> ModuleType:
    """``ray``, with usage statistics off.

    Raises:
        ConfigError: Ray is not installed (the message says how to install it).
    """
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def ray_available() -> bool:
    """Whether Ray can be imported (it is not imported)."""
    import importlib.util

    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def default_temp_dir() -> Path:
    """``<user cache>/mestudio/ray``: where a local Ray keeps its session files.

    Ray puts unix sockets in there, whose paths are limited to 107 bytes: when the user
    cache path is too long, ``<temp>/mestudio-ray-<uid>`` is used.
    """
    from platformdirs import user_cache_dir

    path = Path(user_cache_dir("mestudio", appauthor=False)) / "ray"
    if len(str(path)) > _MAX_TEMP_DIR:
        uid = os.getuid() if hasattr(os, "getuid") else 0
        path = Path(tempfile.gettempdir()) / f"mestudio-ray-{uid}"
    return path


def prune_sessions(temp_dir: str | os.PathLike[str], keep: int = SESSIONS_KEPT) -> None:
    """Delete all but the ``keep`` newest ``session_*`` folders (a local Ray's logs) in
    ``temp_dir``."""
    import shutil

    sessions = sorted((p for p in Path(temp_dir).glob("session_2*")
                       if p.is_dir() and not p.is_symlink()), key=lambda p: p.name)
    for old in sessions[:-keep] if keep > 0 else sessions:
        shutil.rmtree(old, ignore_errors=True)


def resolve_address(address: str | None) -> str | None:
    """The cluster to connect to: ``address``, else ``$RAY_ADDRESS``, else None (a local
    Ray started in this process)."""
    if address:
        return address
    return os.environ.get(ADDRESS_ENV) or None


@dataclass
class RaySession:
    """A Ray this process uses.

    Attributes:
        ray: the ``ray`` module.
        address: the cluster connected to; None for a local Ray started in this process.
        started: this session called ``ray.init`` (and :meth:`close` shuts it down).
    """

    ray: ModuleType
    address: str | None
    started: bool

    @property
    def cluster(self) -> bool:
        """Connected to an existing cluster (not a Ray started in this process)."""
        return self.address is not None

    def nodes(self) -> list[dict[str, Any]]:
        """The alive nodes (``ray.nodes()`` entries)."""
        return [n for n in self.ray.nodes() if n.get("Alive", n.get("alive"))]

    def resources(self) -> dict[str, float]:
        """The cluster's total resources (``CPU``, ``GPU``, ...)."""
        return dict(self.ray.cluster_resources())

    def describe(self) -> str:
        """``local Ray, 4 CPUs`` / ``Ray cluster ADDRESS: 3 nodes, 48 CPUs, 2 GPUs``."""
        res = self.resources()
        cpus, gpus = int(res.get("CPU", 0)), res.get("GPU", 0)
        text = f"{cpus} CPUs" + (f", {gpus:g} GPUs" if gpus else "")
        if self.cluster:
            return f"Ray cluster {self.address}: {len(self.nodes())} node(s), {text}"
        return f"local Ray, {text}"

    def close(self) -> None:
        """Shut Ray down when this session started it."""
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False


def start_ray(address: str | None = None, *, num_cpus: int | None = None,
              temp_dir: str | os.PathLike[str] | None = None) -> RaySession:
    """Connect to a cluster or start a local Ray (see the module docstring).

    Args:
        address: cluster address; None/``""``: ``$RAY_ADDRESS`` or a local Ray.
        num_cpus: CPUs of a local Ray (default: the machine's cores); ignored for a cluster.
        temp_dir: session folder of a local Ray (default :func:`default_temp_dir`).

    Raises:
        ConfigError: Ray is missing, or the cluster cannot be reached.
    """
    ray = import_ray()
    target = resolve_address(address)
    if ray.is_initialized():
        logger.info("using the Ray already initialised in this process")
        return RaySession(ray, target, started=False)
    try:
        if target is not None:
            ray.init(address=target, log_to_driver=False)
            return RaySession(ray, target, started=True)
        folder = Path(temp_dir) if temp_dir is not None else default_temp_dir()
        folder = folder.expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        prune_sessions(folder, SESSIONS_KEPT - 1)  # with the new one: SESSIONS_KEPT
        ray.init(num_cpus=max(1, int(num_cpus or os.cpu_count() or 1)),
                 include_dashboard=False, log_to_driver=False, _temp_dir=str(folder))
    except ConnectionError as exc:
        raise ConfigError(f"cannot connect to the Ray cluster {target}: {exc}") from None
    return RaySession(ray, None, started=True)


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None,
                temp_dir: str | os.PathLike[str] | None = None) -> Iterator[RaySession]:
    """:func:`start_ray` as a context manager: a Ray it started is shut down at the end."""
    session = start_ray(address, num_cpus=num_cpus, temp_dir=temp_dir)
    try:
        yield session
    finally:
        session.close()


def add_ray_argument(parser: argparse.ArgumentParser, what: str = "run the work") -> None:
    """``--ray [ADDRESS]`` (``args.ray``: None when absent, ``""`` alone, else the address)."""
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help=f"{what} as Ray tasks: alone, on a local Ray started in this "
                             f"process (or the cluster of $RAY_ADDRESS); with ADDRESS, on that "
                             f"cluster. Folders must be shared storage every node sees. "
                             f"Needs {INSTALL_HINT}")


# ---- shared storage -------------------------------------------------------------------------
def _probe(read: list[str], tokens: list[str]) -> list[str]:
    """Runs on a node: the folders it cannot see (a read folder missing, a write folder
    without the driver's token file or not writable)."""
    missing = [p for p in read if not os.path.isdir(p)]
    for token in tokens:
        folder = os.path.dirname(token)
        if not os.path.isfile(token) or not os.access(folder, os.W_OK):
            missing.append(folder)
    return missing


def check_shared_storage(session: RaySession, *, read: Sequence[str | os.PathLike[str]] = (),
                         write: Sequence[str | os.PathLike[str]] = (),
                         timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Check that every node sees the folders: absolute and existing here; connected to a
    cluster, one tiny task per alive node looks for them (``write`` folders: a token file
    written here, so the node sees the same storage, not a folder of the same name).

    Raises:
        ConfigError: one line naming the folder (and the node) at fault.
    """
    folders = [Path(p) for p in [*read, *write]]
    for p in folders:
        if not p.is_absolute():
            raise ConfigError(f"{p}: Ray jobs need absolute paths (every node resolves them)")
        if not p.is_dir():
            raise ConfigError(f"{p} does not exist (Ray jobs need it on shared storage)")
    if not session.cluster:
        return
    ray = session.ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    tokens: list[str] = []
    stamp = uuid.uuid4().hex[:12]
    try:
        for folder in write:
            token = Path(folder) / f".mestudio-probe-{stamp}"
            token.write_text("mestudio shared-storage probe\n")
            tokens.append(str(token))
        probe = ray.remote(_probe)
        nodes = session.nodes()
        refs = {}
        for node in nodes:
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ref = probe.options(num_cpus=0, scheduling_strategy=strategy, max_retries=0
                                ).remote([str(p) for p in read], tokens)
            refs[ref] = node.get("NodeManagerAddress") or node["NodeID"][:12]
        try:
            answers = ray.get(list(refs), timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise ConfigError(f"the shared-storage probe got no answer from every Ray node in "
                              f"{timeout_s:.0f} s") from None
        except ray.exceptions.RayError as exc:
            raise ConfigError(f"the shared-storage probe failed on a Ray node: "
                              f"{str(exc).splitlines()[0]}") from None
        for name, missing in zip(refs.values(), answers, strict=True):
            if missing:
                raise ConfigError(f"Ray node {name} cannot see {missing[0]}: the dataset, "
                                  f"cache and output folders must be shared storage mounted "
                                  f"at the same path on every node")
        logger.info("shared storage seen by all %d Ray node(s)", len(nodes))
    finally:
        for name in tokens:
            Path(name).unlink(missing_ok=True)


def task_error(exc: BaseException) -> str:
    """One line for a failed Ray task: the task's own exception (``RuntimeError: ...``)
    when it raised one, else the Ray error (worker crashed, node died)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
