"""mestudio.spotting: per-frame ROI motion signal, online onset/apex/offset spotter and the
MEGC interval metrics (no Qt, no torch).

Public API (imported lazily, so importing the configuration does not import OpenCV)::

    RoiSignal(config).update(face, timestamp_s) -> {roi: px} | None     # spotting.signal
    OnlineSpotter(config).update(index, timestamp_s, signal) -> [SpotEvent]  # .spotter
    match_intervals, score_intervals, score_videos, score_by_kind, SpotScore, format_score  # .metrics
    SpotterConfig                                                        # .config
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "RoiSignal": "signal",
    "OnlineSpotter": "spotter",
    "SpotterConfig": "config",
    "ROI_NAMES": "rois",
    "SpotScore": "metrics",
    "interval_iou": "metrics",
    "match_intervals": "metrics",
    "score_intervals": "metrics",
    "score_videos": "metrics",
    "score_by_kind": "metrics",
    "format_score": "metrics",
}

__all__ = [
    "ROI_NAMES",
    "OnlineSpotter",
    "RoiSignal",
    "SpotScore",
    "SpotterConfig",
    "format_score",
    "interval_iou",
    "match_intervals",
    "score_by_kind",
    "score_intervals",
    "score_videos",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:
    from mestudio.spotting.config import SpotterConfig
    from mestudio.spotting.metrics import (
        SpotScore,
        format_score,
        interval_iou,
        match_intervals,
        score_by_kind,
        score_intervals,
        score_videos,
    )
    from mestudio.spotting.rois import ROI_NAMES
    from mestudio.spotting.signal import RoiSignal
    from mestudio.spotting.spotter import OnlineSpotter


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mestudio.spotting' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mestudio.spotting.{module}"), name)
    globals()[name] = value
    return value
