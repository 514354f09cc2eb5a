"""Several faces: one primary face, followed stably; the others are counted."""

from __future__ import annotations

from pathlib import Path

import cv2

from mestudio.face.detect import iou
from mestudio.face.tracker import FaceTracker
from mestudio.types import Frame


def test_multi_face_photo_counts_faces_and_keeps_the_largest(data_dir: Path) -> None:
    img = cv2.imread(str(data_dir / "images" / "multi_face.jpg"))
    tracker = FaceTracker()
    faces = tracker.detector.detect(img)
    assert len(faces) > 1
    largest = faces[0].box
    boxes = []
    for i in range(30):  # one second of the still photo at 30 fps (re-detects included)
        obs = tracker.update(Frame(i, i / 30.0, img))
        assert obs.face_found and obs.n_faces == len(faces)
        boxes.append(obs.box)
    assert iou(boxes[0], largest) > 0.5
    assert min(iou(b, boxes[0]) for b in boxes) > 0.9
    assert tracker.n_detections >= 2


def test_single_face_photo(data_dir: Path) -> None:
    img = cv2.imread(str(data_dir / "images" / "single_face.jpg"))
    obs = FaceTracker().update(Frame(0, 0.0, img))
    assert obs.face_found and obs.n_faces == 1 and obs.confidence > 0.6
    assert obs.landmarks.shape == (5, 2) and len(obs.landmark_names) == 5
    for name in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right"):
        assert name in obs.named_points
    assert obs.named_points["left_eye"][0] < obs.named_points["right_eye"][0]
    assert obs.named_points["mouth_left"][1] > obs.named_points["nose"][1]
