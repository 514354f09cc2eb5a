"""``mestudio import ststnet``: the 68 published folds become one ONNX file that ONNX Runtime
runs exactly as torch does, with its card, and that the engine loads as a real-data model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mestudio.cli import main
from mestudio.errors import ModelFileError
from mestudio.inference.engine import InferenceEngine
from mestudio.inference.ststnet_import import import_ststnet
from mestudio.nets.ststnet_fg2019 import ensemble_reference, load_published_weights

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ensemble(ststnet_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ststnet") / "ststnet_megc2019.onnx"
    return import_ststnet(ststnet_dir, out)


def test_the_onnx_ensemble_matches_torch_fold_by_fold(ensemble, ststnet_dir):
    folds = [load_published_weights(p) for p in sorted(ststnet_dir.glob("*.pth"))]
    assert len(folds) == 68
    engine = InferenceEngine(ensemble)
    rng = np.random.default_rng(5)
    flow = rng.integers(0, 256, (6, 3, 28, 28)).astype(np.float32)
    frames = rng.random((6, 3, 1, 28, 28), dtype=np.float32)
    out = engine.run({"flow": flow, "frames": frames})
    ref = ensemble_reference(folds, torch.from_numpy(flow))
    assert np.abs(out["probs"] - ref["probs"].numpy()).max() < 1e-4
    assert np.abs(out["cam"] - ref["cam"].numpy()).max() < 1e-4
    np.testing.assert_allclose(out["agreement"], ref["agreement"].numpy(), atol=1e-6)
    preds = engine.predict({"flow": flow, "frames": frames})
    assert [p.agreement for p in preds] == pytest.approx(out["agreement"].tolist())
    assert preds[0].cams.shape == (3, 1, 10, 10)


def test_the_model_says_what_it_is(ensemble):
    engine = InferenceEngine(ensemble)
    assert engine.classes == ("negative", "positive", "surprise")
    assert not engine.synthetic and engine.metadata["training_data"] == "real"
    assert engine.has_agreement
    pre = engine.preprocess_config
    assert pre["recipe"] == "ststnet-megc2019" and pre["input_size"] == 28
    assert pre["flow_channels"] == ["strain", "V", "U"]
    assert engine.metadata["ensemble"]["folds"] == 68
    card = json.loads(ensemble.with_name("ststnet_megc2019.card.json").read_text())
    text = " ".join(card["limitations"])
    assert "no leave-one-subject-out figure applies" in text
    assert "0.7209" in text and "licence" in card["terms"]
    assert "CASME II" in card["training"]["dataset"]
    md = ensemble.with_name("ststnet_megc2019.card.md").read_text()
    assert "not a lie detector" in md and "christy1206/STSTNet" in md


def test_a_tampered_fold_is_refused_when_hashes_are_pinned(ststnet_dir, tmp_path):
    sums = {line.split()[1]: line.split()[0]
            for line in (ststnet_dir / "SHA256SUMS").read_text().splitlines() if line.strip()}
    folder = tmp_path / "w"
    folder.mkdir()
    for name in ("006.pth", "s01.pth"):
        shutil.copy(ststnet_dir / name, folder / name)
    data = bytearray((folder / "s01.pth").read_bytes())
    data[-40] ^= 0xFF
    (folder / "s01.pth").write_bytes(bytes(data))
    out = tmp_path / "m.onnx"
    with pytest.raises(ModelFileError, match="s01.pth"):
        import_ststnet(folder, out, expected_sha256=sums)
    assert not out.exists() and not list(tmp_path.glob("*.onnx*"))


def test_import_command_writes_the_model_and_refuses_bad_input(ststnet_dir, tmp_path, capsys):
    out = tmp_path / "one.onnx"
    assert main(["import", "ststnet", str(ststnet_dir / "sub05.pth"), "--out", str(out)]) == 0
    assert "1 fold(s)" in capsys.readouterr().out
    assert InferenceEngine(out).metadata["ensemble"]["folds"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["import", "ststnet", str(empty), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "holds no .pth files" in err and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


def test_low_agreement_makes_an_event_uncertain_without_an_emotion(ensemble, tmp_path):
    from mestudio.events_io import (
        read_events_csv,
        read_events_json,
        write_events_csv,
        write_events_json,
    )
    from mestudio.types import SpotEvent

    rng = np.random.default_rng(1)
    inputs = {"flow": rng.integers(0, 256, (8, 3, 28, 28)).astype(np.float32),
              "frames": np.zeros((8, 3, 1, 28, 28), np.float32)}
    agreements = [p.agreement for p in InferenceEngine(ensemble).predict(inputs)]
    cut = float(np.median(agreements)) + 1e-6
    preds = InferenceEngine(ensemble, min_agreement=cut).predict(inputs)
    low = [p for p in preds if p.agreement < cut]
    high = [p for p in preds if p.agreement >= cut]
    assert low and high
    assert all(p.uncertain and p.emotion is None for p in low)
    assert all(not p.uncertain and p.emotion == p.label for p in high)
    events = []
    for i, pred in enumerate((low[0], high[0])):
        ev = SpotEvent(onset=10 * i, apex=10 * i + 2, offset=10 * i + 4, onset_s=i, apex_s=i,
                       offset_s=i, kind="micro", roi="brows", peak=1.0, emitted_index=0,
                       prediction=pred, id=i)
        events.append(ev)
    write_events_json(tmp_path / "events.json", events)
    write_events_csv(tmp_path / "events.csv", events)
    for back in (read_events_json(tmp_path / "events.json")[0],
                 read_events_csv(tmp_path / "events.csv")):
        assert back[0].prediction.uncertain and back[0].prediction.emotion is None
        assert back[0].prediction.agreement == pytest.approx(low[0].agreement, abs=1e-6)
        assert back[1].prediction.emotion == high[0].label
    data = json.loads((tmp_path / "events.json").read_text())
    assert data["events"][0]["emotion"] is None and data["events"][0]["uncertain"] is True
    assert "agreement" in (tmp_path / "events.csv").read_text().splitlines()[0]


def test_the_recipe_recognises_planted_patterns_and_the_wrong_channel_order_does_not(
        ensemble, data_dir):
    """Through the application's own alignment, TV-L1, strain and recipe, the real-data
    ensemble names planted action-unit patterns well above chance (1/3); the same inputs in
    the wrong channel order lose the positive class: the recipe is what makes it work."""
    from mestudio.bench.planted import _to_three, evaluate_model, make_planted_set, uar
    from mestudio.preprocess import PreprocessConfig, keyframe_inputs_batch

    planted = make_planted_set(per_class=2, amplitude=(0.03, 0.05), data_dir=data_dir,
                               max_faces=3, seed=2)
    assert len(planted.labels) >= 20
    res = evaluate_model(ensemble, planted)
    assert res["uar_3class"] >= 0.7, res
    engine = InferenceEngine(ensemble)
    inputs = keyframe_inputs_batch(planted.events,
                                   PreprocessConfig.from_metadata(engine.preprocess_config))
    swapped = {"flow": inputs["flow"][:, ::-1].copy(), "frames": inputs["frames"]}
    truth = [_to_three(label) for label in planted.labels]
    wrong = [p.label for p in engine.predict(swapped, cam=False)]
    assert uar(truth, wrong) < res["uar_3class"] - 0.2
