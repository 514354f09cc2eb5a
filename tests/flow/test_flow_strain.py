"""Optical strain on analytic flows: exact values, borders included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mestudio.flow import OpticalStrain, optical_strain, strain_components


def _affine_flow(a, b, c, d, e, f, h=12, w=15, batch=2, dtype=torch.float32):
    y, x = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    u = a * x + b * y + c
    v = d * x + e * y + f
    return torch.stack([u, v]).unsqueeze(0).repeat(batch, 1, 1, 1)


def test_affine_flow_has_its_exact_strain_everywhere():
    a, b, d, e = 0.03, -0.02, 0.05, -0.01
    flow = _affine_flow(a, b, 1.5, d, e, -0.7)
    comps = strain_components(flow)
    assert comps.shape == (2, 3, 12, 15)
    torch.testing.assert_close(comps[:, 0], torch.full((2, 12, 15), a), atol=1e-6, rtol=0)
    torch.testing.assert_close(comps[:, 1], torch.full((2, 12, 15), e), atol=1e-6, rtol=0)
    torch.testing.assert_close(comps[:, 2], torch.full((2, 12, 15), (b + d) / 2), atol=1e-6, rtol=0)
    expected = math.sqrt(a * a + e * e + 2 * ((b + d) / 2) ** 2)
    strain = optical_strain(flow)
    assert strain.shape == (2, 1, 12, 15)
    torch.testing.assert_close(strain, torch.full_like(strain, expected), atol=1e-6, rtol=0)


def test_translation_and_rotation_have_no_strain():
    # rigid motion (head shift / small in-plane rotation) is not a deformation
    theta = 0.02
    flow = _affine_flow(0.0, -theta, 2.0, theta, 0.0, -1.0)
    assert optical_strain(flow).abs().max() < 1e-6


def test_quadratic_flow_uses_central_differences_inside():
    y, x = torch.meshgrid(torch.arange(10.0), torch.arange(10.0), indexing="ij")
    flow = torch.stack([0.01 * x**2, torch.zeros_like(x)])[None].double()
    e_xx = strain_components(flow)[0, 0]
    torch.testing.assert_close(e_xx[:, 1:-1], 0.02 * x[:, 1:-1].double())  # exact for x²
    # one-sided at the borders: f[1] - f[0] and f[n-1] - f[n-2]
    torch.testing.assert_close(e_xx[:, 0], torch.full((10,), 0.01, dtype=torch.float64))
    torch.testing.assert_close(
        e_xx[:, -1], torch.full((10,), 0.01 * (81 - 64), dtype=torch.float64)
    )


def test_dtype_device_and_module_form():
    flow = _affine_flow(0.1, 0.0, 0.0, 0.0, 0.1, 0.0, dtype=torch.float64)
    out = OpticalStrain()(flow)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, optical_strain(flow))


@pytest.mark.parametrize(
    "shape", [(2, 12, 15), (1, 3, 12, 15), (1, 1, 12, 15), (2, 2, 1, 15), (2, 2, 12, 15, 1)]
)
def test_bad_shapes_name_the_expected_shape(shape):
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)|2x2"):
        optical_strain(torch.zeros(shape))


def test_integer_flow_is_rejected():
    with pytest.raises(ValueError, match="floating"):
        optical_strain(torch.zeros((1, 2, 8, 8), dtype=torch.int64))


def test_numpy_strain_is_the_same_definition_without_torch():
    # The live overlay's strain (numpy, no torch imported) equals the model input's.
    import subprocess
    import sys

    code = ("import sys, numpy as np; from mestudio.flow.strain import strain_magnitude; "
            "strain_magnitude(np.zeros((4, 4, 2), np.float32)); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
    from mestudio.flow import strain_magnitude

    rng = np.random.default_rng(0)
    flow = rng.normal(0, 1, (24, 20, 2)).astype(np.float32)
    ref = optical_strain(torch.from_numpy(flow.transpose(2, 0, 1).copy())[None])[0, 0].numpy()
    assert np.allclose(strain_magnitude(flow), ref, atol=1e-5)
    with pytest.raises(ValueError, match="H, W, 2"):
        strain_magnitude(np.zeros((4, 4), np.float32))
