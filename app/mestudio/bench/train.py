"""``mestudio bench train``: training throughput (samples/s) per architecture.

One training step is what :func:`mestudio.training.runner.train_model` does per batch:
consistent augmentation of every stream (flip, rotation, noise), forward, focal loss,
backward and the AdamW update — at batch 128 for keyframe models (M3ENet, the baselines)
and 64 for clip models (IM3DR-MFER), on random inputs of the real shapes (48x48 grey).
Reported per device (CPU; CUDA when present):

* ``samples/s`` — median over the timed steps (wall clock);
* ``cpu ms/sample`` — process CPU time per sample, which a busy shared machine inflates
  less than wall time;
* a projection: hours for a CASME II 5-class LOSO run with the paper's schedule
  (26 folds x 50 epochs x ~245 training samples x5 expansion) at that speed.

Timings on a machine shared with other jobs are noisy; the table says so.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

HELP = "training throughput (samples/s) per model: forward+backward+AdamW at batch 128 (clips 64)"

#: CASME II 5-class LOSO with the paper's schedule: folds, epochs, training samples, expansion.
CASME2_LOSO = (26, 50, 245, 5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mestudio.training.cliargs import set_models_help

    set_models_help(parser.add_argument("--arch", default="m3enet,im3dr_mfer,ststnet,offapexnet"),
                    "comma-separated architectures (default: %(default)s) of: %(models)s")
    parser.add_argument("--batch", type=int, default=128,
                        help="batch size of keyframe models (default 128)")
    parser.add_argument("--clip-batch", type=int, default=64,
                        help="batch size of clip models (default 64)")
    parser.add_argument("--iters", type=int, default=3, help="timed steps (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads on the CPU (default 1; 0 = torch's default)")
    parser.add_argument("--device", default="auto",
                        help="auto (CPU, plus CUDA when present), cpu or cuda")
    parser.add_argument("--no-augment", action="store_true",
                        help="time forward+backward+update without the augmentation")


def _devices(choice: str) -> list[str]:
    import torch

    if choice == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [choice]


def measure(arch: str, device: str, batch: int, iters: int = 3, warmup: int = 1,
            augment: bool = True, classes: int = 5) -> dict[str, Any]:
    """Time ``iters`` training steps of ``arch`` at ``batch`` on ``device``.

    Returns:
        ``{"arch", "device", "batch", "samples_per_s", "cpu_ms_per_sample", "step_s"}``.
    """
    import torch

    from mestudio.nets import create_model
    from mestudio.training.augment import AugmentParams, augment_batch
    from mestudio.training.losses import FocalLoss

    torch.manual_seed(0)
    model = create_model(arch, classes).to(device).train()
    inputs = dict(zip(model.input_names, model.example_inputs(batch, seed=1), strict=True))
    inputs = {k: v.to(device) for k, v in inputs.items()}
    target = torch.randint(0, classes, (batch,), device=device)
    criterion = FocalLoss(2.0, torch.ones(classes)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    gen = torch.Generator().manual_seed(0)
    params = AugmentParams()

    def step() -> None:
        b = augment_batch(inputs, params, gen) if augment else inputs
        loss = criterion(model(*[b[n] for n in model.input_names]), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    walls, cpus = [], []
    for _ in range(iters):
        c0, t0 = time.process_time(), time.perf_counter()
        step()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    wall = statistics.median(walls)
    return {"arch": arch, "device": device, "batch": batch, "input_kind": model.input_kind,
            "params": int(sum(p.numel() for p in model.parameters())),
            "samples_per_s": batch / wall, "step_s": wall,
            "cpu_ms_per_sample": 1e3 * statistics.median(cpus) / batch}


def run(args: argparse.Namespace) -> dict:
    import torch

    from mestudio.nets import list_models

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    archs = [a.strip() for a in args.arch.split(",") if a.strip()]
    unknown = [a for a in archs if a not in list_models()]
    if unknown:
        from mestudio.errors import ConfigError

        raise ConfigError(f"unknown architecture(s) {', '.join(unknown)}: use "
                          f"{', '.join(list_models())}")
    folds, epochs, n_train, expansion = CASME2_LOSO
    load = _load()
    print(f"training step = {'augmentation + ' if not args.no_augment else ''}forward + focal "
          f"loss + backward + AdamW; {args.iters} timed steps after {args.warmup} warm-up; "
          f"torch threads {torch.get_num_threads()}; load average {load}")
    print("(a machine shared with other jobs makes these figures noisy)")
    header = f"{'model':<12}{'device':<7}{'batch':>6}{'params':>9}{'samples/s':>11}" \
             f"{'cpu ms/sample':>15}{'CASME II LOSO (h)':>19}"
    print(header)
    print("-" * len(header))
    figures: dict[str, Any] = {"load_average": load, "threads": torch.get_num_threads(),
                               "augment": not args.no_augment, "results": []}
    for device in _devices(args.device):
        for arch in archs:
            from mestudio.nets import model_input_kind
            from mestudio.preprocess import input_kind

            batch = args.clip_batch if input_kind(model_input_kind(arch)).is_clip else args.batch
            r = measure(arch, device, batch, args.iters, args.warmup, not args.no_augment)
            hours = folds * epochs * n_train * expansion / r["samples_per_s"] / 3600
            r["casme2_loso_hours"] = hours
            figures["results"].append(r)
            print(f"{arch:<12}{device:<7}{batch:>6}{r['params'] / 1e6:>8.2f}M"
                  f"{r['samples_per_s']:>11.1f}{r['cpu_ms_per_sample']:>15.2f}{hours:>19.1f}")
    print(f"projection: {folds} folds x {epochs} epochs x {n_train} samples x{expansion} "
          "expansion (the paper's CASME II schedule) at the measured speed")
    return figures


def _load() -> str:
    try:
        import os

        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "n/a"
