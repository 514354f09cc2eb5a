"""preprocess.py: aligned crops -> model inputs (the only implementation)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mestudio.errors import ConfigError
from mestudio.preprocess import (
    PreprocessConfig,
    align_keyframes,
    clip_inputs,
    config_hash,
    keyframe_inputs,
    keyframe_inputs_batch,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def faces(data_dir: Path):
    from mestudio.bench.flow import face_images

    return face_images(data_dir, max_faces=4)


@pytest.fixture(scope="module")
def crops(faces):
    """(onset, apex) grey crops at 128 px with a known micro-expression-like motion, and a
    BGR version of them; plus the true flow at 128 px."""
    from mestudio.bench.flow import make_pairs

    prev, nxt, truth = make_pairs(faces, 128, 3, seed=21)
    bgr = [np.repeat(a[..., None], 3, axis=2) for a in (*prev, *nxt)]
    return prev, nxt, truth, bgr


def test_keyframe_inputs_shapes_dtypes_and_values(crops):
    prev, nxt, _, _ = crops
    out = keyframe_inputs(prev[0], nxt[0], prev[0])
    assert out["flow"].shape == (3, 48, 48) and out["flow"].dtype == np.float32
    assert out["frames"].shape == (3, 1, 48, 48) and out["frames"].dtype == np.float32
    assert np.isfinite(out["flow"]).all()
    # frames normalised with the fixed constants: a mid-grey face is near 0, within a few units
    assert -3.0 < out["frames"].mean() < 3.0 and out["frames"].std() > 0.2
    # the onset and offset frames are the same image here
    np.testing.assert_array_equal(out["frames"][0], out["frames"][2])


def test_colour_and_any_crop_size(crops):
    import cv2

    _, _, _, bgr = crops
    cfg = PreprocessConfig(color=True, input_size=32)
    big = [cv2.resize(c, (160, 160)) for c in (bgr[0], bgr[3], bgr[0])]
    out = keyframe_inputs(*big, cfg)
    assert out["flow"].shape == (3, 32, 32)
    assert out["frames"].shape == (3, 3, 32, 32)


def test_batch_equals_single(crops):
    prev, nxt, _, _ = crops
    triples = [(prev[i], nxt[i], prev[i]) for i in range(3)]
    batch = keyframe_inputs_batch(triples, device="cpu")
    assert batch["flow"].shape == (3, 3, 48, 48) and batch["frames"].shape == (3, 3, 1, 48, 48)
    for i in range(3):
        single = keyframe_inputs(*triples[i])
        np.testing.assert_allclose(batch["flow"][i], single["flow"], atol=1e-5)
        np.testing.assert_array_equal(batch["frames"][i], single["frames"])


def test_motion_is_scaled_to_the_input_size(faces):
    """A 1 px shift at flow_size 128 is 0.375 px at 48 px, i.e. 0.75 after / flow_scale."""
    from mestudio.flow import SmoothField, synthetic_pair

    img, box = faces[0]
    field = SmoothField(128, np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2)), np.array([1.0, -0.5]))
    prev, nxt, _ = synthetic_pair(img, box, 128, field, noise=0.0)
    cfg = PreprocessConfig()
    flow = keyframe_inputs(prev, nxt, prev, cfg)["flow"]
    u = np.median(flow[0, 6:-6, 6:-6]) * cfg.flow_scale
    v = np.median(flow[1, 6:-6, 6:-6]) * cfg.flow_scale
    assert abs(u - 0.375) < 0.03 and abs(v + 0.1875) < 0.03
    # a translation does not deform the face: strain stays small compared with a real motion
    assert np.median(flow[2]) < 0.3


def test_no_motion_gives_near_zero_flow(crops):
    prev, _, _, _ = crops
    out = keyframe_inputs(prev[1], prev[1], prev[1])
    assert np.abs(out["flow"]).max() < 0.02


def test_horizontal_flip_negates_and_mirrors_u(crops):
    prev, nxt, _, _ = crops
    out = keyframe_inputs(prev[2], nxt[2], prev[2])
    flip = keyframe_inputs(prev[2][:, ::-1], nxt[2][:, ::-1], prev[2][:, ::-1])
    u, v, s = out["flow"]
    uf, vf, sf = flip["flow"]
    np.testing.assert_array_equal(flip["frames"], out["frames"][..., ::-1])
    # TV-L1 is not exactly mirror-symmetric (forward differences); within a few % of |u|
    assert np.abs(u + uf[:, ::-1]).mean() < 0.1 * np.abs(u).mean() + 1e-3
    assert np.abs(v - vf[:, ::-1]).mean() < 0.1 * np.abs(v).mean() + 1e-3
    assert np.abs(s - sf[:, ::-1]).mean() < 0.3 * np.abs(s).mean() + 1e-3


def test_clip_inputs(crops):
    prev, nxt, _, _ = crops
    seq = [prev[0], nxt[0], prev[0], nxt[0], prev[0]]
    out = clip_inputs(seq, PreprocessConfig(clip_len=4))
    assert out["clip"].shape == (4, 1, 48, 48) and out["flow_seq"].shape == (3, 2, 48, 48)
    # frames 0, 1, 3, 4 of the sequence are taken: onset->apex moves, apex->apex does not
    assert np.abs(out["flow_seq"][0]).mean() > 5 * np.abs(out["flow_seq"][1]).mean()
    with pytest.raises(ValueError, match="at least 2"):
        clip_inputs([prev[0]])


def test_bad_crops_raise():
    with pytest.raises(ValueError, match="square"):
        keyframe_inputs(
            np.zeros((64, 80, 3), np.uint8),
            np.zeros((64, 80, 3), np.uint8),
            np.zeros((64, 80, 3), np.uint8),
        )
    with pytest.raises(ValueError, match="3"):
        keyframe_inputs_batch([(np.zeros((64, 64), np.uint8),) * 2])


def test_metadata_round_trip_and_hash():
    cfg = PreprocessConfig(input_size=64, color=True, tvl1={"warps": 2})
    meta = json.loads(json.dumps(cfg.to_metadata()))  # JSON-able
    assert meta["flow_method"] == "tvl1" and meta["tvl1"]["warps"] == 2
    assert meta["tvl1"]["inner_iterations"] == 15  # completed from FAST_PARAMS
    back = PreprocessConfig.from_metadata(meta)
    assert back == cfg
    assert config_hash(back) == config_hash(cfg) == config_hash(meta)
    assert config_hash(PreprocessConfig(device="cpu")) == config_hash(PreprocessConfig())
    assert config_hash(PreprocessConfig(flow_scale=0.25)) != config_hash(PreprocessConfig())
    assert len(config_hash(cfg)) == 16


def test_invalid_configuration_is_a_config_error():
    with pytest.raises(ConfigError, match="input_size"):
        PreprocessConfig(input_size=4)
    with pytest.raises(ConfigError, match="tvl1"):
        PreprocessConfig(tvl1={"median_filtering": 9})
    with pytest.raises(ConfigError, match="format"):
        PreprocessConfig.from_metadata({"format": "something-else/9"})


def test_align_keyframes_keeps_the_motion_between_frames(data_dir: Path):
    import cv2

    img = cv2.imread(str(data_dir / "images" / "single_face.jpg"))
    moved = np.roll(img, 4, axis=1)  # the whole picture moves 4 px to the right
    crops = align_keyframes([img, moved, img], 96)
    assert len(crops) == 3 and all(c.shape == (96, 96, 3) and c.dtype == np.uint8 for c in crops)
    np.testing.assert_array_equal(crops[0], crops[2])  # one transform for every image
    (dx, dy), _ = cv2.phaseCorrelate(
        cv2.cvtColor(crops[0], cv2.COLOR_BGR2GRAY).astype(np.float64),
        cv2.cvtColor(crops[1], cv2.COLOR_BGR2GRAY).astype(np.float64),
    )
    assert dx > 0.5 and abs(dy) < 0.5  # the motion is still in the crops


def test_align_keyframes_without_a_face():
    from mestudio.errors import FaceNotFoundError, MestudioError

    blank = np.full((240, 320, 3), 127, np.uint8)
    with pytest.raises(ValueError, match="no face") as info:   # old callers still catch it
        align_keyframes([blank, blank], 64)
    # A user error: the CLI prints it on one line (exit 2) and it says what to do.
    assert isinstance(info.value, FaceNotFoundError) and isinstance(info.value, MestudioError)
    assert "320x240" in str(info.value) and "--align none" in str(info.value)


# ---------------------------------------------------------------- the ststnet-megc2019 recipe


def test_ststnet_encoding_is_uint8_valued_in_strain_v_u_order():
    from mestudio.preprocess import ststnet_encode

    uv = np.zeros((2, 2, 4, 4), np.float32)
    uv[0, 0, 1, 1] = 2.0     # u: largest movement of sample 0, rightwards
    uv[0, 1, 2, 2] = -1.0    # v: half as large, upwards
    strain = np.zeros((2, 1, 4, 4), np.float32)
    strain[0, 0, 3, 3] = 0.5
    strain[0, 0, 0, 0] = 0.1
    out = ststnet_encode(uv, strain)
    assert out.shape == (2, 3, 4, 4) and out.dtype == np.float32
    assert np.array_equal(out, np.rint(out)) and out.min() >= 0 and out.max() <= 255
    s, v, u = out[0]
    assert u[1, 1] == 255 and u[0, 0] == 128          # U = 128 + 127 u / max(|u|, |v|)
    assert v[2, 2] == round(128 - 127 * 0.5)          # V scaled by the same m
    assert s[3, 3] == 255 and s[1, 2] == 0            # strain min-max to 0..255
    assert s[0, 0] == round(255 * 0.1 / 0.5)
    # a sample without motion: U = V = 128, strain 0 (no division by zero)
    assert (out[1, 1:] == 128).all() and (out[1, 0] == 0).all()


def test_ststnet_recipe_makes_28px_inputs_whose_u_channel_shows_a_rightward_shift():
    from mestudio.preprocess import PreprocessConfig, keyframe_inputs, ststnet_megc2019_config

    cfg = ststnet_megc2019_config(device="cpu")
    assert PreprocessConfig.from_metadata(cfg.to_metadata()) == ststnet_megc2019_config()
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur((rng.random((140, 140)) * 255).astype(np.uint8), (0, 0), 3)
    onset = base[6:134, 4:132]
    apex = base[6:134, 3:131]        # content moves 1 px to the right
    out = keyframe_inputs(onset, apex, onset, cfg)
    flow = out["flow"]
    assert flow.shape == (3, 28, 28) and out["frames"].shape == (3, 1, 28, 28)
    strain, v, u = flow
    assert u[4:-4, 4:-4].mean() > 200             # U near 128 + 127
    assert abs(v[4:-4, 4:-4].mean() - 128) < 30
    assert strain.max() == 255 and strain.min() == 0
    with pytest.raises(ConfigError):
        PreprocessConfig(recipe="something-else")
