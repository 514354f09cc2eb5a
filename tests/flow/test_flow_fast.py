"""The per-frame flow for spotting: fast, numpy in/out, no torch needed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mestudio.flow import FAST_FLOW_METHODS, endpoint_error, fast_flow


@pytest.mark.parametrize("method", FAST_FLOW_METHODS)
def test_every_method_measures_the_motion(face_pairs, method):
    prev, nxt, truth = face_pairs(64, 3, seed=11)
    flows = np.stack([fast_flow(a, b, method) for a, b in zip(prev, nxt, strict=True)])
    assert flows.shape == truth.shape and flows.dtype == np.float32
    zero = endpoint_error(np.zeros_like(truth), truth)
    assert endpoint_error(flows, truth) < 0.7 * zero


def test_default_method_and_colour_input(face_pairs):
    prev, nxt, _ = face_pairs(64, 1, seed=12)
    gray = fast_flow(prev[0], nxt[0])
    bgr = fast_flow(np.repeat(prev[0][..., None], 3, 2), np.repeat(nxt[0][..., None], 3, 2))
    np.testing.assert_allclose(gray, bgr, atol=1e-6)


def test_bad_inputs():
    a = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        fast_flow(a, np.zeros((32, 30), np.uint8))
    with pytest.raises(ValueError, match="unknown method"):
        fast_flow(a, a, method="lucas-kanade")
    with pytest.raises(ValueError, match="grey image"):
        fast_flow(np.zeros((2, 32, 32, 3), np.uint8), a)


def test_spotting_can_use_it_without_torch():
    code = (
        "import sys; from mestudio.flow import fast_flow; import numpy as np; "
        "fast_flow(np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8)); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_results_do_not_depend_on_earlier_calls(face_pairs):
    """OpenCV's DIS changes its settings after a small image; fast_flow undoes that."""
    prev, nxt, _ = face_pairs(128, 1, seed=13)
    before = fast_flow(prev[0], nxt[0])
    fast_flow(prev[0][:32, :32], nxt[0][:32, :32])
    np.testing.assert_array_equal(fast_flow(prev[0], nxt[0]), before)
