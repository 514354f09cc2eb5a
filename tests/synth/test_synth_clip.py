"""Synthetic clips: determinism, random access, timing of planted events, samples, video bases."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mestudio.errors import ConfigError, SourceError
from mestudio.synth import (
    AU_PATTERNS,
    CLASSES,
    FaceGeometry,
    SynthConfig,
    synthesize_clip,
    synthesize_sample,
)
from mestudio.synth.events import make_event
from mestudio.synth.motion import SmoothTrack, event_profile

SMALL = (160, 120)


def _small_clip(seed: int, **kw):
    return synthesize_clip(fps=30.0, duration_s=4.0, seed=seed, size=SMALL, n_micro=2,
                           n_blinks=1, n_macro=0, **kw)


def test_same_seed_gives_identical_frames_in_any_order():
    a, b = _small_clip(7), _small_clip(7)
    assert [e.to_dict() for e in a.events] == [e.to_dict() for e in b.events]
    micro = next(e for e in a.events if e.kind == "micro")
    picks = [0, micro.onset, micro.apex, micro.offset - 1, a.n_frames - 1]
    forward = [a.frame(i) for i in picks]
    backward = [b.frame(i) for i in reversed(picks)][::-1]
    for i, f, g in zip(picks, forward, backward, strict=True):
        assert f.shape == (SMALL[1], SMALL[0], 3) and f.dtype == np.uint8
        assert np.array_equal(f, g), f"frame {i} differs between renders"
    # Re-rendering the same frame gives the same image (no hidden sequential state).
    assert np.array_equal(a.frame(micro.apex), forward[2])


def test_different_seed_gives_different_clip():
    a, b = _small_clip(1), _small_clip(2)
    assert not np.array_equal(a.frame(10), b.frame(10))
    assert [e.onset for e in a.events] != [e.onset for e in b.events]


def test_distractors_move_the_head_and_add_noise():
    clip = synthesize_clip(fps=30.0, duration_s=3.0, seed=3, size=SMALL, n_micro=0,
                           n_blinks=0, n_macro=0)
    quiet = synthesize_clip(fps=30.0, duration_s=3.0, seed=3, size=SMALL, n_micro=0,
                            distractors=False)
    # Without distractors and events every frame is the base image.
    assert np.array_equal(quiet.frame(0), quiet.frame(80))
    # With them, consecutive frames differ a little (noise) and the head drifts (< 3 % FW).
    d = np.abs(clip.frame(0).astype(int) - clip.frame(1).astype(int))
    assert 0.5 < d.mean() < 6
    shifts = [np.hypot(*clip.head_matrix(i)[:, 2] - clip.head_matrix(0)[:, 2])
              for i in range(0, 90, 10)]
    assert 0 < max(shifts) < 0.05 * clip.face_width


@pytest.mark.parametrize("fps", [25.0, 30.0, 100.0])
def test_micro_event_timing_is_like_real_micro_expressions(fps):
    cfg = SynthConfig()
    clip = synthesize_clip(fps=fps, duration_s=60.0, seed=11, size=SMALL, n_micro=18,
                           n_macro=2, n_blinks=6)
    kinds = [e.kind for e in clip.events]
    assert kinds.count("micro") == 18 and kinds.count("macro") == 2 and kinds.count("blink") == 6
    frame = 1 / fps
    for e in clip.events:
        assert 0 <= e.onset < e.apex < e.offset < clip.n_frames
        assert e.onset_s == pytest.approx(e.onset / fps) and e.offset_s == pytest.approx(e.offset / fps)
        if e.kind == "micro":
            assert 1 / 15 - frame / 2 <= e.rise_s <= 1 / 10 + 1e-9, e
            assert 1 / 25 <= e.duration_s <= 0.5 + 1e-9, e
            assert cfg.micro_amplitude[0] <= e.amplitude <= cfg.micro_amplitude[1]
            assert e.label in CLASSES and e.aus == AU_PATTERNS[e.label]
        elif e.kind == "macro":
            assert e.duration_s > 0.5 and e.amplitude >= cfg.macro_amplitude[0]
        else:
            assert 0.1 - frame <= e.duration_s <= 0.3 + frame and e.aus == ("AU45",)
    # No overlaps, at least the minimum gap, nothing in the lead-in.
    for a, b in zip(clip.events, clip.events[1:], strict=False):
        assert b.onset_s - a.offset_s >= cfg.min_gap_s - frame
    assert clip.events[0].onset_s >= cfg.lead_in_s - frame
    # Labels are balanced: 18 micro events over 5 classes -> 3 or 4 each.
    counts = [sum(e.label == c for e in clip.events if e.kind == "micro") for c in CLASSES]
    assert min(counts) >= 3


def test_planted_motion_follows_the_raised_cosine_profile():
    ev = make_event("micro", "surprise", 3, 3, 10, 30.0, 0.02)
    clip = synthesize_clip(fps=30.0, duration_s=0.6, seed=0, size=SMALL, events=[ev],
                           distractors=False)
    peaks = [float(np.linalg.norm(clip.expression_field(i), axis=2).max())
             for i in range(clip.n_frames)]
    assert peaks[ev.onset] == 0 and peaks[ev.offset] == 0
    assert peaks[ev.apex] == pytest.approx(0.02 * clip.face_width, rel=1e-3)
    assert peaks[ev.onset] < peaks[ev.onset + 1] < peaks[ev.onset + 2] < peaks[ev.apex]
    assert all(peaks[i] > peaks[i + 1] for i in range(ev.apex, ev.offset))
    assert np.array_equal(clip.frame(ev.onset), clip.frame(ev.offset))
    assert not np.array_equal(clip.frame(ev.onset), clip.frame(ev.apex))
    t = np.linspace(0, 1, 11)
    p = event_profile(t, 0.2, 0.3, 0.6)
    assert p.min() >= 0 and p.max() <= 1 and p[3] == pytest.approx(1.0)


def test_smooth_track_is_smooth_and_unit_scale():
    track = SmoothTrack(60.0, 1.0, np.random.default_rng(0))
    t = np.arange(0, 60, 0.01)
    x = track(t)
    assert 0.5 < x.std() < 1.5
    assert np.abs(np.diff(x)).max() < 0.2  # no jumps between 10 ms samples
    assert np.abs(np.diff(x, 2)).max() < 0.03  # and no kinks (continuous derivative)
    assert track(12.345) == pytest.approx(track(np.array([12.345]))[0])


def test_too_low_fps_and_events_outside_the_clip_are_refused():
    with pytest.raises(ConfigError):
        synthesize_clip(fps=2.0, duration_s=5.0, size=SMALL)
    ev = make_event("micro", "happiness", 25, 2, 8, 30.0, 0.02)
    with pytest.raises(ConfigError):
        synthesize_clip(fps=30.0, duration_s=1.0, size=SMALL, events=[ev])
    with pytest.raises(ConfigError):
        make_event("micro", "joy", 5, 2, 8, 30.0, 0.02)


def test_training_sample_has_neutral_frames_around_one_micro_expression():
    frames, ev = synthesize_sample(None, "disgust", fps=30.0, seed=4, distractors=False)
    frames2, ev2 = synthesize_sample(None, "disgust", fps=30.0, seed=4, distractors=False)
    assert ev == ev2 and all(np.array_equal(a, b) for a, b in zip(frames, frames2, strict=True))
    assert ev.kind == "micro" and ev.label == "disgust" and ev.aus == AU_PATTERNS["disgust"]
    assert ev.onset >= 2 and len(frames) - 1 - ev.offset >= 2
    assert ev.duration_s <= 0.5 and 0.01 <= ev.amplitude <= 0.03
    assert np.array_equal(frames[0], frames[ev.onset])       # neutral before
    assert np.array_equal(frames[-1], frames[ev.offset])     # neutral after
    assert not np.array_equal(frames[ev.onset], frames[ev.apex])
    with pytest.raises(ConfigError):
        synthesize_sample(None, "anger", fps=30.0)


def test_explicit_geometry_places_the_fields():
    from mestudio.synth import astronaut_face

    base = astronaut_face(SMALL)
    names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # tracker names
    shifted = {n: (x + 12.0, y) for n, (x, y) in zip(names, base.geometry.points, strict=True)}
    ev = make_event("micro", "surprise", 2, 3, 8, 30.0, 0.03)
    a = synthesize_clip(base.image, fps=30.0, duration_s=0.4, events=[ev], distractors=False,
                        geometry=base.geometry)
    b = synthesize_clip(base.image, fps=30.0, duration_s=0.4, events=[ev], distractors=False,
                        geometry=FaceGeometry.from_points(shifted))
    fa = np.linalg.norm(a.expression_field(ev.apex), axis=2)
    fb = np.linalg.norm(b.expression_field(ev.apex), axis=2)
    ca = np.array(np.unravel_index(fa.argmax(), fa.shape))
    # The field follows the given points: the whole pattern moves 12 px to the right.
    cols_a = (fa * np.arange(fa.shape[1])).sum() / fa.sum()
    cols_b = (fb * np.arange(fb.shape[1])).sum() / fb.sum()
    assert cols_b - cols_a == pytest.approx(12.0, abs=1.0)
    assert ca[0] < base.geometry.eyes_mid[1]  # surprise lifts the brows, above the eyes


def test_video_face_is_the_moving_base(video_dir):
    path = video_dir / "single_face.mp4"
    ev = make_event("micro", "happiness", 10, 3, 9, 30.0, 0.03)
    clip = synthesize_clip(path, fps=None, duration_s=1.0, events=[ev], distractors=False)
    assert clip.fps == pytest.approx(30.0) and clip.n_frames == 30
    cap = cv2.VideoCapture(str(path))
    video = [cap.read()[1] for _ in range(30)]
    cap.release()
    # Outside the event the clip is the video itself; at the apex only the face region moves.
    assert np.array_equal(clip.frame(5), video[5])
    assert np.array_equal(clip.frame(ev.offset + 1), video[ev.offset + 1])
    diff = np.abs(clip.frame(ev.apex).astype(int) - video[ev.apex].astype(int)).max(axis=2) > 3
    x0, y0, x1, y1 = clip.base.geometries[ev.apex].roi(clip.size)
    assert diff.sum() > 200
    outside = diff.copy()
    outside[y0:y1, x0:x1] = False
    assert outside.sum() == 0


def test_video_without_a_face_is_refused(video_dir):
    with pytest.raises(SourceError, match="face"):
        synthesize_clip(video_dir / "no_face.mp4", duration_s=1.0)
