"""Atomic writes (``mestudio.fsutil``): the mode follows the umask (not mkstemp's 0600), the
data is fsync-ed before the rename, a failed write leaves the old file and no temporary file,
and the package's writers go through it."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from mestudio import fsutil
from mestudio.fsutil import atomic_path, atomic_write_bytes, atomic_write_text

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
def test_written_files_get_the_mode_the_umask_gives(tmp_path: Path, umask_022) -> None:
    text = atomic_write_text(tmp_path / "a" / "x.json", "{}\n")
    data = atomic_write_bytes(tmp_path / "y.bin", b"\x00\x01")
    assert text.read_text() == "{}\n" and data.read_bytes() == b"\x00\x01"
    assert _mode(text) == 0o644 and _mode(data) == 0o644
    os.umask(0o077)
    assert _mode(atomic_write_text(tmp_path / "private.txt", "s")) == 0o600


def test_data_is_fsynced_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fsutil.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(fsutil.os, "replace",
                        lambda a, b: (calls.append("replace"), real_replace(a, b)))
    atomic_write_text(tmp_path / "x.txt", "hello")
    assert calls[:2] == ["fsync", "replace"]
    calls.clear()
    atomic_write_text(tmp_path / "cache.txt", "hello", durable=False)
    assert calls == ["replace"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "events.json", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["events.json"]


def test_text_is_written_as_given(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "rows.csv", "a,b\r\nc,d\n")
    assert path.read_bytes() == b"a,b\r\nc,d\n"


@posix_only
def test_events_settings_and_annotations_files_are_readable_by_others(tmp_path: Path,
                                                                      umask_022) -> None:
    from mestudio.config import AppConfig, load_settings, save_settings
    from mestudio.events_io import write_events_csv, write_events_json

    paths = [write_events_json(tmp_path / "events.json", [], {"fps": 30.0}),
             write_events_csv(tmp_path / "events.csv", []),
             save_settings(AppConfig(), tmp_path / "settings.json")]
    assert all(_mode(p) == 0o644 for p in paths), [oct(_mode(p)) for p in paths]
    assert json.loads(paths[0].read_text())["events"] == []
    assert load_settings(paths[2]) == AppConfig()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv", "events.json",
                                                          "settings.json"]


def test_matplotlib_writes_under_mestudio_cache_not_home(tmp_path):
    """Charts (stats, training reports, spot-eval pictures) import matplotlib, which made
    ``~/.config/matplotlib``: its folder is mestudio's cache now."""
    import os
    import subprocess
    import sys

    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MPLCONFIGDIR"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), XDG_CONFIG_HOME=str(home / ".config"))
    code = ("from mestudio.fsutil import agg_matplotlib; m = agg_matplotlib(); "
            "import matplotlib.pyplot; print(m.get_configdir())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == str(cache / "mestudio" / "matplotlib")
    assert list(home.rglob("*")) == []
