"""Macro events are recognised too when ``macro`` is on and the model allows it (issue 15):
key frames onset/apex/offset, onset clipped to the crop buffer, too-long events skipped with
a counted reason, and nothing for macro events when it is off."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mestudio.engine.recognition import Recognizer, buffer_seconds, model_allows_macro
from mestudio.types import FaceObservation, Prediction, SpotEvent

CLASSES = ("happiness", "disgust", "surprise")
FPS = 30.0


class KeyframeEngine:
    """Records the key frames (grey levels = frame indices) of every job."""

    input_kind = "keyframes"
    preprocess_config: dict = {}
    classes = CLASSES
    metadata: dict = {"architecture": "fake", "classes": list(CLASSES)}

    def __init__(self) -> None:
        self.seen: list[list[int]] = []
        self.lock = threading.Lock()

    def predict(self, inputs, cam=True):  # noqa: ANN001, ANN201
        out = []
        for keys in np.asarray(inputs["frames"]):
            with self.lock:
                self.seen.append([int(k) for k in keys])
            p = np.array([0.7, 0.2, 0.1], np.float32)
            out.append(Prediction(probs=p, label=CLASSES[0], confidence=0.7, classes=CLASSES))
        return out


def key_inputs(jobs):  # noqa: ANN001, ANN201
    """The grey level of each key frame (= its frame index modulo 256)."""
    keys = np.array([[float(c[0, 0, 0]) for c in crops] for crops in jobs], np.float32)
    return {"frames": keys}


def _event(kind: str, onset: int, apex: int, offset: int, i: int = 0) -> SpotEvent:
    return SpotEvent(onset=onset, apex=apex, offset=offset, onset_s=onset / FPS,
                     apex_s=apex / FPS, offset_s=offset / FPS, kind=kind,  # type: ignore[arg-type]
                     roi="mouth_left", peak=2.0, id=i)


def _feed(rec: Recognizer, n: int) -> None:
    for i in range(n):
        crop = np.full((8, 8, 3), i % 256, np.uint8)
        rec.add_frame(i, i / FPS, FaceObservation(face_found=True, aligned=crop))


def test_a_macro_event_gets_a_prediction_when_macro_recognition_is_on():
    engine = KeyframeEngine()
    rec = Recognizer(engine, buffer_s=buffer_seconds(0.5, 0.3, max_event_s=4.0),
                     inputs_fn=key_inputs, with_cam=False)
    try:
        assert rec.kinds == ("micro", "macro")
        _feed(rec, 150)
        macro = _event("macro", 40, 70, 130)
        micro = _event("micro", 131, 134, 140, i=1)
        assert rec.submit(macro) and rec.submit(micro)
        done = rec.wait(10.0)
        assert {e.id for e in done} == {0, 1}
        assert macro.prediction is not None and macro.prediction.label == "happiness"
        # Key frames of the macro: its onset, apex and actual offset.
        assert [40, 70, 130] in engine.seen
        assert rec.stats.completed == 2 and rec.stats.skipped_kind == 0
    finally:
        rec.close()


def test_no_macro_prediction_when_macro_recognition_is_off():
    engine = KeyframeEngine()
    rec = Recognizer(engine, buffer_s=5.0, inputs_fn=key_inputs, with_cam=False, macro=False)
    try:
        assert rec.kinds == ("micro",)
        _feed(rec, 150)
        macro = _event("macro", 40, 70, 130)
        assert not rec.submit(macro)
        assert rec.submit(_event("micro", 131, 134, 140, i=1))
        rec.wait(10.0)
        assert macro.prediction is None
        assert rec.stats.skipped_kind == 1 and rec.stats.completed == 1
        assert rec.stats.as_dict()["skipped_kind"] == 1
    finally:
        rec.close()


def test_a_model_restricted_to_micro_events_gets_no_macro_event():
    engine = KeyframeEngine()
    engine.metadata = {**engine.metadata, "event_kinds": ["micro"]}
    assert not model_allows_macro(engine)
    assert model_allows_macro(KeyframeEngine())
    rec = Recognizer(engine, buffer_s=5.0, inputs_fn=key_inputs, with_cam=False, macro=True)
    try:
        assert rec.kinds == ("micro",)
    finally:
        rec.close()


def test_a_macro_longer_than_the_buffer_is_clipped_or_skipped_never_an_error():
    engine = KeyframeEngine()
    rec = Recognizer(engine, buffer_s=1.3, inputs_fn=key_inputs, with_cam=False)  # ~39 frames
    try:
        _feed(rec, 150)
        oldest = rec.buffer.oldest_index
        assert oldest is not None and 100 < oldest < 120
        clipped = _event("macro", 60, 125, 148)       # onset gone, apex still there
        gone = _event("macro", 20, 60, 148, i=1)      # apex gone too
        assert rec.submit(clipped)
        assert not rec.submit(gone)
        rec.wait(10.0)
        assert clipped.prediction is not None and gone.prediction is None
        assert engine.seen == [[oldest, 125, 148]]    # the oldest buffered frame as onset
        assert (rec.stats.clipped, rec.stats.too_long) == (1, 1)
    finally:
        rec.close()


def test_buffer_seconds_covers_the_longest_event():
    assert buffer_seconds(0.5, 0.3) == pytest.approx(1.3)
    assert buffer_seconds(0.5, 0.3, max_event_s=4.0) == pytest.approx(4.8)
    assert buffer_seconds(0.5, 0.3, max_event_s=None) == pytest.approx(1.3)


# ------------------------------------------------------------------ end to end (Pipeline)
class AnyInputsEngine:
    """An engine double for the pipeline's own inputs (whatever the key-frame preprocessing
    makes): one "happiness" prediction per job."""

    input_kind = "keyframes"
    preprocess_config: dict = {}
    classes = CLASSES
    name = "fake"
    provider = "CPUExecutionProvider"
    synthetic = True
    metadata: dict = {"architecture": "fake", "synthetic": True, "classes": list(CLASSES)}

    def predict(self, inputs, cam=True):  # noqa: ANN001, ANN201
        n = len(np.asarray(next(iter(inputs.values()))))
        p = np.array([0.7, 0.2, 0.1], np.float32)
        return [Prediction(probs=p, label=CLASSES[0], confidence=0.7, classes=CLASSES)
                for _ in range(n)]

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def recovery_frames(shared_dir):  # noqa: ANN001, ANN201
    """The frames of ``mestudio bench spotting``'s recovery clip (a broad expression after a
    long stretch of large movements, and micro-expressions), as a list."""
    from mestudio.bench.spotting import _clip_frames, recovery_clip

    clip, _span = recovery_clip(1, after_s=2.5)
    return list(_clip_frames(clip))


def _pipeline_events(frames, macro: bool):  # noqa: ANN001, ANN202
    from mestudio.config import AppConfig
    from mestudio.engine.live import describe_pipeline
    from mestudio.engine.pipeline import Pipeline

    cfg = AppConfig()
    cfg.recognition.macro = macro
    pipeline = Pipeline(cfg, engine=AnyInputsEngine())
    try:
        for frame in frames:
            pipeline.process(frame)
        pipeline.finish()
        return (list(pipeline.events), pipeline.recognizer.kinds,
                describe_pipeline(pipeline, cfg)["recognised_kinds"], pipeline.recognizer.stats)
    finally:
        pipeline.close()


def test_the_pipeline_recognises_macro_events_only_with_recognition_macro(recovery_frames):
    from mestudio.engine.overlays import event_view

    events, kinds, shown, stats = _pipeline_events(recovery_frames, macro=True)
    macro = [e for e in events if e.kind == "macro"]
    assert macro and kinds == ("micro", "macro") and shown == ["micro", "macro"]
    assert all(e.prediction is not None and e.prediction.label == "happiness" for e in macro)
    assert stats.skipped_kind == 0
    assert event_view(macro[0], None).caption == "happiness (macro) 70 %"

    events, kinds, shown, stats = _pipeline_events(recovery_frames, macro=False)
    macro = [e for e in events if e.kind == "macro"]
    assert macro and kinds == ("micro",) and shown == ["micro"]
    assert all(e.prediction is None for e in macro)
    assert stats.skipped_kind == len(macro)
    assert event_view(macro[0], None).caption == "macro · no emotion"
    micro = [e for e in events if e.kind == "micro"]
    assert all(e.prediction is not None for e in micro)
