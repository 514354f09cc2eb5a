"""``mestudio train``: evaluate a network with LOSO/LODO and train the final model.

::

    mestudio train --dataset casme2 --root /data/CASME2 --model m3enet --protocol loso \\
        --seeds 1,2,3 [--ablation no-flow] [--epochs 50] [--out runs/casme2] [--set lr=5e-4]

Steps: load the release (``--mapping``), compute/cache the model inputs (as ``mestudio
data prepare``), train one network per fold with a fixed schedule (or choose the epoch on
a validation split of the TRAINING subjects: ``--validation subjects``), pool the test
predictions of all folds by sample id, compute the metrics, write the report (JSON +
Markdown: the M3ENet paper's Table 2 layout and a UF1/UAR table, the class set, settings
and command, confusion matrix PNG), then
train the final model on all subjects and save it as a checkpoint for ``mestudio export``.
Fold results are saved as they finish: running the same command again resumes.

``--ray [ADDRESS]`` prepares the features and trains the folds × seeds as Ray tasks
(:mod:`mestudio.training.cluster`): a local Ray started here (``--workers`` CPUs, default
all cores) or the cluster at ADDRESS / ``$RAY_ADDRESS``; ``--gpus-per-fold G`` requests GPUs
per task. A fold task that fails is retried once; folds that still fail are listed (and
written to ``OUT/failed_folds.json``), their seeds get no pooled figures, no final model
is trained and the exit code is 1 — as when a local fold raises — while every other fold's
result is kept for the next run. The final model trains in this process.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mestudio.progress import add_progress_argument, show_progress

NAME = "train"
HELP = "train and evaluate a recognition network (LOSO/LODO, report, final checkpoint)"


def register(parser: argparse.ArgumentParser) -> None:
    from mestudio.training.cliargs import (
        add_dataset_arguments,
        add_feature_arguments,
        add_model_argument,
        add_ray_arguments,
    )
    from mestudio.training.config import ABLATIONS, VALIDATIONS

    add_dataset_arguments(parser)
    add_model_argument(parser, "architecture")
    parser.add_argument("--protocol", default="loso", choices=("loso", "lodo"),
                        help="leave-one-subject-out (default) or leave-one-dataset-out")
    parser.add_argument("--seeds", default=None, metavar="LIST",
                        help="random seeds, e.g. 1,2,3 (figures: mean ± std over seeds; "
                             "default 1)")
    parser.add_argument("--ablation", default=None, choices=ABLATIONS,
                        help="input/augmentation ablation (default none)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fold (default 50)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default 128)")
    parser.add_argument("--lr", type=float, default=None, help="AdamW learning rate (default 1e-3)")
    parser.add_argument("--validation", default=None, choices=VALIDATIONS,
                        help="none: fixed schedule (default); subjects: choose the epoch on a "
                             "split of the training subjects (never the test fold)")
    parser.add_argument("--device", default=None, help="auto (default), cuda, mps or cpu")
    parser.add_argument("--workers", type=int, default=None,
                        help="folds trained in parallel processes on the CPU (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per training process (default: torch's choice)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override any training setting (repeatable), e.g. --set "
                             "weight_decay=0.01 --set aug_expansion=3 --set betas=0.9,0.99; "
                             "clip models: --set evm=on or evm=alpha=8,low=0.5,high=8,levels=3 "
                             "magnifies each sample's frames (Eulerian video magnification) "
                             "before its inputs are made, recorded in the model")
    parser.add_argument("--folds", default=None, metavar="LIST",
                        help="train only these folds (comma-separated fold ids)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="results folder (default runs/<dataset>-<model>-<protocol>)")
    parser.add_argument("--no-final", action="store_true",
                        help="do not train the final model on all subjects")
    parser.add_argument("--final-only", action="store_true",
                        help="skip the protocol; train only the final model")
    add_feature_arguments(parser)
    add_ray_arguments(parser, folds=True)
    add_progress_argument(parser)


def _config(args: argparse.Namespace):  # noqa: ANN202 - TrainConfig (lazy import)
    from mestudio.training.config import TrainConfig, parse_seeds

    cfg = TrainConfig(model=args.model)
    explicit = {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "validation": args.validation, "device": args.device, "workers": args.workers,
        "threads": args.threads, "ablation": args.ablation,
        "seeds": parse_seeds(args.seeds) if args.seeds else None,
    }
    changes = {k: v for k, v in explicit.items() if v is not None}
    if args.no_final:
        changes["final_model"] = False
    if changes:
        cfg = cfg.replace(**changes)
    return cfg.with_overrides(args.overrides) if args.overrides else cfg


def run(args: argparse.Namespace) -> int:
    import contextlib

    import torch

    use_ray = getattr(args, "ray", None) is not None
    if use_ray:
        from mestudio.raysupport import import_ray

        import_ray()  # without Ray: one line with the install command, exit 2
    cfg = _config(args)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    with contextlib.ExitStack() as stack:
        return _run(args, cfg, stack if use_ray else None)


def _run(args: argparse.Namespace, cfg, stack) -> int:  # noqa: ANN001 - TrainConfig, ExitStack
    import json
    import logging
    import os

    from mestudio.errors import DatasetError
    from mestudio.training.cliargs import (
        default_cache_dir,
        feature_spec,
        invocation,
        load_class_set,
        model_kind,
        ray_folders,
    )
    from mestudio.training.features import load_features, prepare_features
    from mestudio.training.report import build_report, headline, write_report
    from mestudio.training.runner import final_epochs, resolve_device, run_protocol, train_final

    log = logging.getLogger("mestudio.train")
    # the features' spec first: a setting it refuses (evm for a key-frame model) fails now
    spec = feature_spec(args, model_kind(cfg.model), evm=cfg.evm)
    class_set = load_class_set(args)
    dataset, samples, root = class_set.dataset, class_set.samples, class_set.root
    mapping, classes = class_set.mapping_name, list(class_set.classes)
    cache = args.cache or default_cache_dir()
    suffix = f"-{cfg.ablation}" if cfg.ablation != "none" else ""
    out = args.out or Path("runs") / f"{dataset.name}-{cfg.model}-{args.protocol}{suffix}"
    out.mkdir(parents=True, exist_ok=True)
    executor = session = None
    if stack is not None:
        from mestudio.raysupport import check_shared_storage, start_ray
        from mestudio.training.cluster import RayFolds

        cache.mkdir(parents=True, exist_ok=True)
        root, cache, out = ray_folders(root, cache, out)
        session = start_ray(args.ray, num_cpus=args.workers or os.cpu_count())
        stack.callback(session.close)
        check_shared_storage(session, read=[root], write=[cache, out])
        executor = RayFolds(session, gpus_per_fold=args.gpus_per_fold, threads=cfg.threads,
                            device=cfg.device)
        device = executor.device
    else:
        device = resolve_device(cfg.device)
    print(f"dataset   {dataset.title} at {root}: {len(samples)} samples, "
          f"{len({s.fold for s in samples})} subjects, {mapping} classes: {', '.join(classes)}")
    print(f"model     {cfg.model} on {device}; {args.protocol.upper()}, seeds "
          f"{', '.join(map(str, cfg.seeds))}, {cfg.epochs} epochs, ablation {cfg.ablation}"
          + (f"; EVM {spec.preprocess['evm']}" if spec.preprocess.get("evm") else ""))
    if session is not None:
        from mestudio.training.cluster import prepare_features_ray

        prep = prepare_features_ray(session, samples, cache, spec, dataset=dataset.name,
                                    progress=show_progress(args))
    else:
        prep = prepare_features(samples, cache, spec, dataset=dataset.name,
                                workers=args.prepare_workers, progress=show_progress(args))
    if prep.computed or prep.failed:
        print(prep.to_text())
    features, missing = load_features(samples, cache, spec, dataset=dataset.name)
    if missing:
        log.warning("%d samples without features are left out (e.g. %s)", len(missing), missing[0])
    if len(features) == 0:
        raise DatasetError("no sample has features: see the failures above")
    if cfg.augment and cfg.ablation != "no-aug" and cfg.aug_mode == "offline" \
            and cfg.aug_stage == "frames":
        from mestudio.training.augment import AugmentParams, offline_variants
        from mestudio.training.features import attach_offline_variants

        attach_offline_variants(features, samples, cache, offline_variants(cfg.aug_expansion),
                                AugmentParams(cfg.aug_flip, cfg.aug_rotation_deg,
                                              cfg.aug_noise),
                                dataset=dataset.name, progress=show_progress(args))
    synthetic = dataset.name == "synthetic"
    data_info = {"dataset": dataset.name, "title": dataset.title, "root": str(root),
                 "mapping": mapping, "samples": len(features),
                 "subjects": len(set(features.subjects)), "left_out": missing,
                 "features": spec.to_dict(), "device": device, "synthetic": synthetic,
                 "class_set": class_set.describe()}
    if synthetic:
        manifest = getattr(dataset, "manifest", {})
        data_info["synthetic_settings"] = manifest.get("settings", {})
        data_info["identities_distinct"] = manifest.get("identities_distinct")
    result = None
    metrics: dict = {}
    if not args.final_only:
        folds = [f.strip() for f in args.folds.split(",")] if args.folds else None
        result = run_protocol(features, classes, cfg, protocol=args.protocol, out_dir=out,
                              folds=folds, progress=show_progress(args), executor=executor)
        failed = [{"seed": f.seed, "fold": f.fold, "error": f.error, "attempts": f.attempts}
                  for f in result.failed]
        failed_file = out / "failed_folds.json"
        if failed:
            failed_file.write_text(json.dumps(failed, indent=1))
        else:
            failed_file.unlink(missing_ok=True)
        info = result.model_info
        if info:
            print(f"network   {cfg.model}: {info['parameters']:,} parameters; streams "
                  f"{', '.join(info['streams']) or '-'}"
                  + (f" ({', '.join(info['removed_streams'])} removed)"
                     if info["removed_streams"] else "")
                  + (f"; {info['note']}" if info.get("note") else ""))
        if result.per_seed:
            report = build_report(result, dataset=dataset.name, model=cfg.model,
                                  protocol=args.protocol, classes=classes, config=cfg.to_dict(),
                                  data=data_info, class_set=class_set.describe(),
                                  command=invocation(args))
            if failed:
                report["failed_folds"] = failed
            paths = write_report(report, out)
            print(f"{args.protocol.upper()} ({len(result.folds)} folds, {len(result.per_seed)} "
                  f"seed(s)): {headline(report)}")
            print(f"report    {paths['markdown']} (+ {paths['json'].name}, "
                  f"{paths['confusion'].name})")
            metrics = {f"{args.protocol}_{k}": v["mean"] for k, v in report["summary"].items()}
            metrics.update({f"{args.protocol}_{k}_std": v["std"]
                            for k, v in report["summary"].items()})
            metrics["protocol"] = args.protocol
            metrics["seeds"] = list(report["seeds"])
        elif not failed:
            print("not every fold is done yet: no pooled figures (run again to resume)")
        if failed:
            print(f"FAILED    {len(failed)} fold(s) after {failed[0]['attempts']} attempts "
                  f"each (written to {failed_file}); no pooled figures for their seeds, no "
                  "final model; run again to retry them (finished folds are kept):")
            for f in failed:
                print(f"  seed {f['seed']} fold {f['fold']}: {f['error']}")
            return 1
    if stack is not None:
        stack.close()  # Ray stops (when started here) before the final model trains here
    if cfg.final_model and (result is None or result.per_seed):
        epochs = final_epochs(cfg, result)
        ckpt = out / f"{cfg.model}_{dataset.name}.pt"
        training = {"dataset": dataset.name, "data": data_info, "protocol": args.protocol,
                    "mapping": mapping, "config": cfg.to_dict()}
        path = train_final(features, classes, cfg, ckpt, training=training, metrics=metrics,
                           synthetic=synthetic, epochs=epochs, progress=show_progress(args))
        print(f"final     {path} ({epochs} epochs on all {len(features)} samples); export it "
              f"with `mestudio export {path} -o models/NAME.onnx`")
    return 0
