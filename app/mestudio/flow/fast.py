"""Fast dense flow for the per-frame spotting signal (numpy in, numpy out, no torch import).

``fast_flow`` runs once per camera frame on the aligned face crop (typically 128 px), so it
must take about a millisecond on a CPU. OpenCV's DIS (Kroeger et al. 2016) is the default;
Farnebäck and a few-iteration TV-L1 (the ONNX graph of :mod:`mestudio.flow.graph`; worth it
on a GPU) are alternatives.

Measured on 128 px face crops moved by known micro-expression-like fields (2 × 16 pairs,
mean true motion 0.4 px, one core, medians): DIS "medium" preset EPE 0.125 px at ~1.2 ms per
frame, "fast" 0.18 px at 0.2 ms, "ultrafast" 0.195 px at 0.1 ms, Farnebäck 0.125 px at
~2.6 ms. Hence the default ``"dis-medium"``: Farnebäck's accuracy at half its time
(``mestudio bench flow`` prints current figures).

``"dis-fine"`` is the medium preset refined down to full resolution (finest scale 0; the
presets stop at half resolution, which loses most of a 1-px movement of a low-contrast mouth
corner): about 3x the cost of ``"dis-medium"``, the spotting signal's default
(:attr:`mestudio.spotting.config.SpotterConfig.flow_method`).

OpenCV's DIS lowers its finest scale for good when it meets a small image; the presets' finest
scale is therefore set again before every call, so results do not depend on earlier calls.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FAST_FLOW_METHODS = ("dis-medium", "dis-fine", "dis-fast", "dis-ultrafast", "farneback", "tvl1")
DEFAULT_METHOD = "dis-medium"

_local = threading.local()  # OpenCV flow objects are not thread-safe: one per thread


def _dis(method: str) -> Any:
    import cv2

    cache = getattr(_local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    if method not in cache:
        preset = {
            "dis-ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "dis-fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "dis-medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
            "dis-fine": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }[method]
        dis = cv2.DISOpticalFlow_create(preset)  # type: ignore[attr-defined]
        if method == "dis-fine":
            dis.setFinestScale(0)  # refine down to full resolution
        cache[method] = (dis, dis.getFinestScale())
    dis, finest = cache[method]
    dis.setFinestScale(finest)  # undo OpenCV's permanent change after a small image
    return dis


def _gray(img: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 3:
        import cv2

        a = cv2.cvtColor(a.astype(np.uint8, copy=False), cv2.COLOR_BGR2GRAY)
    if a.ndim != 2:
        raise ValueError(f"fast_flow: expected {name} as a grey image (H, W), got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def fast_flow(
    prev_gray: np.ndarray, next_gray: np.ndarray, method: str = DEFAULT_METHOD
) -> np.ndarray:
    """Dense optical flow from ``prev_gray`` to ``next_gray``, fast enough for every frame.

    Args:
        prev_gray, next_gray: grey ``uint8`` images ``(H, W)`` of the same shape (BGR
            ``(H, W, 3)`` is converted; other dtypes are rounded to 0..255).
        method: one of :data:`FAST_FLOW_METHODS`: ``"dis-medium"`` (default),
            ``"dis-fast"``, ``"dis-ultrafast"`` (OpenCV DIS presets), ``"dis-fine"`` (the
            medium preset refined to full resolution: most accurate on 1-px movements, ~3x
            the cost of ``"dis-medium"``), ``"farneback"``, or ``"tvl1"`` (our TV-L1 with few
            iterations, as an ONNX graph, on CUDA when available).

    Returns:
        ``(H, W, 2)`` float32 flow in pixels: ``[..., 0] = u`` (horizontal),
        ``[..., 1] = v`` (vertical), ``next(x + u, y + v) ≈ prev(x, y)``.

    Raises:
        ValueError: shapes differ or are not images, or an unknown method.
    """
    if method not in FAST_FLOW_METHODS:
        raise ValueError(f"fast_flow: unknown method {method!r}; choose one of {FAST_FLOW_METHODS}")
    a = _gray(prev_gray, "prev_gray")
    b = _gray(next_gray, "next_gray")
    if a.shape != b.shape:
        raise ValueError(f"fast_flow: prev_gray {a.shape} and next_gray {b.shape} differ in shape")
    if min(a.shape) < 8:
        raise ValueError(f"fast_flow: images must be at least 8x8 pixels, got {a.shape}")
    if method.startswith("dis"):
        flow = _dis(method).calc(a, b, None)
    elif method == "farneback":
        import cv2

        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
    else:
        flow = _tvl1_fast(a, b)
    return np.ascontiguousarray(flow, dtype=np.float32)


def _tvl1_fast(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from mestudio.flow.graph import tvl1_strain
    from mestudio.flow.tvl1_params import SPOTTING_PARAMS

    flow, _strain = tvl1_strain(a[None], b[None], SPOTTING_PARAMS)
    return flow[0].transpose(1, 2, 0)
