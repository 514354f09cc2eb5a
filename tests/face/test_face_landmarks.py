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
