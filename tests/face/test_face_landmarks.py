"""YuNet + the 5-point LBF model against the dlib example faces' 68-point annotations."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from mestudio import modelfiles
from mestudio.face.config import TrackerConfig
from mestudio.face.detect import YuNetDetector, iou
from mestudio.face.landmarks import _CACHE, LbfLandmarker, stdout_silenced


def _annotated_faces(folder: Path) -> list[tuple[str, tuple[int, int, int, int], np.ndarray]]:
    faces = []
    for xml in ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"):
        for image in ET.parse(folder / xml).getroot().iter("image"):
            for box in image.iter("box"):
                parts = sorted(box.iter("part"), key=lambda p: int(p.get("name")))
                pts = np.array([(float(p.get("x")), float(p.get("y"))) for p in parts])
                b = tuple(int(box.get(k)) for k in ("left", "top", "width", "height"))
                faces.append((image.get("file"), b, pts))
    return faces


def test_eye_corner_error_on_dlib_faces(data_dir: Path, models_dir: Path) -> None:
    """Mean eye-corner error (iBUG points 36, 39, 42, 45) normalised by the outer-corner
    distance must be <= 0.10; every annotated face must be detected."""
    folder = data_dir / "images" / "dlib_faces"
    cfg = TrackerConfig(detect_max_width=0, min_face_px=16)  # small faces: full resolution
    detector = YuNetDetector(models_dir / modelfiles.YUNET, cfg)
    lbf = LbfLandmarker(models_dir / modelfiles.LBF_5PT)
    # Model order -> iBUG: left = image left (iBUG 36/39), right = image right (42/45).
    ibug = {"left_eye_outer": 36, "left_eye_inner": 39, "right_eye_inner": 42,
            "right_eye_outer": 45}
    order = [lbf.names.index(n) for n in ibug]
    errors, images = [], {}
    for name, box, truth in _annotated_faces(folder):
        if name not in images:
            img = cv2.imread(str(folder / name))
            images[name] = (img, detector.detect(img))
        img, dets = images[name]
        match = max(dets, key=lambda d: iou(d.box, box), default=None)
        assert match is not None and iou(match.box, box) > 0.2, f"face missed in {name}"
        pts, _ = lbf.fit(img, np.array(match.points["left_eye"]),
                         np.array(match.points["right_eye"]))
        gt = truth[list(ibug.values())]
        iod = np.linalg.norm(truth[45] - truth[36])
        errors.append(np.linalg.norm(pts[order] - gt, axis=1).mean() / iod)
    assert len(errors) == 43
    assert float(np.mean(errors)) <= 0.10, f"mean eye-corner error {np.mean(errors):.3f}"


def test_five_point_names_follow_the_image(models_dir: Path) -> None:
    lbf = LbfLandmarker(models_dir / modelfiles.LBF_5PT)
    assert lbf.n_points == 5 and sorted(lbf.names) == sorted(
        ["left_eye_outer", "left_eye_inner", "right_eye_inner", "right_eye_outer", "nose"])
    x = {n: lbf.mean_shape[i, 0] for i, n in enumerate(lbf.names)}
    assert x["left_eye_outer"] < x["left_eye_inner"] < x["right_eye_inner"] < x["right_eye_outer"]


def test_model_loading_prints_nothing(models_dir: Path, capfd: pytest.CaptureFixture) -> None:
    path = (models_dir / modelfiles.LBF_5PT).resolve()
    _CACHE.pop(path, None)  # force a real load through OpenCV
    LbfLandmarker(path)
    with stdout_silenced():
        os.write(1, b"C-level output\n")
    out, _ = capfd.readouterr()
    assert out == ""


def _make_68_point_model(path: Path, lbf5: Path, annotations: Path) -> None:
    """A structurally valid 68-point LBF model (the canonical one is a 54 MB download that
    the test data lacks): the iBUG mean shape of the dlib faces in LBF box units, one stage
    whose trees are borrowed from the 5-point model and whose regression weights are zero,
    so a fit returns the mean shape placed by the initial box. Enough to exercise the
    68-point code path end to end (names, named points, patch placement, tracking)."""
    import re

    shapes = []
    for box in ET.parse(annotations).getroot().iter("box"):
        parts = sorted(box.iter("part"), key=lambda p: int(p.get("name")))
        pts = np.array([(float(p.get("x")), float(p.get("y"))) for p in parts])
        x, y, w, h = (float(box.get(k)) for k in ("left", "top", "width", "height"))
        shapes.append((pts - [x + w / 2, y + h / 2]) / [w / 2, h / 2])
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    for key, value in (("stages_n", 1), ("tree_n", 1), ("tree_depth", 5), ("n_landmarks", 68)):
        fs.write(key, value)
    fs.write("regressor_meanshape", np.mean(shapes, axis=0))
    fs.write("weights_0", np.zeros((2 * 68, 68 * 16)))
    fs.release()
    source = lbf5.read_text()
    blocks = {m.group(1): m.group(0) for m in re.finditer(
        r"^((?:tree|thresholds)_0_0_\d+):.*?(?=^\S)", source, re.S | re.M)}
    extra, names = [], set()
    for j in range(68):
        for kind in ("tree", "thresholds"):
            block = blocks[f"{kind}_0_0_{j % 5}"]
            for name in (f"{kind}_0_0_{j}", f"{kind}_0_{j}_0"):  # either index order
                if name not in names:
                    names.add(name)
                    extra.append(re.sub(r"^\w+:", name + ":", block, count=1))
    path.write_text(path.read_text().rstrip() + "\n" + "".join(extra))


def test_68_point_model_code_path(tmp_path: Path, models_dir: Path, data_dir: Path) -> None:
    from mestudio.face.tracker import FaceTracker
    from mestudio.types import Frame

    model = tmp_path / modelfiles.LBF_68
    folder = data_dir / "images" / "dlib_faces"
    _make_68_point_model(model, models_dir / modelfiles.LBF_5PT,
                         folder / "training_with_face_landmarks.xml")
    lbf = LbfLandmarker(model)
    assert lbf.n_points == 68 and lbf.names[36] == "p36"
    assert lbf.left_eye_idx == list(range(36, 42)) and lbf.nose_idx == 33
    tracker = FaceTracker(TrackerConfig(landmark_model=str(model)))
    assert tracker.landmark_count == 68 and tracker.degraded == []
    img = cv2.imread(str(data_dir / "images" / "single_face.jpg"))
    obs = tracker.update(Frame(0, 0.0, img))
    assert obs.face_found and obs.landmarks.shape == (68, 2)
    assert obs.aligned_landmarks.shape == (68, 2)
    named = obs.named_points
    for name in ("left_eye", "right_eye", "nose", "nose_tip", "mouth_left", "mouth_right",
                 "left_brow", "right_brow"):
        assert name in named
    assert named["left_brow"][1] < named["left_eye"][1] < named["nose"][1] < named["mouth_left"][1]
    assert named["mouth_left"][0] < named["mouth_right"][0]
    # With zero regression the fit is the mean shape placed on the detector's eyes.
    det = tracker.detector.detect(img)[0]
    iod = np.hypot(*np.subtract(det.points["right_eye"], det.points["left_eye"]))
    for side in ("left_eye", "right_eye"):
        assert np.hypot(*np.subtract(named[side], det.points[side])) < 0.05 * iod
