"""``mestudio bench soak``: the kiosk pipeline running headless on a looping video, with the
process's memory (RSS) sampled over time.

A kiosk runs for days; this benchmark shows whether memory grows. It runs exactly what
``mestudio kiosk`` runs (:class:`mestudio.engine.kiosk.KioskSession`: ``LiveCapture``
looping a video → ``Pipeline`` → SQLite event log), without a window, and reports RSS at
regular intervals, the growth after a warm-up period and its linear trend in MB per hour.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

HELP = "run the kiosk pipeline on a looping video and report memory (RSS) over time"

#: Target: RSS trend after warm-up, MB per hour (a kiosk must run for weeks).
TARGET_GROWTH_MB_PER_H = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=1.0,
                        help="how long to run (minutes, default 1)")
    parser.add_argument("--source", default="demo",
                        help="video file, image folder or 'demo' (default), played in a loop")
    parser.add_argument("--samples", type=int, default=30,
                        help="number of RSS samples over the run (default 30)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="fraction of the run treated as warm-up; growth and trend are "
                        "measured on the rest (default 0.5: the second half)")
    parser.add_argument("--fast", action="store_true",
                        help="do not pace the video at its frame rate (process frames as fast "
                        "as possible)")
    parser.add_argument("--db", type=Path, default=None,
                        help="keep the event log in this file (default: a temporary file)")


def _rss_mb(proc: Any) -> float:
    return float(proc.memory_info().rss) / 2**20


def _trend_mb_per_h(t_s: np.ndarray, rss: np.ndarray) -> float:
    if len(t_s) < 3 or float(t_s[-1] - t_s[0]) <= 0:
        return float("nan")
    slope = float(np.polyfit(t_s, rss, 1)[0])  # MB per second
    return slope * 3600.0


def run(args: argparse.Namespace) -> dict:
    import psutil

    from mestudio.capture import open_source
    from mestudio.config import AppConfig, load_settings
    from mestudio.engine.kiosk import KioskSession

    cfg: AppConfig = load_settings()
    cfg = dataclasses.replace(cfg, kiosk=dataclasses.replace(cfg.kiosk, exhibit="soak",
                                                             loop_file=True))
    duration_s = max(1.0, float(args.minutes) * 60.0)
    n_samples = max(3, int(args.samples))
    interval = duration_s / n_samples
    proc = psutil.Process()
    tmp = None
    db = args.db
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="mestudio-soak-")
        db = Path(tmp.name) / "soak.sqlite"

    def open_fn():  # noqa: ANN202
        return open_source(args.source, cfg.capture)

    rss0 = _rss_mb(proc)
    t_build = time.perf_counter()
    session = KioskSession(cfg, open_fn, db, pace=not args.fast, loop=True)
    build_s = time.perf_counter() - t_build
    samples: list[tuple[float, float, int]] = []
    print(f"soak: {args.source} for {duration_s / 60:.1f} min, RSS every {interval:.1f} s "
          f"(start {rss0:.0f} MB, after loading the pipeline {_rss_mb(proc):.0f} MB)",
          flush=True)
    states: dict[str, int] = {}
    try:
        session.start()
        t0 = time.perf_counter()
        next_sample = 0.0
        while True:
            elapsed = time.perf_counter() - t0
            if elapsed >= next_sample:
                gc.collect()
                rss = _rss_mb(proc)
                samples.append((elapsed, rss, session.processed))
                print(f"  {elapsed:7.1f} s  RSS {rss:7.1f} MB  frames {session.processed:6d}  "
                      f"events {sum(session.logged.values()):4d}", flush=True)
                next_sample += interval
            if elapsed >= duration_s:
                break
            status = session.step(timeout=0.5)
            states[status.state] = states.get(status.state, 0) + 1
            if status.state == "ended":
                log.warning("the looping source ended: %s", status.message)
                break
        run_s = time.perf_counter() - t0
        dropped = int(getattr(session.capture, "dropped", 0))
    finally:
        session.close()
        if tmp is not None:
            tmp.cleanup()
    t = np.array([s[0] for s in samples], dtype=np.float64)
    rss_mb = np.array([s[1] for s in samples], dtype=np.float64)
    warm = t >= args.warmup * (t[-1] if len(t) else 0.0)
    base = float(rss_mb[warm][0]) if warm.any() else float(rss_mb[0])
    growth = float(rss_mb[-1] - base)
    trend = _trend_mb_per_h(t[warm], rss_mb[warm])
    fps = session.processed / run_s if run_s > 0 else 0.0
    figures = {
        "minutes": round(run_s / 60.0, 2),
        "source": str(args.source),
        "pipeline_build_s": round(build_s, 2),
        "frames": session.processed,
        "fps": round(fps, 1),
        "dropped": dropped,
        "events_logged": dict(session.logged),
        "rss_start_mb": round(float(rss_mb[0]), 1),
        "rss_after_warmup_mb": round(base, 1),
        "rss_end_mb": round(float(rss_mb[-1]), 1),
        "rss_max_mb": round(float(rss_mb.max()), 1),
        "growth_after_warmup_mb": round(growth, 1),
        "trend_mb_per_h": round(trend, 1) if np.isfinite(trend) else None,
        "target_mb_per_h": TARGET_GROWTH_MB_PER_H,
        "samples": [(round(a, 1), round(b, 1)) for a, b, _ in samples],
    }
    ok = np.isfinite(trend) and trend <= TARGET_GROWTH_MB_PER_H
    print()
    print(f"{'figure':<34}{'value':>14}")
    print(f"{'run time (min)':<34}{figures['minutes']:>14}")
    print(f"{'frames processed':<34}{session.processed:>14}")
    print(f"{'processed fps':<34}{fps:>14.1f}")
    print(f"{'frames dropped (capture)':<34}{dropped:>14}")
    print(f"{'events logged (micro/macro/visit)':<34}"
          f"{'/'.join(str(session.logged[k]) for k in ('micro', 'macro', 'visit')):>14}")
    print(f"{'RSS start / after warm-up (MB)':<34}{rss_mb[0]:>7.1f} /{base:>5.1f}")
    print(f"{'RSS end / max (MB)':<34}{rss_mb[-1]:>7.1f} /{rss_mb.max():>5.1f}")
    print(f"{'growth after warm-up (MB)':<34}{growth:>14.1f}")
    trend_txt = f"{trend:.1f}" if np.isfinite(trend) else "n/a"
    ratio = (f"{trend / TARGET_GROWTH_MB_PER_H:.2f}× target"
             if np.isfinite(trend) else "too short")
    print(f"{'RSS trend (MB/h)':<34}{trend_txt:>14}   target <= {TARGET_GROWTH_MB_PER_H:g} "
          f"MB/h ({ratio}) {'OK' if ok else 'CHECK'}")
    print("(timings on a shared machine are noisy; short runs overstate the trend)")
    return figures
