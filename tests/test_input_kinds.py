"""Input kinds (``mestudio.preprocess.InputKind``) and networks registered with a decorator:
the specs make exactly the inputs the per-kind code made before, an unknown kind is a clear
error, and a network with a NEW input kind works through the ONNX contract and live
recognition with nothing but a kind spec and a ``@register``-ed network."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from mestudio import preprocess as pp
from mestudio.preprocess import (
    CLIP,
    INPUT_KINDS,
    KEYFRAMES,
    InputKind,
    PreprocessConfig,
    clip_inputs,
    input_kind,
    keyframe_inputs,
    keyframe_inputs_batch,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _sequence(n: int = 10, size: int = 64, seed: int = 3) -> list[np.ndarray]:
    """``n`` BGR crops of a smooth random texture drifting right and down (sub-pixel to a
    few pixels), like an aligned face with a small motion."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 2.0)
    base = (base - base.min()) / (base.max() - base.min()) * 200 + 20
    out = []
    for i in range(n):
        m = np.float32([[1, 0, 0.35 * i], [0, 1, 0.2 * i]])
        img = cv2.warpAffine(base, m, (size, size), borderMode=cv2.BORDER_REFLECT)
        out.append(np.repeat(np.clip(np.rint(img), 0, 255).astype(np.uint8)[..., None], 3, 2))
    return out


def _equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == np.float32 and a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), k


# ------------------------------------------------------------------------------ errors
def test_unknown_input_kind_is_a_clear_error() -> None:
    from mestudio.errors import DatasetError
    from mestudio.inference import contract
    from mestudio.training.features import FeatureSpec

    with pytest.raises(ValueError, match=r"unknown input kind 'nonsense'; known kinds: .*clip"
                                         r".*keyframes"):
        input_kind("nonsense")
    with pytest.raises(ValueError, match="unknown input kind 'nonsense'"):
        contract.expected_inputs("nonsense", 48, 1)
    with pytest.raises(ValueError, match="clip length"):
        contract.expected_inputs("clip", 48, 1)
    with pytest.raises(DatasetError, match="unknown input kind 'nonsense'"):
        FeatureSpec(kind="nonsense")
    with pytest.raises(ValueError, match="unknown input kind 'nonsense'"):
        from mestudio.engine.recognition import preprocess_inputs_fn

        preprocess_inputs_fn("nonsense", None)
    with pytest.raises(ValueError, match="unknown input kind"):
        from mestudio.nets import register

        register("bad_net", input_kind="nonsense", description="-")


# ------------------------------------------------------------------- the built-in kinds
def test_builtin_specs_and_contract_shapes() -> None:
    from mestudio.inference import contract

    assert INPUT_KINDS["keyframes"] is KEYFRAMES and INPUT_KINDS["clip"] is CLIP
    assert KEYFRAMES.input_names == KEYFRAMES.feature_names == ("flow", "frames")
    assert CLIP.input_names == CLIP.feature_names == ("clip", "flow_seq")
    assert CLIP.is_clip and not KEYFRAMES.is_clip
    # the shapes the contract hard-coded before
    assert contract.expected_inputs("keyframes", 48, 3) == {
        "flow": ("N", 3, 48, 48), "frames": ("N", 3, 3, 48, 48)}
    assert contract.expected_inputs("clip", 32, 1, 8) == {
        "clip": ("N", 8, 1, 32, 32), "flow_seq": ("N", 7, 2, 32, 32)}
    assert dict(contract.INPUT_NAMES) == {"keyframes": ("flow", "frames"),
                                          "clip": ("clip", "flow_seq"), "face": ("face",)}


def test_the_face_kind_takes_the_apex_crop_scaled_like_the_expression_model() -> None:
    from mestudio.inference import contract
    from mestudio.preprocess import FACE, face_config

    assert contract.expected_inputs("face", 64, 1) == {"face": ("N", 1, 64, 64)}
    available = [(i, i) for i in (3, 5, 9, 12)]
    assert FACE.select(available, 3, 8, 12) == [9]       # the crop nearest the apex
    assert FACE.select([], 3, 8, 12) is None
    dark = np.zeros((128, 128, 3), np.uint8)
    light = np.full((128, 128, 3), 255, np.uint8)
    x = FACE.make_inputs([[dark], [light]], face_config())["face"]
    assert x.shape == (2, 1, 64, 64) and x.dtype == np.float32
    assert x[0].max() == pytest.approx(-1.0) and x[1].min() == pytest.approx(1.0)


def test_keyframe_spec_makes_exactly_the_old_inputs() -> None:
    from mestudio.engine.recognition import pick_keyframes, preprocess_inputs_fn

    crops = _sequence(10)
    cfg = PreprocessConfig(input_size=32)
    onset, apex, offset = 1, 5, 8
    available = list(enumerate(crops))[onset:offset + 1]
    picked = KEYFRAMES.select(available, onset, apex, offset, cfg)
    assert picked is not None and len(picked) == 3
    assert all(p is crops[i] for p, i in zip(picked, (onset, apex, offset), strict=True))
    made = KEYFRAMES.make_inputs([picked], cfg)
    # live before: pick_keyframes + keyframe_inputs_batch; review and training before:
    # keyframe_inputs of the three crops
    _equal(made, keyframe_inputs_batch([tuple(pick_keyframes(available, onset, apex, offset))],
                                       cfg))
    _equal({k: v[0] for k, v in made.items()}, keyframe_inputs(crops[1], crops[5], crops[8], cfg))
    _equal(made, dict(preprocess_inputs_fn("keyframes", cfg.to_metadata())([picked])))
    # a frame without a face: the nearest one stands in (as pick_keyframes did)
    gap = [(i, c) for i, c in available if i != apex]
    assert KEYFRAMES.select(gap, onset, apex, offset) == pick_keyframes(gap, onset, apex,
                                                                        offset)
    assert KEYFRAMES.select([], onset, apex, offset) is None
    # a batch of events
    two = KEYFRAMES.make_inputs([picked, crops[:3]], cfg)
    _equal(two, keyframe_inputs_batch([tuple(picked), tuple(crops[:3])], cfg))
    assert KEYFRAMES.model_kwargs(two) == {"in_channels": 1, "input_size": 32}


@pytest.mark.parametrize("clip_len", [4, 8])
def test_clip_spec_makes_exactly_the_old_inputs(clip_len: int) -> None:
    from mestudio.engine.recognition import preprocess_inputs_fn

    crops = _sequence(11)
    cfg = PreprocessConfig(input_size=32, clip_len=clip_len)
    onset, offset = 1, 10
    available = list(enumerate(crops))[onset:offset + 1]
    picked = CLIP.select(available, onset, 5, offset, cfg)
    assert picked is not None and len(picked) == clip_len
    made = CLIP.make_inputs([picked], cfg)
    # live and training before: clip_inputs of every crop onset..offset
    old = clip_inputs(crops[onset:offset + 1], cfg)
    _equal({k: v[0] for k, v in made.items()}, old)
    _equal(made, dict(preprocess_inputs_fn("clip", cfg.to_metadata())([picked])))
    # review before: clip_len frames at np.linspace(onset, offset) (the same frames)
    idx = np.linspace(onset, offset, clip_len).round().astype(int).tolist()
    frames = CLIP.select([(i, i) for i in range(onset, offset + 1)], onset, 5, offset, cfg)
    assert frames == idx
    _equal({k: v[0] for k, v in made.items()}, clip_inputs([crops[i] for i in idx], cfg))
    assert CLIP.select(available[:1], onset, onset, onset, cfg) is None  # one face: no clip
    assert CLIP.model_kwargs(made) == {"in_channels": 1, "input_size": 32,
                                       "clip_len": clip_len}
    empty = CLIP.make_inputs([], cfg)
    assert empty["clip"].shape == (0, clip_len, 1, 32, 32)


@pytest.mark.parametrize("kind", ["keyframes", "clip"])
def test_training_features_are_the_old_inputs(kind: str, tmp_path: Path) -> None:
    """``features.sample_inputs`` (spec path) == the per-kind calls it made before."""
    import cv2

    from mestudio.training.datasets.base import Sample
    from mestudio.training.features import FeatureSpec, needed_frames, sample_inputs

    crops = _sequence(9, size=48, seed=5)
    frames = list(range(20, 29))
    paths = []
    for n, c in zip(frames, crops, strict=True):
        paths.append(tmp_path / f"img{n}.png")
        cv2.imwrite(str(paths[-1]), c)
    sample = Sample(id="toy/01/a", dataset="toy", subject="01", label="x", onset=20, apex=23,
                    offset=28, frame_paths=paths, fps=30.0, aus="", native_label="x",
                    frames=frames)
    cfg = PreprocessConfig(input_size=24, clip_len=4)
    spec = FeatureSpec(kind=kind, preprocess=cfg.to_metadata(), align="none", align_size=48)
    got = sample_inputs(sample, spec)
    assert set(got) == set(input_kind(kind).feature_names)
    read = {n: cv2.resize(cv2.imread(str(p)), (48, 48), interpolation=cv2.INTER_AREA)
            for n, p in zip(frames, paths, strict=True)}
    if kind == "keyframes":
        assert needed_frames(sample, kind, cfg) == [20, 23, 28]
        old = keyframe_inputs(read[20], read[23], read[28], cfg)
    else:
        assert len(needed_frames(sample, kind, cfg)) == 4
        old = clip_inputs([read[n] for n in frames], cfg)
    _equal(got, old)


# --------------------------------------------------------------- a new kind, end to end
@dataclass(frozen=True)
class ApexKind(InputKind):
    """Toy kind: the apex crop alone, grey, ``(1, S, S)``, normalised like the frames."""

    def shapes(self, input_size: int, channels: int,
               clip_len: int | None = None) -> dict[str, tuple[int, ...]]:
        return {"apex": (1, int(input_size), int(input_size))}

    def select(self, available, onset, apex, offset, cfg=None):  # noqa: ANN001, ANN201
        picked = pp.pick_keyframes(available, onset, apex, offset)
        return None if picked is None else [picked[1]]

    def make_inputs(self, jobs, cfg=None, device=None):  # noqa: ANN001, ANN201
        import cv2

        cfg = cfg or PreprocessConfig()
        s = cfg.input_size
        out = []
        for (crop,) in jobs:
            grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
            x = cv2.resize(grey, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
            out.append(((x - cfg.frame_mean) / cfg.frame_std)[None])
        return {"apex": np.stack(out).astype(np.float32).reshape(len(jobs), 1, s, s)}

    def model_kwargs(self, features):  # noqa: ANN001, ANN201
        return {"input_size": int(features["apex"].shape[-1])}


@pytest.fixture
def toy_kind():
    """A new input kind and a network taking it, registered for one test only."""
    import torch
    from torch import nn

    from mestudio.nets import register
    from mestudio.nets.blocks import CamHead, GlobalAvgPool, MERNet
    from mestudio.nets.registry import unregister

    kind = pp.register_input_kind(ApexKind("apex_only", ("apex",),
                                           description="the apex crop alone"))

    @register("toy_apex", input_kind="apex_only", description="toy: one conv on the apex",
              aliases=("toy-apex-net",))
    class ToyApexNet(MERNet):
        stream_names = ("apex",)

        def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 16) -> None:
            super().__init__(num_classes, in_channels, input_size)
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(4, num_classes)

        def features(self, apex: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
            return [torch.relu(self.conv(apex))]

        def cam_head(self) -> CamHead:
            return CamHead(embeds=[GlobalAvgPool()], layers=[self.fc])

    try:
        yield kind, ToyApexNet
    finally:
        unregister("toy_apex")
        pp.unregister_input_kind("apex_only")


def test_a_network_with_a_new_input_kind_needs_no_other_module(toy_kind, tmp_path) -> None:
    import torch

    from mestudio.engine.recognition import Recognizer
    from mestudio.inference import contract
    from mestudio.inference.engine import InferenceEngine
    from mestudio.inference.export import export_onnx
    from mestudio.nets import create_model, describe_model, list_models, model_input_kind
    from mestudio.training.features import FeatureSpec
    from mestudio.types import FaceObservation, SpotEvent

    kind, cls = toy_kind
    # the registries
    assert "toy_apex" in list_models() and describe_model("Toy-Apex") == "toy: one conv on the apex"
    assert model_input_kind("toy-apex-net") == "apex_only"
    torch.manual_seed(0)
    model = create_model("toy_apex", 2, input_size=16)
    assert isinstance(model, cls) and model.arch == "toy_apex"
    assert model.input_kind == "apex_only" and model.input_names == ("apex",)
    assert model.input_shapes(2) == {"apex": (2, 1, 16, 16)}
    # the contract
    assert contract.INPUT_NAMES["apex_only"] == ("apex",)
    assert contract.expected_inputs("apex_only", 16, 1) == {"apex": ("N", 1, 16, 16)}
    # training knows the features it would cache
    assert FeatureSpec(kind="apex_only").input_names == ("apex",)
    # export -> the engine's contract check accepts the model
    cfg = PreprocessConfig(input_size=16)
    info = {"classes": ["calm", "moved"], "preprocess": cfg.to_metadata(), "synthetic": True}
    path = export_onnx((model, info), tmp_path / "toy.onnx", card=False)
    engine = InferenceEngine(path)
    assert engine.input_kind == "apex_only" and engine.input_names == ("apex",)
    assert engine.input_shapes == {"apex": ("N", 1, 16, 16)}
    # live recognition picks the crops and makes the inputs with the kind's spec
    crops = _sequence(10, size=32)
    rec = Recognizer(engine, buffer_s=10.0)
    try:
        for i, c in enumerate(crops):
            rec.add_frame(i, i / 30, FaceObservation(face_found=i != 5, aligned=c))
        ev = SpotEvent(onset=2, apex=5, offset=8, onset_s=2 / 30, apex_s=5 / 30,
                       offset_s=8 / 30, kind="micro", roi="mouth", peak=1.0, id=1)
        assert rec.submit(ev)
        assert rec.wait(30.0) == [ev]
    finally:
        rec.close()
    assert rec.stats.completed == 1 and rec.stats.failed == 0
    # frame 5 had no face: the nearest earlier frame (4) stood in for the apex
    expected = engine.predict(kind.make_inputs([[crops[4]]], cfg))[0]
    assert ev.prediction is not None
    assert np.allclose(ev.prediction.probs, expected.probs, atol=1e-6)
    assert ev.prediction.cams is not None and ev.prediction.streams == ("apex",)
    # review recomputes the prediction through the same contract (issue 22, item 13: a
    # kind whose make_inputs takes no fps failed there with "unexpected keyword 'fps'")
    from mestudio.capture.demo import DemoSource
    from mestudio.engine.event_details import compute_event_details

    demo = DemoSource()
    shown = compute_event_details(demo.read, replace(ev, onset=40, apex=44, offset=48),
                                  engine=engine)
    assert not [n for n in shown.notes if "recognition failed" in n], shown.notes
    assert shown.prediction is not None and shown.prediction.streams == ("apex",)
