"""Training and feature preparation as Ray tasks (``mestudio train --ray``,
``mestudio data prepare --ray``).

* :class:`RayFolds` is the fold executor of :func:`mestudio.training.runner.run_protocol`:
  one Ray task per (seed, fold), each running :func:`mestudio.training.runner.fold_job` —
  the function the local paths run, with the same seeding and ``threads`` (default 1)
  torch threads — so a fold's predictions do not depend on where it ran. The features go
  to the object store once. A task that raises, or whose worker or node is lost, is
  retried once by Ray (``max_retries=1, retry_exceptions=True``); a second failure is
  yielded as a :class:`~mestudio.training.runner.FoldFailure` with its error, and the
  other folds go on. ``gpus_per_fold > 0`` requests that share of a GPU per task when the
  cluster has GPUs (the task then trains on ``cfg.device``, ``auto`` = CUDA); otherwise the
  task trains on the CPU.
* :func:`prepare_features_ray` spreads the samples to compute over Ray tasks in chunks;
  each sample goes through the function the local pool runs
  (:func:`mestudio.training.features._compute_one`), so the cache files are the same.

Ray itself is reached through :mod:`mestudio.raysupport`; the fold records and feature
files are written by the tasks, so the output and cache folders must be shared storage.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from mestudio.errors import ConfigError
from mestudio.raysupport import RaySession, task_error
from mestudio.training.config import TrainConfig
from mestudio.training.features import FeatureSet, FeatureSpec, PrepareReport
from mestudio.training.runner import Fold, FoldFailure, FoldJob

logger = logging.getLogger(__name__)

#: attempts of a task: the first and one retry
RETRIES = 1


def _fold_task(features: FeatureSet, y: np.ndarray, fold: Fold, cfg_dict: dict[str, Any],
               num_classes: int, seed: int, device: str, digest: str, path: str, threads: int,
               inject: str | None) -> dict[str, Any]:
    """Runs in a Ray worker: one fold through the local paths' :func:`fold_job`."""
    from mestudio.training.runner import fold_job, fold_summary, limit_threads, resolve_device

    limit_threads(threads)
    if device != "cpu":
        device = resolve_device(device)
    return fold_summary(fold_job(features, y, fold, cfg_dict, num_classes, seed, device, digest,
                                 path, inject=inject))


class RayFolds:
    """Runs folds as Ray tasks (see the module docstring).

    Args:
        session: the Ray to use (:func:`mestudio.raysupport.start_ray`).
        gpus_per_fold: GPUs per task (a fraction shares one); used only when the cluster
            has GPUs.
        threads: torch threads (and Ray CPUs) per task; 0 = 1.
        device: ``cfg.device``: with GPUs, what the task trains on (``auto`` = CUDA).

    Raises:
        ConfigError: a GPU device asked for without ``gpus_per_fold``.
    """

    def __init__(self, session: RaySession, *, gpus_per_fold: float = 0.0, threads: int = 0,
                 device: str = "auto") -> None:
        if gpus_per_fold < 0:
            raise ConfigError("--gpus-per-fold must be >= 0")
        self.session = session
        self.threads = max(1, int(threads or 1))
        cluster_gpus = float(session.resources().get("GPU", 0.0))
        if gpus_per_fold > 0 and cluster_gpus <= 0:
            logger.warning("--gpus-per-fold %g: the Ray cluster has no GPU; the folds train "
                           "on CPUs", gpus_per_fold)
            gpus_per_fold = 0.0
        if gpus_per_fold > 0 and device == "cpu":
            gpus_per_fold = 0.0
        if gpus_per_fold == 0 and device not in ("auto", "cpu"):
            raise ConfigError(f"--device {device} with --ray needs --gpus-per-fold (GPUs per "
                              "fold, e.g. 1 or 0.5); without it the folds train on CPUs")
        self.gpus_per_fold = gpus_per_fold
        self.task_device = device if gpus_per_fold > 0 else "cpu"
        gpu = f", {gpus_per_fold:g} GPU per fold" if gpus_per_fold else ""
        self.device = f"{self.task_device} ({session.describe()}{gpu})"

    def run_folds(self, features: FeatureSet, y: np.ndarray, jobs: Sequence[FoldJob], *,
                  cfg: TrainConfig, num_classes: int, digest: str, inject: str | None
                  ) -> Iterator[tuple[FoldJob, dict[str, Any] | FoldFailure]]:
        """Submit every job, yield each as it ends (see
        :class:`~mestudio.training.runner.FoldExecutor`)."""
        if not jobs:
            return
        ray = self.session.ray
        task = ray.remote(_fold_task).options(
            num_cpus=self.threads, num_gpus=self.gpus_per_fold, max_retries=RETRIES,
            retry_exceptions=True)
        feats_ref, y_ref = ray.put(features), ray.put(y)
        cfg_dict = cfg.to_dict()
        pending = {}
        for job in jobs:
            ref = task.remote(feats_ref, y_ref, job.fold, cfg_dict, num_classes, job.seed,
                              self.task_device, digest, str(job.path), self.threads, inject)
            pending[ref] = job
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    job = pending.pop(ref)
                    try:
                        yield job, ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        yield job, FoldFailure(job.seed, job.fold.name, task_error(exc),
                                               RETRIES + 1)
        finally:
            for ref in pending:  # interrupted: do not leave folds training
                ray.cancel(ref, force=True)


# ---- feature preparation --------------------------------------------------------------------
def _prepare_chunk(items: list[tuple[Any, str]], spec_dict: dict[str, Any]
                   ) -> list[dict[str, Any]]:
    """Runs in a Ray worker: the samples of a chunk through the local pool's function."""
    from mestudio.training.features import _compute_one, _init_worker

    _init_worker(1)
    return [_compute_one(sample, spec_dict, path) for sample, path in items]


def chunk_size(n: int, cpus: int, *, per_cpu: int = 4, most: int = 32) -> int:
    """Samples per task: about ``per_cpu`` tasks per CPU (balance), at most ``most``."""
    return max(1, min(most, math.ceil(n / max(1, cpus * per_cpu))))


def prepare_features_ray(session: RaySession, samples: Sequence[Any],
                         cache_dir: str | os.PathLike[str], spec: FeatureSpec, *,
                         dataset: str | None = None, progress: bool = True,
                         chunk: int | None = None) -> PrepareReport:
    """:func:`mestudio.training.features.prepare_features` with the samples to compute
    spread over Ray tasks (``chunk`` samples each; default :func:`chunk_size`). A chunk
    whose task fails twice (one retry) lists its samples as failed with the error."""
    from tqdm import tqdm

    from mestudio.training.features import plan_features

    t0 = time.perf_counter()
    report, todo, name = plan_features(samples, cache_dir, spec, dataset)
    bar = tqdm(total=len(samples), initial=report.cached, desc=f"features {name} (Ray)",
               unit="sample", file=sys.stderr, disable=not progress or None, dynamic_ncols=True)
    ray = session.ray
    size = chunk or chunk_size(len(todo), int(session.resources().get("CPU", 1)))
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    task = ray.remote(_prepare_chunk).options(num_cpus=1, max_retries=RETRIES,
                                              retry_exceptions=True)
    spec_dict = spec.to_dict()
    pending = {task.remote(c, spec_dict): c for c in chunks}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                items = pending.pop(ref)
                try:
                    results = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    error = f"{task_error(exc)} (Ray task, {RETRIES + 1} attempts)"
                    results = [{"id": s.id, "status": "failed", "error": error}
                               for s, _ in items]
                for res in results:
                    report.account(res)
                bar.update(len(results))
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        bar.close()
    return report.done(t0)

