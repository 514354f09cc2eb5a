"""``mestudio bench model`` runs end to end and reports every figure (tiny settings)."""

from __future__ import annotations

import argparse

from mestudio.bench import model as bench_model


def test_bench_model_reports_latency_and_throughput(capsys):
    parser = argparse.ArgumentParser()
    bench_model.add_arguments(parser)
    args = parser.parse_args(["--arch", "ststnet", "--rounds", "1", "--iters", "2",
                              "--batch", "4"])
    figs = bench_model.run(args)["archs"]["ststnet"]
    for key in ("torch_b1_ms", "torch_cam_b1_ms", "ort_cpu_b1_ms", "ort_cam_cpu_b1_ms"):
        assert figs[key]["med"] > 0
    assert figs["ort_cam_cpu_bN_per_s"] > 0 and figs["speedup_vs_torch_b1"] > 0
    out = capsys.readouterr().out
    assert "ONNX Runtime CPU + CAM" in out and "torch eager" in out
