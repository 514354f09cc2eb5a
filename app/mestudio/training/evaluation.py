"""Scoring a model on a dataset release the user holds (``mestudio evaluate``).

Two ways to score:

* :func:`evaluate_model` — one exported model (``.onnx``) over every sample of a release.
  The samples become inputs exactly as for training and live recognition
  (:mod:`mestudio.training.features` -> :mod:`mestudio.preprocess`) with the preprocessing
  configuration stored in the MODEL'S metadata (whatever its recipe); nothing depends on the
  architecture.
* :func:`evaluate_folds` — a folder of the authors' STSTNet fold files (one network per
  held-out subject of the MEGC2019 composite): each fold is scored on ITS OWN held-out
  subject only (true leave-one-subject-out), the predictions of all folds are pooled, then
  the figures are computed (DATASETS.md "Metrics"). The inputs follow the recipe that
  :func:`mestudio.inference.ststnet_import.import_ststnet` records in the models it builds
  from these files (``ststnet-megc2019``), so the figures are those of the application's own
  preprocessing and can be set beside the authors' (UF1 0.7209, UAR 0.725).

Classes: the dataset's labels are matched to the model's class names by name (case and the
``other``/``others`` spelling ignored). The dataset mapping (``native``, ``5class``,
``3class``) is chosen to score the most samples unless given; ``--mapping`` also takes what
``mestudio train --mapping`` takes (a shipped mapping file by name, or a TOML file: read by
the same :meth:`~mestudio.training.datasets.base.MEDataset.resolve_mapping`), and
``--min-class-samples N`` leaves out the mapping's classes with fewer than N samples as
training does (:func:`~mestudio.training.datasets.base.drop_small_classes`). The result
states the class set as a training report does (``class_set``: mapping name, file, SHA-256,
classes, min-class-samples, dropped classes; plus the samples per class). Nothing is dropped
silently:
samples that the mapping excludes, samples whose class the model lacks, samples whose inputs
cannot be computed (no face found, unreadable frame) and, for folds, subjects without a fold
file are all counted and listed in the result.

Figures (:mod:`mestudio.training.metrics`): accuracy, UF1, UAR, the confusion matrix (rows =
true class, columns = predicted, in the model's class order), per-class and per-source-dataset
figures; predictions are aligned with the labels by sample id.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.errors import ConfigError, DatasetError, ModelFileError

logger = logging.getLogger(__name__)

#: The authors' names of the fold files: each ``.pth`` is named after the held-out subject's
#: folder of their ``norm_u_v_os`` data (GitHub christy1206/STSTNet, ``main.py``:
#: ``weight_path = 'STSTNet_Weights/' + subject + '.pth'``). Source dataset of a sample ->
#: file stem as a format of the subject NUMBER. CASME II subject ``01`` (folder ``sub01``)
#: -> ``sub01``; SAMM subject ``006`` -> ``006``; SMIC-HS subject ``s1`` -> ``s01``. The 68
#: published files are 24 ``subNN`` (CASME II subjects with composite samples: not 10, 18),
#: 28 three-digit SAMM ids (006-037) and 16 ``sNN`` (SMIC-HS). Other datasets: the subject
#: id as the loader writes it (:func:`fold_file_stem`).
FOLD_FILE_NAMES: dict[str, str] = {
    "casme2": "sub{n:02d}",
    "samm": "{n:03d}",
    "smic": "s{n:02d}",
}

#: Class names that mean the same class (after lower-casing).
CLASS_ALIASES: dict[str, str] = {"other": "others"}

REFERENCE_NOTE = ("the authors' leave-one-subject-out result with these fold files on their "
                  "own inputs (STSTNet, FG 2019; their PyTorch reproduction)")


def class_key(name: str) -> str:
    """How class names are compared: lower case, stripped, aliases resolved."""
    key = " ".join(str(name).strip().lower().split())
    return CLASS_ALIASES.get(key, key)


def fold_file_stem(sample: Any) -> str:
    """The fold-file stem of a sample's subject (:data:`FOLD_FILE_NAMES`)."""
    from mestudio.training.datasets.base import subject_number

    fmt = FOLD_FILE_NAMES.get(sample.dataset)
    n = subject_number(sample.subject)
    if fmt is None or n is None:
        return str(sample.subject)
    return fmt.format(n=n)


# ---- what is scored ---------------------------------------------------------------------
@dataclass
class Selection:
    """The samples of a release that can be scored against a set of model classes.

    Attributes:
        dataset, title, root, mapping: the release and the class mapping used (its name).
        release_samples: usable samples of the release (any label).
        outside_mapping: native label -> samples the mapping excludes.
        class_not_in_model: label -> samples whose class the model lacks.
        samples: the samples to score (labels under ``mapping``).
        y: sample id -> index of its class in the model's classes.
        issues: issue kind -> count, from the release scan (``mestudio data check``).
        class_set: what the class set is, as a training report states it
            (:meth:`mestudio.training.cliargs.ClassSet.describe`) plus ``class_counts``
            (samples of the release per class of the set, after ``min_class_samples``).
    """

    dataset: str
    title: str
    root: Path
    mapping: str
    release_samples: int
    outside_mapping: dict[str, int]
    class_not_in_model: dict[str, int]
    samples: list[Any]
    y: dict[str, int]
    issues: dict[str, int] = field(default_factory=dict)
    class_set: dict[str, Any] = field(default_factory=dict)


def resolve_mapping(dataset: Any, mapping: Any = "auto") -> Any:
    """``--mapping`` of ``mestudio evaluate``: ``"auto"`` (chosen by the model's classes,
    :func:`choose_mapping`) or what ``mestudio train --mapping`` accepts, read by the same
    :meth:`~mestudio.training.datasets.base.MEDataset.resolve_mapping` (a built-in name, a
    shipped mapping file, a TOML file; a :class:`ClassMapping` as it is).

    Raises:
        DatasetError: an unknown mapping, or a mapping file that cannot be read.
    """
    if isinstance(mapping, str) and mapping == "auto":
        return mapping
    return dataset.resolve_mapping(mapping)


def choose_mapping(report: Any, classes: Sequence[str], requested: Any = "auto") -> Any:
    """The class mapping of the release to score ``classes`` with.

    ``auto``: the mapping under which the most samples have a class of the model; ties go to
    a mapping whose classes are all the model's, then to the first one (native first). A
    :class:`~mestudio.training.datasets.base.ClassMapping` (a mapping file,
    :func:`resolve_mapping`) is returned as it is.

    Raises:
        DatasetError: a requested mapping the dataset lacks.
    """
    from mestudio.training.datasets.base import ClassMapping

    if isinstance(requested, ClassMapping):
        return requested
    mappings = list(report.mappings())
    if requested != "auto":
        if requested not in mappings:
            raise DatasetError(f"{report.title} has no {requested!r} class mapping: use one of "
                               f"{', '.join(['auto', *mappings])}")
        return requested
    model = {class_key(c) for c in classes}
    best, best_key = mappings[0], None
    for i, m in enumerate(mappings):
        samples = report.mapped(m)
        names = {class_key(c) for c in report.class_orders.get(m, ())} or \
            {class_key(s.label) for s in samples}
        key = (sum(1 for s in samples if class_key(s.label) in model), names <= model, -i)
        if best_key is None or key > best_key:
            best, best_key = m, key
    return best


def scan_release(dataset: Any, root: str | os.PathLike[str]) -> Any:
    """The release's :class:`~mestudio.training.datasets.DatasetReport`.

    Raises:
        DatasetError: the release cannot be read or holds no usable sample.
    """
    report = dataset.check(root)
    if not report.usable:
        raise DatasetError(f"no usable {report.title} sample under {report.root}: run "
                           f"`mestudio data check --dataset {dataset.name} --root "
                           f"{report.root}` for the details")
    return report


def select_samples(report: Any, classes: Sequence[str], *, mapping: Any = "auto",
                   min_class_samples: int = 0, dataset: Any = None) -> Selection:
    """The samples of a scanned release (:func:`scan_release`) whose class, under the
    mapping (a name or a :class:`~mestudio.training.datasets.base.ClassMapping`,
    :func:`resolve_mapping`) and after ``min_class_samples``, the model has.

    Args:
        dataset: the release's loader (for the class set's description; default: the
            registry's loader of ``report.dataset``).

    Raises:
        DatasetError: none of the samples has a class of the model; an unknown mapping;
            ``min_class_samples`` leaves fewer than two classes.
    """
    from mestudio.training.cliargs import ClassSet
    from mestudio.training.datasets import get_dataset
    from mestudio.training.datasets.base import ClassMapping, drop_small_classes

    mapping = choose_mapping(report, classes, mapping)
    loader = dataset if dataset is not None else get_dataset(report.dataset)
    if isinstance(mapping, ClassMapping):
        outside = Counter(s.native_label for s in report.samples
                          if mapping.map(s.native_label, s.dataset) is None)
    else:
        table = report.class_maps.get(mapping)
        outside = Counter(s.native_label for s in report.samples
                          if table is not None and s.native_label not in table)
    class_map = loader.mapping_object(mapping)
    mapped = report.mapped(mapping)
    set_classes = list(class_map.classes)
    dropped: dict[str, int] = {}
    minimum = int(min_class_samples or 0)
    if minimum > 0:  # as training does (mestudio.training.cliargs.load_class_set)
        mapped, set_classes, dropped = drop_small_classes(mapped, set_classes, minimum)
    counts = Counter(s.label for s in mapped)
    class_set = {**ClassSet(loader, mapped, set_classes, class_map, Path(report.root), minimum,
                            dropped).describe(),
                 "class_counts": {c: counts.get(c, 0) for c in set_classes}}
    index = {class_key(c): i for i, c in enumerate(classes)}
    lacking: Counter[str] = Counter()
    samples, y = [], {}
    for s in mapped:
        k = index.get(class_key(s.label))
        if k is None:
            lacking[s.label] += 1
            continue
        samples.append(s)
        y[s.id] = k
    if not samples:
        raise DatasetError(
            f"none of the {len(report.samples)} {report.title} samples has a class of the model "
            f"({', '.join(classes)}) under the {class_map.name} mapping "
            f"(classes there: {', '.join(sorted({s.label for s in mapped}))})")
    return Selection(dataset=report.dataset, title=report.title, root=report.root,
                     mapping=str(class_map.name), release_samples=len(report.samples),
                     outside_mapping=dict(outside.most_common()),
                     class_not_in_model=dict(lacking.most_common()), samples=samples, y=y,
                     issues=report.issue_counts(), class_set=class_set)


# ---- inputs -----------------------------------------------------------------------------
@dataclass
class InputOptions:
    """How samples become model inputs (besides the model's preprocessing configuration).

    Attributes:
        cache_dir: feature cache (``None``: the user cache, as ``mestudio train``).
        align: ``tracker`` (default), ``keyframes`` or ``none`` (frames already aligned).
        align_size: side of the aligned crops (the live tracker's, 128).
        workers: processes computing features.
        progress: tqdm bars on stderr (shown only on a terminal).
    """

    cache_dir: str | os.PathLike[str] | None = None
    align: str = "tracker"
    align_size: int = 128
    workers: int = 2
    progress: bool = True


def compute_inputs(samples: Sequence[Any], kind: str, preprocess: Mapping[str, Any],
                   options: InputOptions, dataset: str) -> tuple[Any, dict[str, str]]:
    """The inputs of ``samples`` with the given preprocessing configuration.

    Returns:
        ``(FeatureSet, {sample id: why it has no inputs})``.
    """
    from mestudio.preprocess import INPUT_KINDS
    from mestudio.training.features import load_features, make_spec, prepare_features

    if kind not in INPUT_KINDS:
        raise ModelFileError(f"the model takes {kind!r} inputs; mestudio evaluate scores "
                             f"models with {' or '.join(INPUT_KINDS)} inputs")
    cache = options.cache_dir
    if cache is None:
        from mestudio.training.cliargs import default_cache_dir

        cache = default_cache_dir()
    spec = make_spec(kind, align=options.align, align_size=options.align_size,
                     preprocess=dict(preprocess) or None)
    report = prepare_features(samples, cache, spec, dataset=dataset,
                              workers=max(1, int(options.workers)), progress=options.progress)
    features, missing = load_features(samples, cache, spec, dataset=dataset)
    failed = {sid: report.failed.get(sid, "no features") for sid in missing}
    return features, failed


# ---- predictors -------------------------------------------------------------------------
Predict = Callable[[dict[str, np.ndarray]], np.ndarray]


def _engine_predict(engine: Any) -> Predict:
    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(engine.run(inputs, cam=False)["probs"], dtype=np.float64)
    return predict


def _torch_predict(model: Any, batch: int = 256) -> Predict:
    import torch

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        names = tuple(model.input_names)
        n = len(next(iter(inputs.values())))
        out = []
        with torch.no_grad():
            for start in range(0, n, batch):
                args = [torch.from_numpy(np.ascontiguousarray(inputs[k][start:start + batch]))
                        for k in names]
                out.append(torch.softmax(model(*args).float(), dim=1).numpy())
        return np.concatenate(out).astype(np.float64)
    return predict


def _probs_of(predict: Predict, features: Any, idx: Sequence[int]) -> dict[str, np.ndarray]:
    sub = features.subset(list(idx))
    probs = predict(sub.inputs)
    return {sid: probs[i] for i, sid in enumerate(sub.ids)}


# ---- results ----------------------------------------------------------------------------
def _finite(value: Any) -> Any:
    """NaN/inf -> None, recursively (JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _result(selection: Selection, classes: Sequence[str], fold_predictions: list[dict[str, Any]],
            sources: dict[str, str], failed: dict[str, str], **extra: Any) -> dict[str, Any]:
    from mestudio.training.metrics import pool_predictions, pooled_metrics

    scored = {sid for preds in fold_predictions for sid in preds}
    labels = {sid: k for sid, k in selection.y.items() if sid in scored}
    by_id = {s.id: s for s in selection.samples}
    pooled = pool_predictions(fold_predictions, labels, classes,
                              folds={sid: by_id[sid].fold for sid in labels},
                              groups={sid: by_id[sid].dataset for sid in labels})
    metrics = pooled_metrics(pooled)
    predictions = [{"id": sid, "fold": pooled.folds[i], "label": classes[int(pooled.y_true[i])],
                    "predicted": classes[int(pooled.y_pred[i])],
                    "probs": [round(float(p), 6) for p in pooled.probs[i]],
                    "scored_by": sources.get(sid, "")}
                   for i, sid in enumerate(pooled.ids)]
    out = {
        "dataset": selection.dataset, "title": selection.title, "root": str(selection.root),
        "mapping": selection.mapping, "release_samples": selection.release_samples,
        "outside_mapping": selection.outside_mapping,
        "class_not_in_model": selection.class_not_in_model,
        "no_inputs": failed, "release_issues": selection.issues,
        "class_set": selection.class_set,
        **extra,
        **metrics,
        "predictions": predictions,
    }
    return _finite(out)


def evaluate_model(model_path: str | os.PathLike[str], dataset: Any,
                   root: str | os.PathLike[str], *, mapping: Any = "auto",
                   options: InputOptions | None = None, device: str = "auto",
                   min_class_samples: int = 0) -> dict[str, Any]:
    """Score an exported model on every sample of a release (see the module docstring).

    ``mapping``: ``auto``, a built-in mapping name, a mapping file (name or path) or a
    :class:`~mestudio.training.datasets.base.ClassMapping` (:func:`resolve_mapping`);
    ``min_class_samples``: as ``mestudio train --min-class-samples``.

    Returns:
        The figures (:func:`mestudio.training.metrics.compute_metrics` keys: ``n``,
        ``accuracy``, ``uf1``, ``uar``, ``confusion``, ``classes``, ``per_class``, ``groups``)
        plus what was not scored and why, and one entry per scored sample in
        ``predictions``.

    Raises:
        ModelFileError, DatasetError: see :func:`select_samples`; no sample with inputs.
    """
    from mestudio.inference.engine import InferenceEngine

    options = options or InputOptions()
    mapping = resolve_mapping(dataset, mapping)  # a broken mapping file fails first
    report = scan_release(dataset, root)  # a wrong root fails before the model loads
    engine = InferenceEngine(model_path, device=device, threads=0)
    classes = engine.classes
    selection = select_samples(report, classes, mapping=mapping,
                               min_class_samples=min_class_samples, dataset=dataset)
    features, failed = compute_inputs(selection.samples, engine.input_kind,
                                      engine.preprocess_config, options, selection.dataset)
    if not len(features):
        raise DatasetError(f"none of the {len(selection.samples)} samples could be turned into "
                           f"model inputs (e.g. {next(iter(failed.items()), ('', ''))[1]}); "
                           "try --align none for aligned crops, or `mestudio models fetch`")
    predict = _engine_predict(engine)
    preds: dict[str, np.ndarray] = {}
    step = 256
    from tqdm import tqdm

    with tqdm(total=len(features), desc="scoring", unit="sample",
              disable=None if options.progress else True, dynamic_ncols=True) as bar:
        for start in range(0, len(features), step):
            idx = list(range(start, min(start + step, len(features))))
            preds.update(_probs_of(predict, features, idx))
            bar.update(len(idx))
    training = engine.metadata.get("training")
    model = {"path": str(model_path), "name": engine.name, "architecture": engine.architecture,
             "input_kind": engine.input_kind, "description": engine.description,
             "synthetic": engine.synthetic,
             "trained_on": (training.get("dataset") if isinstance(training, Mapping) else None),
             "preprocess_recipe": str(engine.preprocess_config.get("recipe", "mestudio")),
             "evm": str(engine.preprocess_config.get("evm") or "")}
    return _result(selection, classes, [preds], {sid: engine.name for sid in preds}, failed,
                   mode="model", model=model, align=options.align)


def evaluate_folds(folds_dir: str | os.PathLike[str], dataset: Any,
                   root: str | os.PathLike[str], *, mapping: Any = "auto",
                   options: InputOptions | None = None,
                   min_class_samples: int = 0) -> dict[str, Any]:
    """Score the authors' STSTNet fold files, each on its own held-out subject only.

    A sample's fold file is ``<stem>.pth`` with the stem of :func:`fold_file_stem` (names
    compared case-insensitively). Subjects without a fold file are listed and not scored;
    fold files that name no subject of the release are listed.

    Returns:
        As :func:`evaluate_model`, plus ``folds`` (files used, subjects without a fold file
        with their sample counts, folds without samples) and ``reference`` (the authors'
        figures).

    Raises:
        ModelFileError: no fold files, or a file that is not an STSTNet fold.
        DatasetError: as :func:`select_samples`; no subject of the release has a fold file.
    """
    from tqdm import tqdm

    from mestudio.inference.ststnet_import import AUTHORS_LOSO, find_weight_files
    from mestudio.nets.ststnet_fg2019 import (
        MEGC2019_CLASSES,
        STSTNetFG2019,
        load_published_weights,
    )
    from mestudio.preprocess import ststnet_megc2019_config

    options = options or InputOptions()
    mapping = resolve_mapping(dataset, mapping)
    folder = Path(folds_dir).expanduser()
    if not folder.is_dir():
        raise ModelFileError(f"--folds {folder} is not a folder (a folder of STSTNet fold files "
                             "006.pth, s01.pth, sub01.pth, ...)")
    files = find_weight_files(folder)
    by_stem: dict[str, Path] = {}
    for f in files:
        if f.stem.lower() in by_stem:
            raise ModelFileError(f"two fold files for subject {f.stem}: {by_stem[f.stem.lower()]}"
                                 f" and {f}")
        by_stem[f.stem.lower()] = f
    classes = MEGC2019_CLASSES
    selection = select_samples(scan_release(dataset, root), classes, mapping=mapping,
                               min_class_samples=min_class_samples, dataset=dataset)

    subjects: dict[str, list[Any]] = {}
    stems: dict[str, str] = {}
    for s in selection.samples:
        subjects.setdefault(s.fold, []).append(s)
        stems[s.fold] = fold_file_stem(s)
    with_fold = {fold: by_stem[stems[fold].lower()] for fold in subjects
                 if stems[fold].lower() in by_stem}
    without = {fold: len(subjects[fold]) for fold in sorted(subjects) if fold not in with_fold}
    used_files = set(with_fold.values())
    unused = [f.name for f in files if f not in used_files]
    if not with_fold:
        raise DatasetError(
            f"none of the {len(files)} fold files in {folder} names a subject of the "
            f"{selection.title} release ({len(subjects)} subjects, e.g. "
            f"{', '.join(sorted(stems.values())[:4])}): fold files are named after the held-out "
            "subject as the authors name it (sub01 = CASME II 01, 006 = SAMM 006, s01 = SMIC s1)")
    scored = [s for fold in sorted(with_fold) for s in subjects[fold]]

    # The recipe import_ststnet records in the models it builds from these files.
    recipe = ststnet_megc2019_config().to_metadata()
    features, failed = compute_inputs(scored, STSTNetFG2019.input_kind, recipe, options,
                                      selection.dataset)
    if not len(features):
        raise DatasetError(f"none of the {len(scored)} samples could be turned into model "
                           f"inputs (e.g. {next(iter(failed.items()), ('', ''))[1]}); try "
                           "--align none for aligned crops, or `mestudio models fetch`")
    rows_of: dict[str, list[int]] = {}
    for i, fold in enumerate(features.subjects):
        rows_of.setdefault(fold, []).append(i)
    fold_predictions: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    for fold in tqdm(sorted(with_fold), desc="folds", unit="fold",
                     disable=None if options.progress else True, dynamic_ncols=True):
        idx = rows_of.get(fold)
        if not idx:
            continue  # every sample of the subject failed: listed in no_inputs
        net = load_published_weights(with_fold[fold])  # 3 classes, or ModelFileError
        preds = _probs_of(_torch_predict(net), features, idx)
        fold_predictions.append(preds)
        sources.update({sid: with_fold[fold].name for sid in preds})
    folds_info = {
        "folder": str(folder), "files": len(files),
        "subjects": len(subjects), "subjects_with_fold": len(with_fold),
        "subjects_without_fold": without,
        "folds_without_samples": unused,
        "file_of_subject": {fold: p.name for fold, p in sorted(with_fold.items())},
        "naming": {k: v for k, v in FOLD_FILE_NAMES.items()},
    }
    reference = {"uf1": AUTHORS_LOSO["UF1"], "uar": AUTHORS_LOSO["UAR"],
                 "note": REFERENCE_NOTE}
    return _result(selection, classes, fold_predictions, sources, failed, mode="folds",
                   folds=folds_info, reference=reference, align=options.align,
                   preprocess_recipe=str(recipe.get("recipe")))


# ---- text -------------------------------------------------------------------------------
def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4f}"


def _counts(d: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def _listing(items: Sequence[str], limit: int = 12) -> str:
    items = list(items)
    more = f" ... (+{len(items) - limit})" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def format_result(result: Mapping[str, Any]) -> str:
    """The text ``mestudio evaluate`` prints."""
    lines = []
    if result.get("mode") == "folds":
        f = result["folds"]
        lines.append(f"model     STSTNet (FG 2019) fold files in {f['folder']}: {f['files']} "
                     "files, each scored on its own held-out subject (leave-one-subject-out)")
        lines.append(f"inputs    recipe {result.get('preprocess_recipe')}, alignment "
                     f"{result.get('align')}")
    else:
        m = result["model"]
        lines.append(f"model     {m['name']} ({m['architecture']}, {m['input_kind']} inputs, "
                     f"recipe {m['preprocess_recipe']}): {m['path']}")
        if m.get("trained_on"):
            lines.append(f"          trained on: {m['trained_on']}")
            lines.append("          (on samples the model was trained on, these are not "
                         "held-out figures)")
        if m.get("synthetic"):
            lines.append("          SYNTHETIC-data model (synthetic AU patterns, not emotions)")
        lines.append(f"inputs    alignment {result.get('align')}"
                     + (f"; Eulerian magnification {m['evm']} (as in training)"
                        if m.get("evm") else ""))
    lines.append(f"dataset   {result['title']} ({result['dataset']}) at {result['root']}: "
                 f"{result['release_samples']} usable samples, {result['mapping']} mapping")
    lines.extend(class_set_lines(result.get("class_set") or {}))
    if result["outside_mapping"]:
        n = sum(result["outside_mapping"].values())
        lines.append(f"          {n} outside the {result['mapping']} mapping, not scored: "
                     f"{_counts(result['outside_mapping'])}")
    if result["class_not_in_model"]:
        n = sum(result["class_not_in_model"].values())
        lines.append(f"          {n} of a class the model lacks, not scored: "
                     f"{_counts(result['class_not_in_model'])}")
    if result.get("mode") == "folds":
        f = result["folds"]
        lines.append(f"folds     {f['subjects_with_fold']} of {f['subjects']} subjects have a "
                     "fold file")
        if f["subjects_without_fold"]:
            w = f["subjects_without_fold"]
            lines.append(f"          {len(w)} subject(s) without a fold file, {sum(w.values())} "
                         f"sample(s) not scored: {_listing([f'{k} ({v})' for k, v in w.items()])}")
        if f["folds_without_samples"]:
            lines.append(f"          {len(f['folds_without_samples'])} fold file(s) without "
                         f"samples: {_listing(f['folds_without_samples'])}")
    if result["no_inputs"]:
        items = list(result["no_inputs"].items())
        lines.append(f"          {len(items)} sample(s) without inputs, not scored: "
                     + "; ".join(f"{k}: {v}" for k, v in items[:5])
                     + (" ..." if len(items) > 5 else ""))
    lines.append(f"scored    {result['n']} samples")
    ref = result.get("reference")
    lines.append("")
    if ref:
        lines.append(f"{'':10}{'ours':>8}{'authors':>9}")
        lines.append(f"{'accuracy':10}{_fmt(result['accuracy']):>8}{'':>9}")
        lines.append(f"{'UF1':10}{_fmt(result['uf1']):>8}{_fmt(ref['uf1']):>9}")
        lines.append(f"{'UAR':10}{_fmt(result['uar']):>8}{_fmt(ref['uar']):>9}")
        lines.append(f"          (authors = {ref['note']})")
    else:
        lines.append(f"accuracy  {_fmt(result['accuracy'])}")
        lines.append(f"UF1       {_fmt(result['uf1'])}")
        lines.append(f"UAR       {_fmt(result['uar'])}")
    groups = result.get("groups") or {}
    if groups:
        lines.append("")
        lines.append(f"{'source':10}{'n':>5}{'acc':>8}{'UF1':>8}{'UAR':>8}")
        for g, m in groups.items():
            lines.append(f"{g:10}{m['n']:>5}{_fmt(m['accuracy']):>8}{_fmt(m['uf1']):>8}"
                         f"{_fmt(m['uar']):>8}")
    classes = list(result["classes"])
    width = max([10, *(len(c) + 1 for c in classes)])
    lines.append("")
    lines.append("confusion (rows = true class, columns = predicted class)")
    lines.append(" " * width + "".join(f"{c:>{width}}" for c in classes))
    for c, row in zip(classes, result["confusion"], strict=True):
        lines.append(f"{c:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def class_set_lines(cs: Mapping[str, Any]) -> list[str]:
    """The class set as ``mestudio evaluate`` prints it (what a training report states:
    mapping, file and SHA-256, classes with their samples, min-class-samples and the classes
    it dropped)."""
    if not cs:
        return []
    name = str(cs.get("mapping"))
    if cs.get("mapping_sha256"):
        name += (f" ({cs.get('mapping_source') or 'built-in'}, SHA-256 "
                 f"{str(cs['mapping_sha256'])[:16]})")
    counts = cs.get("class_counts") or {}
    classes = ", ".join(f"{c} {counts[c]}" if c in counts else str(c)
                        for c in cs.get("classes", []))
    lines = [f"class set {name}: {classes}"]
    dropped = cs.get("dropped_classes") or {}
    if cs.get("min_class_samples") or dropped:
        text = f"          min-class-samples {cs.get('min_class_samples', 0)}"
        if dropped:
            text += " — dropped: " + ", ".join(f"{c} ({n} samples)" for c, n in dropped.items())
        lines.append(text)
    return lines


def check_arguments(model: Any, folds: Any) -> None:
    """Exactly one of ``--model`` and ``--folds``."""
    if (model is None) == (folds is None):
        raise ConfigError("give either --model FILE.onnx or --folds DIR (a folder of STSTNet "
                          "fold files)")
