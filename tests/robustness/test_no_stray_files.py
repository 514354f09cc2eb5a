"""``mestudio analyze`` writes its outputs and nothing else: no ONNX Runtime telemetry
database or device id, no file anywhere under a fresh home or user folders (the kiosk's
promise: nothing stored but its event log)."""

from __future__ import annotations

from pathlib import Path

from robust_cli import cli_env, mestudio

#: Files mestudio itself may keep in the user folders (settings, model cache), relative to
#: the home folder. Anything else that appears there fails the test.
DOCUMENTED = ()


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir()}


def test_analyze_writes_nothing_outside_its_outputs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "out"
    env = cli_env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                  XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local/share"),
                  TMPDIR=str(tmp_path / "tmp"))
    env.pop("ORT_DISABLE_TELEMETRY", None)  # the program itself must turn telemetry off
    (tmp_path / "tmp").mkdir()
    proc = mestudio("analyze", "demo:duration=1.5", "--out", str(out), "--no-progress",
                    env=env)
    assert proc.returncode == 0, proc.stderr
    assert "model m3enet_synthetic" in proc.stdout or "degraded" in proc.stdout
    new_home = _files(home)
    assert not any("onnxruntime" in f or "Microsoft" in f for f in new_home), new_home
    assert new_home <= set(DOCUMENTED), new_home
    assert _files(out) == {"frames.csv", "events.csv", "events.json"}
    assert _files(tmp_path / "tmp") == set()
