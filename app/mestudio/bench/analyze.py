"""``mestudio bench analyze``: whole-recording analysis, one recording and many.

Measures, with the shared face videos (:mod:`mestudio.shareddata`):

1. **one video, whole process**: ``mestudio analyze VIDEO`` as a new process (imports,
   model loading, tracking, spotting, recognition, files) on a 640x360 30 fps recording of
   each length of ``--single-seconds`` (20 s and 5 min: the shared talking-head clip,
   cropped to 16:9 and played back and forth), its wall time, how many times real time that
   is (best and median of ``--repeats``; targets 5x at 20 s, 10x at 5 min) and its peak
   memory (target 250 MB);
2. **a batch**: ``--inputs`` copies of the shared videos (cycled; ``--max-frames`` frames
   each) with ``--workers 1`` pinned to one core, ``--workers 1`` and ``--workers 2`` (each a
   whole ``mestudio analyze`` process, ``--force``): wall time, frames/s and the speed-ups
   (two cores against one, and two workers against one);
3. **the same batch through ``--ray``** on a local Ray of 2 CPUs: the overhead against
   local worker processes;
4. **a simulated 3-node cluster** on this machine (``ray.cluster_utils.Cluster``, one CPU
   per node): the batch as Ray tasks, how many tasks ran on each node, and the per-node
   storage check;
5. the peak memory (RSS) of each worker, from ``summary.csv``.

Parts 3 and 4 need Ray (``pip install "mestudio[cluster]"``) and are skipped without it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mestudio.shareddata import shared_data_dir

HELP = ("batch analysis: one video as a whole process (x real time), N videos with 1 vs 2 "
        "worker processes, through Ray, and on a simulated 3-node Ray cluster")
VIDEOS = ("single_face.mp4", "frontal_speech.mp4", "face_then_noface.mov",
          "noface_then_face.mov")
SINGLE_VIDEO = "frontal_speech.mp4"
#: whole-process speed of one recording (x real time): a 20 s one (starting counts) and a
#: recording of 5 minutes or more, recognition on, one 2-core machine
TARGET_X_SHORT = 5.0
TARGET_X_LONG = 10.0
#: peak resident memory of one ``mestudio analyze`` process
TARGET_RSS_MB = 250.0
TARGET_SPEEDUP_2 = 1.7


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", type=int, default=8,
                        help="recordings in the batch (copies of the shared videos) (8)")
    parser.add_argument("--max-frames", type=int, default=120,
                        help="frames analysed per recording of the batch; 0: whole clips (120)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of the single-video and batch runs (interleaved); the "
                             "best time of each counts (1)")
    parser.add_argument("--single-seconds", default="20,300",
                        help="lengths of the single-video recordings, seconds, comma-separated "
                        "(20,300: a short one, where starting counts, and a 5-minute one)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray parts")
    parser.add_argument("--no-cluster", action="store_true",
                        help="skip the simulated 3-node cluster")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with the videos (default: data/video of the shared data)")


def _lengths(text: str | float) -> list[float]:
    values = [float(v) for v in str(text).split(",") if v.strip()]
    if not values or any(not (v > 0) for v in values):
        raise ValueError(f"--single-seconds: positive lengths, comma-separated, got {text!r}")
    return values


def _single_run(source: Path, work: Path, seconds: float, repeats: int) -> dict[str, Any]:
    """``mestudio analyze`` of a ``seconds``-long 640x360 recording made from ``source``, as
    a new process: wall time (best and median of ``repeats``), CPU, peak memory."""
    clip = work / f"single-{seconds:g}s.mp4"
    single_clip(source, clip, seconds)
    walls: list[float] = []
    cpus: list[float] = []
    peaks: list[float] = []  # empty where the OS does not say (Windows)
    n, dur = 0, 0.0
    out = work / "single"
    for _ in range(max(1, repeats)):
        shutil.rmtree(out, ignore_errors=True)
        wall, proc, cpu, peak = _cli("analyze", str(clip), "--out", str(out), "--no-progress")
        if proc.returncode != 0:
            return {"video": clip.name, "error": (proc.stderr or "").strip()[-300:]}
        doc = json.loads((out / "events.json").read_text())
        n = int(doc.get("n_frames") or 0)
        dur = n / float(doc.get("fps") or 30.0)
        walls.append(wall)
        cpus.append(cpu)
        if peak is not None:
            peaks.append(peak)
    best = min(walls)
    return {"video": f"{source.name} as 640x360", "frames": n, "video_s": dur, "wall_s": best,
            "median_wall_s": sorted(walls)[len(walls) // 2], "cpu_s": cpus[walls.index(best)],
            "runs": len(walls), "x_real_time": dur / best if best else 0.0,
            "peak_rss_mb": max(peaks) if peaks else None,
            "target_x": TARGET_X_LONG if dur >= 300 - 1e-6 else TARGET_X_SHORT}


def _peak_text(peak: float | None) -> str:
    if peak is None:
        return "peak RSS not known on this OS"
    return (f"peak RSS {peak:.0f} MB (target <= {TARGET_RSS_MB:g} MB: "
            f"{'OK' if peak <= TARGET_RSS_MB else 'MISSED'})")


def _cpu_s() -> float:
    """CPU seconds used so far: by the whole machine where Linux says (``/proc/stat``: the
    worker processes of a batch start from a fork server and are not this process's
    children; on a quiet machine this is their work), else by the finished child
    processes."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0.0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _one_core() -> set[int] | None:
    """One CPU of this process's affinity set (None where affinity cannot be set)."""
    try:
        return {min(os.sched_getaffinity(0))}
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not Linux
        return None


def _cli(*argv: str, cpus: set[int] | None = None
         ) -> tuple[float, subprocess.CompletedProcess[str], float, float | None]:
    """Run ``mestudio ARGV`` as a new process (on the CPUs ``cpus`` only, when given); its
    wall time, result, CPU seconds (:func:`_cpu_s`: the machine's, so other load on it
    counts too) and peak resident memory in MB (:func:`mestudio.bench._process.run_mestudio`)."""
    from mestudio.bench._process import run_mestudio

    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    proc, peak = run_mestudio(["-q", *argv], env=env, preexec_fn=pin)
    return time.perf_counter() - t0, proc, _cpu_s() - cpu0, peak


def single_clip(source: Path, dest: Path, seconds: float, fps: float = 30.0,
                size: tuple[int, int] = (640, 360)) -> int:
    """Write ``seconds`` of ``source`` cropped to the aspect of ``size``, resized to it and
    played back and forth (ping-pong, no jumps), at ``fps``, to ``dest`` (MP4). Returns the
    number of frames."""
    import cv2

    cap = cv2.VideoCapture(str(source))
    frames = []
    w, h = size
    while True:
        ok, img = cap.read()
        if not ok:
            break
        ih, iw = img.shape[:2]
        cw, ch = (iw, round(iw * h / w)) if iw * h <= ih * w else (round(ih * w / h), ih)
        y0, x0 = (ih - ch) // 2, (iw - cw) // 2
        frames.append(cv2.resize(img[y0:y0 + ch, x0:x0 + cw], size,
                                 interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        raise ValueError(f"{source}: no frames")
    n = max(1, round(seconds * fps))
    period = max(1, len(frames) - 1)
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
    writer = cv2.VideoWriter(str(dest), fourcc, fps, size)
    try:
        for i in range(n):
            k, r = divmod(i, period)
            writer.write(frames[0 if len(frames) == 1 else (r if k % 2 == 0 else period - r)])
    finally:
        writer.release()
    return n


def _summary(out: Path) -> list[dict[str, str]]:
    with (out / "summary.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _batch_figures(name: str, wall: float, rows: list[dict[str, str]]) -> dict[str, Any]:
    frames = sum(int(r["frames"] or 0) for r in rows)
    seconds = sum(float(r["seconds"] or 0) for r in rows)
    rss = [float(r["peak_rss_mb"]) for r in rows if r["peak_rss_mb"]]
    return {"name": name, "wall_s": wall, "inputs": len(rows),
            "ok": sum(r["status"] == "ok" for r in rows), "frames": frames,
            "frames_per_s": frames / wall if wall > 0 else 0.0,
            "x_real_time": seconds / wall if wall > 0 else 0.0,
            "peak_rss_mb_max": max(rss) if rss else None,
            "peak_rss_mb_mean": sum(rss) / len(rss) if rss else None}


def _run_cli_batch(name: str, listfile: Path, out: Path, *extra: str,
                   cpus: set[int] | None = None) -> dict[str, Any]:
    wall, proc, cpu, _peak = _cli("analyze", f"@{listfile}", "--out", str(out), "--force",
                           "--no-progress", *extra, cpus=cpus)
    if proc.returncode != 0:
        return {"name": name, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    fig = _batch_figures(name, wall, _summary(out))
    fig["cpu_s"] = cpu
    return fig


def _cluster_run(inputs: list[str], out: Path, max_frames: int) -> dict[str, Any]:
    """The batch on a simulated cluster of 3 one-CPU nodes (this machine)."""
    from mestudio import batch, raysupport
    from mestudio.config import load_settings

    ray = raysupport.import_ray()
    from ray.cluster_utils import Cluster

    t_start = time.perf_counter()
    temp = raysupport.private_temp_dir()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "temp_dir": str(temp),
        "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        start_s = time.perf_counter() - t_start
        jobs = batch.make_jobs(inputs, out, load_settings(), recognition=True,
                               max_frames=max_frames or None, force=True)
        t0 = time.perf_counter()
        # The cluster's address: the per-node storage check runs as on a real cluster.
        report = batch.run_batch(jobs, out, workers=3, ray=cluster.address, use_ray=True)
        wall = time.perf_counter() - t0
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    per_node = Counter(r.node for r in report.results)
    fig = _batch_figures("ray, 3-node cluster (1 CPU each)", wall, _summary(out))
    fig["cluster_start_s"] = start_s
    fig["tasks_per_node"] = {n[:8]: per_node.get(n, 0) for n in nodes}
    fig["nodes"] = len(nodes)
    return fig


def run(args: argparse.Namespace) -> dict:
    data = args.data or ((shared_data_dir() or Path("missing")) / "video")
    videos = [data / v for v in VIDEOS if (data / v).is_file()]
    if not videos:
        print(f"no shared videos in {data}: set MESTUDIO_TEST_DATA or pass --data")
        return {"error": "no videos"}
    from mestudio.raysupport import ray_available

    work = Path(tempfile.mkdtemp(prefix="mestudio-bench-analyze-"))
    figures: dict[str, Any] = {"cores": os.cpu_count(), "inputs": args.inputs,
                               "max_frames": args.max_frames, "repeats": args.repeats,
                               "load_before": _load()}
    try:
        # 1. one video, whole process, at each length
        single = data / SINGLE_VIDEO if (data / SINGLE_VIDEO).is_file() else videos[0]
        figures["single_runs"] = [
            _single_run(single, work, seconds, args.repeats)
            for seconds in _lengths(args.single_seconds)]
        if figures["single_runs"]:
            figures["single"] = figures["single_runs"][0]
        # 2. the batch: copies of the shared videos
        inputs = []
        for i in range(args.inputs):
            src = videos[i % len(videos)]
            dst = work / "in" / f"clip{i:02d}{src.suffix}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            inputs.append(str(dst))
        listfile = work / "inputs.txt"
        listfile.write_text("\n".join(inputs) + "\n")
        mf = ("--max-frames", str(args.max_frames)) if args.max_frames > 0 else ()
        have_ray = ray_available() and not args.no_ray
        one = _one_core()
        configs: list[tuple[str, str, tuple[str, ...], set[int] | None]] = [
            ("workers 1", "w1", ("--workers", "1"), None),
            ("workers 2", "w2", ("--workers", "2"), None)]
        if one is not None:
            configs.insert(0, ("workers 1, one core", "w1c", ("--workers", "1"), one))
        if have_ray:
            configs.append(("ray, local (2 CPUs)", "ray", ("--ray", "--workers", "2"), None))
        best: dict[str, dict[str, Any]] = {}
        # Interleaved rounds, the best wall time of each: the load of other work on the
        # machine shifts over minutes.
        for _ in range(max(1, args.repeats)):
            for name, folder, extra, pin in configs:
                r = _run_cli_batch(name, listfile, work / folder, *extra, *mf, cpus=pin)
                if name not in best or ("wall_s" in r and r["wall_s"] < best[name].get(
                        "wall_s", float("inf"))):
                    best[name] = r
        runs = [best[name] for name, *_ in configs]
        if have_ray:
            if not args.no_cluster:
                try:
                    runs.append(_cluster_run(inputs, work / "cluster", args.max_frames))
                except Exception as exc:  # report it, keep the other figures
                    runs.append({"name": "ray, 3-node cluster", "error": str(exc)[:200]})
        figures["batch"] = runs
        by = {r["name"]: r for r in runs}
        w1, w2 = by["workers 1"].get("wall_s"), by["workers 2"].get("wall_s")
        w1c = by.get("workers 1, one core", {}).get("wall_s")
        if w1c and w2:
            figures["speedup_2_cores"] = w1c / w2
        if w1 and w2:
            figures["speedup_2_workers"] = w1 / w2
            # What 2 idle cores would give: the CPU work of the 2-worker run spread over 2
            # cores, against the serial run's CPU work (other load on the machine stretches
            # wall times, not CPU seconds).
            c1 = by.get("workers 1, one core", by["workers 1"]).get("cpu_s")
            c2 = by["workers 2"].get("cpu_s")
            if c1 and c2:
                figures["cpu_overhead_2_workers"] = c2 / c1
                figures["speedup_2_workers_idle_estimate"] = c1 / (c2 / 2)
        ray_run = by.get("ray, local (2 CPUs)", {})
        if w2 and ray_run.get("wall_s"):
            figures["ray_overhead_s"] = ray_run["wall_s"] - w2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures["load_after"] = _load()
    _print(figures)
    return figures


def _load() -> float | None:
    """The 1-minute load average (other work on the machine skews every figure)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return None


def _print(f: dict[str, Any]) -> None:
    load = "" if f.get("load_before") is None else \
        f"; load average {f['load_before']:.1f} before, {f['load_after']:.1f} after"
    each = f"{f['max_frames']} frames" if f["max_frames"] else "whole clips"
    print(f"{f['cores']} cores; batch of {f['inputs']} recordings x {each}{load}")
    for s in f.get("single_runs", []):
        if "error" in s:
            print(f"one video, whole process: {s['video']}: error: {s['error']}")
            continue
        x, target = s["x_real_time"], s["target_x"]
        print(f"one video, whole process: {s['video']} {s['frames']} frames "
              f"({s['video_s']:.1f} s of video) in {s['wall_s']:.1f} s "
              f"({s['cpu_s']:.1f} s CPU) = {x:.2f}x real time (best of "
              f"{s['runs']}, median {s['median_wall_s']:.1f} s; target >= {target:g}x: "
              f"{x / target:.2f} {'OK' if x >= target else 'MISSED'}); "
              + _peak_text(s["peak_rss_mb"]))
    print(f"{'run':<34}{'wall s':>8}{'CPU s':>8}{'frames/s':>10}{'x real':>8}"
          f"{'RSS MB max':>12}")
    for r in f.get("batch", []):
        if "error" in r:
            print(f"{r['name']:<34}  error: {r['error']}")
            continue
        rss = r["peak_rss_mb_max"]
        cpu = f"{r['cpu_s']:.1f}" if r.get("cpu_s") else "-"
        print(f"{r['name']:<34}{r['wall_s']:>8.1f}{cpu:>8}{r['frames_per_s']:>10.1f}"
              f"{r['x_real_time']:>8.2f}{(f'{rss:.0f}' if rss else '-'):>12}")
        if "tasks_per_node" in r:
            print(f"  {r['nodes']} nodes started in {r['cluster_start_s']:.1f} s; tasks per "
                  "node: " + ", ".join(f"{k} {v}" for k, v in r["tasks_per_node"].items()))
    if "speedup_2_cores" in f:
        print(f"speed-up on 2 cores over 1 core: {f['speedup_2_cores']:.2f}x (target "
              f"{TARGET_SPEEDUP_2}x)")
    if "speedup_2_workers" in f:
        sp = f["speedup_2_workers"]
        print(f"speed-up of 2 workers over 1 worker (both on every core; one worker already "
              f"decodes and tracks in threads beside its frame loop): {sp:.2f}x")
    if "speedup_2_workers_idle_estimate" in f:
        print(f"CPU work of 2 workers / 1 worker: {f['cpu_overhead_2_workers']:.2f}x (the "
              "machine's CPU time, other load included); spread over 2 idle cores that would "
              f"be a speed-up of {f['speedup_2_workers_idle_estimate']:.2f}x")
    if "ray_overhead_s" in f:
        print(f"Ray overhead against 2 local worker processes: {f['ray_overhead_s']:+.1f} s "
              "(starting Ray, its workers)")
