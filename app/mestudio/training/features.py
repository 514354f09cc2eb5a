"""Model inputs of dataset samples, computed with :mod:`mestudio.preprocess` and cached.

The path from a sample's frame files to the network's inputs is the one the live
application takes (ARCHITECTURE.md: ``preprocess.py`` is the only implementation):

1. **alignment** (:attr:`FeatureSpec.align`):

   * ``"tracker"`` (default): the frames from a short warm-up before the onset up to the
     offset go through a fresh :class:`mestudio.face.tracker.FaceTracker` in order, with
     their timestamps (``frame number / fps``), exactly as live frames do; the tracker's
     aligned crops (side ``align_size``, 128 px like the live tracker) of the needed frames
     are kept;
   * ``"keyframes"``: :func:`mestudio.preprocess.align_keyframes` (face found on the first
     frame, the same transform for all);
   * ``"none"``: the frames are already aligned face crops (e.g. CASME II ``Cropped``);
     they are only resized to ``align_size``;

2. the input kind's spec (:class:`mestudio.preprocess.InputKind`, the code live
   recognition and review use): :meth:`~mestudio.preprocess.InputKind.select` chooses the
   frames whose crops are needed (keyframe models: onset, apex, offset; clip models:
   ``clip_len`` frames evenly spaced over the sample's frames) and
   :meth:`~mestudio.preprocess.InputKind.make_inputs` turns the crops into the inputs
   (keyframes: ``flow`` ``[3, S, S]`` = u, v, strain and ``frames`` ``[3, C, S, S]``; clip:
   ``clip`` ``[T, C, S, S]`` and ``flow_seq`` ``[T-1, 2, S, S]``); the arrays cached are the
   kind's ``feature_names``. With Eulerian magnification in the preprocessing configuration
   (``PreprocessConfig.evm``: ``mestudio train --set evm=...``, clip models only) the chosen
   frames are magnified inside ``make_inputs`` before both inputs are made; the frame rate
   it needs is the sample's (:func:`sample_clip_rate`).

Cache: ``CACHE/<dataset>/<key>/<sample>.npz`` where ``key`` hashes the preprocessing
configuration (:func:`mestudio.preprocess.config_hash`, EVM settings included, so magnified
and plain inputs never share a folder), the input kind, the alignment
method and size and the tracker's mode; each file also records a fingerprint of the frame
files it was computed from (paths, sizes, modification times), so a changed release is
recomputed. Files are written atomically: an interrupted ``prepare`` resumes where it
stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.errors import ConfigError, DatasetError, FaceNotFoundError
from mestudio.fsutil import atomic_path
from mestudio.preprocess import DEFAULT_INPUT_KIND
from mestudio.preprocess import input_kind as _input_kind

logger = logging.getLogger(__name__)

FEATURE_FORMAT = "mestudio-features/1"
ALIGN_METHODS: tuple[str, ...] = ("tracker", "keyframes", "none")


class FeatureError(Exception):
    """One sample's features cannot be computed (no face found, unreadable frame)."""


@dataclass
class FeatureSpec:
    """What the cached features are (part of the cache key).

    Attributes:
        kind: the input kind (:data:`mestudio.preprocess.INPUT_KINDS`): ``"keyframes"``
            (M3ENet and the baselines) or ``"clip"`` (IM3DR-MFER).
        preprocess: ``PreprocessConfig.to_metadata()`` of :mod:`mestudio.preprocess`.
        align: alignment method (see the module docstring).
        align_size: side of the aligned crops in pixels (the live tracker's ``align_size``).
        warmup_s: the tracker starts this many seconds before the onset when the folder
            holds earlier frames.
        tracker_mode: the tracker's alignment mode (``lbf``, ``yunet``, ``box``): crops
            aligned with other landmarks differ, so it is part of the key.
    """

    kind: str = DEFAULT_INPUT_KIND
    preprocess: dict[str, Any] = field(default_factory=dict)
    align: str = "tracker"
    align_size: int = 128
    warmup_s: float = 0.2
    tracker_mode: str = ""

    def __post_init__(self) -> None:
        try:
            kind = _input_kind(self.kind)
        except ValueError as exc:
            raise DatasetError(f"feature kind: {exc}") from None
        if self.preprocess.get("evm") and not kind.is_clip:
            raise ConfigError(f"evm={self.preprocess['evm']}: Eulerian magnification is a "
                              f"preprocessing of clip inputs (clip models such as im3dr_mfer); "
                              f"this network takes {self.kind} inputs")
        if self.align not in ALIGN_METHODS:
            raise DatasetError(f"alignment must be one of {', '.join(ALIGN_METHODS)}, "
                               f"got {self.align!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Short hash naming the cache folder of these features."""
        payload = {"format": FEATURE_FORMAT, "kind": self.kind,
                   "preprocess": preprocess_hash(self.preprocess), "align": self.align,
                   "align_size": self.align_size, "warmup_s": self.warmup_s,
                   "tracker_mode": self.tracker_mode if self.align != "none" else ""}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def input_names(self) -> tuple[str, ...]:
        """The cached arrays (the input kind's ``feature_names``)."""
        return _input_kind(self.kind).feature_names


# ---- the preprocessing module ---------------------------------------------------------------
def _preprocess_module() -> Any:
    try:
        from mestudio import preprocess
    except ImportError as exc:  # pragma: no cover - the module is part of the package
        raise DatasetError(f"mestudio.preprocess is not available ({exc})") from exc
    return preprocess


def preprocess_config(metadata: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """A :class:`mestudio.preprocess.PreprocessConfig` (defaults, or from metadata), with
    fields replaced by ``overrides``."""
    pp = _preprocess_module()
    cfg = pp.PreprocessConfig.from_metadata(metadata) if metadata else pp.PreprocessConfig()
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    return cfg


def preprocess_metadata(cfg: Any) -> dict[str, Any]:
    """``cfg.to_metadata()`` as a plain dict."""
    return dict(cfg.to_metadata())


def preprocess_hash(metadata: dict[str, Any]) -> str:
    """Hash of a preprocessing configuration (``preprocess.config_hash`` when provided)."""
    fn = None
    if metadata:
        pp = _preprocess_module()
        fn = getattr(pp, "config_hash", None)
    if fn is not None:
        try:
            return str(fn(pp.PreprocessConfig.from_metadata(metadata)))
        except TypeError:
            return str(fn(metadata))
    return hashlib.sha256(json.dumps(metadata, sort_keys=True, default=str).encode()
                          ).hexdigest()[:16]


# ---- alignment ------------------------------------------------------------------------------
def _read(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FeatureError(f"cannot read frame {path}")
    return img


def needed_frames(sample: Any, kind: str, cfg: Any | None = None) -> list[int]:
    """Frame numbers whose aligned crops the features need, in the order the input kind
    takes them (:meth:`mestudio.preprocess.InputKind.select` over the sample's frames;
    keyframes: onset, apex, offset; clip: ``cfg.clip_len`` frames evenly spaced from onset
    to offset).

    Raises:
        FeatureError: too few frames for this kind.
    """
    frames = _input_kind(kind).select([(n, n) for n in sample.frames], sample.onset,
                                      sample.apex, sample.offset, cfg)
    if frames is None:
        raise FeatureError(f"{len(sample.frames)} frame(s) are too few for {kind} inputs")
    return frames


def _frame_files(sample: Any, start: int) -> list[tuple[int, Path]]:
    """``(number, path)`` of the sample's frames from ``start`` to the offset."""
    files = [(n, p) for n, p in (sample.folder_frames() or [])
             if start <= n <= sample.offset]
    have = {n for n, _ in files}
    files += [(n, p) for n, p in zip(sample.frames, sample.frame_paths, strict=True)
              if n not in have]
    return sorted(files)


_TRACKERS: dict[tuple[Any, ...], Any] = {}


def _tracker(size: int) -> Any:
    """A tracker per process and crop size (model files are loaded once)."""
    from mestudio.face.config import TrackerConfig
    from mestudio.face.tracker import FaceTracker

    key = (size,)
    tr = _TRACKERS.get(key)
    if tr is None:
        tr = FaceTracker(TrackerConfig(align_size=size))
        _TRACKERS[key] = tr
    tr.reset()
    return tr


def tracker_mode(size: int = 128) -> str:
    """Alignment mode of the face tracker on this installation (``lbf``/``yunet``/``box``)."""
    return str(_tracker(size).mode)


def aligned_crops(sample: Any, spec: FeatureSpec, cfg: Any | None = None
                  ) -> dict[int, np.ndarray]:
    """Aligned crops (BGR ``uint8`` ``(S, S, 3)``, ``S = spec.align_size``) of the frames
    the features need (:func:`needed_frames`), keyed by frame number.

    Raises:
        FeatureError: frames unreadable, or the face is not found where it is needed.
    """
    import cv2

    from mestudio.types import Frame

    cfg = cfg if cfg is not None else preprocess_config(spec.preprocess)
    need = needed_frames(sample, spec.kind, cfg)
    size = spec.align_size
    if spec.align == "none":
        return {n: cv2.resize(_read(sample.frame_path(n)), (size, size),
                              interpolation=cv2.INTER_AREA) for n in need}
    if spec.align == "keyframes":
        pp = _preprocess_module()
        images = [_read(sample.frame_path(n)) for n in need]
        try:
            crops = pp.align_keyframes(images, size)
        except (FaceNotFoundError, cv2.error) as exc:  # no usable face in these frames
            raise FeatureError(f"alignment failed: {exc}") from exc
        return dict(zip(need, crops, strict=True))
    fps = float(sample.fps) if sample.fps else 30.0
    start = sample.onset - int(round(spec.warmup_s * fps))
    files = _frame_files(sample, start)
    tracker = _tracker(size)
    out: dict[int, np.ndarray] = {}
    last: np.ndarray | None = None
    wanted = set(need)
    first_number = files[0][0] if files else 0
    for number, path in files:
        obs = tracker.update(Frame(index=number - first_number,
                                   timestamp_s=(number - first_number) / fps, image=_read(path)))
        if obs.face_found and obs.aligned is not None:
            last = obs.aligned
        if number in wanted:
            if last is None:
                raise FeatureError(f"no face found by frame {number}")
            out[number] = last  # a lost face keeps the last crop (as the live spotter sees)
    missing = wanted - set(out)
    if missing:
        raise FeatureError(f"frames {sorted(missing)} not found")
    return out


def sample_inputs(sample: Any, spec: FeatureSpec, cfg: Any | None = None) -> dict[str, np.ndarray]:
    """The model inputs of one sample (float32 numpy arrays without the batch axis).

    Raises:
        FeatureError: the sample cannot be turned into inputs.
    """
    return _inputs_from_crops(sample, spec, cfg)


def _inputs_from_crops(sample: Any, spec: FeatureSpec, cfg: Any | None,
                       transform: Callable[[np.ndarray], np.ndarray] | None = None
                       ) -> dict[str, np.ndarray]:
    """The sample's aligned crops (each through ``transform`` when given) → the input
    kind's inputs, checked finite, without the batch axis."""
    cfg = cfg if cfg is not None else preprocess_config(spec.preprocess)
    crops = aligned_crops(sample, spec, cfg)
    numbers = needed_frames(sample, spec.kind, cfg)
    images = [crops[n] for n in numbers]
    if transform is not None:
        images = [transform(im) for im in images]
    kind = _input_kind(spec.kind)
    # magnification filters in time: it needs the frame rate
    fps = [sample_clip_rate(sample, numbers)] if getattr(cfg, "evm", "") else None
    from mestudio.preprocess import model_inputs

    result = model_inputs(kind, [images], cfg, fps=fps)
    out = {}
    for name in spec.input_names:
        arr = np.asarray(result[name][0], dtype=np.float32)
        if not np.isfinite(arr).all():
            raise FeatureError(f"{name} holds non-finite values")
        out[name] = arr
    return out


def sample_clip_rate(sample: Any, numbers: Sequence[int]) -> float:
    """Frames per second of the frames ``numbers`` of ``sample`` as a clip
    (:func:`mestudio.preprocess.clip_rate` at the release's frame rate; 30 when the sample
    has none)."""
    from mestudio.preprocess import clip_rate

    return clip_rate(numbers, float(sample.fps) if sample.fps else 30.0)


# ---- cache ----------------------------------------------------------------------------------
def safe_name(sample_id: str) -> str:
    """File name of a sample id (``casme2/01/EP02_01f`` -> ``casme2__01__EP02_01f``)."""
    name = re.sub(r"[^A-Za-z0-9_.@#+-]+", "__", sample_id).strip("_")
    if len(name) > 150:
        name = name[:120] + "-" + hashlib.sha1(sample_id.encode()).hexdigest()[:12]
    return name


def source_fingerprint(sample: Any) -> str:
    """Hash of the sample's annotation and frame files (path, size, mtime)."""
    h = hashlib.sha1()
    h.update(f"{sample.id}|{sample.onset}|{sample.apex}|{sample.offset}".encode())
    for p in sample.frame_paths:
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"{p}|missing".encode())
    return h.hexdigest()[:16]


def cache_folder(cache_dir: str | os.PathLike[str], dataset: str, spec: FeatureSpec) -> Path:
    """``CACHE/<dataset>/<spec key>``."""
    return Path(cache_dir).expanduser() / safe_name(dataset) / spec.key()


def cache_path(cache_dir: str | os.PathLike[str], sample: Any, spec: FeatureSpec,
               dataset: str | None = None) -> Path:
    return cache_folder(cache_dir, dataset or sample.dataset, spec) / f"{safe_name(sample.id)}.npz"


def _write_npz(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    # A cache (recomputed when unreadable): atomic, without the cost of an fsync per file.
    with atomic_path(path, durable=False) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, __meta__=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]


def read_cached(path: Path, fingerprint: str | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """``(arrays, meta)`` of a cache file, or None when absent, damaged or stale."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except Exception:  # noqa: BLE001 - a damaged file is recomputed
        logger.warning("damaged cache file %s: recomputing", path)
        return None
    if fingerprint is not None and meta.get("fingerprint") != fingerprint:
        return None
    return arrays, meta


def _compute_one(sample: Any, spec_dict: dict[str, Any], path: str) -> dict[str, Any]:
    """Worker: compute and write one sample's features; returns a status dict."""
    spec = FeatureSpec(**spec_dict)
    t0 = time.perf_counter()
    fp = source_fingerprint(sample)
    if read_cached(Path(path), fp) is not None:
        return {"id": sample.id, "status": "cached"}
    try:
        arrays = sample_inputs(sample, spec, _worker_cfg(spec))
    except FeatureError as exc:
        return {"id": sample.id, "status": "failed", "error": str(exc)}
    meta = {"format": FEATURE_FORMAT, "id": sample.id, "dataset": sample.dataset,
            "subject": sample.subject, "native_label": sample.native_label,
            "onset": sample.onset, "apex": sample.apex, "offset": sample.offset,
            "fingerprint": fp, "spec": spec.to_dict()}
    _write_npz(Path(path), arrays, meta)
    return {"id": sample.id, "status": "computed", "seconds": time.perf_counter() - t0}


_CFG_CACHE: dict[str, Any] = {}


def _worker_cfg(spec: FeatureSpec) -> Any:
    key = json.dumps(spec.preprocess, sort_keys=True, default=str)
    cfg = _CFG_CACHE.get(key)
    if cfg is None:
        cfg = preprocess_config(spec.preprocess)
        _CFG_CACHE[key] = cfg
    return cfg


def _init_worker(threads: int) -> None:
    import cv2
    import torch

    torch.set_num_threads(max(1, threads))
    cv2.setNumThreads(max(1, threads))


@dataclass
class PrepareReport:
    """What :func:`prepare_features` did."""

    folder: Path
    total: int = 0
    computed: int = 0
    cached: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def account(self, res: dict[str, Any]) -> None:
        """Count one sample's result (``{"id", "status", "error"}`` of ``_compute_one``)."""
        if res["status"] == "computed":
            self.computed += 1
        elif res["status"] == "cached":
            self.cached += 1
        else:
            self.failed[res["id"]] = res.get("error", "failed")

    def done(self, t0: float) -> PrepareReport:
        """Finish: the time since ``t0`` (``perf_counter``), a warning for failures."""
        self.seconds = time.perf_counter() - t0
        if self.failed:
            logger.warning("%d of %d samples have no features (e.g. %s: %s)",
                           len(self.failed), self.total, *next(iter(self.failed.items())))
        return self

    def to_text(self) -> str:
        lines = [f"features  {self.folder}",
                 f"samples   {self.total}: {self.computed} computed, {self.cached} from the "
                 f"cache, {len(self.failed)} failed ({self.seconds:.1f} s)"]
        for sid, err in list(self.failed.items())[:12]:
            lines.append(f"  failed {sid}: {err}")
        if len(self.failed) > 12:
            lines.append(f"  ... {len(self.failed) - 12} more")
        return "\n".join(lines)


def prepare_features(samples: Sequence[Any], cache_dir: str | os.PathLike[str],
                     spec: FeatureSpec, *, dataset: str | None = None, workers: int = 2,
                     progress: bool = True, threads_per_worker: int = 1) -> PrepareReport:
    """Compute (or find in the cache) the features of every sample.

    Args:
        samples: dataset samples (:class:`mestudio.training.datasets.Sample`).
        cache_dir: cache root.
        spec: what to compute (its key names the cache folder).
        dataset: cache folder name (default: the samples' common dataset name).
        workers: worker processes (1 = in this process); they are spawned, so a script
            calling this must do so under ``if __name__ == "__main__":``.
        progress: tqdm progress bar on stderr.
        threads_per_worker: torch/OpenCV threads of each worker.

    Returns:
        A :class:`PrepareReport` (failed samples are listed, not raised).
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    report, todo, name = plan_features(samples, cache_dir, spec, dataset)
    bar = tqdm(total=len(samples), initial=report.cached, desc=f"features {name}",
               unit="sample", file=sys.stderr, disable=not progress or None, dynamic_ncols=True)

    def account(res: dict[str, Any]) -> None:
        report.account(res)
        bar.update(1)

    try:
        if todo and workers > 1:
            from concurrent.futures import ProcessPoolExecutor
            from multiprocessing import get_context

            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn"),
                                     initializer=_init_worker,
                                     initargs=(threads_per_worker,)) as pool:
                futures = [pool.submit(_compute_one, s, spec.to_dict(), p) for s, p in todo]
                for f in futures:
                    account(f.result())
        else:
            for s, p in todo:
                account(_compute_one(s, spec.to_dict(), p))
    finally:
        bar.close()
    return report.done(t0)


def plan_features(samples: Sequence[Any], cache_dir: str | os.PathLike[str],
                  spec: FeatureSpec, dataset: str | None = None
                  ) -> tuple[PrepareReport, list[tuple[Any, str]], str]:
    """What a preparation has to do (shared by the local and the Ray paths): the cache
    folder is made (with its ``spec.json``), samples already cached are counted in the
    report, the others returned with their cache paths; and the dataset name."""
    name = dataset or _dataset_name(samples)
    folder = cache_folder(cache_dir, name, spec)
    folder.mkdir(parents=True, exist_ok=True)
    spec_file = folder / "spec.json"
    if not spec_file.is_file():
        spec_file.write_text(json.dumps({"format": FEATURE_FORMAT, "spec": spec.to_dict()},
                                        indent=1))
    report = PrepareReport(folder=folder, total=len(samples))
    todo = []
    for s in samples:
        path = cache_path(cache_dir, s, spec, name)
        if read_cached(path, source_fingerprint(s)) is not None:
            report.cached += 1
        else:
            todo.append((s, str(path)))
    return report, todo, name


def _dataset_name(samples: Iterable[Any]) -> str:
    names = {s.dataset for s in samples}
    return names.pop() if len(names) == 1 else "+".join(sorted(names)) or "dataset"


@dataclass
class FeatureSet:
    """Features of a list of samples, stacked, in the order of :attr:`ids`.

    Attributes:
        ids: sample ids.
        labels: class names.
        subjects: subject fold ids (``dataset/subject``).
        datasets: source dataset of each sample.
        inputs: input name -> ``[N, ...]`` float32 arrays.
        spec: what the features are.
        variants: offline variants computed from transformed face crops
            (``aug_stage = "frames"``, :func:`attach_offline_variants`): variant name ->
            input name -> ``[N, ...]``, rows as :attr:`ids`; empty otherwise.
    """

    ids: list[str]
    labels: list[str]
    subjects: list[str]
    datasets: list[str]
    inputs: dict[str, np.ndarray]
    spec: FeatureSpec
    variants: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> FeatureSet:
        idx = np.asarray(index, dtype=np.int64)
        return FeatureSet([self.ids[i] for i in idx], [self.labels[i] for i in idx],
                          [self.subjects[i] for i in idx], [self.datasets[i] for i in idx],
                          {k: v[idx] for k, v in self.inputs.items()}, self.spec,
                          {n: {k: v[idx] for k, v in arrays.items()}
                           for n, arrays in self.variants.items()})


def load_features(samples: Sequence[Any], cache_dir: str | os.PathLike[str], spec: FeatureSpec,
                  *, dataset: str | None = None) -> tuple[FeatureSet, list[str]]:
    """Stack the cached features of ``samples`` (labels from the samples, i.e. the mapping
    they were loaded with).

    Returns:
        ``(features, ids without usable features)``.
    """
    name = dataset or _dataset_name(samples)
    ids, labels, subjects, datasets = [], [], [], []
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in spec.input_names}
    missing = []
    for s in samples:
        hit = read_cached(cache_path(cache_dir, s, spec, name), source_fingerprint(s))
        if hit is None:
            missing.append(s.id)
            continue
        a, _ = hit
        if any(k not in a for k in arrays):
            missing.append(s.id)
            continue
        for k in arrays:
            arrays[k].append(a[k])
        ids.append(s.id)
        labels.append(s.label)
        subjects.append(s.fold)
        datasets.append(s.dataset)
    stacked = {k: (np.stack(v).astype(np.float32, copy=False) if v else np.zeros((0,)))
               for k, v in arrays.items()}
    return FeatureSet(ids, labels, subjects, datasets, stacked, spec), missing


def make_spec(model_kind: str = DEFAULT_INPUT_KIND, *, align: str = "tracker", align_size: int = 128,
              preprocess: dict[str, Any] | None = None, **preprocess_overrides: Any
              ) -> FeatureSpec:
    """A :class:`FeatureSpec` with the preprocessing defaults (or ``preprocess`` metadata)
    and the tracker mode of this installation."""
    cfg = preprocess_config(preprocess, **preprocess_overrides)
    mode = tracker_mode(align_size) if align != "none" else ""
    if mode == "box":
        logger.warning("no face landmark model found: alignment uses the face box only, which "
                       "differs from a full installation's; run `mestudio models fetch` first")
    return FeatureSpec(kind=model_kind, preprocess=preprocess_metadata(cfg), align=align,
                       align_size=align_size, tracker_mode=mode)


# ---- offline augmentation before the flow (aug_stage = "frames") ---------------------------
def variant_inputs(sample: Any, spec: FeatureSpec, variant: Any, cfg: Any | None = None
                   ) -> dict[str, np.ndarray]:
    """The model inputs of one offline variant of a sample: its aligned crops transformed
    (:func:`mestudio.training.augment.transform_crop`: flip, rotation or noise), then the
    input kind's :meth:`~mestudio.preprocess.InputKind.make_inputs` — the optical flow (and,
    with ``evm``, the magnification) is computed from the transformed crops.

    Raises:
        FeatureError: the sample cannot be turned into inputs.
    """
    from mestudio.training.augment import transform_crop

    rng = np.random.default_rng(variant.seed)
    return _inputs_from_crops(sample, spec, cfg,
                              lambda im: transform_crop(im, variant, rng))


def variants_folder(cache_dir: str | os.PathLike[str], dataset: str, spec: FeatureSpec,
                    params: Any) -> Path:
    """``CACHE/<dataset>/<spec key>/offline-<hash of the augmentation ranges>``."""
    key = hashlib.sha256(json.dumps({"format": FEATURE_FORMAT, "rotation": params.rotation_deg,
                                     "noise": params.noise}, sort_keys=True).encode()
                         ).hexdigest()[:12]
    return cache_folder(cache_dir, dataset, spec) / f"offline-{key}"


def attach_offline_variants(features: FeatureSet, samples: Sequence[Any],
                            cache_dir: str | os.PathLike[str], variants: Sequence[str],
                            params: Any, *, dataset: str | None = None,
                            progress: bool = True) -> FeatureSet:
    """Compute (or read from the cache) the offline variants of every sample of
    ``features`` from transformed face crops and attach them (``features.variants``).

    Every sample gets its variants (they depend on the sample alone, not on the fold); a
    fold's training set takes those of its training samples only
    (:func:`mestudio.training.runner.offline_training_set`).

    Raises:
        DatasetError: a variant cannot be computed.
    """
    from tqdm import tqdm

    from mestudio.training.augment import offline_variant

    spec = features.spec
    name = dataset or _dataset_name(samples)
    folder = variants_folder(cache_dir, name, spec, params)
    by_id = {s.id: s for s in samples}
    todo = [v for v in variants if v != "original"]
    arrays: dict[str, dict[str, list[np.ndarray]]] = {v: {k: [] for k in spec.input_names}
                                                      for v in todo}
    cfg = preprocess_config(spec.preprocess)
    bar = tqdm(total=len(features.ids) * len(todo), desc=f"offline variants {name}",
               unit="input", file=sys.stderr, disable=not progress or None, dynamic_ncols=True)
    try:
        for sid in features.ids:
            sample = by_id.get(sid)
            if sample is None:
                raise DatasetError(f"offline variants: sample {sid} is not among the samples")
            fp = source_fingerprint(sample)
            for v in todo:
                path = folder / f"{safe_name(sid)}@{v.replace('+', 'p').replace('-', 'm')}.npz"
                hit = read_cached(path, fp)
                if hit is None:
                    try:
                        got = variant_inputs(sample, spec, offline_variant(sid, v, params), cfg)
                    except FeatureError as exc:
                        raise DatasetError(f"offline variant {v} of {sid}: {exc}") from exc
                    _write_npz(path, got, {"format": FEATURE_FORMAT, "id": sid, "variant": v,
                                           "fingerprint": fp})
                else:
                    got = hit[0]
                for k in spec.input_names:
                    arrays[v][k].append(got[k])
                bar.update(1)
    finally:
        bar.close()
    features.variants = {v: {k: np.stack(a).astype(np.float32, copy=False)
                             for k, a in arrays[v].items()} for v in todo}
    return features
