"""The appearance check of the blink hold (``BlinkHold`` given the frame,
``TrackerConfig.blink_appearance``).

A rise of the eye points towards the nose base is a blink only when the eyes look closed:
the contrast of a small patch around each eye (dark iris and lashes against skin and sclera)
drops under the lid and stays in a change of head pitch, e.g. while speaking. The hold
ends when the contrast is back, not only when the fitted points come back up.

Unit tests draw a simple face (skin, two eyes open or closed) with the points placed by the
test; tracker tests use the synthetic face of :mod:`mestudio.synth`: a head-pitch change
with open eyes (the face squashed vertically towards the nose base) and planted blinks.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mestudio.face.align import EYE_PATCH, BlinkHold, eye_contrast
from mestudio.face.config import TrackerConfig
from mestudio.face.tracker import FaceTracker
from mestudio.types import Frame

FPS = 30.0
SKIN = (120, 150, 200)  # BGR
D = 100.0  # inter-ocular distance of the drawn face (px)


def _points(drop: float = 0.0) -> np.ndarray:
    """Four eye corners (two per eye, left to right) and the nose base; eye centres at
    (250, 200) and (350, 200); ``drop`` moves the corners towards the nose (px)."""
    y = 200.0 + drop
    return np.array([[220.0, y], [280.0, y], [320.0, y], [380.0, y], [300.0, 275.0]])


def _face(rng: np.random.Generator, eyes_y: float = 200.0, closed: bool = False
          ) -> np.ndarray:
    """A 400x600 BGR face: skin with two eyes centred at ``eyes_y`` (open: sclera, iris,
    pupil, upper lash line; closed: lid and a thin lash line), and sensor noise."""
    img = np.zeros((400, 600, 3), np.float32)
    img[:] = SKIN
    for cx in (250, 350):
        c = (cx, int(round(eyes_y)))
        if closed:
            cv2.ellipse(img, c, (24, 9), 0, 0, 360, (110, 138, 188), -1, cv2.LINE_AA)
            cv2.ellipse(img, c, (24, 4), 0, 0, 180, (60, 60, 75), 1, cv2.LINE_AA)
        else:
            cv2.ellipse(img, c, (24, 9), 0, 0, 360, (225, 228, 232), -1, cv2.LINE_AA)
            cv2.circle(img, c, 8, (60, 45, 40), -1, cv2.LINE_AA)
            cv2.circle(img, c, 3, (15, 15, 15), -1, cv2.LINE_AA)
            cv2.ellipse(img, c, (24, 9), 0, 180, 360, (40, 40, 50), 2, cv2.LINE_AA)
    img += rng.normal(0.0, 2.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_eye_contrast_measures_the_open_eye() -> None:
    rng = np.random.default_rng(0)
    open_, closed = _face(rng), _face(rng, closed=True)
    c_open = eye_contrast(open_, np.array([250.0, 200.0]), D)
    c_closed = eye_contrast(closed, np.array([250.0, 200.0]), D)
    assert c_open > 0.4 and c_closed < 0.5 * c_open
    # Grey frames work alike; a patch (partly) outside the frame has no value.
    grey = cv2.cvtColor(open_, cv2.COLOR_BGR2GRAY)
    assert eye_contrast(grey, np.array([250.0, 200.0]), D) == pytest.approx(c_open, abs=0.02)
    assert np.isnan(eye_contrast(open_, np.array([10.0, 200.0]), D))
    assert np.isnan(eye_contrast(open_, np.array([250.0, 200.0]), 2.0))  # too small
    # A large face is read with a stride: the result stays (the patch is ~24 columns).
    big = cv2.resize(open_, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)
    c_big = eye_contrast(big, np.array([1000.0, 800.0]), 4 * D)
    assert c_big == pytest.approx(c_open, rel=0.2)
    assert EYE_PATCH == (0.5, 0.3)


def _rest(hold: BlinkHold, rng: np.random.Generator, t: float, n: int = 30,
          image: bool = True) -> float:
    for _ in range(n):
        p = _points()
        np.testing.assert_array_equal(hold(p, t, _face(rng) if image else None), p)
        t += 1 / FPS
    return t


def test_head_pitch_with_open_eyes_starts_no_hold() -> None:
    """The eye points come 6 px (0.06 d, twice the threshold) towards the nose and stay
    there for 0.6 s, the eyes open in the picture: no hold, the points pass unchanged;
    without the frame the geometry alone holds them (the previous behaviour)."""
    rng = np.random.default_rng(1)
    seen, blind = BlinkHold([0, 1, 2, 3], 4), BlinkHold([0, 1, 2, 3], 4)
    t = _rest(seen, rng, 0.0)
    _rest(blind, rng, 0.0, image=False)
    n_pending = 0
    for _ in range(18):
        p = _points(drop=6.0)
        np.testing.assert_array_equal(seen(p, t, _face(rng, eyes_y=206.0)), p)
        assert not seen.blinking and not seen.active
        n_pending += seen.pending  # rose like a blink, but the eyes look open
        blind(p, t)
        t += 1 / FPS
    assert seen.n_blinks == 0 and n_pending >= 10
    assert blind.n_blinks == 1


def test_blink_is_held_while_the_eyes_are_closed() -> None:
    """Points down by 6 px and the eyes closed: held from the first frame (the output eye
    points are the pre-blink ones). Eyes open again while the fitted points stay low (the
    fit lags): the hold ends at once, where the geometry alone would go on holding; the
    still-low points then start no new hold."""
    rng = np.random.default_rng(2)
    seen, blind = BlinkHold([0, 1, 2, 3], 4), BlinkHold([0, 1, 2, 3], 4)
    t = _rest(seen, rng, 0.0)
    _rest(blind, rng, 0.0, image=False)
    for _ in range(4):
        got = seen(_points(drop=6.0), t, _face(rng, closed=True))
        assert seen.blinking and seen.contrast_ratio < 1 - seen.contrast_drop
        np.testing.assert_allclose(got, _points(), atol=1e-9)
        blind(_points(drop=6.0), t)
        t += 1 / FPS
    assert seen.n_blinks == 1
    # Eyes open, points still low for 4 more frames.
    got = seen(_points(drop=6.0), t, _face(rng))
    blind(_points(drop=6.0), t)
    assert not seen.blinking and seen.contrast_ratio > 0.95
    assert blind.blinking  # geometry alone: still "closed"
    assert seen.active  # the release: back to the fitted points over release_s
    t += 1 / FPS
    for _ in range(3):
        seen(_points(drop=6.0), t, _face(rng))
        assert not seen.blinking and seen.pending
        t += 1 / FPS
    assert seen.n_blinks == 1
    # Once released, the fitted points pass unchanged.
    for _ in range(6):
        p = _points()
        got = seen(p, t, _face(rng))
        t += 1 / FPS
    np.testing.assert_array_equal(got, p)
    assert not seen.active


def test_points_only_callers_keep_the_geometric_test() -> None:
    """Without frames (or with the frames switched off in the tracker) nothing changes:
    the same drop is a blink, held until the points come back up."""
    hold = BlinkHold([0, 1, 2, 3], 4)
    with pytest.raises(RuntimeError):
        hold.held(_points())  # no hold yet
    t = 0.0
    for _ in range(10):
        hold(_points(), t)
        t += 1 / FPS
    for _ in range(5):
        np.testing.assert_allclose(hold(_points(drop=6.0), t), _points(), atol=1e-9)
        assert hold.blinking and np.isnan(hold.contrast_ratio)
        t += 1 / FPS
    hold(_points(), t)
    assert not hold.blinking and hold.n_blinks == 1
    assert TrackerConfig().blink_appearance is True


# ------------------------------------------------------------------ with the tracker
def _tracker(**kw) -> FaceTracker:
    tracker = FaceTracker(TrackerConfig(**kw))
    if tracker.mode != "lbf" or tracker.landmark_count != 5:
        pytest.skip("needs the 5-point LBF model (shared models folder)")
    return tracker


def _pitch_frames(n: int = 60) -> list[Frame]:
    """A still synthetic face, eyes open; after 1 s it is squashed vertically towards the
    nose by 8 % within 0.17 s (a head nod: the eyes come ~0.04 d towards the nose base,
    twice the blink threshold) and stays so."""
    from mestudio.synth import synthesize_clip

    clip = synthesize_clip(fps=FPS, duration_s=0.2, seed=3, n_micro=0, n_macro=0,
                           n_blinks=0, distractors=False)
    base = clip.frame(0)
    h, w = base.shape[:2]
    ny = float(clip.geometry.nose[1])
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        t = i / FPS
        p = float(np.clip((t - 1.0) / 0.17, 0.0, 1.0))
        s = 1.0 - 0.08 * (0.5 - 0.5 * np.cos(np.pi * p))
        m = np.array([[1.0, 0.0, 0.0], [0.0, s, ny * (1.0 - s)]])
        img = cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
        img += rng.normal(0.0, 2.0, img.shape)
        frames.append(Frame(i, t, np.clip(img, 0, 255).astype(np.uint8)))
    return frames


def test_tracker_head_pitch_starts_no_hold(shared_dir) -> None:
    frames = _pitch_frames()
    res: dict[str, np.ndarray] = {}
    for name, kw in {"off": {"blink_hold": False}, "appearance": {},
                     "geometry": {"blink_appearance": False}}.items():
        tracker = _tracker(**kw)
        ms, pending = [], 0
        for f in frames:
            obs = tracker.update(f)
            assert obs.face_found and obs.transform is not None
            ms.append(obs.transform)
            blink = tracker._track.blink if tracker._track is not None else None
            pending += bool(blink is not None and blink.pending)
        res[name] = np.array(ms)
        blink = tracker._track.blink if tracker._track is not None else None
        if name == "appearance":
            assert blink is not None and blink.n_blinks == 0 and pending >= 5
        if name == "geometry":
            assert blink is not None and blink.n_blinks >= 1  # the defect the check mends
    # No hold: the crops are those of the tracker without the hold, frame for frame.
    np.testing.assert_array_equal(res["appearance"], res["off"])
    assert not np.array_equal(res["geometry"], res["off"])


@pytest.mark.parametrize("seed", [1, 2])
def test_tracker_planted_blinks_are_held_while_closed(shared_dir, seed: int) -> None:
    """Every planted blink is held, from between its onset and its apex to its offset at
    the latest, for no more frames than the geometric test alone holds it; the crop stays
    as still as with that test."""
    from mestudio.synth import synthesize_clip

    clip = synthesize_clip(fps=FPS, duration_s=5.0, seed=seed, n_micro=0, n_macro=0,
                           n_blinks=2)
    blinks = [e for e in clip.events if e.kind == "blink"]
    assert len(blinks) == 2
    c, fw = np.array(clip.geometry.center, np.float64), clip.face_width
    rigid = np.array([c, c + [0, -0.3 * fw], c + [-0.2 * fw, -0.25 * fw],
                      c + [0.2 * fw, -0.25 * fw]])
    held, jitter = {}, {}
    for app in (True, False):
        tracker = _tracker(blink_appearance=app)
        flags, pts = [], []
        for i in range(clip.n_frames):
            obs = tracker.update(Frame(i, float(clip.timestamps[i]), clip.frame(i)))
            assert obs.face_found and obs.transform is not None
            blink = tracker._track.blink if tracker._track is not None else None
            assert blink is not None
            flags.append(blink.blinking)
            a = np.vstack([obs.transform, [0, 0, 1]]) @ np.vstack([clip.head_matrix(i),
                                                                  [0, 0, 1]])
            pts.append(rigid @ a[:2, :2].T + a[:2, 2])
        assert blink is not None and blink.n_blinks == 2
        held[app] = np.array(flags)
        arr = np.array(pts)
        dev = []
        for e in blinks:
            ref = arr[e.onset - 10:e.onset].mean(0)
            dev.append(np.linalg.norm(arr - ref, axis=2).mean(1)[e.onset:e.offset + 1].max())
        jitter[app] = max(dev)
    for e in blinks:
        window = np.flatnonzero(held[True][e.onset - 5:e.offset + 6]) + e.onset - 5
        assert len(window) and e.onset <= window[0] <= e.apex and window[-1] < e.offset
    assert held[True].sum() <= held[False].sum()
    assert not (held[True] & ~held[False]).any()
    print(f"\nseed {seed}: crop jitter during blinks {jitter[True]:.2f} px with the appearance "
          f"check, {jitter[False]:.2f} px without; held {held[True].sum()} / "
          f"{held[False].sum()} frames")
    assert jitter[True] <= jitter[False] + 0.1 and jitter[True] < 1.2
