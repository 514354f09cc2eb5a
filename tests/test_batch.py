"""``mestudio analyze`` with several inputs (:mod:`mestudio.batch`): a failing input among
good ones, resuming (skip what is done, redo what was interrupted, ``--force``), worker
processes and Ray giving the same files as a serial run, and the ``--ray`` errors."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mestudio import batch
from mestudio.cli import main

# Short synthetic clips (2 s, 15-20 frames analysed): distinct inputs, no shared data needed.
DEMO_A = "demo:duration=2,seed=1"
DEMO_B = "demo:duration=2,seed=2"
DEMO_C = "demo:duration=2,seed=3"
OUTPUTS = ("frames.csv", "events.csv", "events.json", batch.RECORD_NAME)


def _analyze(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["analyze", *argv, "--no-progress"])
    return code, out.getvalue()


def _summary(out: Path) -> list[dict[str, str]]:
    with (out / batch.SUMMARY_NAME).open(newline="") as f:
        return list(csv.DictReader(f))


def _folder(spec: str) -> str:
    return batch.output_names([spec])[0]


def _without_timing(path: Path) -> bytes:
    """A file's bytes, without the recogniser's latency lines of events.json (timing)."""
    lines = path.read_bytes().splitlines(keepends=True)
    return b"".join(x for x in lines if b"latency_ms" not in x)


def _same_outputs(a: Path, b: Path, names: list[str]) -> None:
    import difflib

    for name in names:
        for f in OUTPUTS:
            x, y = _without_timing(a / name / f), _without_timing(b / name / f)
            diff = "\n".join(difflib.unified_diff(
                x.decode(errors="replace").splitlines(), y.decode(errors="replace").splitlines(),
                lineterm="", n=1))
            assert x == y, f"{name}/{f} differs:\n{diff}"


def test_a_corrupt_input_fails_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    out = tmp_path / "out"
    code, stdout = _analyze(DEMO_A, str(bad), DEMO_B, str(tmp_path / "missing.mp4"),
                            "--out", str(out), "--workers", "1", "--max-frames", "15",
                            "--no-recognition")
    assert code == 1
    assert "2 ok, 2 failed" in stdout
    err = capsys.readouterr().err
    failed_lines = [x for x in err.splitlines() if "mestudio analyze: failed:" in x]
    assert len(failed_lines) == 2 and "Traceback" not in err
    rows = _summary(out)
    assert [r["status"] for r in rows] == ["ok", "failed", "ok", "failed"]
    assert list(rows[0]) == list(batch.SUMMARY_COLUMNS)
    assert "decode" in rows[1]["error"] and str(bad) in rows[1]["error"]
    assert "no such file" in rows[3]["error"]
    for r in (rows[0], rows[2]):
        assert r["frames"] == "15" and r["error"] == "" and float(r["peak_rss_mb"]) > 0
        doc = json.loads((Path(r["output"]) / "events.json").read_text())
        assert doc["complete"] is True and doc["source"] == r["input"]
    assert not (out / "corrupt").exists() or not (out / "corrupt" / "events.json").exists()


def test_resume_skips_what_is_done_and_redoes_what_was_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = (DEMO_A, DEMO_B, DEMO_C, "--out", str(out), "--workers", "1", "--max-frames", "15",
            "--no-recognition")
    assert _analyze(*argv)[0] == 0
    a, b, c = (out / _folder(s) for s in (DEMO_A, DEMO_B, DEMO_C))
    mtimes = {p: (p / "frames.csv").stat().st_mtime_ns for p in (a, b, c)}
    # Everything done: a second run skips it all and touches nothing.
    code, stdout = _analyze(*argv)
    assert code == 0 and "3 skipped" in stdout
    rows = _summary(out)
    assert [r["status"] for r in rows] == ["skipped"] * 3
    assert rows[0]["frames"] == "15"                     # the figures of the earlier run
    assert all((p / "frames.csv").stat().st_mtime_ns == mtimes[p] for p in (a, b, c))
    # Killed midway: A stopped with its outputs incomplete, B before its events.json.
    doc = json.loads((a / "events.json").read_text())
    doc["complete"] = False
    (a / "events.json").write_text(json.dumps(doc))
    (b / "events.json").unlink()
    code, stdout = _analyze(*argv)
    assert code == 0
    assert [r["status"] for r in _summary(out)] == ["ok", "ok", "skipped"]
    assert json.loads((a / "events.json").read_text())["complete"] is True
    assert (b / "events.json").is_file()
    assert (c / "frames.csv").stat().st_mtime_ns == mtimes[c]
    # Other settings: not the same analysis, redone.
    code, _ = _analyze(*argv[:-1])
    assert [r["status"] for r in _summary(out)] == ["ok"] * 3
    # --force redoes everything.
    code, _ = _analyze(*argv[:-1], "--force")
    assert code == 0 and [r["status"] for r in _summary(out)] == ["ok"] * 3


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("serial")
    code, _ = _analyze(DEMO_A, DEMO_B, DEMO_C, "--out", str(out), "--workers", "1",
                       "--max-frames", "20")
    assert code == 0
    return out, [_folder(s) for s in (DEMO_A, DEMO_B, DEMO_C)]


def test_two_worker_processes_write_the_same_files(serial_run, tmp_path: Path) -> None:
    serial, names = serial_run
    out = tmp_path / "out"
    code, stdout = _analyze(DEMO_A, DEMO_B, DEMO_C, "--out", str(out), "--workers", "2",
                            "--max-frames", "20")
    assert code == 0 and "2 worker processes" in stdout
    rows = _summary(out)
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert all(float(r["peak_rss_mb"]) > 0 for r in rows)
    _same_outputs(serial, out, names)


def test_ray_on_a_local_ray_writes_the_same_files(serial_run, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install \"mestudio[cluster]\")")
    serial, names = serial_run
    out = tmp_path / "out"
    code, stdout = _analyze(DEMO_A, DEMO_B, DEMO_C, "--out", str(out), "--ray",
                            "--workers", "2", "--max-frames", "20")
    assert code == 0 and "Ray (local, 2 CPUs)" in stdout
    assert [r["status"] for r in _summary(out)] == ["ok"] * 3
    _same_outputs(serial, out, names)


def test_ray_with_long_user_folders_keeps_its_files_private_and_removes_them(
        serial_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A long cache folder, HOME and TMPDIR (Ray's sockets are limited to 107 bytes): the
    local Ray still starts, writes nothing under HOME (no ~/.ray/auth_token), prints none
    of its log lines, and its private session folder is gone afterwards."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install \"mestudio[cluster]\")")
    import tempfile as _tempfile

    serial, names = serial_run
    deep = tmp_path / ("a-rather-long-folder-name-for-a-user-" * 3) / "x"
    home, tmp = deep / "home", deep / "tmp"
    for d in (home, tmp, deep / "cache"):
        d.mkdir(parents=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(deep / "cache"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp))
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    before = {p.name for p in Path("/tmp").glob("mestudio-ray-*")}
    out = tmp_path / "out"
    code, stdout = _analyze(DEMO_A, DEMO_B, DEMO_C, "--out", str(out), "--ray",
                            "--workers", "2", "--max-frames", "20")
    err = capsys.readouterr().err
    assert code == 0, err
    _same_outputs(serial, out, names)
    assert list(home.rglob("*")) == []
    assert {p.name for p in Path("/tmp").glob("mestudio-ray-*")} <= before
    assert list(tmp.glob("mestudio-ray-*")) == []
    assert "Started a local Ray" not in err and "ray" not in err.lower()


def test_ray_without_ray_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)           # import ray -> ImportError
    code, _ = _analyze(DEMO_A, DEMO_B, "--out", str(tmp_path / "out"), "--ray")
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "mestudio[cluster]"' in err[0]
    assert not (tmp_path / "out").exists()


def test_ray_needs_an_output_folder_whose_parent_exists(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    out = tmp_path / "not" / "there" / "out"
    code, _ = _analyze(DEMO_A, DEMO_B, "--out", str(out), "--ray")
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and "every Ray node" in err[0]
    assert not out.parent.exists()


def test_inputs_expand_folders_and_lists_with_unique_names(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    (videos / "day2").mkdir(parents=True)
    (videos / "seq").mkdir()
    for p in (videos / "a.mp4", videos / "day2" / "a.mp4", videos / "notes.txt",
              videos / "seq" / "img1.jpg", videos / "seq" / "img2.jpg"):
        p.write_bytes(b"x")
    listfile = tmp_path / "list.txt"
    listfile.write_text("# recordings\nvideos/a.mp4\n\nvideos/seq  \n")
    assert batch.is_collection(str(videos)) and batch.is_collection(f"@{listfile}")
    assert not batch.is_collection(str(videos / "seq"))       # an image sequence: one input
    inputs = batch.expand_inputs([str(videos), f"@{listfile}", "demo"])
    assert inputs == [str(videos / "a.mp4"), str(videos / "day2" / "a.mp4"),
                      str(videos / "seq"), "demo"]              # each once, in order
    assert batch.output_names(inputs) == ["a", "a-2", "seq", "demo"]
    with pytest.raises(batch.MestudioError, match="camera"):
        batch.expand_inputs(["camera:0"])
    with pytest.raises(batch.MestudioError, match="does not exist"):
        batch.expand_inputs([f"@{tmp_path / 'nope.txt'}"])


def test_a_folder_with_a_link_loop_lists_each_recording_once(tmp_path: Path) -> None:
    """``dir/sub/up -> ..`` made the folder's video be analysed 41 times (issue 22, item 7):
    folders and files are followed once, by their real path."""
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    (videos / "x.mp4").write_bytes(b"x")
    (videos / "sub" / "y.mp4").write_bytes(b"y")
    (videos / "sub" / "up").symlink_to("..", target_is_directory=True)
    (videos / "same.mp4").symlink_to(videos / "x.mp4")
    inputs = batch.expand_inputs([str(videos), str(videos / "x.mp4")])
    # name order: same.mp4 (a link to x.mp4) comes first and stands for x.mp4
    assert inputs == [str(videos / "same.mp4"), str(videos / "sub" / "y.mp4")]


def test_a_stop_cancels_the_inputs_not_started(tmp_path: Path) -> None:
    from mestudio.config import AppConfig

    jobs = batch.make_jobs([DEMO_A, DEMO_B], tmp_path / "out", AppConfig(),
                           recognition=False, max_frames=10)
    finished: list[str] = []
    report = batch.run_batch(jobs, tmp_path / "out", workers=1,
                             stop=lambda: bool(finished),
                             on_done=lambda i, r: finished.append(r.status))
    assert report.interrupted
    assert [r.status for r in report.results] == ["ok", "cancelled"]
    assert [r["status"] for r in _summary(tmp_path / "out")] == ["ok", "cancelled"]
    assert not (tmp_path / "out" / batch.STOP_NAME).exists()


def test_bench_single_clip_is_a_640x360_recording_of_the_asked_length(tmp_path):
    """`bench analyze` measures one video on a 640x360 30 fps recording of a given length."""
    import cv2

    from mestudio.bench.analyze import single_clip

    src = tmp_path / "src.avi"
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 300))
    for i in range(5):
        w.write(np.full((300, 320, 3), 40 * i, np.uint8))
    w.release()
    n = single_clip(src, tmp_path / "clip.mp4", seconds=1.0)
    cap = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    shape, count = None, 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        shape, count = img.shape, count + 1
    assert n == count == 30 and shape == (360, 640, 3)


def test_parallel_runs_start_the_biggest_inputs_first(tmp_path: Path) -> None:
    """Worker processes take the biggest recordings first, so one long recording does not
    run alone at the end; the summary keeps the order the user gave."""
    small, big, folder = tmp_path / "small.mp4", tmp_path / "big.mp4", tmp_path / "seq"
    small.write_bytes(b"x" * 10)
    big.write_bytes(b"x" * 1000)
    folder.mkdir()
    for k in range(3):
        (folder / f"{k:03d}.png").write_bytes(b"x" * 200)
    jobs = [batch.BatchJob(input=str(p), out_dir=str(tmp_path / "o" / p.name), config=None,
                           recognition=False, max_frames=None, settings_hash="")
            for p in (small, Path("demo:duration=1"), big, folder)]
    assert batch.largest_first(jobs, [0, 1, 2, 3]) == [2, 3, 0, 1]
    assert batch.largest_first(jobs, [0, 1]) == [0, 1]


def test_a_killed_worker_costs_no_input(tmp_path: Path) -> None:
    """kill -9 of one worker process (issue 22, item 8): it failed the killed input and one
    more; now the inputs of the broken pool run again, once, and all succeed."""
    import signal
    import threading
    import time

    import psutil

    out = tmp_path / "out"
    inputs = ["demo:duration=6,seed=1", "demo:duration=6,seed=2", "demo:duration=6,seed=3"]
    result: dict[str, object] = {}

    def run() -> None:
        result["code"], result["stdout"] = _analyze(*inputs, "--out", str(out), "--workers",
                                                    "2", "--no-recognition")

    t = threading.Thread(target=run)
    t.start()
    me = psutil.Process()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and t.is_alive():
        busy = any(p.name.startswith(".frames.csv.") for d in out.glob("*") if d.is_dir()
                   for p in d.iterdir()) if out.is_dir() else False
        if busy:
            for child in me.children(recursive=True):
                try:
                    parent = child.parent()
                    if parent is not None and "forkserver" in " ".join(parent.cmdline()):
                        child.send_signal(signal.SIGKILL)
                        killed = child.pid
                        break
                except psutil.Error:
                    continue
        time.sleep(0.05)
    t.join(timeout=300)
    assert killed is not None, "no worker process was found to kill"
    assert result["code"] == 0, result
    assert [r["status"] for r in _summary(out)] == ["ok"] * 3


def test_workers_end_when_the_main_process_is_killed(tmp_path: Path) -> None:
    """kill -9 of ``mestudio analyze --workers 2`` left the fork server, the resource
    tracker and the workers running (issue 22, item 8): they all end by themselves."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    import psutil

    out = tmp_path / "out"
    # the killed process cannot remove its multiprocessing folder (the fork server's socket):
    # a private, short temporary folder keeps it out of the machine's /tmp
    private_tmp = tempfile.mkdtemp(prefix="mst-")
    proc = subprocess.Popen([sys.executable, "-m", "mestudio", "analyze",
                             "demo:duration=120,seed=1", "demo:duration=120,seed=2", "--out",
                             str(out), "--workers", "2", "--no-recognition", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": private_tmp})
    main_proc = psutil.Process(proc.pid)
    deadline = time.monotonic() + 90
    family: list[psutil.Process] = []
    while time.monotonic() < deadline:
        family = main_proc.children(recursive=True)
        busy = out.is_dir() and any(p.name.startswith(".frames.csv.")
                                    for d in out.iterdir() if d.is_dir() for p in d.iterdir())
        if busy and len(family) >= 3:   # fork server, resource tracker, workers
            break
        time.sleep(0.1)
    assert len(family) >= 3, family
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(family, timeout=20)
    for p in alive:
        p.kill()
    shutil.rmtree(private_tmp, ignore_errors=True)
    assert alive == [], [(p.pid, p.cmdline()[:3]) for p in alive]
