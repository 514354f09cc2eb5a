"""``mestudio data prepare``: compute and cache the model inputs of every sample of a dataset.

::

    mestudio data prepare --dataset casme2 --root /data/CASME2 --cache ~/.cache/mestudio/features
    mestudio data prepare --dataset synthetic --root /tmp/synth --cache /tmp/features

Features come from :mod:`mestudio.preprocess` on crops aligned as the live pipeline aligns
them (:mod:`mestudio.training.features`); they are cached as ``.npz`` keyed by a hash of the
preprocessing configuration, computed by a pool of worker processes, resumable (a second
run only computes what is missing) and shown with a progress bar. ``mestudio train`` calls
the same code, so preparing first is optional.

The command-line helpers (dataset arguments, loading, feature spec) live in
:mod:`mestudio.training.cliargs`, shared with ``mestudio train``. Heavy libraries (torch, cv2)
are imported inside the functions.
"""

from __future__ import annotations

import argparse
import logging

from mestudio.progress import add_progress_argument, show_progress
from mestudio.training.cliargs import (
    add_dataset_arguments,
    add_feature_arguments,
    add_model_argument,
    default_cache_dir,
    feature_spec,
    load_samples,
    model_kind,
)

logger = logging.getLogger(__name__)

HELP = "compute and cache the model inputs (flow, strain, key frames) of a dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mestudio data prepare``."""
    add_dataset_arguments(parser)
    add_feature_arguments(parser)
    add_model_argument(parser, "prepare the inputs this architecture takes")
    add_progress_argument(parser)


def run(args: argparse.Namespace) -> int:
    """``data prepare``: compute missing features, print what was done."""
    import torch

    from mestudio.training.features import prepare_features

    torch.set_num_threads(1)
    dataset, samples, mapping, root = load_samples(args)
    spec = feature_spec(args, model_kind(args.model))
    cache = args.cache or default_cache_dir()
    print(f"dataset   {dataset.title} ({dataset.name}) at {root}: {len(samples)} samples "
          f"({mapping} mapping)")
    print(f"inputs    {spec.kind}, alignment {spec.align} ({spec.align_size} px"
          + (f", tracker mode {spec.tracker_mode}" if spec.tracker_mode else "") + ")")
    report = prepare_features(samples, cache, spec, dataset=dataset.name,
                              workers=args.prepare_workers, progress=show_progress(args))
    print(report.to_text())
    if report.failed and len(report.failed) == len(samples):
        from mestudio.errors import DatasetError

        raise DatasetError("no sample could be turned into features: see the failures above")
    return 0
