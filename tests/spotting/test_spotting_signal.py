"""The per-frame ROI motion signal on aligned face crops moved by known displacement fields."""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np
import pytest

from mestudio.spotting.config import SpotterConfig
from mestudio.spotting.rois import (
    ROI_NAMES,
    canonical_geometry,
    eye_mask,
    geometry_from_observation,
    rigid_mask,
    roi_masks,
)
from mestudio.spotting.signal import RoiSignal
from mestudio.types import FaceObservation, Frame


@pytest.fixture(scope="module")
def face(data_dir) -> FaceObservation:
    """A real face, tracked and aligned to the canonical 128-px crop."""
    from mestudio.face.tracker import FaceTracker

    image = cv2.imread(str(data_dir / "images" / "single_face.jpg"))
    obs = FaceTracker().update(Frame(0, 0.0, image))
    assert obs.face_found and obs.aligned is not None
    return obs


def _with_crop(face: FaceObservation, crop: np.ndarray) -> FaceObservation:
    return dataclasses.replace(face, aligned=crop)


def _warp(crop: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Move the crop's content by ``field`` ``(S, S, 2)`` pixels (backward sampling)."""
    s = crop.shape[0]
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
    return cv2.remap(crop, xs - field[..., 0], ys - field[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _blob(size: int, centre: tuple[float, float], sigma: float, d: tuple[float, float]):
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    w = np.exp(-0.5 * ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / sigma ** 2)
    return np.stack([w * d[0], w * d[1]], axis=-1)


def _noisy(crop: np.ndarray, rng: np.random.Generator, std: float = 1.5) -> np.ndarray:
    return np.clip(crop + rng.normal(0, std, crop.shape), 0, 255).astype(np.uint8)


def _run(face, crops, config=None, fps=30.0):
    rs = RoiSignal(config)
    return [rs.update(_with_crop(face, c), i / fps) for i, c in enumerate(crops)], rs


def test_rois_avoid_the_eyes_and_sit_where_the_face_moves(face):
    geom = geometry_from_observation(face)
    s = face.aligned.shape[0]
    rois = roi_masks(geom, s)
    eyes = eye_mask(geom, s)
    assert set(rois) == set(ROI_NAMES)
    for name, m in rois.items():
        assert m.sum() > 50, name
        assert not (m & eyes).any(), name
    ye = 0.5 * (geom.eye_l[1] + geom.eye_r[1])
    centre_y = {k: np.nonzero(m)[0].mean() for k, m in rois.items()}
    assert centre_y["brow_left"] < ye < centre_y["nose_left"] < centre_y["mouth_left"]
    assert np.nonzero(rois["brow_left"])[1].mean() < s / 2 < np.nonzero(rois["brow_right"])[1].mean()
    rigid = rigid_mask(geom, s, rois)
    assert rigid.sum() > 300 and not any((rigid & m).any() for m in rois.values())
    # Box-only mode (no landmarks): the canonical geometry gives the same layout.
    canon = roi_masks(canonical_geometry(s), s)
    for name in ROI_NAMES:
        overlap = (canon[name] & rois[name]).sum() / rois[name].sum()
        assert overlap > 0.3, name


def test_a_local_brow_movement_shows_in_its_roi_only(face):
    rng = np.random.default_rng(0)
    crop = face.aligned
    geom = geometry_from_observation(face)
    # Inner brow raiser on the image-left brow: 1.2 px up (1 % of a 120-px face width).
    centre = (geom.eye_l[0] + 0.1 * geom.iod, geom.eye_l[1] - 0.4 * geom.iod)
    moved = _warp(crop, _blob(crop.shape[0], centre, 0.15 * geom.iod, (0.0, -1.2)))
    crops = [_noisy(crop, rng) for _ in range(8)] + [_noisy(moved, rng) for _ in range(4)]
    values, _ = _run(face, crops)
    neutral = max(max(v.values()) for v in values[1:8])
    apex = values[-1]
    assert neutral < 0.25
    assert apex["brow_left"] > 0.6
    assert apex["brow_left"] > 2.5 * max(v for k, v in apex.items() if k != "brow_left")


def test_head_motion_is_removed(face):
    rng = np.random.default_rng(1)
    crop = face.aligned
    s = crop.shape[0]
    crops = [_noisy(crop, rng) for _ in range(4)]
    for shift, angle, scale in [(1.5, 0.0, 1.0), (0.0, 1.5, 1.0), (-1.0, -1.0, 1.015),
                                (2.5, 0.8, 0.99)]:
        m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, scale)
        m[:, 2] += (shift, 0.5 * shift)
        crops.append(_noisy(cv2.warpAffine(crop, m, (s, s), borderMode=cv2.BORDER_REPLICATE),
                            rng))
    values, _ = _run(face, crops)
    worst = max(max(v.values()) for v in values)
    assert worst < 0.3, values[4:]


def test_a_blink_does_not_count(face):
    rng = np.random.default_rng(2)
    crop = face.aligned
    geom = geometry_from_observation(face)
    s = crop.shape[0]
    field = np.zeros((s, s, 2), np.float32)
    for eye in (geom.eye_l, geom.eye_r):  # upper lid slides down over the eye by 4 px
        field += _blob(s, (eye[0], eye[1] - 0.08 * geom.iod), 0.12 * geom.iod, (0.0, 4.0))
    closed = _warp(crop, field)
    crops = [_noisy(c, rng) for c in [crop] * 6 + [closed] * 3 + [crop] * 3]
    values, _ = _run(face, crops)
    assert max(max(v.values()) for v in values) < 0.3


def test_no_face_gives_none_and_a_new_reference(face):
    rs = RoiSignal()
    assert rs.update(face, 0.0) == {k: 0.0 for k in ROI_NAMES}
    assert rs.update(FaceObservation(face_found=False), 0.033) is None
    assert rs.update(face, 0.066) == {k: 0.0 for k in ROI_NAMES}   # restarted
    size = rs.config.signal_size
    assert rs.last_flow is not None and rs.last_flow.shape == (size, size, 2)
    masks = rs.rois(64)
    assert set(masks) == set(ROI_NAMES) and masks["mouth_left"].shape == (64, 64)


def test_values_are_in_pixels_of_a_128px_crop_whatever_the_sizes(face):
    # A face moved by (2, 1) px of a 128-px crop (head-motion removal off so that the whole
    # movement is measured) reads ~2.24 px at every crop size and flow size.
    rng = np.random.default_rng(3)
    out = []
    for crop_size, signal_size in [(128, 96), (96, 96), (128, 128), (160, 64)]:
        k = crop_size / 128   # a tracker with align_size=crop_size
        crop = cv2.resize(face.aligned, (crop_size, crop_size), interpolation=cv2.INTER_AREA)
        sized = dataclasses.replace(face, aligned=crop, transform=face.transform * k,
                                    aligned_landmarks=face.aligned_landmarks * k)
        m = np.float32([[1, 0, 2.0 * k], [0, 1, 1.0 * k]])
        moved = cv2.warpAffine(crop, m, (crop_size, crop_size), borderMode=cv2.BORDER_REPLICATE)
        crops = [_noisy(crop, rng) for _ in range(3)] + [_noisy(moved, rng)]
        cfg = SpotterConfig(signal_size=signal_size, head_motion="none", stabilize_px=0.0)
        values, _ = _run(sized, crops, cfg)
        out.append(np.median(list(values[-1].values())))
    assert np.allclose(out, np.hypot(2.0, 1.0), rtol=0.15), out


def test_the_signal_is_cheap(face):
    rng = np.random.default_rng(4)
    crops = [_noisy(face.aligned, rng) for _ in range(40)]
    rs = RoiSignal()
    rs.update(_with_crop(face, crops[0]), 0.0)
    t0 = time.process_time()
    for i, c in enumerate(crops[1:], start=1):
        rs.update(_with_crop(face, c), i / 30)
    ms = (time.process_time() - t0) / (len(crops) - 1) * 1e3
    # Measured about 2 ms per frame (one core, 80-px flow; `mestudio bench` reports the
    # figures). This only catches an accidental order-of-magnitude slowdown, on a loaded
    # 2-core machine too (CPU time of OpenCV's threads counts here).
    assert ms < 20.0, f"{ms:.2f} ms per frame"


def test_the_head_motion_prepass_removes_it_as_well_with_one_accurate_flow_per_frame(face):
    """With ``stabilize_prepass`` (the default) a cheap flow measures the head motion and
    the accurate one runs once per frame; the head motion is removed as well as by two
    accurate flows, and a brow movement on a moving head is still measured."""
    rng = np.random.default_rng(12)
    crop = face.aligned
    s = crop.shape[0]
    geom = geometry_from_observation(face)
    centre = (geom.eye_l[0] + 0.1 * geom.iod, geom.eye_l[1] - 0.4 * geom.iod)
    raised = _warp(crop, _blob(s, centre, 0.15 * geom.iod, (0.0, -1.5)))
    crops = [_noisy(crop, rng) for _ in range(4)]
    for k in range(1, 8):  # the head drifts 0.8 px and turns a little more every frame
        m = cv2.getRotationMatrix2D((s / 2, s / 2), 0.3 * k, 1.0)
        m[:, 2] += (0.8 * k, 0.4 * k)
        src = raised if k == 7 else crop  # the brow goes up in the last frame
        crops.append(_noisy(cv2.warpAffine(src, m, (s, s), borderMode=cv2.BORDER_REPLICATE),
                            rng))
    results = {}
    for pre in ("dis-medium", ""):
        rs = RoiSignal(SpotterConfig(stabilize_prepass=pre))
        calls = []
        accurate = rs._flow
        rs._flow = lambda a, b, f=accurate, n=calls: n.append(1) or f(a, b)
        values = [rs.update(_with_crop(face, c), i / 30.0) for i, c in enumerate(crops)]
        results[pre] = (values, len(calls))
    (with_pre, n_pre), (without, n_without) = results["dis-medium"], results[""]
    assert n_pre == len(crops) - 1 < n_without  # the first frame is the reference
    assert max(max(v.values()) for v in with_pre[4:-1]) < 0.3, with_pre[4:-1]
    assert with_pre[-1]["brow_left"] > 0.6
    assert abs(with_pre[-1]["brow_left"] - without[-1]["brow_left"]) < 0.25
