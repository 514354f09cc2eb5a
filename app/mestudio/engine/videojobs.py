"""Long videos through the application's own pipeline, one job per video, resumable, in
this process or in worker processes: what ``spot-eval --dataset`` and ``spot-eval
--annotations`` run before :mod:`mestudio.spotting.megc` scores the results.

Each video gets ``frames.csv``, ``events.csv``, ``events.json``, the spotter's recorded
inputs (:data:`~mestudio.spotting.megc.INPUTS_NAME`, for replays) and a record
(:data:`~mestudio.spotting.megc.RECORD_NAME`) that lets a later run skip it when neither its
frames nor the settings changed.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mestudio.spotting.megc import (
    INPUTS_NAME,
    RECORD_FORMAT,
    RECORD_NAME,
    SpotterInputRecorder,
    save_spotter_inputs,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoJob:
    """One long video to analyse (picklable: travels to worker processes).

    Attributes:
        video_id: the dataset's video id (``"s15/15_0101disgustingteeth"``).
        paths: its frame images in frame order (:attr:`LongVideo.paths`).
        fps: its frame rate.
        out_dir: where ``events.json``, ``frames.csv``, ``events.csv``,
            :data:`INPUTS_NAME` and :data:`RECORD_NAME` go.
        config: the :class:`~mestudio.config.AppConfig`.
        recognition: recognise micro events.
        max_frames: analyse at most this many frames (None: all).
        settings_hash: :func:`mestudio.batch.settings_fingerprint` of the above.
        force: redo even when a complete analysis with the same hashes is there.
    """

    video_id: str
    paths: tuple[str, ...]
    fps: float
    out_dir: str
    config: Any
    recognition: bool
    max_frames: int | None
    settings_hash: str
    force: bool = False


def frames_fingerprint(paths: Sequence[str]) -> str:
    """SHA-256 of the name, size and modification time (ns) of every frame image."""
    h = hashlib.sha256(b"megc-frames\0")
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.basename(p)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def completed(out: Path, input_hash: str, settings_hash: str) -> bool:
    """Whether ``out`` holds a complete analysis of the same frames with the same settings."""
    try:
        rec = json.loads((out / RECORD_NAME).read_text(encoding="utf-8"))
        doc = json.loads((out / "events.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(rec, dict) and rec.get("format") == RECORD_FORMAT
            and rec.get("input_hash") == input_hash
            and rec.get("settings_hash") == settings_hash and rec.get("complete") is True
            and isinstance(doc, dict) and doc.get("complete") is True
            and (out / INPUTS_NAME).is_file())


def run_video(job: VideoJob) -> dict[str, Any]:
    """Analyse one long video with :func:`mestudio.engine.analysis.analyze_video` (the pipeline's
    spotter's inputs recorded by a :class:`SpotterInputRecorder`), write its files; never raises for a bad
    video. Returns ``{"video", "status" (ok/skipped/failed), "frames", "wall_s", "error"}``."""
    t0 = time.perf_counter()
    result: dict[str, Any] = {"video": job.video_id, "status": "failed", "frames": None,
                              "wall_s": None, "error": ""}
    try:
        out = Path(job.out_dir)
        input_hash = frames_fingerprint(job.paths)
        if not job.force and completed(out, input_hash, job.settings_hash):
            result["status"] = "skipped"
            return result
        _analyse(job, out, input_hash, result)
        result["status"] = "ok"
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # one video never stops the others
        log.debug("video %s failed", job.video_id, exc_info=True)
        result["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())
    finally:
        result["wall_s"] = time.perf_counter() - t0
    return result


def _analyse(job: VideoJob, out: Path, input_hash: str, result: dict[str, Any]) -> None:
    from mestudio.capture.imageseq import ImageSequenceSource
    from mestudio.engine.analysis import analyze_video
    from mestudio.engine.pipeline import Pipeline
    from mestudio.errors import MestudioError
    from mestudio.events_io import write_events_csv, write_events_json
    from mestudio.fsutil import atomic_path, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(ImageSequenceSource(list(job.paths), fps=job.fps)) as source:
        recorder = SpotterInputRecorder()
        pipeline = Pipeline.from_config(job.config, recognition=job.recognition,
                                        spotter_inputs=recorder)
        try:
            if pipeline.spotter is None:
                raise MestudioError("spotting is off in this installation: "
                                    + "; ".join(pipeline.degraded))
            with atomic_path(out / "frames.csv") as tmp_csv:
                res = analyze_video(source, job.config, pipeline=pipeline,
                                    max_frames=job.max_frames, frames_csv=tmp_csv)
        finally:
            pipeline.close()
    meta = res.events_meta(str(Path(job.paths[0]).parent))
    meta["megc"] = {"video": job.video_id, "fps": job.fps, "frames_listed": len(job.paths)}
    save_spotter_inputs(out / INPUTS_NAME, recorder.calls)
    write_events_csv(out / "events.csv", res.events)
    write_events_json(out / "events.json", res.events, meta)
    record = {"format": RECORD_FORMAT, "video": job.video_id, "input_hash": input_hash,
              "settings_hash": job.settings_hash, "complete": bool(res.complete),
              "frames": res.n_frames, "events": len(res.events)}
    atomic_write_text(out / RECORD_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")
    result["frames"] = res.n_frames


def run_videos(jobs: Sequence[VideoJob], workers: int = 1,
               on_done: Callable[[int, dict[str, Any]], None] | None = None
               ) -> list[dict[str, Any]]:
    """Run the jobs: in this process (``workers`` 1) or in ``workers`` processes started
    as the batch analysis starts its own (:func:`mestudio.batch.worker_context`: from a fork
    server that imported the libraries once; one thread per library; a worker ends when
    this process is gone). Results in job order."""
    results: list[dict[str, Any]] = [{} for _ in jobs]
    if workers <= 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            results[i] = run_video(job)
            if on_done is not None:
                on_done(i, results[i])
        return results
    from mestudio.batch import init_worker, worker_context  # one thread per library each

    level = logging.getLogger().getEffectiveLevel()
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(),
                                initializer=init_worker, initargs=(level, os.getpid())) as pool:
        futures = {pool.submit(run_video, j): i for i, j in enumerate(jobs)}
        try:
            for fut in cf.as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:  # a worker died
                    results[i] = {"video": jobs[i].video_id, "status": "failed",
                                  "frames": None, "wall_s": None, "error": str(exc)}
                if on_done is not None:
                    on_done(i, results[i])
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results
