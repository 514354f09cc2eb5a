"""``mestudio data prepare``: compute and cache the model inputs of every sample of a dataset.

::

    mestudio data prepare --dataset casme2 --root /data/CASME2 --cache ~/.cache/mestudio/features
    mestudio data prepare --dataset synthetic --root /tmp/synth --cache /tmp/features

Features come from :mod:`mestudio.preprocess` on crops aligned as the live pipeline aligns
them (:mod:`mestudio.training.features`); they are cached as ``.npz`` keyed by a hash of the
preprocessing configuration, computed by a pool of worker processes, resumable (a second
run only computes what is missing) and shown with a progress bar. ``mestudio train`` calls
the same code, so preparing first is optional.

``--ray [ADDRESS]`` spreads the samples over Ray tasks in chunks
(:func:`mestudio.training.cluster.prepare_features_ray`; a local Ray started here with all
cores, or the cluster at ADDRESS / ``$RAY_ADDRESS``): the same function computes every
sample, so the cache files are the same as a local run's. The release and the cache must
be shared storage every node sees (checked before any work).

The command-line helpers (dataset arguments, loading, feature spec) live in
:mod:`mestudio.training.cliargs`, shared with ``mestudio train``. Heavy libraries (torch, cv2)
are imported inside the functions.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mestudio.progress import add_progress_argument, show_progress
from mestudio.training.cliargs import (
    add_dataset_arguments,
    add_feature_arguments,
    add_model_argument,
    add_ray_arguments,
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
    add_ray_arguments(parser)
    add_progress_argument(parser)


def run(args: argparse.Namespace) -> int:
    """``data prepare``: compute missing features, print what was done."""
    import torch

    from mestudio.training.features import prepare_features

    use_ray = getattr(args, "ray", None) is not None
    if use_ray:
        from mestudio.raysupport import import_ray

        import_ray()  # without Ray: one line with the install command, exit 2
    torch.set_num_threads(1)
    dataset, samples, mapping, root = load_samples(args)
    spec = feature_spec(args, model_kind(args.model))
    cache = args.cache or default_cache_dir()
    print(f"dataset   {dataset.title} ({dataset.name}) at {root}: {len(samples)} samples "
          f"({mapping} mapping)")
    print(f"inputs    {spec.kind}, alignment {spec.align} ({spec.align_size} px"
          + (f", tracker mode {spec.tracker_mode}" if spec.tracker_mode else "") + ")")
    if use_ray:
        from mestudio.raysupport import check_shared_storage, ray_session
        from mestudio.training.cliargs import ray_folders
        from mestudio.training.cluster import prepare_features_ray

        Path(cache).expanduser().mkdir(parents=True, exist_ok=True)
        root, cache = ray_folders(root, cache)
        with ray_session(args.ray) as session:
            check_shared_storage(session, read=[root], write=[cache])
            print(f"ray       {session.describe()}")
            report = prepare_features_ray(session, samples, cache, spec, dataset=dataset.name,
                                          progress=show_progress(args))
    else:
        report = prepare_features(samples, cache, spec, dataset=dataset.name,
                                  workers=args.prepare_workers, progress=show_progress(args))
    print(report.to_text())
    if report.failed and len(report.failed) == len(samples):
        from mestudio.errors import DatasetError

        raise DatasetError("no sample could be turned into features: see the failures above")
    return 0
