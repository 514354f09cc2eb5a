"""Training configuration: the M3ENet paper's defaults in one dataclass.

Every field can be overridden from the command line, either with an explicit flag
(``--epochs 30``) or generically with ``--set key=value`` (``--set lr=5e-4 --set
betas=0.9,0.99 --set augment=false``); :meth:`TrainConfig.with_overrides` parses the
values with the type of the field's default.

Defaults (the paper's): AdamW, learning rate 1e-3, weight decay 0.05, betas (0.9, 0.999),
cosine schedule, 50 epochs, batch 128, focal loss gamma 2, augmentation (flip, small
rotation, noise) with a x5 expansion, a fixed schedule (no model selection; the optional
validation split uses training subjects only).

Two defaults of plain ``mestudio train`` differ from the paper, on purpose (the M3ENet
reproduction sets :data:`PAPER_PROFILE`):

* ``focal_alpha = "inverse"`` (``N / (K n_t)``, what mestudio always used) rather than the
  paper's ``1 - n_t / N``: earlier runs keep their results and resume; the paper's weights
  are nearly uniform (0.6 - 0.9 for five classes) and are one ``--set focal_alpha=paper``
  away;
* ``aug_mode = "online"`` (fresh random transforms every epoch) rather than the paper's
  offline x5 expansion: it needs no extra memory or feature computation and keeps the
  runtime of the existing runs and tests; ``--set aug_mode=offline`` builds the paper's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from mestudio.errors import ConfigError

PROTOCOLS: tuple[str, ...] = ("loso", "lodo")
"""Evaluation protocols: leave-one-subject-out, leave-one-dataset-out."""

ABLATIONS: tuple[str, ...] = ("none", "no-aug", "no-flow", "no-rgb", "single-rgb", "shuffled-rgb",
                               "permuted-rgb")
"""Ablations (what they do: :mod:`mestudio.training.runner`)."""

FOCAL_ALPHAS: tuple[str, ...] = ("paper", "inverse", "none")
"""Class weights (alpha_t) of the focal loss (:func:`mestudio.training.losses.class_weights`):
``paper`` = ``1 - n_t / N`` (the M3ENet paper, with gamma 2), ``inverse`` = ``N / (K n_t)``
(inverse class frequency), ``none`` = 1."""

AUG_MODES: tuple[str, ...] = ("online", "offline")
"""``online``: every epoch each training sample appears ``aug_expansion`` times, all but
one with a fresh random transform; ``offline``: the paper's fixed x5 expansion, built once
per fold from the fold's TRAINING samples (:mod:`mestudio.training.augment`)."""

AUG_STAGES: tuple[str, ...] = ("maps", "frames")
"""Where the offline transforms act: on the finished model inputs (``maps``: flow maps and
key frames, flow vectors rotated with them; cheap) or on the aligned face crops before the
optical flow (``frames``: the flow is recomputed per variant through
:mod:`mestudio.training.features`; cached)."""

PAPER_PROFILE: dict[str, object] = {"focal_alpha": "paper", "focal_gamma": 2.0,
                                    "aug_mode": "offline", "aug_stage": "maps",
                                    "aug_expansion": 5}
"""The settings of the M3ENet reproduction that differ from plain ``mestudio train``'s
defaults (the paper does not say whether its transforms act before or after the flow:
``maps`` is the cheaper reading; ``aug_stage=frames`` is the other)."""

#: Legacy setting names accepted by :meth:`TrainConfig.from_dict` and ``--set``.
LEGACY_NAMES: dict[str, str] = {"class_weights": "focal_alpha"}
#: New settings whose default leaves the settings' digest as it was before they existed.
_DIGEST_NEUTRAL: dict[str, object] = {"aug_mode": "online", "aug_stage": "maps", "evm": ""}

VALIDATIONS: tuple[str, ...] = ("none", "subjects")
"""Validation policies: ``none`` = fixed schedule, the last epoch's weights are used;
``subjects`` = a split of the TRAINING subjects of each fold picks the epoch (the test
fold is never looked at)."""

SCHEDULES: tuple[str, ...] = ("cosine", "constant", "step")


@dataclass
class TrainConfig:
    """How a model is trained and evaluated.

    Attributes:
        model: architecture name (``mestudio.nets.list_models()``).
        model_kwargs: extra constructor arguments of the network (e.g. ``{"dropout": 0.2}``).
        epochs: passes over the (expanded) training set per fold.
        batch_size: samples per optimiser step (the paper: 128).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay (decoupled).
        betas: AdamW betas.
        schedule: learning-rate schedule: ``cosine`` (to ``min_lr`` at the last step),
            ``constant`` or ``step`` (x0.1 at 50 % and 75 % of the epochs).
        min_lr: final learning rate of the cosine schedule.
        warmup_epochs: linear warm-up epochs (0 = none).
        focal_gamma: focusing parameter of the focal loss (0 = cross-entropy; the paper: 2).
        focal_alpha: class weights alpha_t of the focal loss from each fold's training set
            (:data:`FOCAL_ALPHAS`): ``paper`` (``1 - n_t/N``), ``inverse`` (``N/(K n_t)``,
            the default) or ``none``. (Formerly ``class_weights``, still accepted.)
        augment: apply augmentation to the training samples.
        aug_mode: ``online`` (default) or ``offline`` (the paper's fixed expansion, built
            once per fold from its training samples), see :data:`AUG_MODES`.
        aug_stage: offline transforms on the ``maps`` (default) or on the ``frames``
            before the flow (:data:`AUG_STAGES`).
        aug_expansion: every training sample appears this many times per epoch: once as
            it is, ``aug_expansion - 1`` times augmented (the paper's x5 expansion;
            offline: the first ``aug_expansion`` of original, flip, rotation +, rotation -,
            noise, at most 5).
        aug_flip: probability of a horizontal flip (all maps mirrored, ``u`` negated).
        aug_rotation_deg: rotations are drawn uniformly in ``±aug_rotation_deg`` degrees
            (maps rotated about the centre, flow vectors rotated with them).
        aug_noise: additive Gaussian noise, standard deviation as a fraction of each map's
            own standard deviation.
        seeds: random seeds; every seed runs the whole protocol, figures are mean ± std.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cuda``, ``mps`` or ``cpu``.
        threads: torch intra-op threads per training process (0 = torch's default).
        workers: folds trained in parallel by separate processes (CPU: each with
            ``threads`` threads; 1 = in this process).
        validation: ``none`` (fixed schedule) or ``subjects`` (see :data:`VALIDATIONS`).
        val_fraction: fraction of a fold's training subjects held out for validation.
        val_metric: metric the validation split maximises (``uf1``, ``uar``, ``accuracy``).
        ablation: one of :data:`ABLATIONS`.
        evm: Eulerian video magnification of the frames of each sample before its inputs
            are made (IM3DR-MFER's "+EVM"; clip models only): ``""`` / ``off`` (default),
            ``on`` (alpha 8, band 0.5-8 Hz, 3 pyramid levels), a bare amplification
            (``--set evm=10``) or ``alpha=A,low=HZ,high=HZ,levels=N`` (any subset; the
            names of :class:`mestudio.preprocess.evm.EVMSettings`); stored in the canonical text
            form. It becomes the features' preprocessing setting
            (``PreprocessConfig.evm``): part of the feature-cache key and of the model's
            preprocessing metadata, so ``mestudio evaluate`` magnifies the same way.
        final_model: also train a model on all samples after the protocol.
        eval_batch_size: batch size for prediction.
    """

    model: str = "m3enet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    min_lr: float = 0.0
    warmup_epochs: int = 0
    focal_gamma: float = 2.0
    focal_alpha: str = "inverse"
    augment: bool = True
    aug_mode: str = "online"
    aug_stage: str = "maps"
    aug_expansion: int = 5
    aug_flip: float = 0.5
    aug_rotation_deg: float = 8.0
    aug_noise: float = 0.05
    seeds: tuple[int, ...] = (1,)
    device: str = "auto"
    threads: int = 0
    workers: int = 1
    validation: str = "none"
    val_fraction: float = 0.2
    val_metric: str = "uf1"
    ablation: str = "none"
    evm: str = ""
    final_model: bool = True
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        from mestudio.preprocess import evm_text

        self.evm = evm_text(self.evm)  # canonical text form; ConfigError on a bad value
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        checks: list[tuple[bool, str]] = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
             f"betas must be two numbers in [0, 1), got {self.betas}"),
            (self.schedule in SCHEDULES,
             f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (self.focal_gamma >= 0, f"focal_gamma must be >= 0, got {self.focal_gamma}"),
            (self.focal_alpha in FOCAL_ALPHAS,
             f"focal_alpha must be one of {', '.join(FOCAL_ALPHAS)}, got {self.focal_alpha!r}"),
            (self.aug_mode in AUG_MODES,
             f"aug_mode must be one of {', '.join(AUG_MODES)}, got {self.aug_mode!r}"),
            (self.aug_stage in AUG_STAGES,
             f"aug_stage must be one of {', '.join(AUG_STAGES)}, got {self.aug_stage!r}"),
            (self.aug_expansion >= 1, f"aug_expansion must be >= 1, got {self.aug_expansion}"),
            (self.aug_mode != "offline" or self.aug_expansion <= 5,
             f"aug_mode=offline has 5 variants: aug_expansion must be <= 5, got "
             f"{self.aug_expansion}"),
            (0 <= self.aug_flip <= 1, f"aug_flip must be a probability, got {self.aug_flip}"),
            (self.aug_rotation_deg >= 0, "aug_rotation_deg must be >= 0"),
            (self.aug_noise >= 0, "aug_noise must be >= 0"),
            (len(self.seeds) >= 1, "give at least one seed"),
            (self.device in ("auto", "cuda", "mps", "cpu") or self.device.startswith("cuda:"),
             f"device must be auto, cuda, mps or cpu, got {self.device!r}"),
            (self.threads >= 0, "threads must be >= 0"),
            (self.workers >= 1, "workers must be >= 1"),
            (self.validation in VALIDATIONS,
             f"validation must be one of {', '.join(VALIDATIONS)}, got {self.validation!r}"),
            (0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}"),
            (self.val_metric in ("uf1", "uar", "accuracy", "f1"),
             f"val_metric must be uf1, uar, accuracy or f1, got {self.val_metric!r}"),
            (self.ablation in ABLATIONS,
             f"ablation must be one of {', '.join(ABLATIONS)}, got {self.ablation!r}"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"training configuration: {message}")

    # ---- (de)serialisation --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a (partial) dict; unknown keys raise :class:`ConfigError`."""
        data = {LEGACY_NAMES.get(k, k): v for k, v in data.items()}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown training setting(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(names))}")
        kwargs: dict[str, Any] = {}
        hints = typing.get_type_hints(cls)
        for k, v in data.items():
            kwargs[k] = _coerce(k, v, hints[k])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def with_overrides(self, assignments: list[str] | tuple[str, ...]) -> TrainConfig:
        """Apply ``key=value`` strings (``--set``); values parsed by the field's type.

        Booleans: ``true/false/1/0/yes/no``; tuples: comma-separated; dicts: JSON.

        Raises:
            ConfigError: malformed assignment, unknown key or a value of the wrong type.
        """
        changes: dict[str, Any] = {}
        hints = typing.get_type_hints(TrainConfig)
        for text in assignments:
            if "=" not in text:
                raise ConfigError(f"--set expects key=value, got {text!r}")
            key, value = (s.strip() for s in text.split("=", 1))
            key = key.replace("-", "_")
            key = LEGACY_NAMES.get(key, key)
            if key not in hints:
                known = ", ".join(f.name for f in dataclasses.fields(TrainConfig))
                raise ConfigError(f"unknown training setting {key!r} in --set; known: {known}")
            changes[key] = _parse_text(key, value, hints[key])
        return self.replace(**changes)

    def digest(self, *, exclude: tuple[str, ...] = ("device", "threads", "workers",
                                                      "seeds", "final_model",
                                                      "eval_batch_size")) -> str:
        """Short hash of the settings that change a fold's result (resumability key).

        Seeds are excluded because every seed has its own folder; device/threads/workers
        do not change what is trained (up to floating-point non-determinism).
        """
        d = {k: v for k, v in self.to_dict().items() if k not in exclude}
        # settings added later leave the digest of the runs made before them unchanged
        if d.get("focal_alpha") in ("inverse", "none"):
            d["class_weights"] = d.pop("focal_alpha")
        for k, v in _DIGEST_NEUTRAL.items():
            if d.get(k) == v:
                d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _origin(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        non_none = [a for a in args if a is not type(None)]
        return _origin(non_none[0]) if non_none else (type(None), ())
    return origin or tp, args


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check/convert a JSON value for field ``key`` of type ``tp``."""
    origin, args = _origin(tp)
    try:
        if origin is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if origin is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or int(value) != value:
                raise TypeError
            return int(value)
        if origin is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError
            return float(value)
        if origin is str:
            if not isinstance(value, str):
                raise TypeError
            return value
        if origin is tuple:
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise TypeError
            item = args[0] if args else Any
            return tuple(_coerce(key, v, item) for v in value)
        if origin is dict:
            if not isinstance(value, dict):
                raise TypeError
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(f"training setting {key} has the wrong type: {value!r}") from None
    return value


def _parse_text(key: str, text: str, tp: Any) -> Any:
    """Parse a ``--set`` value given as text."""
    origin, args = _origin(tp)
    try:
        if origin is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if origin is int:
            return int(text)
        if origin is float:
            return float(text)
        if origin is str:
            return text
        if origin is tuple:
            item = args[0] if args else str
            parts = [p for p in text.replace(" ", "").split(",") if p]
            return tuple(_parse_text(key, p, item) for p in parts)
        if origin is dict:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError
            return value
    except (ValueError, json.JSONDecodeError):
        raise ConfigError(f"--set {key}={text}: not a valid {getattr(origin, '__name__', origin)}"
                          ) from None
    return text


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> ``(1, 2, 3)``; ``"1-3"`` also works.

    Raises:
        ConfigError: not a list of integers.
    """
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, part)
                seeds.extend(range(int(a), int(b) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError(f"--seeds expects integers like 1,2,3, got {text!r}") from None
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    return tuple(seeds)
