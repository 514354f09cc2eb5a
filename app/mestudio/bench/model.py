"""``mestudio bench model``: recogniser latency and throughput, torch eager vs ONNX Runtime.

For each architecture (random weights unless ``--model`` names an exported file) it exports
two ONNX variants into a temporary folder — with the Grad-CAM output and without — and times

* batch-1 latency (ms) and batch-64 throughput (samples/s),
* torch eager (the plain network; and with the analytic Grad-CAM wrapper),
* ONNX Runtime on the CPU (and CUDA when usable), with and without CAM,
* event-to-prediction latency (preprocess: TV-L1 + strain on the key frames, + the model)
  when ``mestudio.preprocess`` is available.

Timing is robust to a busy machine: ``--rounds`` rounds of ``--iters`` runs, the median of
each round, then the median over rounds (``med``) and the best round (``best``).
Targets (issue 5, M3ENet): ONNX Runtime batch-1 latency with CAM <= 2.5 ms and >= 4x faster
than torch eager batch 1.
"""

from __future__ import annotations

import argparse
import functools
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HELP = "recogniser latency (batch 1) and throughput (batch 64): torch eager vs ONNX Runtime, with/without Grad-CAM"

TARGET_LATENCY_MS = 2.5
TARGET_SPEEDUP = 4.0

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mestudio.training.cliargs import set_models_help

    set_models_help(parser.add_argument("--arch", default="m3enet,im3dr_mfer"),
                    "comma-separated architectures (default: %(default)s) of: %(models)s")
    parser.add_argument("--model", type=Path, default=None,
                        help="time this exported .onnx too (ONNX Runtime only)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads for torch and ONNX Runtime (default 1)")
    parser.add_argument("--rounds", type=int, default=7, help="timing rounds (default 7)")
    parser.add_argument("--iters", type=int, default=30, help="runs per round at batch 1 (default 30)")
    parser.add_argument("--batch", type=int, default=64, help="throughput batch size (default 64)")
    parser.add_argument("--classes", type=int, default=5, help="number of classes K (default 5)")
    parser.add_argument("--planted", type=int, default=0, metavar="PER_CLASS",
                        help="also score --model and the shipped synthetic model on the same "
                             "planted action-unit patterns (PER_CLASS events per face and "
                             "class; see `mestudio bench planted`)")


def _time(fn: Callable[[], Any], rounds: int, iters: int) -> dict[str, float]:
    """Timing of ``fn()`` in milliseconds.

    ``med``: median over rounds of each round's median wall-clock time; ``best``: the best
    round's median; ``cpu``: the same median of the calling thread's CPU time, which is what
    one intra-op thread really costs on a machine busy with other work (with more threads it
    undercounts).
    """
    for _ in range(max(2, iters // 5)):
        fn()
    medians, cpu_medians = [], []
    for _ in range(rounds):
        ts, cs = [], []
        for _ in range(iters):
            c0, t0 = time.thread_time(), time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
            cs.append(time.thread_time() - c0)
        medians.append(statistics.median(ts) * 1e3)
        cpu_medians.append(statistics.median(cs) * 1e3)
    return {"med": statistics.median(medians), "best": min(medians),
            "cpu": statistics.median(cpu_medians)}


def _event_latency(engine: Any, rounds: int) -> dict[str, float] | None:
    """Preprocess (the input kind's crops of a small synthetic motion -> inputs: TV-L1,
    strain, frames or clip) + predict, in ms; None when it cannot be measured."""
    from mestudio import preprocess

    try:
        kind = preprocess.input_kind(engine.input_kind)
    except ValueError:
        return None
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    event = [(i, np.roll(base, i, axis=1)) for i in range(3)]  # onset, apex, offset
    try:
        cfg = preprocess.PreprocessConfig.from_metadata(engine.preprocess_config) \
            if engine.preprocess_config else preprocess.PreprocessConfig()
    except Exception:  # noqa: BLE001 - foreign metadata: fall back to defaults
        cfg = preprocess.PreprocessConfig()
    crops = kind.select(event, 0, 1, 2, cfg)
    if crops is None:
        return None

    def once() -> None:
        engine.predict(preprocess.model_inputs(kind, [crops], cfg,
                                               fps=[30.0] if cfg.evm else None))

    try:
        return _time(once, max(2, rounds // 2), 5)
    except Exception as exc:  # noqa: BLE001 - report, do not fail the benchmark
        log.warning("event-to-prediction latency not measured: %s", exc)
        return None


def _bench_arch(arch: str, args: argparse.Namespace, tmp: Path, quick: bool) -> dict[str, Any]:
    import torch

    from mestudio.inference.engine import InferenceEngine
    from mestudio.inference.export import export_onnx
    from mestudio.inference.providers import cuda_status
    from mestudio.nets import create_model
    from mestudio.nets.flops import complexity
    from mestudio.nets.gradcam import AnalyticGradCAM

    rounds = max(2, args.rounds // 2) if quick else args.rounds
    iters = max(5, args.iters // 3) if quick else args.iters
    torch.manual_seed(0)
    model = create_model(arch, args.classes).eval()
    fig: dict[str, Any] = {"arch": arch, **complexity(model)}
    info = {"classes": [f"class{i}" for i in range(args.classes)], "synthetic": True}
    with_cam = export_onnx((model, info), tmp / f"{arch}_cam.onnx", verify=False, card=False)
    no_cam = export_onnx((model, info), tmp / f"{arch}_nocam.onnx", cam=False, verify=False,
                         card=False)
    int8_path = None
    if arch == "m3enet":
        from mestudio.inference.quantize import int8_agreement

        int8_path = export_onnx((model, info), tmp / f"{arch}_int8.onnx", verify=False,
                                card=False, int8=True)
        fig["int8_agreement"] = int8_agreement(int8_path, model, True)
    wrapper = AnalyticGradCAM(model).eval()
    x1 = model.example_inputs(1)
    xb = model.example_inputs(args.batch)
    feeds = {b: {n: t.numpy() for n, t in zip(model.input_names, x, strict=True)}
             for b, x in ((1, x1), (args.batch, xb))}
    big_rounds, big_iters = (2, 2) if quick else (3, 3)

    torch.set_num_threads(max(1, args.threads))
    with torch.inference_mode():
        fig["torch_b1_ms"] = _time(lambda: model(*x1), rounds, iters)
        fig["torch_cam_b1_ms"] = _time(lambda: wrapper(*x1), rounds, iters)
        t = _time(lambda: model(*xb), big_rounds, big_iters)
        fig["torch_bN_per_s"] = args.batch / (t["med"] / 1e3)
        t = _time(lambda: wrapper(*xb), big_rounds, big_iters)
        fig["torch_cam_bN_per_s"] = args.batch / (t["med"] / 1e3)

    devices = ["cpu"] + (["cuda"] if cuda_status()[0] else [])
    for dev in devices:
        eng_cam = InferenceEngine(with_cam, device=dev, threads=args.threads)
        eng_nocam = InferenceEngine(no_cam, device=dev, threads=args.threads)
        for label, eng in (("ort", eng_nocam), ("ort_cam", eng_cam)):
            key = f"{label}_{dev}"
            feed_1, feed_n = feeds[1], feeds[args.batch]
            fig[f"{key}_b1_ms"] = _time(functools.partial(eng.run, feed_1), rounds, iters)
            t = _time(functools.partial(eng.run, feed_n), big_rounds, big_iters)
            fig[f"{key}_bN_per_s"] = args.batch / (t["med"] / 1e3)
        if dev == "cpu" and int8_path is not None:
            eng8 = InferenceEngine(int8_path, device=dev, threads=args.threads)
            fig["ort_int8_cam_cpu_b1_ms"] = _time(functools.partial(eng8.run, feeds[1]),
                                                  rounds, iters)
            t = _time(functools.partial(eng8.run, feeds[args.batch]), big_rounds, big_iters)
            fig["ort_int8_cam_cpu_bN_per_s"] = args.batch / (t["med"] / 1e3)
        if dev == "cpu":
            fig["event_to_prediction_ms"] = _event_latency(eng_cam, rounds)
    return fig


def _print(figs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    b = args.batch
    print(f"threads: {args.threads}; batch-1 latency = wall-clock median over rounds (best "
          f"round) and CPU time of the calling thread; throughput at batch {b}.\n"
          "NOTE: on a shared machine wall-clock figures are noisy; with 1 thread the CPU time "
          "is the load-independent cost.")
    for f in figs:
        print(f"\n{f['arch']}: {f['params'] / 1e6:.2f} M params, {f['macs'] / 1e6:.1f} M MACs/sample")
        print(f"  {'runtime':<28}{'batch 1 wall (ms)':>20}{'CPU (ms)':>10}"
              f"{f'batch {b} (samples/s)':>24}")
        rows = [("torch eager", "torch_b1_ms", "torch_bN_per_s"),
                ("torch eager + CAM", "torch_cam_b1_ms", "torch_cam_bN_per_s")]
        for dev in ("cpu", "cuda"):
            if f"ort_{dev}_b1_ms" in f:
                rows += [(f"ONNX Runtime {dev.upper()}", f"ort_{dev}_b1_ms", f"ort_{dev}_bN_per_s"),
                         (f"ONNX Runtime {dev.upper()} + CAM", f"ort_cam_{dev}_b1_ms",
                          f"ort_cam_{dev}_bN_per_s")]
            if dev == "cpu" and "ort_int8_cam_cpu_b1_ms" in f:
                rows.append(("ONNX Runtime CPU int8 (+ CAM)", "ort_int8_cam_cpu_b1_ms",
                             "ort_int8_cam_cpu_bN_per_s"))
        for name, k1, kn in rows:
            lat = f[k1]
            wall = f"{lat['med']:.2f} ({lat['best']:.2f})"
            print(f"  {name:<28}{wall:>20}{lat['cpu']:>10.2f}{f[kn]:>24.0f}")
        ort = f["ort_cam_cpu_b1_ms"]
        speedup = f["torch_b1_ms"]["med"] / ort["med"]
        speedup_cpu = f["torch_b1_ms"]["cpu"] / ort["cpu"]
        speedup_cam = f["torch_cam_b1_ms"]["cpu"] / ort["cpu"]
        f["speedup_vs_torch_b1"] = speedup
        f["speedup_vs_torch_b1_cpu"] = speedup_cpu
        f["speedup_vs_torch_cam_b1_cpu"] = speedup_cam
        if f["arch"] == "m3enet":
            def verdict(ok: bool) -> str:
                return "ok" if ok else "MISSED"

            print(f"  target: ORT CPU + CAM batch 1 <= {TARGET_LATENCY_MS} ms: wall "
                  f"{ort['med']:.2f} ms (best round {ort['best']:.2f}) "
                  f"{verdict(ort['med'] <= TARGET_LATENCY_MS)}; CPU {ort['cpu']:.2f} ms "
                  f"{verdict(ort['cpu'] <= TARGET_LATENCY_MS)}")
            print(f"  target: >= {TARGET_SPEEDUP:.0f}x faster than torch eager batch 1: wall "
                  f"{speedup:.1f}x {verdict(speedup >= TARGET_SPEEDUP)}; CPU {speedup_cpu:.1f}x "
                  f"{verdict(speedup_cpu >= TARGET_SPEEDUP)} (vs torch eager + CAM: "
                  f"{speedup_cam:.1f}x)")
        else:
            print(f"  ORT CPU + CAM vs torch eager batch 1: {speedup:.1f}x wall, "
                  f"{speedup_cpu:.1f}x CPU")
        if "ort_int8_cam_cpu_b1_ms" in f:
            q = f["ort_int8_cam_cpu_b1_ms"]
            f["int8_speedup_vs_torch_b1"] = f["torch_b1_ms"]["med"] / q["med"]
            f["int8_speedup_vs_torch_b1_cpu"] = f["torch_b1_ms"]["cpu"] / q["cpu"]
            a = f["int8_agreement"]
            print(f"  int8 (+ CAM) vs torch eager batch 1: {f['int8_speedup_vs_torch_b1']:.1f}x wall, "
                  f"{f['int8_speedup_vs_torch_b1_cpu']:.1f}x CPU "
                  f"(target >= {TARGET_SPEEDUP:.0f}x); agreement with fp32 torch on "
                  f"{a['samples']} random samples: top-1 {a['top1_agreement'] * 100:.1f} %, "
                  f"logits max diff {a['logits_max_abs_diff']:.1e}, Grad-CAM corr "
                  f"{a.get('cam_corr_mean', float('nan')):.3f} (random weights; the trained "
                  "model's figures are in its card)")
        ev = f.get("event_to_prediction_ms")
        if ev:
            print(f"  event-to-prediction (preprocess: flow, strain, frames + model): "
                  f"{ev['med']:.1f} ms (best {ev['best']:.1f})")
        elif f["arch"] == "m3enet":
            print("  event-to-prediction: not measured")


def run(args: argparse.Namespace) -> dict:
    from mestudio.inference.engine import InferenceEngine

    archs = [a.strip() for a in args.arch.split(",") if a.strip()]
    figs = []
    with tempfile.TemporaryDirectory(prefix="mestudio-bench-model-") as tmp:
        for i, arch in enumerate(archs):
            figs.append(_bench_arch(arch, args, Path(tmp), quick=i > 0))
    _print(figs, args)
    result: dict[str, Any] = {"threads": args.threads, "batch": args.batch,
                              "archs": {f["arch"]: f for f in figs}}
    if args.model is not None:
        eng = InferenceEngine(args.model, device="auto", threads=args.threads)
        shapes = {n: tuple(args.batch if d == "N" else int(d) for d in s)
                  for n, s in eng.input_shapes.items()}
        rng = np.random.default_rng(0)
        feed_n = {n: rng.random(s, dtype=np.float32) for n, s in shapes.items()}
        feed_1 = {n: v[:1] for n, v in feed_n.items()}
        lat = _time(lambda: eng.run(feed_1), args.rounds, args.iters)
        thr = args.batch / (_time(lambda: eng.run(feed_n), 3, 3)["med"] / 1e3)
        print(f"\n{args.model.name} on {eng.provider}: batch 1 {lat['med']:.2f} ms "
              f"(best {lat['best']:.2f}, CPU {lat['cpu']:.2f}), batch {args.batch} "
              f"{thr:.0f} samples/s")
        ev = _event_latency(eng, args.rounds)
        if ev:
            print(f"  event-to-prediction (align-free: TV-L1 + strain + recipe + model): "
                  f"{ev['med']:.1f} ms (best {ev['best']:.1f})")
        result["model_file"] = {"path": str(args.model), "b1_ms": lat, "bN_per_s": thr,
                                "provider": eng.provider, "event_to_prediction_ms": ev}
    if args.planted > 0:
        from mestudio.bench import planted
        from mestudio.inference.engine import DEFAULT_MODEL_NAME
        from mestudio.modelfiles import find_model

        models = [m for m in (args.model, find_model(DEFAULT_MODEL_NAME)) if m is not None]
        print("\nplanted action-unit patterns (the same events for every model):")
        p_args = argparse.Namespace(model=models, per_class=args.planted,
                                    amplitudes="0.01:0.03,0.04:0.06", data=None, seed=1)
        result["planted"] = planted.run(p_args)
    return result
