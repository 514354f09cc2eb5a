"""The shipped model (models/m3enet_synthetic.onnx): honest metadata, report, live path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
ONNX = MODELS / "m3enet_synthetic.onnx"

pytestmark = pytest.mark.skipif(not ONNX.is_file(), reason="shipped model not present")


def test_files_hash_card_and_report():
    digest = hashlib.sha256(ONNX.read_bytes()).hexdigest()
    assert (MODELS / "m3enet_synthetic.onnx.sha256").read_text().split()[0] == digest
    assert ONNX.stat().st_size < 30e6                                   # lean: fp16 weights
    card = json.loads((MODELS / "m3enet_synthetic.card.json").read_text())
    assert card["synthetic"] is True and card["file_sha256"] == digest
    text = (MODELS / "m3enet_synthetic.card.md").read_text()
    assert "NOT a validated emotion recogniser" in text and "mestudio train" in text
    report = json.loads((MODELS / "m3enet_synthetic.report.json").read_text())
    assert report["protocol"] == "loso" and report["data"]["subjects"] >= 3
    assert report["summary"]["uf1"]["mean"] > 0.5 and len(report["seeds"]) >= 1
    assert "| Model | Dataset | UF1 | UAR |" in (MODELS / "m3enet_synthetic.report.md").read_text()


def test_live_path_recognises_planted_patterns(models_dir):
    """Frames -> FaceTracker (as live) -> preprocess -> engine, on a clip the model never saw."""
    import torch

    from mestudio import preprocess as pp
    from mestudio.face.tracker import FaceTracker
    from mestudio.inference.engine import InferenceEngine
    from mestudio.synth import synthesize_clip
    from mestudio.types import Frame

    torch.set_num_threads(1)
    engine = InferenceEngine(ONNX, device="cpu", threads=1)
    assert engine.synthetic is True
    cfg = pp.PreprocessConfig.from_metadata(engine.preprocess_config)
    clip = synthesize_clip(fps=30, duration_s=8, seed=21, n_micro=3)
    tracker = FaceTracker()
    crops = {}
    for i in range(clip.n_frames):
        obs = tracker.update(Frame(i, i / clip.fps, clip.frame(i)))
        crops[i] = obs.aligned
    micro = [e for e in clip.events if e.kind == "micro"]
    triples = [[crops[e.onset], crops[e.apex], crops[e.offset]] for e in micro]
    preds = engine.predict(pp.keyframe_inputs_batch(triples, cfg))
    right = sum(p.label == e.label for p, e in zip(preds, micro, strict=True))
    assert right >= len(micro) - 1, [(e.label, p.label) for p, e in zip(preds, micro, strict=True)]
