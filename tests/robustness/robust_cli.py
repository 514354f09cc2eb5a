"""Helpers of the robustness tests: run ``mestudio`` as a user does (a subprocess of the
same interpreter), and small file systems that are full or read-only (tmpfs, root only)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``mestudio`` subprocess: the test's (isolated XDG folders,
    ``MESTUDIO_MODELS_DIR``), the package on the path, offscreen Qt, one thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "app"), env.get("PYTHONPATH", "")])
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def mestudio(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0
             ) -> subprocess.CompletedProcess:
    """``python -m mestudio ARGS`` to completion; stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", "mestudio", *args], capture_output=True,
                          text=True, env=env or cli_env(), timeout=timeout, cwd=ROOT)


def error_line(proc: subprocess.CompletedProcess, command: str) -> str:
    """The one error line of a failed command (asserts: exit 2, exactly one such line, no
    traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"mestudio {command}: ")]
    assert len(lines) == 1, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    return lines[0]


def temp_leftovers(folder: Path) -> list[str]:
    """Hidden temporary files/folders a writer left in ``folder`` (recursively)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*")
                  if ".tmp" in p.name)


class SmallFs:
    """A mounted tmpfs of ``size`` bytes at :attr:`path`; :meth:`fill` leaves only a few KB
    free, :meth:`read_only` remounts it read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self, leave: int = 2048) -> None:
        free = os.statvfs(self.path).f_bavail * os.statvfs(self.path).f_frsize
        filler = self.path / f"filler-{uuid.uuid4().hex[:6]}"
        with open(filler, "wb") as f:
            try:
                f.write(b"\0" * max(0, free - leave))
            except OSError:  # the size is in pages: full is full enough
                pass

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)


def _can_mount() -> str | None:
    if sys.platform != "linux":
        return "tmpfs mounts need Linux"
    if os.geteuid() != 0:
        return "mounting a small tmpfs (full / read-only disk) needs root"
    return None


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFs]:
    """A 256 KiB tmpfs (full or read-only on demand); skipped when it cannot be mounted."""
    why = _can_mount()
    if why:
        pytest.skip(why)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield SmallFs(mnt)
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
