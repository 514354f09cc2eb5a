"""TV-L1 and optical strain run by ONNX Runtime, without torch.

Model inputs (the onset→apex flow and its strain, the flows of a clip) are made with the ONNX
graph of :mod:`mestudio.flow.tvl1_graph`: one graph per image size and TV-L1 setting, run on
the providers the models use (CUDA when it can really run, else CPU). Graphs are looked up

1. in the package (``mestudio/resources/flow/``, :func:`packaged_graphs`: the 128 px graph of
   :data:`~mestudio.flow.FAST_PARAMS`, which every shipped and importable model uses), then
2. in the user cache (``<cache>/mestudio/flow/``), where a graph for another size or setting is
   built on first use, which needs torch (``pip install 'mestudio[train]'``); without it the
   error says so in one line.

A graph's metadata names its size and parameters; a file whose metadata does not match what
was asked for is not used. TV-L1 settings that stop on convergence (``epsilon > 0``) have no
fixed graph; they run with torch (:func:`mestudio.flow.tvl1_flow`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
from pathlib import Path

import numpy as np

from mestudio.errors import ConfigError
from mestudio.flow.tvl1_params import FAST_PARAMS, SPOTTING_PARAMS, TVL1Params

log = logging.getLogger(__name__)

#: bumped when the graph's definition changes (old cached graphs are then rebuilt)
GRAPH_VERSION = 1
KIND = "mestudio.tvl1-strain"
PACKAGED_DIR = Path(__file__).resolve().parent.parent / "resources" / "flow"


def packaged_graphs() -> list[tuple[tuple[int, int], TVL1Params]]:
    """The graphs shipped in the package (``python -m mestudio.flow.graph`` rewrites them):
    model inputs (every shipped model: 128 px, FAST_PARAMS) and the ``"tvl1"`` spotting flow
    on 128 px aligned crops."""
    return [((128, 128), FAST_PARAMS), ((128, 128), SPOTTING_PARAMS)]


def graphable(params: TVL1Params) -> bool:
    """Whether ``params`` run a fixed number of steps (and so unroll into a graph)."""
    return params.epsilon == 0


def graph_metadata(size: tuple[int, int], params: TVL1Params) -> dict[str, str]:
    """The metadata a graph of ``size`` and ``params`` carries (and is checked against)."""
    return {
        "mestudio.kind": KIND,
        "mestudio.graph_version": str(GRAPH_VERSION),
        "mestudio.size": f"{size[0]}x{size[1]}",
        "mestudio.tvl1": json.dumps(params.to_dict(), sort_keys=True),
    }


def graph_name(size: tuple[int, int], params: TVL1Params) -> str:
    """File name of the graph: size and a hash of the parameters and graph version."""
    meta = json.dumps(graph_metadata(size, params), sort_keys=True).encode("utf-8")
    return f"tvl1-{size[0]}x{size[1]}-{hashlib.sha256(meta).hexdigest()[:12]}.onnx"


def cache_dir() -> Path:
    """Where graphs built on first use are kept."""
    from mestudio.modelfiles import user_cache_dir

    return user_cache_dir().parent / "flow"


def _matches(path: Path, size: tuple[int, int], params: TVL1Params) -> bool:
    """Whether the graph file at ``path`` declares ``size`` and ``params``."""
    from mestudio.inference.onnxwire import read_model

    try:
        meta = read_model(path.read_bytes()).metadata
    except (OSError, ValueError) as exc:
        log.warning("flow graph %s unreadable (%s); not used", path, exc)
        return False
    want = graph_metadata(size, params)
    return all(meta.get(k) == v for k, v in want.items())


def build_graph(path: Path, size: tuple[int, int], params: TVL1Params) -> Path:
    """Export the graph of ``size`` and ``params`` to ``path`` (needs torch)."""
    try:
        from mestudio.flow.tvl1_graph import export_graph
    except ImportError as exc:
        raise ConfigError(
            f"TV-L1 at {size[0]}x{size[1]} px with these settings has no ready graph, and "
            f"building one needs torch ({exc}); install it with pip install 'mestudio[train]'"
        ) from exc
    log.info("building the TV-L1 graph for %dx%d px (once; kept in %s)", size[0], size[1],
             path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    export_graph(path, size, params, graph_metadata(size, params))
    return path


def find_graph(size: tuple[int, int], params: TVL1Params, build: bool = True) -> Path:
    """The graph file of ``size`` and ``params``: packaged, cached, or (``build``) built into
    the cache now.

    Raises:
        ConfigError: ``params`` stop on convergence, or no graph exists and it cannot be built.
    """
    if not graphable(params):
        raise ConfigError(f"TV-L1 with epsilon={params.epsilon} stops on convergence and has no"
                          " fixed graph; it runs with torch")
    name = graph_name(size, params)
    for folder in (PACKAGED_DIR, cache_dir()):
        path = folder / name
        if path.is_file() and _matches(path, size, params):
            return path
    if not build:
        raise ConfigError(f"no TV-L1 graph for {size[0]}x{size[1]} px with these settings")
    return build_graph(cache_dir() / name, size, params)


class FlowGraph:
    """One TV-L1 + strain graph in an ONNX Runtime session.

    Args:
        path: the graph file.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (as the models' engines).
        threads: intra-op threads (1: the operations are small; the machine also tracks and
            spots).
    """

    def __init__(self, path: Path, device: str = "auto", threads: int = 1) -> None:
        import onnxruntime as ort

        from mestudio.inference.providers import (
            CPU,
            choose_providers,
            quiet_onnxruntime,
            session_options,
        )

        quiet_onnxruntime()
        providers, _reason = choose_providers(_provider_device(device))
        self.path = path
        try:
            self.session = ort.InferenceSession(str(path), session_options(threads),
                                                providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises several types
            if providers[0] == CPU:
                raise ConfigError(f"ONNX Runtime cannot load the flow graph {path}: "
                                  f"{str(exc).splitlines()[0]}") from exc
            self.session = ort.InferenceSession(str(path), session_options(threads),
                                                providers=[CPU])
        self.provider = self.session.get_providers()[0]
        self._lock = threading.Lock()

    def run(self, prev: np.ndarray, nxt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, H, W)`` grey images 0..255 (any real dtype) -> flow ``(N, 2, H, W)`` and
        strain ``(N, 1, H, W)``, float32 numpy."""
        a = np.ascontiguousarray(prev, dtype=np.float32)[:, None]
        b = np.ascontiguousarray(nxt, dtype=np.float32)[:, None]
        with self._lock:  # one run at a time per session: results do not depend on threads
            flow, strain = self.session.run(None, {"prev": a, "next": b})
        return flow, strain


def _provider_device(device: str | None) -> str:
    d = (device or "auto").lower()
    return "cuda" if d.startswith("cuda") else d


_sessions: dict[tuple[tuple[int, int], TVL1Params, str], FlowGraph] = {}
_sessions_lock = threading.Lock()


def flow_graph(size: tuple[int, int], params: TVL1Params, device: str = "auto") -> FlowGraph:
    """The session of the graph of ``size`` and ``params`` on ``device``: found (or built)
    and loaded on first use, then kept for the process."""
    key = ((int(size[0]), int(size[1])), params, _provider_device(device))
    with _sessions_lock:
        graph = _sessions.get(key)
        if graph is None:
            graph = _sessions[key] = FlowGraph(find_graph(size, params), device)
        return graph


def tvl1_strain(prev: np.ndarray, nxt: np.ndarray, params: TVL1Params,
                device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Dual TV-L1 flow from ``prev`` to ``nxt`` and its optical strain, with ONNX Runtime.

    Args:
        prev, nxt: ``(N, H, W)`` grey images, grey levels 0..255, same shape.
        params: fixed-step TV-L1 parameters (``epsilon == 0``).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        flow ``(N, 2, H, W)`` (pixels; channel 0 = u) and strain ``(N, 1, H, W)``, float32.
    """
    a, b = np.asarray(prev), np.asarray(nxt)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"tvl1_strain: expected two (N, H, W) stacks of one shape, got "
                         f"{a.shape} and {b.shape}")
    n, h, w = a.shape
    if n == 0:
        return np.zeros((0, 2, h, w), np.float32), np.zeros((0, 1, h, w), np.float32)
    return flow_graph((h, w), params, device).run(a, b)


@functools.lru_cache(maxsize=32)
def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights that resize one axis as torch's ``F.interpolate`` does: area
    averaging (adaptive average pooling) when shrinking, bilinear with half-pixel centres
    (``align_corners=False``) when enlarging. Cached: do not modify the array returned."""
    m = np.zeros((n_out, n_in), np.float64)
    if n_out <= n_in:
        for i in range(n_out):
            lo = (i * n_in) // n_out
            hi = -(-((i + 1) * n_in) // n_out)
            m[i, lo:hi] = 1.0 / (hi - lo)
        return m
    scale = n_in / n_out
    for i in range(n_out):
        x = max((i + 0.5) * scale - 0.5, 0.0)
        x0 = min(int(np.floor(x)), n_in - 1)
        x1 = min(x0 + 1, n_in - 1)
        t = x - x0
        m[i, x0] += 1.0 - t
        m[i, x1] += t
    return m


def resize_maps(x: np.ndarray, size: int) -> np.ndarray:
    """``(N, C, H, W)`` maps resized to ``size`` × ``size`` (see :func:`resize_matrix`)."""
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x
    rows = resize_matrix(h, size).astype(np.float32)
    cols = resize_matrix(w, size).astype(np.float32)
    return np.ascontiguousarray(np.einsum("ih,nchw,jw->ncij", rows, x, cols, optimize=True),
                                dtype=np.float32)


def rewrite_packaged() -> None:
    """Rewrite the graphs shipped in the package (:func:`packaged_graphs`; needs torch) and
    delete packaged graphs no longer listed."""
    from mestudio.flow.tvl1_graph import export_graph

    keep = set()
    for size, params in packaged_graphs():
        path = PACKAGED_DIR / graph_name(size, params)
        export_graph(path, size, params, graph_metadata(size, params))
        keep.add(path.name)
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    for old in PACKAGED_DIR.glob("tvl1-*.onnx"):
        if old.name not in keep:
            old.unlink()
            print(f"removed {old}")


if __name__ == "__main__":
    rewrite_packaged()
