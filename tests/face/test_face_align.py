"""Alignment to the canonical crop: geometry, invariance to a known similarity, box-only."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from mestudio import modelfiles
from mestudio.face.align import align_face, canonical_points, transform_points
from mestudio.face.config import TrackerConfig
from mestudio.face.tracker import FaceTracker
from mestudio.types import Frame


def test_canonical_eyes_follow_the_contract() -> None:
    pts = canonical_points(128)
    assert pts["left_eye"] == pytest.approx((128 * (0.5 - 0.21), 128 * 0.35))
    assert pts["right_eye"] == pytest.approx((128 * (0.5 + 0.21), 128 * 0.35))
    assert pts["left_eye"][1] < pts["nose"][1] < pts["mouth_left"][1] < 128


def test_given_eyes_land_on_the_canonical_eyes() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    eyes = {"left_eye": (180.0, 60.0), "right_eye": (120.0, 90.0)}  # any order, rolled face
    crop, m = align_face(img, eyes, 64, TrackerConfig(align_nose_weight=0.0))
    assert crop.shape == (64, 64, 3)
    got = transform_points(np.array([eyes["right_eye"], eyes["left_eye"]]), m)
    canon = canonical_points(64)
    assert got == pytest.approx(np.array([canon["left_eye"], canon["right_eye"]]), abs=1e-6)


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float],
                centre: tuple[float, float]) -> np.ndarray:
    m = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    m[:, 2] += shift
    return m


@pytest.mark.parametrize(("angle", "scale", "shift"), [(12.0, 0.8, (25.0, -15.0)),
                                                     (-8.0, 1.2, (-20.0, 10.0))])
def test_moved_face_aligns_back_to_the_same_crop(data_dir: Path, angle: float, scale: float,
                                                 shift: tuple[float, float]) -> None:
    """single_face.jpg and a copy rotated, scaled and shifted by a known similarity must
    give the same aligned crop.

    Bound: the eye centres are localised to about 0.05 of the inter-ocular distance (the
    eye corners to 0.07 on the dlib faces); two independent fits can thus disagree by
    ~0.07 x 54 px = 3.8 px at the eyes of a 128-px crop. The crops may therefore differ by
    as much as the crop differs from itself shifted by 3 px (measured: 10.8 and 4.3 grey
    levels against a 3-px-shift difference of 15). Failing alignment is far above that: the
    same box without alignment differs by 45-55 grey levels (checked below)."""
    img = cv2.imread(str(data_dir / "images" / "single_face.jpg"))
    h, w = img.shape[:2]
    t = _similarity(angle, scale, shift, (w / 2, h / 2))
    moved = cv2.warpAffine(img, t, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    obs_a = FaceTracker().update(Frame(0, 0.0, img))
    obs_b = FaceTracker().update(Frame(0, 0.0, moved))
    assert obs_a.face_found and obs_b.face_found
    a = obs_a.aligned.astype(np.float32)
    b = obs_b.aligned.astype(np.float32)
    aligned_diff = float(np.abs(a - b).mean())
    shift3 = float(np.abs(a[:, 3:] - a[:, :-3]).mean())
    assert aligned_diff < shift3, (aligned_diff, shift3)
    # The eyes found in the moved copy are where the known transform puts the originals.
    eyes_a = np.array([obs_a.named_points["left_eye"], obs_a.named_points["right_eye"]])
    eyes_b = np.array([obs_b.named_points["left_eye"], obs_b.named_points["right_eye"]])
    iod_b = float(np.linalg.norm(eyes_b[1] - eyes_b[0]))
    assert np.linalg.norm(transform_points(eyes_a, t) - eyes_b, axis=1).max() < 0.07 * iod_b
    # Without alignment (the same frame-axis box in both) the crops differ far more.
    x, y, bw, bh = (int(v) for v in obs_a.box)
    naive_a = cv2.resize(img[y:y + bh, x:x + bw], (128, 128)).astype(np.float32)
    naive_b = cv2.resize(moved[y:y + bh, x:x + bw], (128, 128)).astype(np.float32)
    assert float(np.abs(naive_a - naive_b).mean()) > 3 * aligned_diff
    # The transforms agree: crop_b ∘ t ≈ crop_a, so crop_b's rotation undoes t's (< 1.5°)
    # and its scale is crop_a's divided by the known scale (< 5 %).
    ma, mb = obs_a.transform, obs_b.transform
    rot = math.degrees(math.atan2(mb[1, 0], mb[0, 0]) - math.atan2(ma[1, 0], ma[0, 0]))
    rot_t = math.degrees(math.atan2(t[1, 0], t[0, 0]))
    assert abs(rot + rot_t) < 1.5
    ratio = math.hypot(mb[0, 0], mb[1, 0]) / math.hypot(ma[0, 0], ma[1, 0])
    assert ratio == pytest.approx(1 / scale, rel=0.05)


def test_box_only_mode_without_landmark_models(data_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modelfiles, "find_model", lambda name, explicit=None: None)
    tracker = FaceTracker()
    assert tracker.landmark_count == 0 and tracker.detector_name == "Haar cascade"
    assert any("box-only" in line for line in tracker.degraded)
    assert any("Haar" in line for line in tracker.degraded)
    img = cv2.imread(str(data_dir / "images" / "single_face.jpg"))
    obs = tracker.update(Frame(0, 0.0, img))
    assert obs.face_found and obs.mode == "box-only" and obs.landmarks is None
    assert obs.aligned.shape == (128, 128, 3) and obs.box is not None
    crop, m = align_face(img, obs, 48)
    assert crop.shape == (48, 48, 3) and m.shape == (2, 3)


def test_yunet_points_when_no_lbf_model(video_dir: Path, models_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = modelfiles.find_model
    monkeypatch.setattr(modelfiles, "find_model", lambda name, explicit=None: real(name)
                        if name == modelfiles.YUNET else None)
    tracker = FaceTracker()
    assert tracker.landmark_count == 5 and "nose_tip" in tracker.landmark_names
    assert any("YuNet's 5 points" in line for line in tracker.degraded)
    from mestudio.capture import open_source

    with open_source(video_dir / "single_face.mp4") as src:
        results = [tracker.update(src.read(i)) for i in range(10)]
    assert all(o.face_found and o.mode == "landmarks" for o in results)
    assert tracker.n_detections == 10  # the detector gives the points: every frame
    assert results[-1].named_points["mouth_left"][0] < results[-1].named_points["mouth_right"][0]
