"""The evaluation protocols (LOSO, LODO), per-fold training and the final model.

No-leak policy (DATASETS.md):

* a fold's test samples (one subject for LOSO, one dataset for LODO) are never in its
  training set or its validation set;
* with ``validation = "none"`` (the default) every fold trains a fixed schedule and the
  last epoch's weights predict the test fold — nothing is selected;
* with ``validation = "subjects"`` a fraction of the fold's TRAINING subjects is held out
  and picks the epoch; the test fold is predicted once, with those weights;
* predictions are pooled over the folds and aligned with the labels by sample id
  (:func:`mestudio.training.metrics.pool_predictions`), then the metrics are computed.

Every fold's result is written as soon as it finishes (``OUT/seed_<s>/folds/<fold>.json``,
with the settings' digest): a run that is interrupted and started again skips the folds
already done. Several seeds give mean ± std over seeds of the pooled figures.

Ablations (applied to training AND test inputs):

* ``no-aug``: no augmentation (and no expansion);
* ``no-flow``: the network is built WITHOUT its flow streams (M3ENet: no ``u``, ``v``,
  ``strain`` stacks, embeddings or head inputs; it takes ``frames`` only); a network that
  cannot remove streams (no ``without`` argument) gets zero flow inputs instead, and the
  log says so;
* ``no-rgb``: the same for the frame streams (M3ENet: no key-frame stack and no
  onset/apex, offset/apex streams; it takes ``flow`` only);
* ``single-rgb``: one frame only — the apex frame (the middle frame of a clip) fills every
  frame slot;
* ``shuffled-rgb``: a spatial block shuffle of the frames: each frame is cut into
  :data:`SHUFFLE_GRID` x :data:`SHUFFLE_GRID` blocks which are put back in one fixed
  permutation (seed :data:`SHUFFLE_SEED`), the same for every frame and sample — the
  appearance is kept, its spatial layout destroyed;
* ``permuted-rgb``: the order of the key frames (of the clip frames) is randomly permuted
  per sample, so onset/apex/offset lose their meaning (what ``shuffled-rgb`` was before).

The parameter count of the network built (with its streams) is logged when a protocol
starts and kept in ``ProtocolResult.model_info`` for the report.

Augmentation (:mod:`mestudio.training.augment`): ``aug_mode = "online"`` draws fresh
transforms per batch; ``aug_mode = "offline"`` trains on the fixed expansion
:func:`offline_training_set` builds once per fold from the fold's training samples (the
test fold and its variants are never part of it).

Focal loss class weights: ``focal_alpha`` (:func:`mestudio.training.losses.class_weights`)
from the class counts of each fold's training samples.

Hooks: ``hook(event, **info)`` is called with ``fold_start`` (fold, train_ids, val_ids,
test_ids), ``train_batch`` (fold, epoch, ids), ``validate`` (fold, epoch, ids, score),
``test`` (fold, ids) and ``fold_end`` (fold, result) — in the training process (folds
trained by worker processes or Ray tasks report ``fold_start``/``fold_end`` only).

Executors: the folds × seeds run in this process (``workers = 1``), in ``workers`` spawned
processes, or as Ray tasks (``executor``: :class:`mestudio.training.cluster.RayFolds`,
``mestudio train --ray``). All run the one :func:`fold_job` with the same seeding (worker
processes and tasks with ``threads`` torch threads, default 1), so with the same thread count
a fold's record does not depend on where it ran. Locally a fold
that raises stops the run; a Ray task is retried once and then reported in
``ProtocolResult.failed`` while the other folds go on.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mestudio.errors import ConfigError, DatasetError
from mestudio.fsutil import atomic_write_text
from mestudio.training.config import TrainConfig
from mestudio.training.features import FeatureSet, safe_name
from mestudio.training.metrics import (
    PooledPredictions,
    compute_metrics,
    pool_predictions,
    pooled_metrics,
    summarise_seeds,
)

logger = logging.getLogger(__name__)

Hook = Callable[..., None]
FOLD_FORMAT = "mestudio-fold/1"
FRAME_INPUTS = ("frames", "clip")
FLOW_INPUTS = ("flow", "flow_seq")
#: ``shuffled-rgb``: blocks per side and the seed of the fixed block permutation.
SHUFFLE_GRID = 4
SHUFFLE_SEED = 0
#: Ablations that remove streams, and the stream group (``without``) each removes.
STREAM_ABLATIONS: dict[str, str] = {"no-flow": "flow", "no-rgb": "rgb"}


# ---- device ---------------------------------------------------------------------------------
def resolve_device(name: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``mps``, else ``cpu``.

    Raises:
        ConfigError: an explicit device that is not available.
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use auto or cpu)")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("--device mps: MPS is not available (use auto or cpu)")
    return name


# ---- folds ----------------------------------------------------------------------------------
@dataclass
class Fold:
    """One fold of a protocol: its name and the sample indices of each part."""

    name: str
    test: np.ndarray
    train: np.ndarray
    val: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def fold_groups(features: FeatureSet, protocol: str) -> list[str]:
    """The group each sample is tested with: its subject (``dataset/subject``, LOSO) or
    its dataset (LODO)."""
    if protocol == "loso":
        return list(features.subjects)
    if protocol == "lodo":
        return list(features.datasets)
    raise ConfigError(f"protocol must be loso or lodo, got {protocol!r}")


def make_folds(features: FeatureSet, protocol: str = "loso") -> list[Fold]:
    """One fold per subject (LOSO) or per dataset (LODO), in natural order.

    Raises:
        ConfigError: fewer than two groups (nothing to train on).
    """
    from mestudio.training.datasets.frames import natural_key

    groups = fold_groups(features, protocol)
    names = sorted(set(groups), key=natural_key)
    if len(names) < 2:
        what = "subjects" if protocol == "loso" else "datasets"
        raise ConfigError(f"{protocol.upper()} needs at least 2 {what}, the data has "
                          f"{len(names)} ({', '.join(names)})")
    g = np.array(groups)
    return [Fold(n, np.flatnonzero(g == n), np.flatnonzero(g != n)) for n in names]


def split_validation(fold: Fold, subjects: Sequence[str], fraction: float, seed: int) -> Fold:
    """Hold out ``fraction`` of the fold's TRAINING subjects (at least one) for validation.

    The test subjects are not candidates: they are not in ``fold.train``.

    Raises:
        ConfigError: fewer than two training subjects.
    """
    subj = np.array(subjects)
    train_subjects = sorted(set(subj[fold.train]))
    if len(train_subjects) < 2:
        raise ConfigError(f"fold {fold.name}: validation needs at least 2 training subjects")
    rng = np.random.default_rng([seed, _stable_int(fold.name)])
    n_val = max(1, int(round(fraction * len(train_subjects))))
    n_val = min(n_val, len(train_subjects) - 1)
    val_subjects = set(rng.choice(train_subjects, size=n_val, replace=False).tolist())
    is_val = np.isin(subj[fold.train], list(val_subjects))
    return Fold(fold.name, fold.test, fold.train[~is_val], fold.train[is_val])


def _stable_int(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little")


# ---- inputs ---------------------------------------------------------------------------------
def block_permutation(grid: int = SHUFFLE_GRID, seed: int = SHUFFLE_SEED) -> list[int]:
    """The fixed block permutation of ``shuffled-rgb`` (never the identity): output block
    ``i`` (row-major) is input block ``perm[i]``."""
    import torch

    perm = torch.randperm(grid * grid, generator=torch.Generator().manual_seed(seed)).tolist()
    if perm == sorted(perm):
        perm = perm[1:] + perm[:1]
    return [int(p) for p in perm]


def block_shuffle(x: Any, grid: int = SHUFFLE_GRID, seed: int = SHUFFLE_SEED) -> Any:
    """Permute ``grid x grid`` spatial blocks of every map of ``x [..., S, S]`` with the
    fixed :func:`block_permutation` (rows/columns beyond ``grid * (S // grid)`` stay)."""
    import torch

    h, w = int(x.shape[-2]), int(x.shape[-1])
    bh, bw = h // grid, w // grid
    if bh == 0 or bw == 0:
        raise ConfigError(f"shuffled-rgb: {h}x{w} maps are too small for {grid}x{grid} blocks")
    lead = tuple(x.shape[:-2])
    region = x[..., :grid * bh, :grid * bw].reshape(*lead, grid, bh, grid, bw)
    blocks = region.movedim(-2, -3).reshape(*lead, grid * grid, bh, bw)
    perm = torch.tensor(block_permutation(grid, seed), device=x.device)
    shuffled = blocks.index_select(len(lead), perm)
    back = shuffled.reshape(*lead, grid, grid, bh, bw).movedim(-3, -2)
    out = x.clone()
    out[..., :grid * bh, :grid * bw] = back.reshape(*lead, grid * bh, grid * bw)
    return out


def apply_ablation(inputs: dict[str, Any], ablation: str, generator: Any = None) -> dict[str, Any]:
    """Apply an input ablation to a batch of torch tensors (see the module docstring).

    ``no-flow``/``no-rgb`` zero the inputs here: the fallback for networks that cannot
    remove streams (:func:`input_ablation` skips it for those that did)."""
    import torch

    if ablation in ("none", "no-aug"):
        return inputs
    out = dict(inputs)
    if ablation == "no-flow":
        for k in FLOW_INPUTS:
            if k in out:
                out[k] = torch.zeros_like(out[k])
    elif ablation == "no-rgb":
        for k in FRAME_INPUTS:
            if k in out:
                out[k] = torch.zeros_like(out[k])
    elif ablation == "single-rgb":
        for k in FRAME_INPUTS:
            if k in out:
                x = out[k]
                mid = 1 if k == "frames" else x.shape[1] // 2
                out[k] = x[:, mid:mid + 1].expand_as(x).contiguous()
    elif ablation == "shuffled-rgb":
        for k in FRAME_INPUTS:
            if k in out:
                out[k] = block_shuffle(out[k])
    elif ablation == "permuted-rgb":
        for k in FRAME_INPUTS:
            if k in out:
                x = out[k]
                n, t = x.shape[:2]
                perm = torch.argsort(torch.rand(n, t, generator=generator), dim=1)
                idx = perm.view(n, t, *([1] * (x.dim() - 2))).expand_as(x).to(x.device)
                out[k] = torch.gather(x, 1, idx)
    else:
        raise ConfigError(f"unknown ablation {ablation!r}")
    return out


def input_ablation(ablation: str, model: Any) -> str:
    """The ablation still to apply to the inputs of ``model``: none for a stream ablation
    the network was built without (:func:`build_model`)."""
    if ablation in STREAM_ABLATIONS and STREAM_ABLATIONS[ablation] in \
            tuple(getattr(model, "removed_streams", ()) or ()):
        return "none"
    return ablation


def parameter_count(model: Any) -> int:
    """Trainable parameters of a network."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def model_info(model: Any, ablation: str = "none") -> dict[str, Any]:
    """What a report says about the network: parameters, streams, inputs, removed streams."""
    removed = list(getattr(model, "removed_streams", ()) or ())
    info = {"arch": getattr(model, "arch", type(model).__name__),
            "parameters": parameter_count(model),
            "streams": list(getattr(model, "stream_names", ()) or ()),
            "inputs": list(getattr(model, "input_names", ()) or ()),
            "removed_streams": removed}
    if ablation in STREAM_ABLATIONS and not removed:
        info["note"] = (f"{info['arch']} cannot remove streams: the {ablation} inputs are "
                        "zeros instead")
    return info


def build_model(cfg: TrainConfig, num_classes: int, features: FeatureSet) -> Any:
    """The network for these features (channels, size and clip length from the arrays:
    the input kind's :meth:`~mestudio.preprocess.InputKind.model_kwargs`)."""
    from mestudio.nets import create_model
    from mestudio.preprocess import input_kind

    kw = dict(cfg.model_kwargs)
    for key, value in input_kind(features.spec.kind).model_kwargs(features.inputs).items():
        kw.setdefault(key, value)
    group = STREAM_ABLATIONS.get(cfg.ablation)
    model = None
    if group is not None and "without" not in kw:
        try:
            model = create_model(cfg.model, num_classes, without=(group,), **kw)
        except TypeError:  # the network cannot remove streams: zero inputs instead
            logger.warning("%s cannot remove its %s streams: --ablation %s gives it zero "
                           "inputs instead", cfg.model, group, cfg.ablation)
        except ValueError as exc:
            raise ConfigError(f"cannot build model {cfg.model!r}: {exc}") from exc
    try:
        if model is None:
            model = create_model(cfg.model, num_classes, **kw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build model {cfg.model!r}: {exc}") from exc
    if model.input_kind != features.spec.kind:
        raise ConfigError(f"model {cfg.model} takes {model.input_kind} inputs but the features "
                          f"are {features.spec.kind}")
    return model


def _lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "step":
        return 1.0 if progress < 0.5 else (0.1 if progress < 0.75 else 0.01)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _batch(features: FeatureSet, idx: np.ndarray, device: str,
           names: Sequence[str] | None = None) -> dict[str, Any]:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v[idx])).to(device)
            for k, v in features.inputs.items() if names is None or k in names}


def predict(model: Any, features: FeatureSet, idx: np.ndarray, *, ablation: str = "none",
            device: str = "cpu", batch_size: int = 256, seed: int = 0) -> np.ndarray:
    """Class probabilities ``(len(idx), K)`` of the samples ``idx``."""
    import torch

    model.eval()
    names = list(model.input_names)
    out = []
    g = torch.Generator().manual_seed(10_000 + seed)
    ablation = input_ablation(ablation, model)
    with torch.no_grad():
        for start in range(0, len(idx), batch_size):
            b = _batch(features, idx[start:start + batch_size], device, names)
            b = apply_ablation(b, ablation, g)
            logits = model(*[b[n] for n in names])
            out.append(torch.softmax(logits.float(), 1).cpu().numpy())
    k = model.num_classes
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.float32)


@dataclass
class OfflineSet:
    """A fold's offline training set (:func:`offline_training_set`).

    Attributes:
        inputs: input name -> ``[M, ...]`` (``M = len(variants used) x training samples``).
        source: ``[M]`` index (into the features) of the sample each row comes from.
        variant: ``[M]`` variant name of each row.
    """

    inputs: dict[str, np.ndarray]
    source: np.ndarray
    variant: np.ndarray

    def __len__(self) -> int:
        return int(len(self.source))

    def ids(self, features: FeatureSet) -> list[str]:
        """``<sample id>#<variant>`` of every row."""
        return [f"{features.ids[i]}#{v}" for i, v in zip(self.source, self.variant,
                                                          strict=True)]


def offline_training_set(features: FeatureSet, train_idx: np.ndarray, cfg: TrainConfig
                         ) -> OfflineSet:
    """The offline expansion of a fold's training samples ``train_idx`` — and of nothing
    else: ``cfg.aug_expansion`` variants (:data:`mestudio.training.augment.OFFLINE_VARIANTS`)
    per sample, on the maps (``aug_stage = "maps"``) or taken from the variants computed
    from transformed crops (``"frames"``: ``features.variants``,
    :func:`mestudio.training.features.attach_offline_variants`).

    Raises:
        ConfigError: ``aug_stage = "frames"`` without the variants attached.
    """
    from mestudio.training.augment import AugmentParams, expand_offline, offline_variants

    idx = np.asarray(train_idx, dtype=np.int64)
    variants = offline_variants(cfg.aug_expansion)
    params = AugmentParams(cfg.aug_flip, cfg.aug_rotation_deg, cfg.aug_noise)
    if cfg.aug_stage == "maps":
        inputs = expand_offline({k: v[idx] for k, v in features.inputs.items()},
                                [features.ids[i] for i in idx], variants, params)
    else:
        missing = [v for v in variants if v != "original" and v not in features.variants]
        if missing:
            raise ConfigError("aug_stage=frames needs the variants computed from the face "
                              "crops (mestudio train computes them; in Python: "
                              "features.attach_offline_variants); missing: "
                              + ", ".join(missing))
        inputs = {k: np.concatenate([(features.inputs[k] if v == "original"
                                      else features.variants[v][k])[idx] for v in variants])
                  for k in features.inputs}
    return OfflineSet(inputs, np.tile(idx, len(variants)),
                      np.repeat(np.array(variants), len(idx)))


@dataclass
class TrainResult:
    """A trained network and how its training went."""

    model: Any
    history: list[dict[str, float]]
    epoch: int
    seconds: float
    samples_seen: int


def train_model(features: FeatureSet, y: np.ndarray, train_idx: np.ndarray, cfg: TrainConfig,
                num_classes: int, *, seed: int, device: str = "cpu",
                val_idx: np.ndarray | None = None, epochs: int | None = None,
                hook: Hook | None = None, fold: str = "", progress: bool = False,
                desc: str = "") -> TrainResult:
    """Train one network on ``train_idx`` (validation on ``val_idx`` when given).

    Args:
        features: all samples' inputs; ``y`` their class indices.
        train_idx, val_idx: sample indices (``val_idx`` must be training subjects only).
        cfg: optimiser, schedule, loss, augmentation, ablation.
        epochs: overrides ``cfg.epochs`` (the final model with a validated epoch count).
        hook: receives ``train_batch``/``validate`` events.
        progress: a tqdm bar over the epochs (stderr).

    Returns:
        The trained model (weights of the last epoch, or of the best validation epoch).
    """
    import torch

    from mestudio.training.augment import AugmentParams, augment_batch
    from mestudio.training.losses import FocalLoss, class_weights

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(cfg, num_classes, features).to(device)
    n_epochs = int(epochs or cfg.epochs)
    weights = class_weights(y[train_idx], num_classes, cfg.focal_alpha)
    criterion = FocalLoss(cfg.focal_gamma, weights).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr,
                                  betas=(float(cfg.betas[0]), float(cfg.betas[1])),
                                  weight_decay=cfg.weight_decay)
    augment = cfg.augment and cfg.ablation != "no-aug"
    offline = augment and cfg.aug_mode == "offline"
    copies = cfg.aug_expansion if augment else 1
    params = AugmentParams(cfg.aug_flip, cfg.aug_rotation_deg, cfg.aug_noise)
    names = list(model.input_names)
    ablation = input_ablation(cfg.ablation, model)
    pool: OfflineSet | None = None
    if offline:
        pool = offline_training_set(features, train_idx, cfg)
    per_epoch = len(pool) if pool is not None else len(train_idx) * copies
    steps_per_epoch = max(1, math.ceil(per_epoch / cfg.batch_size))
    total = steps_per_epoch * n_epochs
    warmup = cfg.warmup_epochs * steps_per_epoch
    min_ratio = cfg.min_lr / cfg.lr
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: _lr_factor(s, total, warmup, cfg.schedule, min_ratio))
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, Any]] | None = None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_epochs, desc=desc or f"fold {fold}", unit="epoch", leave=False,
                   file=sys.stderr, dynamic_ncols=True, disable=None)
    seen = 0
    try:
        for epoch in range(1, n_epochs + 1):
            model.train()
            if pool is not None:  # rows of the offline expansion
                order = rng.permutation(len(pool))
                flags = np.zeros(len(order), bool)
            else:
                order = np.concatenate([train_idx] * copies)
                flags = np.concatenate([np.zeros(len(train_idx), bool)]
                                       + [np.ones(len(train_idx), bool)] * (copies - 1))
                perm = rng.permutation(len(order))
                order, flags = order[perm], flags[perm]
            losses = []
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                if len(idx) < 2 and len(order) > 1:
                    continue  # batch norm cannot train on a single sample
                src = pool.source[idx] if pool is not None else idx
                if hook is not None:
                    hook("train_batch", fold=fold, epoch=epoch,
                         ids=[features.ids[i] for i in src])
                if pool is not None:
                    batch = {k: torch.from_numpy(np.ascontiguousarray(pool.inputs[k][idx]))
                             .to(device) for k in names}
                else:
                    batch = _batch(features, idx, device, names)
                batch = apply_ablation(batch, ablation, gen)
                if augment and pool is None:
                    mask = torch.from_numpy(flags[start:start + cfg.batch_size])
                    batch = augment_batch(batch, params, gen, mask=mask)
                target = torch.from_numpy(y[src]).to(device)
                logits = model(*[batch[n] for n in names])
                loss = criterion(logits, target)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                seen += len(idx)
            record = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
                      "lr": float(optimiser.param_groups[0]["lr"])}
            if val_idx is not None and len(val_idx):
                probs = predict(model, features, val_idx, ablation=cfg.ablation, device=device,
                                batch_size=cfg.eval_batch_size, seed=seed)
                m = compute_metrics(y[val_idx], probs, [str(i) for i in range(num_classes)])
                score = float(m[cfg.val_metric]) if not math.isnan(m[cfg.val_metric]) else -1.0
                record["val_" + cfg.val_metric] = score
                if hook is not None:
                    hook("validate", fold=fold, epoch=epoch,
                         ids=[features.ids[i] for i in val_idx], score=score)
                if best is None or score > best[0]:
                    best = (score, epoch, copy.deepcopy(model.state_dict()))
            history.append(record)
            if bar is not None:
                bar.set_postfix(loss=f"{record['loss']:.3f}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    chosen = n_epochs
    if best is not None:
        model.load_state_dict(best[2])
        chosen = best[1]
    model.eval()
    return TrainResult(model, history, chosen, time.perf_counter() - t0, seen)


# ---- protocol -------------------------------------------------------------------------------
@dataclass
class ProtocolResult:
    """Figures of a protocol run.

    Attributes:
        per_seed: seed -> pooled metrics (:func:`~mestudio.training.metrics.pooled_metrics`).
        summary: metric -> ``{"mean", "std", "values"}`` over seeds.
        pooled: seed -> the pooled predictions.
        folds: fold names.
        out_dir: where fold results and the report live.
        best_epochs: epochs chosen per fold (validation) or the fixed count.
        seconds: wall time of this run (folds skipped as done count 0).
        skipped: ``(seed, fold)`` pairs found done and not trained again.
        trained: ``(seed, fold)`` pairs trained by this run.
        failed: folds that failed on every attempt (an executor's retries included); the
            seeds they belong to have no pooled figures.
        model_info: the network trained (:func:`model_info`: parameters, streams, removed
            streams).
    """

    per_seed: dict[int, dict[str, Any]]
    summary: dict[str, dict[str, Any]]
    pooled: dict[int, PooledPredictions]
    folds: list[str]
    out_dir: Path
    best_epochs: list[int]
    seconds: float
    skipped: list[tuple[int, str]]
    trained: list[tuple[int, str]]
    failed: list[FoldFailure] = field(default_factory=list)
    model_info: dict[str, Any] = field(default_factory=dict)


def fold_file(out_dir: Path, seed: int, fold: str) -> Path:
    return out_dir / f"seed_{seed}" / "folds" / f"{safe_name(fold)}.json"


def _load_done(path: Path, digest: str, test_ids: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("format") != FOLD_FORMAT or data.get("config_digest") != digest \
            or sorted(data.get("predictions", {})) != sorted(test_ids):
        return None
    return dict(data)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def run_fold(features: FeatureSet, y: np.ndarray, fold: Fold, cfg: TrainConfig,
             num_classes: int, *, seed: int, device: str, digest: str,
             hook: Hook | None = None, progress: bool = False) -> dict[str, Any]:
    """Train on a fold's training part, predict its test part; returns the fold record."""
    test_ids = [features.ids[i] for i in fold.test]
    train_subjects = sorted({features.subjects[i] for i in fold.train})
    val_subjects = sorted({features.subjects[i] for i in fold.val})
    test_subjects = sorted({features.subjects[i] for i in fold.test})
    leak = (set(train_subjects) | set(val_subjects)) & set(test_subjects)
    if fold.name in train_subjects or fold.name in val_subjects or leak:
        raise RuntimeError(f"fold {fold.name}: test subjects in training/validation — refusing "
                           "to train (this is a bug)")
    if hook is not None:
        hook("fold_start", fold=fold.name, seed=seed,
             train_ids=[features.ids[i] for i in fold.train],
             val_ids=[features.ids[i] for i in fold.val], test_ids=test_ids)
    res = train_model(features, y, fold.train, cfg, num_classes, seed=seed, device=device,
                      val_idx=fold.val if len(fold.val) else None, hook=hook, fold=fold.name,
                      progress=progress, desc=f"seed {seed} {fold.name}")
    if hook is not None:
        hook("test", fold=fold.name, ids=test_ids)
    probs = predict(res.model, features, fold.test, ablation=cfg.ablation, device=device,
                    batch_size=cfg.eval_batch_size, seed=seed)
    return {
        "format": FOLD_FORMAT,
        "fold": fold.name,
        "seed": seed,
        "config_digest": digest,
        "features": features.spec.key(),
        "n_train": int(len(fold.train)),
        "n_val": int(len(fold.val)),
        "n_test": int(len(fold.test)),
        "train_subjects": train_subjects,
        "val_subjects": val_subjects,
        "test_subjects": test_subjects,
        "epoch": res.epoch,
        "history": res.history,
        "seconds": round(res.seconds, 2),
        "samples_seen": res.samples_seen,
        "device": device,
        "predictions": {sid: [float(p) for p in row] for sid, row in zip(test_ids, probs,
                                                                          strict=True)},
    }


#: ``FOLD:N[,FOLD:N...]`` (testing): the first N attempts of fold FOLD (every seed) raise in
#: :func:`fold_job` — how the tests exercise the retry and failure paths for real.
INJECT_FAILURE_ENV = "MESTUDIO_TEST_FAIL_FOLD"


def _inject_failure(inject: str | None, fold: str, path: Path) -> None:
    times = 0
    for item in (inject or "").split(","):
        name, _, count = item.strip().rpartition(":")
        if name == fold:
            times = int(count or 0)
    if times <= 0:
        return
    marker = path.parent / f".{path.stem}.injected-failures"
    marker.parent.mkdir(parents=True, exist_ok=True)
    done = len(marker.read_text().splitlines()) if marker.is_file() else 0
    if done < times:
        with open(marker, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        raise RuntimeError(f"injected failure {done + 1} of fold {fold} "
                           f"(${INJECT_FAILURE_ENV})")


def fold_job(features: FeatureSet, y: np.ndarray, fold: Fold, cfg: TrainConfig | dict[str, Any],
             num_classes: int, seed: int, device: str, digest: str, path: str | Path, *,
             inject: str | None = None, hook: Hook | None = None,
             progress: bool = False) -> dict[str, Any]:
    """The unit of work of every executor (this process, ``--workers`` processes, Ray
    tasks): train and test one fold (:func:`run_fold`), write its JSON to ``path``; returns
    the fold record."""
    path = Path(path)
    _inject_failure(inject, fold.name, path)
    if isinstance(cfg, dict):
        cfg = TrainConfig.from_dict(cfg)
    record = run_fold(features, y, fold, cfg, num_classes, seed=seed, device=device,
                      digest=digest, hook=hook, progress=progress)
    _write_json(path, record)
    return record


def fold_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What a worker sends back of a fold record (the record itself is in its file)."""
    return {"fold": record["fold"], "seed": record["seed"], "epoch": record["epoch"],
            "seconds": record["seconds"], "device": record["device"]}


def limit_threads(threads: int) -> None:
    """torch (and OpenCV) threads of a worker process or task."""
    import torch

    torch.set_num_threads(max(1, threads))
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


# worker-process state (spawned processes get the features once)
_W: dict[str, Any] = {}


def _worker_init(features: FeatureSet, y: np.ndarray, threads: int) -> None:
    limit_threads(threads)
    _W["features"], _W["y"] = features, y


def _worker_fold(fold: Fold, cfg_dict: dict[str, Any], num_classes: int, seed: int,
                 device: str, digest: str, path: str, inject: str | None = None
                 ) -> dict[str, Any]:
    return fold_summary(fold_job(_W["features"], _W["y"], fold, cfg_dict, num_classes, seed,
                                 device, digest, path, inject=inject))


@dataclass
class FoldJob:
    """A fold to train: its seed, its parts and the file its record goes to."""

    seed: int
    fold: Fold
    path: Path


@dataclass
class FoldFailure:
    """A fold that failed on every attempt."""

    seed: int
    fold: str
    error: str
    attempts: int


class FoldExecutor(Protocol):
    """Runs folds elsewhere (:class:`mestudio.training.cluster.RayFolds`): each through
    :func:`fold_job`, retried as the executor sees fit; yields every job once, as it ends,
    with its :func:`fold_summary` or its :class:`FoldFailure`."""

    #: what the folds run on, for the log (``cpu``, ``cuda``, ``Ray: 4 CPUs``)
    device: str

    def run_folds(self, features: FeatureSet, y: np.ndarray, jobs: Sequence[FoldJob], *,
                  cfg: TrainConfig, num_classes: int, digest: str, inject: str | None
                  ) -> Iterator[tuple[FoldJob, dict[str, Any] | FoldFailure]]: ...


def run_protocol(features: FeatureSet, classes: Sequence[str], cfg: TrainConfig, *,
                 protocol: str = "loso", out_dir: str | os.PathLike[str],
                 hook: Hook | None = None, progress: bool = True,
                 folds: Sequence[str] | None = None,
                 executor: FoldExecutor | None = None) -> ProtocolResult:
    """Run a protocol for every seed of ``cfg``; write fold results as they finish.

    Args:
        features: the samples' inputs (labels as class names in ``features.labels``).
        classes: class names; the model's output order.
        cfg: training settings (seeds, validation policy, ablation, workers, device);
            ``workers > 1`` spawns processes: call from under ``if __name__ == "__main__":``.
        protocol: ``loso`` or ``lodo``.
        out_dir: results folder (``seed_<s>/folds/*.json``, resumable).
        hook: event callback (see the module docstring).
        progress: progress bars on stderr.
        folds: run only these folds (their names); the pooled metrics then need the other
            folds' files from an earlier run.
        executor: runs the folds elsewhere (Ray tasks:
            :class:`mestudio.training.cluster.RayFolds`) instead of this process or
            ``cfg.workers`` processes; a fold failing there is reported in
            ``ProtocolResult.failed`` (locally its exception propagates).

    Returns:
        :class:`ProtocolResult` with pooled metrics per seed and mean ± std over seeds.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    y = label_indices(features.labels, classes)
    device = executor.device if executor is not None else resolve_device(cfg.device)
    inject = os.environ.get(INJECT_FAILURE_ENV) or None
    if cfg.threads > 0:
        import torch

        torch.set_num_threads(cfg.threads)
    all_folds = make_folds(features, protocol)
    wanted = all_folds if folds is None else [f for f in all_folds if f.name in set(folds)]
    digest = cfg.digest() + "-" + features.spec.key()[:8]
    k = len(classes)
    info = model_info(build_model(cfg, k, features), cfg.ablation)
    logger.info("model %s%s: %s parameters; streams %s; inputs %s%s", cfg.model,
                f" ({cfg.ablation})" if cfg.ablation != "none" else "",
                f"{info['parameters']:,}", ", ".join(info["streams"]) or "-",
                ", ".join(info["inputs"]),
                f"; removed: {', '.join(info['removed_streams'])}"
                if info["removed_streams"] else "")
    skipped: list[tuple[int, str]] = []
    trained: list[tuple[int, str]] = []
    failed: list[FoldFailure] = []
    jobs: list[tuple[int, Fold, Path]] = []
    for seed in cfg.seeds:
        for fold in wanted:
            if cfg.validation == "subjects":
                fold = split_validation(fold, features.subjects, cfg.val_fraction, seed)
            path = fold_file(out, seed, fold.name)
            test_ids = [features.ids[i] for i in fold.test]
            if _load_done(path, digest, test_ids) is not None:
                skipped.append((seed, fold.name))
                continue
            jobs.append((seed, fold, path))
    if skipped:
        logger.info("%d fold(s) already done in %s: skipped", len(skipped), out)
    bar = tqdm(total=len(jobs), desc=f"{protocol.upper()} folds", unit="fold", file=sys.stderr,
               disable=not progress or None, dynamic_ncols=True)

    def finished(seed: int, fold: Fold, record: dict[str, Any]) -> None:
        trained.append((seed, fold.name))
        logger.info("seed %d fold %s done in %.0f s (%d/%d)", seed, fold.name,
                    record["seconds"], len(trained), len(jobs))
        bar.set_postfix_str(f"{fold.name} {record['seconds']:.0f}s")
        bar.update(1)
        if hook is not None:
            hook("fold_end", fold=fold.name, result=record)

    def fold_started(seed: int, fold: Fold) -> None:
        if hook is not None:
            hook("fold_start", fold=fold.name, seed=seed,
                 train_ids=[features.ids[i] for i in fold.train],
                 val_ids=[features.ids[i] for i in fold.val],
                 test_ids=[features.ids[i] for i in fold.test])

    try:
        workers = min(cfg.workers, len(jobs)) if device == "cpu" else 1
        if executor is not None:
            for seed, fold, _ in jobs:
                fold_started(seed, fold)
            fold_jobs = [FoldJob(seed, fold, path) for seed, fold, path in jobs]
            for job, outcome in executor.run_folds(features, y, fold_jobs, cfg=cfg,
                                                   num_classes=k, digest=digest,
                                                   inject=inject):
                if isinstance(outcome, FoldFailure):
                    failed.append(outcome)
                    logger.error("seed %d fold %s failed after %d attempt(s): %s",
                                 outcome.seed, outcome.fold, outcome.attempts, outcome.error)
                    bar.update(1)
                else:
                    finished(job.seed, job.fold, outcome)
        elif workers > 1:
            from concurrent.futures import ProcessPoolExecutor, as_completed
            from multiprocessing import get_context

            threads = cfg.threads or 1
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                     initializer=_worker_init,
                                     initargs=(features, y, threads)) as pool:
                futs = {}
                for seed, fold, path in jobs:
                    fold_started(seed, fold)
                    futs[pool.submit(_worker_fold, fold, cfg.to_dict(), k, seed, device,
                                     digest, str(path), inject)] = (seed, fold)
                for f in as_completed(futs):
                    seed, fold = futs[f]
                    finished(seed, fold, f.result())
        else:
            for seed, fold, path in jobs:
                record = fold_job(features, y, fold, cfg, k, seed, device, digest, path,
                                  inject=inject, hook=hook, progress=progress)
                finished(seed, fold, record)
    finally:
        bar.close()
    labels = dict(zip(features.ids, y.tolist(), strict=True))
    subjects = dict(zip(features.ids, features.subjects, strict=True))
    datasets = dict(zip(features.ids, features.datasets, strict=True))
    per_seed: dict[int, dict[str, Any]] = {}
    pooled_all: dict[int, PooledPredictions] = {}
    epochs: list[int] = []
    for seed in cfg.seeds:
        preds = []
        for fold in all_folds:
            test_ids = [features.ids[i] for i in fold.test]
            rec = _load_done(fold_file(out, seed, fold.name), digest, test_ids)
            if rec is None:
                break
            preds.append(rec["predictions"])
            epochs.append(int(rec.get("epoch", cfg.epochs)))
        else:
            pooled = pool_predictions(preds, labels, classes, folds=subjects, groups=datasets)
            pooled_all[seed] = pooled
            per_seed[seed] = pooled_metrics(pooled)
            continue
        logger.info("seed %d: not every fold is done yet; no pooled figures", seed)
    summary = summarise_seeds(list(per_seed.values())) if per_seed else {}
    return ProtocolResult(per_seed, summary, pooled_all, [f.name for f in all_folds], out,
                          epochs, time.perf_counter() - t0, skipped, trained, failed, info)


def label_indices(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Class indices of the labels.

    Raises:
        DatasetError: a label that is not one of ``classes``.
    """
    index = {c: i for i, c in enumerate(classes)}
    try:
        return np.array([index[lab] for lab in labels], dtype=np.int64)
    except KeyError as exc:
        raise DatasetError(f"label {exc.args[0]!r} is not one of the classes "
                           f"{', '.join(classes)}") from None


def final_epochs(cfg: TrainConfig, result: ProtocolResult | None) -> int:
    """Epochs of the final model: the fixed schedule, or (validation) the median epoch the
    folds' validation splits chose."""
    if cfg.validation == "subjects" and result is not None and result.best_epochs:
        return max(1, int(round(statistics.median(result.best_epochs))))
    return cfg.epochs


def train_final(features: FeatureSet, classes: Sequence[str], cfg: TrainConfig, path: str |
                os.PathLike[str], *, training: dict[str, Any], metrics: dict[str, Any],
                synthetic: bool, epochs: int | None = None, progress: bool = True,
                hook: Hook | None = None) -> Path:
    """Train on every sample and save a checkpoint (:func:`mestudio.nets.checkpoint.save_checkpoint`)
    with the preprocessing metadata, classes, training data + protocol and metrics."""
    import torch

    from mestudio.nets.checkpoint import save_checkpoint

    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    y = label_indices(features.labels, classes)
    seed = cfg.seeds[0]
    n_epochs = epochs or cfg.epochs
    res = train_model(features, y, np.arange(len(features)), cfg, len(classes), seed=seed,
                      device=device, epochs=n_epochs, progress=progress, hook=hook,
                      fold="final", desc="final model")
    info = dict(training)
    info.update({"epochs": n_epochs, "seed": seed, "n_samples": len(features),
                 "subjects": len(set(features.subjects)), "train_seconds": round(res.seconds, 1),
                 "features": features.spec.to_dict(), "history": res.history})
    return save_checkpoint(path, res.model.cpu(), arch=cfg.model, classes=list(classes),
                           preprocess=features.spec.preprocess, training=info, metrics=metrics,
                           synthetic=synthetic)
