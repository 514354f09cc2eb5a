"""The processing worker: frames flow off the GUI thread, the newest frame wins, a camera
that fails mid-stream is reopened, a model that cannot be loaded degrades to spotting only,
pause really stops a file, results reach a recorder-like sink."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mestudio.engine.overlays import flow_to_rgba, heat_to_rgba


def _drain(worker, packets):
    p = worker.take_packet()
    if p is not None:
        packets.append(p)


def test_worker_processes_file_frames_in_real_time_and_measures_latency(qtbot, make_worker, fakes):
    factory = fakes.scripted_factory()
    worker = make_worker(pipeline_fn=factory)
    packets = []
    worker.packet_ready.connect(lambda: _drain(worker, packets))
    opened = []
    worker.source_opened.connect(opened.append)
    worker.start()
    worker.open_callable(lambda: fakes.SyntheticSource(n=30, fps=60.0), "clip", is_camera=False)
    with qtbot.waitSignal(worker.ended, timeout=20000):
        pass
    qtbot.wait(50)
    assert opened and opened[0].label == "clip" and opened[0].size == (160, 120)
    indices = [i for p in packets for i, _t, _s in p.samples]
    # every frame of a paced file is processed, in order, none twice
    assert indices == sorted(set(indices))
    assert len(indices) >= 28
    s = worker.summary()
    assert s["processed"] >= 28
    assert 0 < s["processing_latency_p95_ms"] < 1000
    assert worker.stats().status == "ended"


def test_newest_frame_wins_when_processing_is_slower_than_the_camera(qtbot, make_worker, fakes):
    # 120 fps camera, 40 ms per frame of processing: must drop, never queue.
    factory = fakes.scripted_factory(delay_s=0.04)
    worker = make_worker(pipeline_fn=factory)
    worker.packet_ready.connect(worker.take_packet)
    worker.start()
    worker.open_callable(lambda: fakes.SyntheticSource(n=240, fps=120.0, live=True), "fast camera")
    # ~1.5 s of the camera (a condition, not wall time: a busy machine delivers later)
    qtbot.waitUntil(lambda: worker.stats().captured >= 180, timeout=30000)
    stats = worker.stats()
    summary = worker.summary()
    worker.close_source()
    assert stats.dropped > 20, stats
    assert stats.processed < stats.captured
    # latency stays about one processing step, not the length of the run (1.5 s)
    assert summary["processing_latency_p95_ms"] < 400, summary
    processed = factory.last.processed
    assert processed == sorted(processed)
    assert max(np.diff(processed)) > 1  # frames were skipped, not delayed


def test_camera_failure_mid_stream_reports_and_recovers(qtbot, make_worker, fakes):
    fakes.SyntheticSource.shared_failures.clear()
    worker = make_worker(pipeline_fn=fakes.scripted_factory())
    statuses = []
    worker.capture_status.connect(lambda s, m: statuses.append((s, m)))
    processed = []
    worker.packet_ready.connect(lambda: _drain(worker, processed))
    worker.start()
    worker.open_callable(lambda: fakes.SyntheticSource(n=400, fps=60.0, live=True, fail_at=15,
                                                 key="worker"), "camera 0")
    qtbot.waitUntil(lambda: any(s == "reconnecting" for s, _m in statuses), timeout=15000)
    message = next(m for s, m in statuses if s == "reconnecting")
    assert "disconnected" in message
    n_before = sum(p.merged for p in processed)
    qtbot.waitUntil(lambda: statuses[-1][0] == "running" and
                    sum(p.merged for p in processed) > n_before + 10, timeout=15000)
    assert worker.isRunning()


def test_camera_missing_at_start_is_waited_for(qtbot, make_worker, fakes):
    from mestudio.errors import CameraError

    attempts = []

    def plug_in_later():
        attempts.append(1)
        if len(attempts) < 3:
            raise CameraError("no camera at index 0 (/dev/video0 does not exist)")
        return fakes.SyntheticSource(n=200, fps=60.0, live=True)

    factory = fakes.scripted_factory()
    worker = make_worker(pipeline_fn=factory)
    statuses = []
    worker.capture_status.connect(lambda s, m: statuses.append((s, m)))
    worker.packet_ready.connect(worker.take_packet)
    worker.start()
    worker.open_callable(plug_in_later, "camera 0")
    qtbot.waitUntil(lambda: factory.last is not None and len(factory.last.processed) > 5,
                    timeout=15000)
    assert statuses[0][0] == "reconnecting" and "/dev/video0" in statuses[0][1]
    assert len(attempts) >= 3


def test_model_that_cannot_be_loaded_degrades_to_spotting_only(qtbot, make_worker, fakes,
                                                               tmp_path, real_pipeline):
    # The real Pipeline.from_config: a file that is not a model becomes the documented
    # degraded mode (events without emotion), said once, and spotting still runs.
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx file")
    cfg = fakes.fast_config()
    cfg.recognition.model = str(bad)
    worker = make_worker(config=cfg)
    infos = []
    worker.pipeline_info.connect(infos.append)
    worker.start()
    worker.open_callable(lambda: fakes.SyntheticSource(n=20), "clip", is_camera=False)
    qtbot.waitUntil(lambda: bool(infos), timeout=30000)
    info = infos[-1]
    assert info["recognition"] is False and info["spotting"] is True
    assert "no recognition model" in info["warning"] and "model.onnx" in info["warning"]
    assert info["overlays"] == {"flow": True, "strain": True}
    with qtbot.waitSignal(worker.ended, timeout=30000):
        pass


def test_missing_file_is_reported_not_raised(qtbot, make_worker, tmp_path, fakes):
    worker = make_worker(pipeline_fn=fakes.scripted_factory())
    worker.start()
    with qtbot.waitSignal(worker.source_failed, timeout=15000) as blocker:
        worker.open_source(str(tmp_path / "nope.mp4"))
    assert "nope.mp4" in blocker.args[0]
    assert worker.isRunning()


def test_pause_stops_a_file_and_resume_continues_without_skipping(qtbot, make_worker, fakes):
    factory = fakes.scripted_factory()
    worker = make_worker(pipeline_fn=factory)
    worker.packet_ready.connect(worker.take_packet)
    worker.start()
    worker.open_callable(lambda: fakes.SyntheticSource(n=300, fps=60.0), "clip", is_camera=False)
    qtbot.waitUntil(lambda: factory.last is not None and len(factory.last.processed) > 10,
                    timeout=15000)
    worker.set_paused(True)
    qtbot.waitUntil(worker.is_paused, timeout=15000)  # the worker thread took the command
    qtbot.wait(150)  # a frame already in flight may still be processed
    n_paused = len(factory.last.processed)
    qtbot.wait(300)
    assert len(factory.last.processed) <= n_paused + 1
    worker.set_paused(False)
    qtbot.waitUntil(lambda: len(factory.last.processed) > n_paused + 10, timeout=15000)
    processed = factory.last.processed
    assert processed == list(range(processed[0], processed[0] + len(processed)))
    assert worker.stats().dropped == 0


def test_events_and_late_predictions_reach_the_gui_and_a_sink(qtbot, make_worker, fakes):
    script = [(10, fakes.planted_event(3, 5, 8, 30.0), "surprise"),
              (20, fakes.planted_event(12, 15, 18, 30.0, kind="macro"), None)]
    worker = make_worker(pipeline_fn=fakes.scripted_factory(script=script))
    packets = []
    worker.packet_ready.connect(lambda: _drain(worker, packets))

    class Sink:
        def __init__(self):
            self.results, self.closed_with = [], None

        def add_result(self, result):
            self.results.append(result.frame.index)

        def close(self, events):
            self.closed_with = events

    sink = Sink()
    worker.start()
    worker.add_result_sink(sink)
    worker.open_callable(lambda: fakes.SyntheticSource(n=40, fps=60.0), "clip", is_camera=False)
    with qtbot.waitSignal(worker.ended, timeout=20000):
        pass
    qtbot.wait(50)
    events = [ev for p in packets for ev in p.events]
    updated = [ev for p in packets for ev in p.updated_events]
    assert [ev.kind for ev in events] == ["micro", "macro"]
    assert events[0].prediction is None  # emitted before its prediction
    assert updated and updated[0].id == events[0].id
    assert updated[0].prediction.label == "surprise"
    views = {k: v for p in packets for k, v in p.event_views.items()}
    assert set(views[events[0].id].cams) == {"u", "v", "strain", "onset_apex", "offset_apex"}
    assert views[events[0].id].crop is not None
    assert sink.results == sorted(sink.results) and len(sink.results) >= 30
    worker.remove_result_sink(sink)
    qtbot.waitUntil(lambda: sink.closed_with is not None, timeout=15000)
    assert len(sink.closed_with) == 2


def test_paced_capture_plays_at_its_timestamps_and_pause_rebases_the_clock(fakes):
    import threading

    from mestudio.capture.live import LiveCapture

    cap = LiveCapture(lambda: fakes.SyntheticSource(n=12, fps=100.0), pace=True)
    t0 = time.perf_counter()
    frames = []
    with cap:
        while len(frames) < 12:
            got = cap.get(timeout=2.0)
            assert got is not None, "the paced capture stalled"
            frames.append(got[0].index)
            if got[0].index == 4:
                cap.pause()
                threading.Timer(0.15, cap.resume).start()
    elapsed = time.perf_counter() - t0
    assert frames == list(range(12)) and cap.dropped == 0
    # 11 frame intervals of 10 ms + a 150 ms pause; no catching up after the pause
    assert 0.2 <= elapsed < 2.0  # the upper bound only says it did not stall


def test_overlay_pictures_encode_motion_and_heat():
    flow = np.zeros((32, 32, 2), np.float32)
    flow[8:16, 8:16, 0] = 2.0  # a patch moving right
    rgba = flow_to_rgba(flow, full_scale_px=1.5)
    assert rgba.shape == (32, 32, 4) and rgba.dtype == np.uint8
    assert rgba[12, 12, 3] > 200 and rgba[0, 0, 3] == 0
    heat = heat_to_rgba(np.array([[0.0, 1.0]], np.float32), size=16)
    assert heat.shape == (16, 16, 4) and heat[8, 15, 3] > heat[8, 0, 3]




def test_default_config_reads_saved_settings(monkeypatch, tmp_path, fakes):
    from mestudio.config import save_settings
    from mestudio.gui.worker import default_config

    cfg = fakes.fast_config()
    cfg.spotter.sensitivity = 0.83
    path = save_settings(cfg, tmp_path / "s.json")
    monkeypatch.setenv("MESTUDIO_SETTINGS", str(path))
    assert default_config().spotter.sensitivity == pytest.approx(0.83)
