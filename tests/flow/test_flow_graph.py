"""TV-L1 and optical strain as ONNX graphs (mestudio.flow.graph): the same flows as the torch
solver, found in the package or built once into the cache, and usable without torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mestudio.errors import ConfigError
from mestudio.flow import graph
from mestudio.flow.reference import endpoint_error
from mestudio.flow.strain import optical_strain
from mestudio.flow.tvl1 import tvl1_flow
from mestudio.flow.tvl1_params import FAST_PARAMS, TVL1Params


def _torch(prev: np.ndarray, nxt: np.ndarray, params: TVL1Params
           ) -> tuple[np.ndarray, np.ndarray]:
    a = torch.from_numpy(prev).float()[:, None]
    b = torch.from_numpy(nxt).float()[:, None]
    flow = tvl1_flow(a, b, params)
    return flow.numpy(), optical_strain(flow).numpy()


@pytest.mark.parametrize("size, params", graph.packaged_graphs())
def test_packaged_graphs_give_torchs_flows_on_moved_faces(face_pairs, size, params):
    """The shipped graphs are current: their metadata matches the name, and on real face
    crops moved by known fields their end-point error is within 1 % of the torch solver's."""
    path = graph.PACKAGED_DIR / graph.graph_name(size, params)
    assert path.is_file(), f"{path.name} missing: run python -m mestudio.flow.graph"
    assert graph.find_graph(size, params, build=False) == path
    prev, nxt, truth = face_pairs(size[0], 6)
    flow, strain = graph.tvl1_strain(prev, nxt, params, device="cpu")
    ref_flow, ref_strain = _torch(prev, nxt, params)
    assert flow.shape == (6, 2) + size and strain.shape == (6, 1) + size
    epe = endpoint_error(flow.transpose(0, 2, 3, 1), truth)
    epe_torch = endpoint_error(ref_flow.transpose(0, 2, 3, 1), truth)
    assert abs(epe / epe_torch - 1.0) < 0.01, (epe, epe_torch)
    assert np.abs(flow - ref_flow).mean() < 1e-3
    assert np.abs(strain - ref_strain).mean() < 1e-3


def test_other_sizes_are_built_once_into_the_cache(face_pairs):
    params = FAST_PARAMS.replace(nscales=3)
    prev, nxt, truth = face_pairs(40, 3)
    flow, strain = graph.tvl1_strain(prev, nxt, params, device="cpu")
    built = graph.cache_dir() / graph.graph_name((40, 40), params)
    assert built.is_file()
    ref_flow, ref_strain = _torch(prev, nxt, params)
    assert np.abs(flow - ref_flow).max() < 1e-2
    assert np.abs(strain - ref_strain).max() < 1e-2
    # found again, not rebuilt
    stamp = built.stat().st_mtime_ns
    assert graph.find_graph((40, 40), params) == built
    assert built.stat().st_mtime_ns == stamp
    # a file that declares other settings under that name is not used: it is rebuilt
    other = graph.PACKAGED_DIR / graph.graph_name(*graph.packaged_graphs()[0])
    built.write_bytes(other.read_bytes())
    assert graph.find_graph((40, 40), params) == built
    assert built.read_bytes() != other.read_bytes()


def test_a_damaged_cached_graph_is_rebuilt(tmp_path):
    params = FAST_PARAMS.replace(nscales=2, inner_iterations=3, outer_iterations=1)
    path = graph.cache_dir() / graph.graph_name((24, 24), params)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an onnx file")
    a = np.full((1, 24, 24), 100, np.uint8)
    flow, _ = graph.tvl1_strain(a, a, params, device="cpu")
    assert np.abs(flow).max() == 0.0


def test_settings_that_stop_on_convergence_have_no_graph():
    assert not graph.graphable(FAST_PARAMS.replace(epsilon=0.01))
    with pytest.raises(ConfigError, match="convergence"):
        graph.find_graph((128, 128), FAST_PARAMS.replace(epsilon=0.01))


def test_batches_and_shapes():
    a = np.random.default_rng(0).integers(0, 255, (3, 128, 128)).astype(np.uint8)
    flow, strain = graph.tvl1_strain(a, a, FAST_PARAMS, device="cpu")
    assert flow.dtype == np.float32 and flow.shape == (3, 2, 128, 128)
    empty = graph.tvl1_strain(a[:0], a[:0], FAST_PARAMS)
    assert empty[0].shape == (0, 2, 128, 128) and empty[1].shape == (0, 1, 128, 128)
    with pytest.raises(ValueError, match="same shape|one shape"):
        graph.tvl1_strain(a, a[:2], FAST_PARAMS)


@pytest.mark.parametrize("n_in, n_out", [(128, 28), (128, 48), (128, 64), (20, 48), (31, 31)])
def test_resize_maps_as_torch_interpolate(n_in, n_out):
    x = np.random.default_rng(1).normal(size=(2, 3, n_in, n_in)).astype(np.float32)
    t = torch.from_numpy(x)
    if n_out < n_in:
        ref = F.interpolate(t, size=(n_out, n_out), mode="area")
    else:
        ref = F.interpolate(t, size=(n_out, n_out), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(graph.resize_maps(x, n_out), ref.numpy(), atol=1e-5)


def test_without_torch_packaged_graphs_run_and_others_say_what_to_install(no_torch):
    env, mark = no_torch
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from mestudio.errors import ConfigError
        from mestudio.flow.graph import tvl1_strain
        from mestudio.flow.tvl1_params import FAST_PARAMS
        a = np.zeros((1, 128, 128), np.uint8)
        flow, strain = tvl1_strain(a, a, FAST_PARAMS, device="cpu")
        print("packaged", flow.shape)
        try:
            tvl1_strain(a[:, :60, :60], a[:, :60, :60], FAST_PARAMS, device="cpu")
        except ConfigError as exc:
            print("error:", exc)
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "packaged (1, 2, 128, 128)"
    assert lines[1].startswith("error:") and "mestudio[train]" in lines[1]
    assert lines[2] == "False"
    assert mark.is_file()  # the unpackaged size tried torch (and said what to install)
