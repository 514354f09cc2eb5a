"""Which Grad-CAM stream to show by default ("auto"): numpy only, no Qt.

A model with several input streams (M3ENet: ``u``, ``v``, ``strain``, ``onset_apex``,
``offset_apex``) has one Grad-CAM map per stream and class. For the predicted class some
streams' maps are often entirely zero (the ReLU of a negative weighted sum of that
stream's activations: the stream argued *against* the class), so a fixed default stream
(the first one) often shows an empty heatmap. "auto" picks the stream that contributed
most instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The stream setting that follows :func:`auto_cam_stream` for every event.
AUTO_STREAM = "auto"


def predicted_class_index(pred: Any) -> int:
    """Index of ``pred.label`` in ``pred.classes`` (the argmax of ``pred.probs`` if absent)."""
    try:
        return list(pred.classes).index(pred.label)
    except ValueError:
        return int(np.argmax(np.asarray(pred.probs)))


def cam_stream_scores(pred: Any) -> np.ndarray | None:
    """How strongly each stream's Grad-CAM of the predicted class responds, ``(S,)``.

    Uses the energy *before* the per-map normalisation when the prediction carries it
    (an optional ``cam_energy`` attribute, ``(K, S)`` or ``(S,)``: the sum of the raw,
    ReLU'd map), else the mass of the normalised maps (``Prediction.cams`` are scaled to
    ``[0, 1]`` per map, so an all-zero map scores 0 and a map with a broad response
    scores more than a single hot pixel). None when the prediction has no Grad-CAM.
    """
    cams = getattr(pred, "cams", None)
    if cams is None:
        return None
    arr = np.asarray(cams, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[1] == 0:
        return None
    k = predicted_class_index(pred)
    if not 0 <= k < arr.shape[0]:
        return None
    energy = getattr(pred, "cam_energy", None)
    if energy is not None:
        e = np.asarray(energy, dtype=np.float64)
        if e.ndim == 2 and e.shape[0] == arr.shape[0]:
            e = e[k]
        if e.shape == (arr.shape[1],) and np.all(np.isfinite(e)):
            return np.maximum(e, 0.0)
    maps = np.clip(np.nan_to_num(arr[k], nan=0.0), 0.0, None)
    return maps.reshape(maps.shape[0], -1).sum(axis=1).astype(np.float64)


def auto_cam_stream(pred: Any) -> int | None:
    """Index of the stream with the largest Grad-CAM energy for the predicted class, or
    None when there is no Grad-CAM or every stream's map is zero."""
    scores = cam_stream_scores(pred)
    if scores is None or not len(scores) or float(scores.max()) <= 0.0:
        return None
    return int(np.argmax(scores))


def stream_names(pred: Any, n: int) -> list[str]:
    """The names of the ``n`` streams of ``pred`` (``"stream i"`` when unnamed)."""
    names = list(getattr(pred, "streams", ()) or ())
    return [names[i] if i < len(names) else f"stream {i}" for i in range(n)]
