"""Eulerian magnification as a training preprocessing option (``--set evm=...``) and
``mestudio evaluate --mapping FILE --min-class-samples N`` (issue 14)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mestudio.cli import main
from mestudio.errors import ConfigError
from mestudio.preprocess import PreprocessConfig, clip_inputs, config_hash, keyframe_inputs_batch
from mestudio.preprocess.evm import EVMSettings
from mestudio.training.config import TrainConfig
from mestudio.training.features import make_spec, sample_inputs
from mestudio.training.synthetic import SyntheticSettings, generate

EVM_ON = EVMSettings().to_text()  # "alpha=8,low=0.5,high=8,levels=3"

# Synthetic AU-pattern classes folded into two; repression is left out (2 samples).
TWO = """# test: two classes of the synthetic AU patterns
name = "two-set"
classes = ["up", "down"]
[labels]
happiness = "up"
surprise = "up"
disgust = "down"
sadness = "down"
"""
THREE = TWO.replace('name = "two-set"', 'name = "three-set"').replace(
    'classes = ["up", "down"]', 'classes = ["up", "down", "rep"]') + 'repression = "rep"\n'
# Small clips: 4 frames, flow at 64 px, 32 px inputs (the network takes its sizes from them).
SMALL = ["--preprocess", "flow_size=64", "--preprocess", "input_size=32", "--preprocess",
         "clip_len=4"]


def _crops(n: int = 6, size: int = 64) -> list[np.ndarray]:
    """A face-sized blob whose brightness wobbles a little from frame to frame."""
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / (2 * (size / 6) ** 2))
    return [np.repeat((80 + 100 * blob * (1 + 0.03 * np.sin(i)))[..., None], 3, axis=2)
            .astype(np.uint8) for i in range(n)]


def test_evm_is_a_preprocessing_setting_with_its_own_cache_key():
    # --set evm=...: the text forms of mestudio.preprocess.evm, stored canonically
    assert TrainConfig().with_overrides(["evm=on"]).evm == EVM_ON
    assert TrainConfig().with_overrides(["evm=alpha=10,low=0.4,high=3"]).evm == \
        "alpha=10,low=0.4,high=3,levels=3"
    assert TrainConfig().with_overrides(["evm=off"]).evm == ""
    with pytest.raises(ConfigError, match="unknown EVM setting"):
        TrainConfig().with_overrides(["evm=gain=3"])
    # off leaves the resumability key of earlier runs as it was; on changes it
    assert TrainConfig(evm="off").digest() == TrainConfig().digest() != \
        TrainConfig(evm="on").digest()

    plain, magnified = PreprocessConfig(clip_len=4), PreprocessConfig(clip_len=4, evm="on")
    assert "evm" not in plain.to_metadata()                  # the default's hash is unchanged
    assert magnified.to_metadata()["evm"] == EVM_ON
    assert PreprocessConfig.from_metadata(magnified.to_metadata()).evm == EVM_ON
    assert config_hash(plain) != config_hash(magnified)
    assert make_spec("clip", align="none").key() != make_spec("clip", align="none", evm="on").key()
    with pytest.raises(ConfigError, match="clip inputs"):
        make_spec("keyframes", align="none", evm="on")

    crops = _crops()
    a = clip_inputs(crops, plain, device="cpu")
    b = clip_inputs(crops, magnified, device="cpu", fps=30.0)
    assert a["clip"].shape == b["clip"].shape and a["flow_seq"].shape == b["flow_seq"].shape
    assert np.abs(a["clip"] - b["clip"]).max() > 0.01         # the frames are magnified
    assert np.abs(a["flow_seq"] - b["flow_seq"]).max() > 0    # and so is their flow
    with pytest.raises(ConfigError, match="frame rate"):     # the band is in Hz
        clip_inputs(crops, magnified, device="cpu")
    with pytest.raises(ConfigError, match="not of key frames"):
        keyframe_inputs_batch([crops[:3]], PreprocessConfig(evm="on"))


def test_train_set_evm_and_preprocess_evm_must_agree():
    from mestudio.training.cliargs import feature_spec

    args = argparse.Namespace(preprocess=["evm=12"], align="none", align_size=128)
    with pytest.raises(ConfigError, match="differ"):
        feature_spec(args, "clip", evm=EVM_ON)
    args.preprocess = [f"evm={EVM_ON}"]
    assert feature_spec(args, "clip", evm=EVM_ON).preprocess["evm"] == EVM_ON


def test_reproduce_evm_row_is_trained_with_the_setting(tmp_path):
    from mestudio.reproduce import select_tables
    from mestudio.reproduce.run import Cell, Options, train_argv, unavailable_reason

    table = select_tables("im3dr-mfer", ["results"])[0]
    row = next(r for r in table.rows if r.key == "full")  # the paper's full model has EVM
    assert unavailable_reason(row) == ""
    argv = train_argv(Cell("im3dr-mfer", table, row, "casme2", tmp_path), tmp_path,
                      Options(out=tmp_path))
    value = argv[argv.index("--set") + 1]
    assert TrainConfig().with_overrides([value]).evm == EVM_ON


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """2 identities (2 LOSO folds) x 5 classes x 1 sample, 64 px frames."""
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticSettings(per_class=1, max_identities=2, min_identities=2,
                                     video_frames=0, crop_size=64), workers=1, progress=False)
    return root


def test_train_with_evm_then_evaluate_with_a_mapping_file(release, tmp_path, capsys):
    from mestudio.inference.config import RecognitionConfig
    from mestudio.inference.engine import engine_from_config
    from mestudio.nets.checkpoint import load_checkpoint
    from mestudio.training.datasets import get_dataset

    torch.set_num_threads(1)
    two, three = tmp_path / "two.toml", tmp_path / "three.toml"
    two.write_text(TWO)
    three.write_text(THREE)
    cache, out = tmp_path / "cache", tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--root", str(release), "--model",
                 "im3dr_mfer_light", "--mapping", str(two), "--epochs", "1", "--batch-size", "8",
                 "--set", "aug_expansion=1", "--set", "evm=on", "--align", "none", *SMALL,
                 "--out", str(out), "--cache", str(cache), "--prepare-workers", "1",
                 "--threads", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert f"EVM {EVM_ON}" in text and "8 computed" in text
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["evm"] == EVM_ON
    assert report["data"]["features"]["preprocess"]["evm"] == EVM_ON
    assert f"**Eulerian magnification:** {EVM_ON}" in (out / "report.md").read_text()
    _, info = load_checkpoint(out / "im3dr_mfer_light_synthetic.pt")
    assert info["preprocess"]["evm"] == EVM_ON                 # travels with the model
    folders = list((cache / "synthetic").iterdir())
    assert len(folders) == 1

    # the magnified inputs of a sample differ from its plain ones
    sample = get_dataset("synthetic").load(release)[0]
    spec = make_spec("clip", align="none", preprocess=info["preprocess"])
    plain = make_spec("clip", align="none", preprocess={**info["preprocess"], "evm": ""})
    assert spec.key() == folders[0].name != plain.key()
    x, y = sample_inputs(sample, spec), sample_inputs(sample, plain)
    assert np.abs(x["clip"] - y["clip"]).max() > 0.01

    model = tmp_path / "evm.onnx"
    assert main(["export", str(out / "im3dr_mfer_light_synthetic.pt"), "-o", str(model)]) == 0
    # live recognition, analyze and review magnify too, at the rate of the event's frames
    _recognise_live_with_evm(engine_from_config(RecognitionConfig(model=str(model))))
    capsys.readouterr()

    common = ["evaluate", "--model", str(model), "--dataset", "synthetic", "--root",
              str(release), "--align", "none", "--cache", str(cache), "--workers", "1",
              "--no-progress"]
    figures = tmp_path / "figures.json"
    assert main([*common, "--mapping", str(two), "--out", str(figures)]) == 0
    text = capsys.readouterr().out
    assert "class set two-set (two.toml, SHA-256 " in text and ": up 4, down 4" in text
    assert "Eulerian magnification" in text and "repression 2" in text
    doc = json.loads(figures.read_text())
    cs = doc["class_set"]
    assert cs["classes"] == cs["mapping_classes"] == ["up", "down"]
    assert cs["class_counts"] == {"up": 4, "down": 4} and doc["n"] == 8
    assert cs["mapping_source"] == "two.toml" and doc["classes"] == ["up", "down"]
    assert doc["model"]["evm"] == EVM_ON
    assert [p.name for p in (cache / "synthetic").iterdir()] == [folders[0].name]  # same inputs

    assert main([*common, "--mapping", str(three), "--min-class-samples", "3", "--out",
                 str(figures)]) == 0
    assert "min-class-samples 3 — dropped: rep (2 samples)" in capsys.readouterr().out
    cs = json.loads(figures.read_text())["class_set"]
    assert cs["classes"] == ["up", "down"] and cs["dropped_classes"] == {"rep": 2}
    assert cs["mapping_classes"] == ["up", "down", "rep"]

    broken = tmp_path / "broken.toml"
    broken.write_text('classes = "up"\n')
    assert main([*common, "--mapping", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mapping file" in err[0] and "broken.toml" in err[0]


def test_reproduce_im3dr_mfer_evm_row_is_filled(tmp_path, capsys):
    from training.fixtures import build_casme2, make_casme2_rows

    torch.set_num_threads(1)
    rows = make_casme2_rows(n_subjects=2, per_class=1, length=5)
    build_casme2(tmp_path / "data" / "CASME2", layout="cropped", rows=rows, quirks=False, size=64)
    out = tmp_path / "rep"
    assert main(["reproduce", "im3dr-mfer", "--root", str(tmp_path / "data"), "--out", str(out),
                 "--rows", "full", "--light", "--epochs", "1", "--seeds", "1", "--batch-size",
                 "8", "--set", "aug_expansion=1", "--align", "none", "--cache",
                 str(tmp_path / "cache"), "--prepare-workers", "1", "--threads", "1",
                 *(f"--train-arg={a}" for a in SMALL)]) == 0
    capsys.readouterr()
    record = json.loads((out / "cells" / "results" / "full" / "casme2" / "cell.json")
                        .read_text())
    assert record["status"] == "done", record
    assert f"evm={EVM_ON}" in record["argv"]
    report = json.loads((out / "cells" / "results" / "full" / "casme2" / "run" / "report.json")
                        .read_text())
    assert report["config"]["evm"] == EVM_ON
    md = (out / "reproduce_im3dr_mfer.md").read_text()
    line = next(ln for ln in md.splitlines()
                if ln.startswith("| full model with CASANet and EVM pre-processing | CASME II |"))
    assert "| done |" in line and "/ 93.2" in line  # ours beside the paper's accuracy


def _recognise_live_with_evm(engine) -> None:
    """The live recogniser gives a model that magnifies the inputs it was trained on: the
    chosen crops magnified at their own frame rate (here a 60 fps source, every other crop
    chosen: 30 fps), not at a default rate."""
    from mestudio.engine.recognition import Recognizer
    from mestudio.preprocess import PreprocessConfig as PC
    from mestudio.types import FaceObservation, SpotEvent

    cfg = PC.from_metadata(engine.preprocess_config)
    made: list = []
    rec = Recognizer(engine, buffer_s=2.0, with_cam=False)
    inner = rec._main.inputs_fn

    def spy(jobs, fps=None):
        made.append((jobs, fps))
        return inner(jobs, fps=fps)

    rec._main.inputs_fn = spy
    crops = _crops(2 * cfg.clip_len - 1, 64)
    for i, crop in enumerate(crops):
        rec.add_frame(i, i / 60.0, FaceObservation(face_found=True, aligned=crop))
    n = len(crops) - 1
    ev = SpotEvent(0, n // 2, n, 0.0, n / 120.0, n / 60.0, "micro", "mouth", 1.0)
    try:
        assert rec.submit(ev)
        done = rec.wait(60.0)
    finally:
        rec.close()
    assert done and done[0].prediction is not None
    (jobs, fps), = made
    assert fps == [pytest.approx(30.0)]
    expected = clip_inputs(jobs[0], cfg, fps=30.0)
    np.testing.assert_allclose(expected["clip"], np.asarray(
        inner(jobs, fps=fps)["clip"])[0], atol=1e-5)
    assert np.abs(expected["clip"] - clip_inputs(jobs[0], cfg, fps=60.0)["clip"]).max() > 1e-4
