"""Optical flow: Dual TV-L1 in torch (batched, any device), optical strain, the fast
per-frame flow for spotting, and OpenCV's DualTVL1 as the accuracy reference.

Public API (imported lazily, so ``from mestudio.flow import fast_flow`` does not import torch):

* :func:`tvl1_flow` ``(B,1,H,W) × 2 -> (B,2,H,W)``, :class:`TVL1Params`,
  :data:`OPENCV_PARAMS` (OpenCV's defaults), :data:`FAST_PARAMS` (as accurate, much cheaper);
* :func:`optical_strain` ``(B,2,H,W) -> (B,1,H,W)``, :func:`strain_components`,
  :func:`strain_magnitude` (numpy ``(H,W,2) -> (H,W)``, the same definition),
  :class:`OpticalStrain`;
* :func:`fast_flow` ``(H,W) uint8 × 2 -> (H,W,2)`` float32 (numpy; no torch);
* :func:`opencv_tvl1` (reference), :func:`synthetic_pair`, :func:`smooth_field`,
  :func:`endpoint_error` (accuracy measurement).

Flow convention: pixels, channel/last axis 0 = u (horizontal), 1 = v (vertical), with
``next(x + u, y + v) ≈ prev(x, y)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "tvl1_flow": "tvl1",
    "TVL1Params": "tvl1_params",
    "OPENCV_PARAMS": "tvl1_params",
    "FAST_PARAMS": "tvl1_params",
    "median_blur": "tvl1",
    "pyramid_sizes": "tvl1",
    "optical_strain": "strain",
    "strain_components": "strain",
    "strain_magnitude": "strain",
    "OpticalStrain": "strain",
    "fast_flow": "fast",
    "FAST_FLOW_METHODS": "fast",
    "opencv_tvl1": "reference",
    "create_opencv_tvl1": "reference",
    "synthetic_pair": "reference",
    "smooth_field": "reference",
    "SmoothField": "reference",
    "endpoint_error": "reference",
}

__all__ = [
    "FAST_FLOW_METHODS",
    "FAST_PARAMS",
    "OPENCV_PARAMS",
    "OpticalStrain",
    "SmoothField",
    "TVL1Params",
    "create_opencv_tvl1",
    "endpoint_error",
    "fast_flow",
    "median_blur",
    "opencv_tvl1",
    "optical_strain",
    "pyramid_sizes",
    "smooth_field",
    "strain_components",
    "strain_magnitude",
    "synthetic_pair",
    "tvl1_flow",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:
    from mestudio.flow.fast import FAST_FLOW_METHODS, fast_flow
    from mestudio.flow.reference import (
        SmoothField,
        create_opencv_tvl1,
        endpoint_error,
        opencv_tvl1,
        smooth_field,
        synthetic_pair,
    )
    from mestudio.flow.strain import (
        OpticalStrain,
        optical_strain,
        strain_components,
        strain_magnitude,
    )
    from mestudio.flow.tvl1 import (
        median_blur,
        pyramid_sizes,
        tvl1_flow,
    )
    from mestudio.flow.tvl1_params import FAST_PARAMS, OPENCV_PARAMS, TVL1Params


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mestudio.flow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mestudio.flow.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
