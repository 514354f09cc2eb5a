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
  (``num_cpus``, no dashboard, worker logs not echoed, Ray's own log lines going to
  mestudio's log instead of stderr, its session files in a private temporary folder made
  for this run by :func:`private_temp_dir` and removed when the session closes, and its
  authentication token in the environment of its processes instead of ``~/.ray``); an address (``auto``, ``ray://head:10001``,
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
import secrets
import shutil
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
#: Ray keeps unix sockets under its temporary folder (``<folder>/session_<date>_<time>_<us>
#: _<pid>/sockets/plasma_store``, about 70 bytes): paths are limited to 107 bytes
_MAX_TEMP_DIR = 36
#: a temporary folder longer than this is not used for Ray's (``/tmp`` is)
_MAX_TEMP_BASE = 20


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


def private_temp_dir() -> Path:
    """A new, private folder for a local Ray's session files, removed by
    :meth:`RaySession.close`.

    Ray puts unix sockets in there (``session_<date>_<pid>/sockets/plasma_store``) whose
    paths are limited to 107 bytes, so the folder is short by construction: made by
    ``mkdtemp`` (mode 0700, a random name, never an existing path or a symlink) in the
    temporary folder when its path is short, else in ``/tmp``. Its owner and mode are
    checked after it was made.
    """
    base = tempfile.gettempdir()
    if len(base) > _MAX_TEMP_BASE or not os.path.isdir(base):
        base = "/tmp" if os.path.isdir("/tmp") else base
    folder = Path(tempfile.mkdtemp(prefix="mestudio-ray-", dir=base))
    st = folder.lstat()
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o077):
        raise ConfigError(f"cannot make a private folder for Ray in {base}")
    if len(str(folder)) > _MAX_TEMP_DIR:
        shutil.rmtree(folder, ignore_errors=True)
        raise ConfigError(f"the temporary folder {base} is too long for Ray's sockets: set "
                          "TMPDIR to a short path")
    return folder


_TOKEN: list[str] = []


def _private_auth_token() -> None:
    """A local Ray uses token authentication; unless the user configured it, its token (one
    per process) goes to its processes through the environment (inherited) instead of being
    written to ``~/.ray/auth_token``, outside mestudio's documented files."""
    if not _TOKEN:
        _TOKEN.append(secrets.token_hex(32))
    ours = _TOKEN[0]
    token = os.environ.get("RAY_AUTH_TOKEN")
    if os.environ.get("RAY_AUTH_TOKEN_PATH") or (token and token != ours) or (
            os.environ.get("RAY_AUTH_MODE") and token != ours):
        return  # the user's own configuration
    if token == ours and os.environ.get("RAY_AUTH_MODE") == "token":
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = ours
    try:  # Ray caches the token (and its absence) per process: read it again
        from ray._raylet import (  # type: ignore[attr-defined]
            AuthenticationTokenLoader,
            Config,
        )

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # pragma: no cover - another Ray version
        logger.debug("Ray's token cache could not be reset")


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
    temp_dir: Path | None = None

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
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None


def start_ray(address: str | None = None, *, num_cpus: int | None = None,
              temp_dir: str | os.PathLike[str] | None = None) -> RaySession:
    """Connect to a cluster or start a local Ray (see the module docstring).

    Args:
        address: cluster address; None/``""``: ``$RAY_ADDRESS`` or a local Ray.
        num_cpus: CPUs of a local Ray (default: the machine's cores); ignored for a cluster.
        temp_dir: session folder of a local Ray, kept (default: a private one made by
            :func:`private_temp_dir`, removed by :meth:`RaySession.close`).

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
            ray.init(address=target, log_to_driver=False, configure_logging=False)
            return RaySession(ray, target, started=True)
    except ConnectionError as exc:
        raise ConfigError(f"cannot connect to the Ray cluster {target}: {exc}") from None
    own = temp_dir is None
    folder = private_temp_dir() if own else Path(temp_dir).expanduser().resolve()  # type: ignore[arg-type]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _private_auth_token()
        ray.init(num_cpus=max(1, int(num_cpus or os.cpu_count() or 1)),
                 include_dashboard=False, log_to_driver=False, configure_logging=False,
                 _temp_dir=str(folder))
    except BaseException:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return RaySession(ray, None, started=True, temp_dir=folder if own else None)


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
