"""Planted micro-expressions measured back with dense optical flow: amplitude, direction,
locality; blinks stay in the eye region."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mestudio.synth import AU_PATTERNS, CLASSES, synthesize_clip
from mestudio.synth.aus import eye_region_mask
from mestudio.synth.events import make_event

FPS = 30.0
SIZE = (256, 192)  # astronaut re-framed: face width 115 px


def _clip(label: str, amplitude: float, kind: str = "micro"):
    ev = make_event(kind, label, 2, 3, 8, FPS, amplitude)
    clip = synthesize_clip(fps=FPS, duration_s=0.4, seed=5, events=[ev], distractors=False,
                           size=SIZE, face_fraction=0.45)
    return clip, ev


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ga, gb = (cv2.cvtColor(x, cv2.COLOR_BGR2GRAY) for x in (a, b))
    return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 9, 5, 5, 1.1, 0)


def _mean_at(flow: np.ndarray, point: np.ndarray, radius: float) -> np.ndarray:
    h, w = flow.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    disk = (xx - point[0]) ** 2 + (yy - point[1]) ** 2 <= radius ** 2
    return flow[disk].mean(axis=0)


@pytest.mark.parametrize("label", CLASSES)
def test_flow_measures_requested_amplitude_direction_and_locality(label):
    amp = 0.03
    clip, ev = _clip(label, amp)
    planted = clip.expression_field(ev.apex)
    mag = np.linalg.norm(planted, axis=2)
    peak_px = amp * clip.face_width
    # The planted peak is exactly the requested fraction of the face width.
    assert mag.max() == pytest.approx(peak_px, rel=0.01)

    flow = _flow(clip.frame(ev.onset), clip.frame(ev.apex))
    fmag = np.linalg.norm(flow, axis=2)
    strong = mag > 0.6 * peak_px
    rel_err = np.linalg.norm(flow - planted, axis=2)[strong] / mag[strong]
    cos = (flow * planted).sum(axis=2)[strong] / (fmag[strong] * mag[strong] + 1e-9)
    assert np.median(rel_err) < 0.4
    assert np.median(cos) > 0.95
    assert 0.65 < np.percentile(fmag[strong], 90) / peak_px < 1.15

    # Far from the action units (face region, no planted motion) nothing moves.
    x0, y0, x1, y1 = clip.geometry.roi(clip.size)
    far = np.zeros(mag.shape, bool)
    far[y0:y1, x0:x1] = True
    far &= mag == 0
    assert far.sum() > 5000
    assert np.median(fmag[far]) < 0.05
    assert np.percentile(fmag[far], 99) < 0.3


def _direction_checks(label: str, clip) -> list[tuple[str, np.ndarray, str]]:
    """(region name, image point, expected motion) of the AU regions of a class."""
    g = clip.geometry
    checks = {
        "happiness": [("mouth left", g.to_image("mouth_left", 0, 0), "up-left"),
                      ("mouth right", g.to_image("mouth_right", 0, 0), "up-right"),
                      ("cheek left", g.to_image("eye_left", 0, 0.42), "up")],
        "disgust": [("nose side", g.to_image("nose", -0.15, -0.28), "up"),
                    ("inner brow left", g.to_image("eye_left", 0.12, -0.34), "down-right")],
        "surprise": [("brow left", g.to_image("eye_left", 0, -0.36), "up"),
                     ("brow right", g.to_image("eye_right", 0, -0.36), "up")],
        "sadness": [("inner brow left", g.to_image("eye_left", 0.2, -0.38), "up"),
                    ("mouth left", g.to_image("mouth_left", 0, 0.03), "down"),
                    ("mouth right", g.to_image("mouth_right", 0, 0.03), "down")],
        "repression": [("upper lip", g.to_image("mouth_mid", 0, -0.09), "down"),
                       ("lower lip", g.to_image("mouth_mid", 0, 0.13), "up"),
                       ("mouth left", g.to_image("mouth_left", 0, 0), "left")],
    }
    return checks[label]


@pytest.mark.parametrize("label", CLASSES)
def test_action_units_move_in_anatomical_directions(label):
    clip, ev = _clip(label, 0.03)
    flow = _flow(clip.frame(ev.onset), clip.frame(ev.apex))
    r = 0.08 * clip.geometry.iod
    for name, point, expected in _direction_checks(label, clip):
        dx, dy = _mean_at(flow, point, r)
        mag = float(np.hypot(dx, dy))
        assert mag > 0.3, f"{label}: no motion measured at the {name}"
        ok = {"up": dy < -0.7 * mag, "down": dy > 0.7 * mag, "left": dx < -0.7 * mag,
              "up-left": dy < -0.3 * mag and dx < -0.3 * mag,
              "up-right": dy < -0.3 * mag and dx > 0.3 * mag,
              "down-right": dy > 0.3 * mag and dx > 0.3 * mag}[expected]
        assert ok, f"{label}: {name} moved ({dx:.2f}, {dy:.2f}) px, expected {expected}"


def test_classes_have_distinct_flow_fields():
    fields = {}
    for label in CLASSES:
        clip, ev = _clip(label, 0.03)
        fields[label] = clip.expression_field(ev.apex).ravel()
    for i, a in enumerate(CLASSES):
        for b in CLASSES[i + 1:]:
            fa, fb = fields[a], fields[b]
            cos = float(fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb)))
            assert cos < 0.5, f"{a} and {b} move the face too similarly (cosine {cos:.2f})"
    assert set(AU_PATTERNS) == set(CLASSES)


def test_blink_changes_only_the_eye_regions():
    clip, ev = _clip("blink", 0.06, kind="blink")
    a, b = clip.frame(ev.onset), clip.frame(ev.apex)
    changed = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 2
    eyes = eye_region_mask(clip.geometry, clip.size)
    near_eyes = cv2.dilate(eyes.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert changed[~near_eyes].sum() == 0
    assert changed[eyes].mean() > 0.15  # the lid visibly closes
    # The eyelid moves down.
    flow = _flow(a, b)
    assert flow[eyes][:, 1].mean() > 0.5
    # No expression field is reported for a blink.
    assert not clip.expression_field(ev.apex).any()
