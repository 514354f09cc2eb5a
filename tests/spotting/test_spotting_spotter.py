"""The online spotter on synthetic 1-D ROI signals (noise + bumps), at several frame rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mestudio.events_io import event_to_dict
from mestudio.spotting.config import SpotterConfig
from mestudio.spotting.metrics import interval_iou, score_by_kind
from mestudio.spotting.spotter import OnlineSpotter

ROIS = ("brow_left", "brow_right", "nose_left", "nose_right", "mouth_left", "mouth_right")


def _profile(t: np.ndarray, on: float, apex: float, off: float) -> np.ndarray:
    """Raised-cosine rise onset->apex and fall apex->offset (as the synthetic clips)."""
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - on) / (apex - on), 0, 1))
    down = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - apex) / (off - apex), 0, 1))
    return np.where((t <= on) | (t >= off), 0.0, np.where(t <= apex, up, down))


def _stream(fps: float, bumps: list[tuple[float, float, float, int, float]], duration: float,
            seed: int = 0, noise: float = 0.02, jitter: float = 0.0):
    """Timestamps ``(N,)`` and per-ROI signal ``(N, 6)``: a floor of 0.05 px, half-normal
    noise and bumps ``(onset_s, apex_s, offset_s, roi, amplitude_px)``; plus the truth as
    inclusive frame intervals with their kind."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * fps))
    t = np.arange(n) / fps
    if jitter:
        t = t + rng.uniform(-jitter, jitter, n) / fps
        t[0] = 0.0
    sig = 0.05 + np.abs(rng.normal(0.0, noise, (n, len(ROIS))))
    truth = []
    for on, apex, off, roi, amp in bumps:
        sig[:, roi] += amp * _profile(t, on, apex, off)
        inside = np.flatnonzero((t > on) & (t < off))
        truth.append({"onset": int(inside[0]) - 1, "offset": int(inside[-1]) + 1,
                      "kind": "micro" if off - on <= 0.5 else "macro"})
    return t, sig, truth


def _run(t, sig, config=None, none_at=()):
    sp = OnlineSpotter(config)
    events, states = [], []
    sp.seen_at = {}  # event id -> timestamp of the update() that returned it
    for i, ti in enumerate(t):
        s = None if i in none_at else dict(zip(ROIS, sig[i].tolist(), strict=True))
        new = sp.update(i, float(ti), s)
        sp.seen_at.update({ev.id: float(ti) for ev in new})
        events += new
        states.append(sp.state)
    tail = sp.finish()
    return events, tail, states, sp


BUMPS = [  # onset, apex, offset (s), ROI, amplitude (px)
    (2.0, 2.08, 2.3, 0, 0.8), (4.0, 4.1, 4.45, 4, 0.6), (6.0, 6.07, 6.2, 2, 1.0),
    (8.0, 8.4, 9.4, 5, 1.5), (11.0, 11.09, 11.35, 1, 0.5), (13.0, 13.3, 14.2, 3, 1.2),
]


@pytest.mark.parametrize("fps", [25.0, 30.0, 100.0, 200.0])
def test_bumps_are_spotted_with_the_same_config_at_any_frame_rate(fps):
    t, sig, truth = _stream(fps, BUMPS, 16.0)
    events, tail, _, _ = _run(t, sig)
    assert tail == []
    sc = score_by_kind([(events, truth)])
    assert (sc["micro"].tp, sc["micro"].fp, sc["micro"].fn) == (4, 0, 0), events
    assert (sc["macro"].tp, sc["macro"].fp, sc["macro"].fn) == (2, 0, 0), events
    for ev, tr in zip(events, truth, strict=True):
        assert interval_iou((ev.onset, ev.offset), (tr["onset"], tr["offset"])) >= 0.5
        assert ev.onset <= ev.apex <= ev.offset
        assert ev.onset_s == pytest.approx(t[ev.onset]) and ev.offset_s == pytest.approx(t[ev.offset])
        assert ev.roi == ROIS[[b[3] for b in BUMPS][events.index(ev)]]
        assert ev.peak > 0.3


def test_events_are_emitted_online_no_later_than_offset_plus_delay():
    cfg = SpotterConfig()
    for fps in (25.0, 100.0):
        t, sig, _ = _stream(fps, BUMPS, 16.0)
        events, _, _, sp = _run(t, sig, cfg)
        assert len(events) == len(BUMPS)
        for ev in events:
            seen = sp.seen_at[ev.id]
            assert seen <= ev.offset_s + cfg.emit_delay_s + 1e-9
            assert seen >= ev.offset_s   # decided from frames seen so far only
            assert t[ev.emitted_index] == pytest.approx(seen)
        assert sp.delay_s <= cfg.emit_delay_s
        assert [e.id for e in sp.events] == list(range(len(events)))


def test_output_depends_only_on_the_input():
    t, sig, _ = _stream(30.0, BUMPS, 16.0, seed=3)
    a = [event_to_dict(e) for e in _run(t, sig)[0]]
    b = [event_to_dict(e) for e in _run(t.copy(), sig.copy())[0]]
    assert a == b and len(a) == len(BUMPS)


def test_noise_alone_gives_no_event():
    for fps in (30.0, 100.0):
        t, sig, _ = _stream(fps, [], 60.0, seed=5)
        events, tail, _, _ = _run(t, sig)
        assert events + tail == []


def test_irregular_timestamps_are_used_as_given():
    t, sig, truth = _stream(30.0, BUMPS, 16.0, seed=2, jitter=0.3)
    events, _, _, _ = _run(t, sig)
    sc = score_by_kind([(events, truth)])
    assert sc["all"].tp == len(BUMPS) and sc["all"].fp == 0


def test_nothing_is_emitted_while_calibrating():
    cfg = SpotterConfig(calibration_s=1.0)
    t, sig, _ = _stream(30.0, [(0.5, 0.58, 0.8, 0, 1.0), (3.0, 3.08, 3.3, 0, 1.0)], 5.0)
    events, _, states, _ = _run(t, sig, cfg)
    assert states[0].state == "calibrating"
    assert [round(e.onset_s, 1) for e in events] == [3.0]


def test_state_is_exposed_for_plots():
    t, sig, _ = _stream(30.0, [(3.0, 3.1, 3.4, 4, 1.0)], 5.0)
    _, _, states, sp = _run(t, sig)
    names = [s.state for s in states]
    assert {"calibrating", "idle", "rising", "in_event"} <= set(names)
    late = states[int(2.5 * 30)]
    assert set(late.signal) == set(ROIS)
    assert late.threshold > late.baseline > 0
    peak = max(states, key=lambda s: s.combined)
    assert peak.combined > peak.threshold and peak.signal["mouth_left"] > 0.5
    # Final (centred) values for frames.csv, one per frame once the stream is finished.
    sp.finish()
    final = sp.pop_finalized()
    assert [i for i, _, _ in final] == list(range(len(t)))
    assert max(st.combined for _, _, st in final) > 0.5


def test_a_double_peak_is_split_into_two_events_when_asked():
    # Two movements 0.22 s apart that overlap: in between the (low-passed) signal falls to
    # ~40 % of the peaks, above the offset level (20 %) but below the split level (50 %).
    t, sig, _ = _stream(100.0, [], 6.0)
    sig[:, 0] += _profile(t, 3.0, 3.08, 3.3) + _profile(t, 3.22, 3.3, 3.52)
    assert len(_run(t, sig)[0]) == 1          # default: one movement that never came to rest
    events, _, _, sp = _run(t, sig, SpotterConfig(split_valley_fraction=0.5))
    assert len(events) == 2
    for ev in events:
        assert sp.seen_at[ev.id] <= ev.offset_s + sp.config.emit_delay_s + 1e-9
    a, b = events
    assert b.onset == a.offset + 1     # split at the valley
    assert a.apex_s == pytest.approx(3.08, abs=0.03) and b.apex_s == pytest.approx(3.3, abs=0.03)


@pytest.mark.parametrize("fps", [30.0, 100.0])
def test_movements_a_moment_apart_are_merged_into_one_event(fps):
    # Back to rest for 0.05 s between two movements: one event (continuous activity) ...
    t, sig, _ = _stream(fps, [(3.0, 3.1, 3.3, 4, 1.0), (3.35, 3.45, 3.65, 4, 1.0)], 6.0)
    events, _, _, sp = _run(t, sig)
    assert len(events) == 1
    ev = events[0]
    assert ev.onset_s == pytest.approx(3.0, abs=0.07) and ev.offset_s == pytest.approx(3.65, abs=0.07)
    assert ev.kind == "macro"
    assert sp.seen_at[ev.id] <= ev.offset_s + sp.config.emit_delay_s + 1e-9
    # ... but 0.5 s of rest in between separates them.
    t, sig, _ = _stream(fps, [(3.0, 3.1, 3.3, 4, 1.0), (3.8, 3.9, 4.1, 4, 1.0)], 6.0)
    assert [e.kind for e in _run(t, sig)[0]] == ["micro", "micro"]


def test_face_lost_during_an_event_drops_it_and_recovers():
    fps = 30.0
    t, sig, _ = _stream(fps, [(3.0, 3.1, 3.45, 0, 1.0), (8.0, 8.1, 8.4, 1, 1.0)], 10.0)
    lost = set(range(int(3.15 * fps), int(3.6 * fps)))       # face lost mid-movement
    events, _, states, _ = _run(t, sig, none_at=lost)
    assert all(states[i].state == "no_face" and states[i].signal == {} for i in lost)
    assert [round(e.onset_s) for e in events] == [8]


def test_long_absence_restarts_calibration():
    fps = 30.0
    cfg = SpotterConfig(recalibrate_after_s=2.0, calibration_s=1.0)
    t, sig, _ = _stream(fps, [(6.5, 6.6, 6.9, 0, 1.0), (8.0, 8.1, 8.4, 0, 1.0)], 10.0)
    lost = set(range(int(3.0 * fps), int(6.0 * fps)))        # 3 s without a face
    events, _, states, _ = _run(t, sig, cfg, none_at=lost)
    assert states[int(6.2 * fps)].state == "calibrating"
    assert [round(e.onset_s) for e in events] == [8]          # the one at 6.5 s is in calibration


def test_sensitivity_trades_weak_movements_for_false_events():
    t, sig, _ = _stream(30.0, [(4.0, 4.08, 4.3, 0, 0.09)], 8.0, noise=0.01)
    low = _run(t, sig, SpotterConfig(sensitivity=0.1))[0]
    high = _run(t, sig, SpotterConfig(sensitivity=0.9))[0]
    assert low == [] and len(high) == 1


def test_a_held_expression_is_closed_as_macro_after_max_duration():
    cfg = SpotterConfig(max_duration_s=2.0)
    t, sig, _ = _stream(30.0, [], 10.0)
    sig[:, 4] += np.clip((t - 3.0) / 0.3, 0, 1) * 1.0          # rises at 3 s and stays
    events, tail, _, _ = _run(t, sig, cfg)
    assert len(events) == 1 and events[0].kind == "macro"
    assert events[0].duration_s == pytest.approx(2.0, abs=0.35)
    assert tail == []


def test_finish_closes_an_event_still_falling_at_the_end():
    t, sig, _ = _stream(30.0, [(3.0, 3.1, 3.6, 0, 1.0)], 3.4)
    events, tail, _, _ = _run(t, sig)
    assert events == [] and len(tail) == 1
    assert tail[0].offset == len(t) - 1 and not math.isnan(tail[0].peak)
