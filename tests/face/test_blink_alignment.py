"""Blink-robust alignment (``TrackerConfig.blink_hold``): the 5-point LBF eye corners follow
the closing lid; without the hold the aligned crop moves by ~2 px (128 px crop) during a
blink, with it the crop stays within the jitter of the neighbouring frames.

Crop jitter is measured against the ground truth of synthetic clips: ``m_i ∘ H_i`` maps the
base image into the aligned crop of frame ``i`` (``H_i`` the planted head motion, ``m_i``
the tracker's alignment); for a perfect alignment it is constant, so the displacement of
rigid base points (face centre, nose ridge, forehead) in the crop, against their mean over
the 10 frames before the blink, is the crop's jitter.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mestudio.face.align import BlinkHold
from mestudio.face.config import TrackerConfig
from mestudio.face.tracker import FaceTracker
from mestudio.types import Frame

#: Most displacement (crop pixels) of the rigid points during a blink with the hold.
#: Measured: 0.93 / 0.64 / 0.85 px (seeds 0, 1, 2 of the 10 s demo) with the hold, against
#: 2.57 / 2.31 / 2.03 px without it; outside blinks the same measure reaches ~0.9 px. With
#: the appearance check (test_blink_appearance.py): 0.89 / 0.64 / 0.77 px.
BLINK_JITTER_PX = 1.2


def _tracker(hold: bool) -> FaceTracker:
    tracker = FaceTracker(TrackerConfig(blink_hold=hold))
    if tracker.mode != "lbf" or tracker.landmark_count != 5:
        pytest.skip("needs the 5-point LBF model (shared models folder)")
    return tracker


def _compose(m: np.ndarray, h: np.ndarray) -> np.ndarray:
    return (np.vstack([m, [0, 0, 1]]) @ np.vstack([h, [0, 0, 1]]))[:2]


@pytest.fixture(scope="module")
def blink_clip(shared_dir):
    from mestudio.synth import synthesize_clip

    # Head motion, illumination drift and noise on; two blinks, nothing else planted.
    return synthesize_clip(fps=30.0, duration_s=5.0, seed=0, n_micro=0, n_macro=0, n_blinks=2)


def _run(clip, hold: bool):
    """Per frame: rigid base points in the crop (K, 2), transform, landmarks; and the tracker."""
    tracker = _tracker(hold)
    c, fw = np.array(clip.geometry.center, np.float64), clip.face_width
    rigid = np.array([c, c + [0, -0.3 * fw], c + [-0.2 * fw, -0.25 * fw],
                      c + [0.2 * fw, -0.25 * fw]])
    pts, ms, lms = [], [], []
    for i in range(clip.n_frames):
        obs = tracker.update(Frame(i, float(clip.timestamps[i]), clip.frame(i)))
        assert obs.face_found and obs.transform is not None and obs.landmarks is not None
        a = _compose(obs.transform, clip.head_matrix(i))
        pts.append(rigid @ a[:, :2].T + a[:, 2])
        ms.append(obs.transform)
        lms.append(obs.landmarks)
    return np.array(pts), np.array(ms), np.array(lms), tracker


def _blink_jitter(clip, pts: np.ndarray) -> tuple[float, float]:
    """(max during blinks, max in the 20 frames around them) crop-pixel displacement."""
    during, around = [], []
    for e in clip.events:
        ref = pts[e.onset - 10:e.onset].mean(0)
        dev = np.linalg.norm(pts - ref, axis=2).mean(1)
        during.append(dev[e.onset:e.offset + 1].max())
        around.append(max(dev[max(0, e.onset - 20):e.onset].max(),
                          dev[e.offset + 1:e.offset + 21].max()))
    return float(max(during)), float(max(around))


def test_blinks_do_not_move_the_crop_with_the_hold(blink_clip) -> None:
    assert [e.kind for e in blink_clip.events] == ["blink", "blink"]
    off, m_off, lm_off, _ = _run(blink_clip, hold=False)
    on, m_on, lm_on, tracker = _run(blink_clip, hold=True)
    jit_off, around_off = _blink_jitter(blink_clip, off)
    jit_on, around_on = _blink_jitter(blink_clip, on)
    print(f"\ncrop jitter during blinks: {jit_off:.2f} px without the hold, {jit_on:.2f} px "
          f"with it (around the blinks {around_off:.2f} / {around_on:.2f} px)")
    assert jit_off > BLINK_JITTER_PX > jit_on
    assert around_on <= around_off + 0.2
    # The landmarks still report the fit (the lid-following corners), hold or not.
    np.testing.assert_array_equal(lm_on, lm_off)
    # Before the first blink nothing differs.
    first = blink_clip.events[0].onset
    np.testing.assert_array_equal(m_on[:first], m_off[:first])
    assert tracker._track is not None and tracker._track.blink is not None
    assert tracker._track.blink.n_blinks == 2


def _moving_face_clip(n: int = 45, fps: float = 30.0):
    """A still face (no blinks, no noise) moved fast: 60 px right and 20 px down with a 12°
    roll and 10 % zoom in 0.5 s, held, then back in 0.5 s. Returns frames and the
    planted base -> frame similarities."""
    from mestudio.synth import synthesize_clip

    clip = synthesize_clip(fps=fps, duration_s=0.2, seed=3, n_micro=0, n_macro=0,
                           n_blinks=0, distractors=False)
    base = clip.frame(0)
    h, w = base.shape[:2]
    centre = tuple(float(v) for v in clip.geometry.center)
    frames, mats = [], []
    for i in range(n):
        t = i / fps
        p = min(t / 0.5, 1.0) if t < 0.8 else max(0.0, 1.0 - (t - 0.8) / 0.5)
        p = 0.5 - 0.5 * np.cos(np.pi * p)
        m = cv2.getRotationMatrix2D(centre, 12.0 * p, 1.0 + 0.1 * p)
        m[:, 2] += (60.0 * p, 20.0 * p)
        frames.append(Frame(i, t, cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR,
                                                 borderMode=cv2.BORDER_REFLECT101)))
        mats.append(m)
    return frames, mats, clip


def test_head_motion_is_followed_without_lag(shared_dir) -> None:
    """Translation, roll and zoom move the eyes and the nose base together: no hold
    starts, and the crops are those of the tracker without the hold, frame for frame."""
    frames, mats, clip = _moving_face_clip()
    c, fw = np.array(clip.geometry.center, np.float64), clip.face_width
    rigid = np.array([c, c + [0, -0.3 * fw]])
    out = {}
    for hold in (False, True):
        tracker = _tracker(hold)
        res = []
        for f in frames:
            obs = tracker.update(f)
            assert obs.face_found and obs.transform is not None
            res.append(obs.transform)
        out[hold] = np.array(res)
        if hold:
            assert tracker._track is not None and tracker._track.blink is not None
            assert tracker._track.blink.n_blinks == 0
    np.testing.assert_array_equal(out[True], out[False])
    # And the crop stays on the face through the motion (lag of the smoothing only).
    crop_pts = []
    for m, h in zip(out[True], mats, strict=True):
        a = _compose(m, h)
        crop_pts.append(rigid @ a[:, :2].T + a[:, 2])
    dev = np.linalg.norm(np.array(crop_pts) - crop_pts[0], axis=2).max()
    assert dev < 6.0


def test_setting_off_is_the_previous_behaviour(shared_dir) -> None:
    tracker = _tracker(hold=False)
    frames, _, _ = _moving_face_clip(n=5)
    for f in frames:
        tracker.update(f)
    assert tracker._track is not None
    assert tracker._track.blink is None and tracker._track.align_filter is None
    assert TrackerConfig().blink_hold is True


def _face_points(shift: tuple[float, float] = (0.0, 0.0), drop: float = 0.0) -> np.ndarray:
    """Four eye corners (two per eye, left to right) and the nose base; eye centres 100 px
    apart; ``drop`` lowers the corners (a closing lid)."""
    x, y = 300.0 + shift[0], 200.0 + shift[1]
    return np.array([[x - 80, y + drop], [x - 20, y + drop], [x + 20, y + drop],
                     [x + 80, y + drop], [x, y + 75]])


def test_blink_hold_unit() -> None:
    """Pure geometry: a fast drop of the eye points towards the nose is held (also while
    the head moves), the points pass unchanged otherwise, and a lasting change is taken
    over after ``max_s``."""
    hold = BlinkHold([0, 1, 2, 3], 4, threshold=0.03, max_s=0.5)
    t = 0.0
    for _ in range(10):
        p = _face_points()
        np.testing.assert_array_equal(hold(p, t), p)
        t += 1 / 30
    # A blink while the head moves right by 2 px a frame: eyes drop by 6 px for 5 frames.
    for k in range(5):
        shift = (2.0 * (k + 1), 0.0)
        got = hold(_face_points(shift, drop=6.0), t)
        assert hold.blinking
        np.testing.assert_allclose(got, _face_points(shift), atol=1e-9)
        t += 1 / 30
    # Eyes open again; the hold fades out, then the points pass unchanged.
    for _ in range(8):
        p = _face_points((10.0, 0.0))
        got = hold(p, t)
        assert not hold.blinking
        t += 1 / 30
    np.testing.assert_array_equal(got, p)
    assert not hold.active and hold.n_blinks == 1
    # A lasting change (e.g. head pitch) is held at most max_s, then followed.
    for _ in range(30):
        p = _face_points((10.0, 0.0), drop=6.0)
        got = hold(p, t)
        t += 1 / 30
    np.testing.assert_array_equal(got, p)
