"""The recogniser: crop ring buffer, worker thread off the per-frame path, bounded queue,
predictions attached to events, and the real preprocess + ONNX engine on a tiny model."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import mestudio.engine.recognition as recognition
from mestudio.capture import open_source
from mestudio.config import AppConfig
from mestudio.engine.pipeline import NO_MODEL, Pipeline
from mestudio.engine.recognition import CropBuffer, Recognizer, buffer_seconds, pick_keyframes
from mestudio.types import FaceObservation, Frame, Prediction, SpotEvent

CLASSES = ("happiness", "disgust", "surprise", "sadness", "repression")


def _event(i: int, onset: int, apex: int, offset: int, fps: float = 30.0) -> SpotEvent:
    return SpotEvent(onset=onset, apex=apex, offset=offset, onset_s=onset / fps,
                     apex_s=apex / fps, offset_s=offset / fps, kind="micro", roi="brow_left",
                     peak=1.0, id=i)


def _crop(value: int, size: int = 16) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def _face(crop: np.ndarray | None) -> FaceObservation:
    return FaceObservation(face_found=crop is not None, aligned=crop)


def fake_inputs(jobs):  # noqa: ANN001, ANN201 - the InputsFn protocol
    """Cheap stand-in for preprocess: the mean grey level of each key frame."""
    means = np.array([[float(c.mean()) for c in crops[:3]] for crops in jobs], np.float32)
    return {"flow": means[:, :, None, None] * np.ones((1, 3, 4, 4), np.float32),
            "frames": means}


class FakeEngine:
    """An engine double: ``predict`` blocks on ``gate`` (when given) and sleeps ``delay_s``;
    the predicted class is chosen by the apex crop's grey level."""

    input_kind = "keyframes"
    preprocess_config: dict = {}
    classes = CLASSES
    name = "fake"
    provider = "CPUExecutionProvider"
    synthetic = True
    metadata = {"architecture": "fake", "synthetic": True, "classes": list(CLASSES)}

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.delay_s = delay_s
        self.gate = gate
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.closed = False

    def predict(self, inputs, cam=True):  # noqa: ANN001, ANN201
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay_s)
        apex = np.asarray(inputs["frames"])[:, 1]
        self.batches.append(len(apex))
        out = []
        for a in apex:
            k = int(a) % len(CLASSES)
            p = np.full(len(CLASSES), 0.05, np.float32)
            p[k] = 0.8
            out.append(Prediction(probs=p, label=CLASSES[k], confidence=0.8, classes=CLASSES))
        return out

    def close(self) -> None:
        self.closed = True


def test_crop_buffer_is_bounded_in_seconds_and_records_gaps() -> None:
    assert buffer_seconds(0.5, 0.3) == pytest.approx(1.3)
    buf = CropBuffer(max_age_s=1.0)
    for i in range(100):                                    # 100 fps for 1 s
        buf.add(i, i / 100, None if i in (50, 51) else _crop(i))
    assert len(buf) == 100
    for i in range(100, 250):
        buf.add(i, i / 100, _crop(i % 256))
    assert len(buf) == 101 and buf.oldest_index == 149      # 1 s of frames
    got = buf.crops_between(200, 205)
    assert [i for i, _ in got] == list(range(200, 206))
    buf.add(3, 0.03, _crop(3))                              # source restarted
    assert len(buf) == 1


def test_keyframes_missing_a_face_use_the_nearest_frame() -> None:
    avail = [(10, _crop(10)), (11, _crop(11)), (14, _crop(14)), (16, _crop(16))]
    onset, apex, offset = pick_keyframes(avail, 9, 13, 17)
    assert (onset[0, 0, 0], apex[0, 0, 0], offset[0, 0, 0]) == (10, 14, 16)
    onset, apex, offset = pick_keyframes(avail, 10, 12, 16)  # 11 is nearer than 14
    assert apex[0, 0, 0] == 11
    assert pick_keyframes([], 1, 2, 3) is None


def test_predictions_arrive_on_the_worker_and_attach_on_poll() -> None:
    engine = FakeEngine()
    rec = Recognizer(engine, buffer_s=2.0, inputs_fn=fake_inputs)
    for i in range(30):
        rec.add_frame(i, i / 30, _face(_crop(i)))
    ev = _event(0, 5, 7, 12)
    assert rec.submit(ev)
    done = rec.wait(5.0)
    assert done == [ev] and ev.prediction is not None
    assert ev.prediction.label == CLASSES[7 % 5]            # the apex crop reached the model
    assert engine.threads and threading.current_thread().name not in engine.threads
    assert rec.stats.completed == 1 and rec.stats.pending == 0
    assert rec.stats.last_latency_ms >= 0
    # An event whose frames have no face is not recognised (and says so).
    for i in range(30, 40):
        rec.add_frame(i, i / 30, _face(None))
    assert not rec.submit(_event(1, 31, 33, 36))
    assert rec.stats.skipped == 1
    rec.close()


def test_queue_is_bounded_and_drops_the_oldest_pending(caplog) -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    rec = Recognizer(engine, buffer_s=10.0, max_pending=3, inputs_fn=fake_inputs)
    for i in range(200):
        rec.add_frame(i, i / 30, _face(_crop(i)))
    events = [_event(k, 10 * k, 10 * k + 2, 10 * k + 5) for k in range(10)]
    with caplog.at_level(logging.WARNING, logger="mestudio.engine.recognition"):
        t0 = time.perf_counter()
        assert rec.submit(events[0])
        time.sleep(0.2)                    # the worker takes event 0 and blocks on the gate
        for ev in events[1:]:
            assert rec.submit(ev)
        submit_s = time.perf_counter() - t0 - 0.2
    assert submit_s < 0.1                  # submitting never waits for the engine
    assert rec.stats.dropped == 6          # 9 queued behind the busy one, 3 kept
    assert sum("falling behind" in r.message for r in caplog.records) == 6
    gate.set()
    rec.wait(5.0)
    got = [ev.id for ev in events if ev.prediction is not None]
    assert got == [0, 7, 8, 9]             # the oldest waiting ones were dropped
    assert engine.batches == [1, 3]        # the waiting ones went as one batch
    rec.close()


def test_slow_engine_does_not_slow_the_per_frame_path(monkeypatch) -> None:
    monkeypatch.setattr(recognition, "preprocess_inputs_fn",
                        lambda kind, meta, device=None: fake_inputs)
    engine = FakeEngine(delay_s=1.0)
    pipeline = Pipeline(engine=engine, recognition=True)
    assert pipeline.model_info is not None and pipeline.model_info["synthetic"]
    process_ms: list[float] = []
    updated: list[SpotEvent] = []
    busy_frames = 0

    def feed(frame: Frame) -> None:
        nonlocal busy_frames
        busy = pipeline.recognizer.pending > 0
        t0 = time.perf_counter()
        res = pipeline.process(frame)
        process_ms.append((time.perf_counter() - t0) * 1e3)
        busy_frames += busy
        updated.extend(res.updated_events)
        assert {"track", "signal", "spot", "recognition"} <= set(res.timings_ms)

    with open_source("demo:duration=10,seed=0,blinks=1") as src:
        for frame in src:
            feed(frame)
    micro = [e for e in pipeline.events if e.kind == "micro"]
    assert len(micro) >= 2
    # The face stays still after the clip: frames keep coming until the predictions are in.
    i, t_end = frame.index, time.perf_counter() + 10
    while len(updated) < len(micro) and time.perf_counter() < t_end:
        i += 1
        feed(Frame(i, i / src.fps, frame.image))
    # Each prediction takes 1 s on the worker; no frame waited for one.
    assert max(process_ms) < 400, f"slowest frame {max(process_ms):.0f} ms"
    assert busy_frames >= 20               # frames flowed while predictions were running
    assert sorted(e.id for e in updated) == [e.id for e in micro]
    assert all(e.prediction is not None for e in micro)
    pipeline.finish()
    assert pipeline.recognition_stats["completed"] == len(micro)
    assert engine.threads and "MainThread" not in engine.threads
    pipeline.close()
    assert not engine.closed               # an engine passed in belongs to the caller


def test_invalid_model_file_gives_degraded_mode(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not an onnx model" * 100)
    cfg = AppConfig()
    cfg.recognition.model = str(bad)
    pipeline = Pipeline(cfg)
    assert pipeline.recognizer is None and pipeline.model_info is None
    assert any(line.startswith(NO_MODEL) and "broken.onnx" in line
               for line in pipeline.degraded)
    pipeline.close()


# ---- the real thing: mestudio.preprocess + ONNX Runtime on a tiny random M3ENet -------------
def export_random_m3enet(tmp_path_factory) -> Path:  # noqa: ANN001
    """A random-weight M3ENet exported with E's export_onnx (checks plumbing, not accuracy);
    exported once per test session (shared with tests/test_analyze.py through the path)."""
    pytest.importorskip("mestudio.preprocess")
    torch = pytest.importorskip("torch")
    path = tmp_path_factory.getbasetemp() / "random_m3enet" / "random_m3enet.onnx"
    if path.is_file():
        return path
    torch.set_num_threads(1)
    from mestudio.inference.export import export_onnx
    from mestudio.nets import create_model

    torch.manual_seed(0)
    model = create_model("m3enet", len(CLASSES)).eval()
    info = {"classes": list(CLASSES), "preprocess": {}, "synthetic": True,
            "training": {"dataset": "random (test)"}, "metrics": {}}
    return export_onnx((model, info), path)


@pytest.fixture(scope="module")
def random_m3enet(tmp_path_factory) -> Path:  # noqa: ANN001
    return export_random_m3enet(tmp_path_factory)


def test_pipeline_recognises_micro_events_with_a_real_model(random_m3enet: Path) -> None:
    cfg = AppConfig()
    cfg.recognition.model = str(random_m3enet)
    pipeline = Pipeline(cfg)
    assert pipeline.degraded == [] and pipeline.model_info["name"]
    assert pipeline.model_info["classes"] == list(CLASSES)
    with open_source("demo:duration=10,seed=0,blinks=1") as src:
        for _ in pipeline.run(src):
            pass
    pipeline.finish()
    micro = [e for e in pipeline.events if e.kind == "micro"]
    assert micro and all(e.prediction is not None for e in micro)
    for ev in micro:
        p = ev.prediction
        assert p.label in CLASSES and p.probs.shape == (5,)
        assert abs(float(p.probs.sum()) - 1) < 1e-4 and p.confidence == pytest.approx(p.probs.max())
        assert p.cams is not None and p.cams.shape[:2] == (5, 5)  # Grad-CAM per class, stream
        assert p.synthetic
    # macro events are recognised too (recognition.macro, default on; a key-frame model)
    assert pipeline.recognizer.kinds == ("micro", "macro")
    macro = [e for e in pipeline.events if e.kind == "macro"]
    stats = pipeline.recognition_stats
    assert sum(e.prediction is None for e in macro) == stats["too_long"]
    print(f"event -> prediction latency: mean {stats['mean_latency_ms']} ms")
    assert stats["failed"] == 0 and stats["completed"] == len(micro) + len(macro) - stats[
        "too_long"]
    pipeline.close()
