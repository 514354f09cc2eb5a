"""Every picture made from the pipeline's numbers, in one Qt-free module: the live window,
the review panels and the kiosk only wrap these arrays into images.

* **flow**: :func:`flow_to_rgba` (live overlay: hue = direction, opacity = magnitude, of the
  flow that spotting measured, ``FrameResult.flow``) and :func:`flow_to_bgr` (review panel:
  brightness = magnitude);
* **heat** (strain, Grad-CAM): :func:`heat_to_rgba` (overlay with opacity),
  :func:`strain_to_rgba` (the live strain overlay, ``FrameResult.strain``),
  :func:`cam_to_rgba` (one Grad-CAM map over a crop of side ``S``), :func:`scalar_to_bgr`,
  :func:`cam_over` (a Grad-CAM map blended into a crop, for the review panel);
* **which Grad-CAM stream** to show by default ("auto"): :func:`auto_cam_stream`. A model
  with several input streams (M3ENet: ``u``, ``v``, ``strain``, ``onset_apex``,
  ``offset_apex``) has one map per stream and class; for the predicted class some streams'
  maps are often entirely zero (the ReLU of a negative weighted sum: the stream argued
  *against* the class), so a fixed default stream would often show nothing;
* **event views**: :func:`event_view` makes the Grad-CAM inset content of an event.

numpy and OpenCV only. Colours are RGBA for overlays (alpha carries the strength) and BGR for
opaque pictures, as OpenCV makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mestudio.predtext import MACRO_NO_EMOTION, prediction_text
from mestudio.types import SpotEvent

#: The overlays a video view can draw over a frame, in menu order.
OVERLAYS: tuple[str, ...] = ("box", "landmarks", "rois", "flow", "strain", "gradcam", "emotion")

#: Every-face mode: one colour per face, by track number (face 1 the first). Chosen to stand
#: apart from the emotion colours (:mod:`mestudio.colours`), micro/macro teal and amber, and
#: the single-face box green: cyan, magenta, lime, white, orange, pink, sky, violet.
FACE_COLOURS: tuple[str, ...] = ("#00e5ff", "#ff3df2", "#c6ff00", "#ffffff", "#ff7a00",
                                 "#ff9ec7", "#0091ff", "#8f00ff")


def face_colour(face_id: int) -> str:
    """The colour (``#rrggbb``) of face ``face_id`` (a track number from 1; the palette
    cycles, so ids far apart may share a colour, never two consecutive ones)."""
    return FACE_COLOURS[(max(1, int(face_id)) - 1) % len(FACE_COLOURS)]


#: Optical strain shown at full colour in the strain overlay (dimensionless).
STRAIN_FULL_SCALE = 0.12
#: Flow magnitude (pixels of a 128-px aligned crop) shown fully opaque in the flow overlay.
FLOW_FULL_SCALE_PX = 1.5
#: Side of the aligned crop on which :data:`FLOW_FULL_SCALE_PX` is defined.
FLOW_SCALE_SIZE = 128


# --------------------------------------------------------------------------- flow
def flow_to_rgba(flow: np.ndarray, full_scale_px: float = FLOW_FULL_SCALE_PX,
                 floor_fraction: float = 1.0 / 3.0) -> np.ndarray:
    """Colour-code a flow field for the overlay.

    Args:
        flow: ``(H, W, 2)`` float32 ``(u, v)`` in pixels.
        full_scale_px: magnitude drawn fully opaque.
        floor_fraction: magnitudes under this fraction of ``full_scale_px`` (residual
            tracking jitter, sensor noise) stay transparent.

    Returns:
        RGBA ``uint8`` ``(H, W, 4)``: hue = direction, alpha = magnitude.
    """
    import cv2

    u = np.ascontiguousarray(flow[..., 0], dtype=np.float32)
    v = np.ascontiguousarray(flow[..., 1], dtype=np.float32)
    mag, ang = cv2.cartToPolar(u, v, angleInDegrees=True)
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (ang * 0.5).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = 255
    rgba = np.empty(flow.shape[:2] + (4,), np.uint8)
    rgba[..., :3] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    floor = floor_fraction * full_scale_px
    rgba[..., 3] = np.clip((mag - floor) * (230.0 / (full_scale_px - floor)),
                           0, 230).astype(np.uint8)
    return rgba


def flow_overlay(flow: np.ndarray, size: int | None = None) -> np.ndarray:
    """The live flow overlay of ``FrameResult.flow``, resized to the aligned crop's side
    ``size`` (the flow is measured at the spotter's signal size; its full scale follows)."""
    import cv2

    rgba = flow_to_rgba(flow, FLOW_FULL_SCALE_PX * flow.shape[0] / FLOW_SCALE_SIZE)
    if size is not None and rgba.shape[0] != size:
        rgba = np.asarray(cv2.resize(rgba, (size, size), interpolation=cv2.INTER_LINEAR))
    return rgba


def flow_to_bgr(u: np.ndarray, v: np.ndarray, full_scale: float | None = None) -> np.ndarray:
    """Colour-code a flow field: hue = direction, brightness = magnitude.

    Args:
        u, v: ``(H, W)`` float flow components (pixels).
        full_scale: magnitude drawn at full brightness (default: the 99th percentile).

    Returns:
        BGR ``uint8`` ``(H, W, 3)``.
    """
    import cv2

    u = np.nan_to_num(np.asarray(u, np.float32))
    v = np.nan_to_num(np.asarray(v, np.float32))
    mag, ang = cv2.cartToPolar(u, v, angleInDegrees=True)
    top = float(full_scale) if full_scale else float(np.percentile(mag, 99)) or 1.0
    hsv = np.empty(u.shape + (3,), np.uint8)
    hsv[..., 0] = (ang * 0.5).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / max(top, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)



# --------------------------------------------------------------------------- heat
def heat_to_rgba(values: np.ndarray, vmax: float | None = None, size: int | None = None,
                 max_alpha: int = 200, colormap: int | None = None,
                 floor: float = 0.2) -> np.ndarray:
    """Colour-map a non-negative scalar map (strain, Grad-CAM) for an overlay.

    Args:
        values: ``(h, w)`` float map.
        vmax: value drawn at full colour/opacity (default: the map's maximum).
        size: resize to ``(size, size)`` first (bilinear), or keep the shape.
        max_alpha: opacity of the strongest value (0..255).
        colormap: an OpenCV colour map (default ``COLORMAP_INFERNO``).
        floor: fraction of ``vmax`` under which the map is fully transparent.

    Returns:
        RGBA ``uint8`` ``(size, size, 4)`` (or the input shape).
    """
    import cv2

    v: np.ndarray = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0)
    if size is not None and v.shape != (size, size):
        v = np.asarray(cv2.resize(v, (size, size), interpolation=cv2.INTER_LINEAR))
    top = float(vmax) if vmax is not None else float(v.max())
    norm = np.clip(v / top, 0.0, 1.0) if top > 1e-12 else np.zeros_like(v)
    grey = (norm * 255).astype(np.uint8)
    cmap = cv2.COLORMAP_INFERNO if colormap is None else colormap
    bgr = cv2.applyColorMap(grey, cmap)
    rgba = np.empty(v.shape + (4,), np.uint8)
    rgba[..., 0] = bgr[..., 2]
    rgba[..., 1] = bgr[..., 1]
    rgba[..., 2] = bgr[..., 0]
    # the weakest 20 % stay transparent, so only real structure is tinted
    rgba[..., 3] = (np.clip((norm - floor) / (1.0 - floor), 0.0, 1.0) * max_alpha
                    ).astype(np.uint8)
    return rgba


def strain_to_rgba(strain: np.ndarray, size: int | None = None) -> np.ndarray:
    """The live strain overlay of ``FrameResult.strain`` (resized to side ``size``)."""
    return heat_to_rgba(strain, vmax=STRAIN_FULL_SCALE, size=size, max_alpha=200, floor=0.3)


def cam_to_rgba(cam: np.ndarray, size: int) -> np.ndarray:
    """One ``[0, 1]`` Grad-CAM map as an RGBA overlay of side ``size`` (JET colours)."""
    import cv2

    return heat_to_rgba(cam, vmax=1.0, size=size, max_alpha=170, colormap=cv2.COLORMAP_JET)


def scalar_to_bgr(values: np.ndarray, vmax: float | None = None,
                  colormap: int | None = None) -> np.ndarray:
    """Colour-map a non-negative ``(H, W)`` map (strain, CAM) to BGR ``uint8``."""
    import cv2

    v = np.nan_to_num(np.abs(np.asarray(values, np.float32)))
    top = float(vmax) if vmax else float(np.percentile(v, 99)) or 1.0
    grey = np.clip(v / max(top, 1e-9) * 255.0, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO if colormap is None else colormap)


def cam_over(crop: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a ``[0, 1]`` Grad-CAM map ``(h, w)`` (resized) over a BGR crop ``(S, S, 3)``."""
    import cv2

    s = crop.shape[0]
    c = cv2.resize(np.nan_to_num(np.asarray(cam, np.float32)), (crop.shape[1], s),
                   interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.clip(c * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    w = (alpha * np.sqrt(np.clip(c, 0, 1)))[..., None]
    return (crop.astype(np.float32) * (1 - w) + heat.astype(np.float32) * w).astype(np.uint8)



# --------------------------------------------------------------------------- Grad-CAM streams
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
    totals: np.ndarray = maps.reshape(maps.shape[0], -1).sum(axis=1).astype(np.float64)
    return totals


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


# --------------------------------------------------------------------------- event views
@dataclass
class EventView:
    """What the Grad-CAM inset shows for one event.

    Attributes:
        crop: the aligned face at the event's apex, BGR ``uint8`` ``(S, S, 3)``, or None.
        cams: per stream name, the Grad-CAM of the predicted class as RGBA ``uint8``
            ``(S, S, 4)`` (colour map, alpha = weight); empty without a prediction/CAM.
        caption: e.g. ``"happiness 72 %"``, ``"happiness (macro) 64 %"``,
            ``"micro · no emotion"`` or ``"macro · no emotion"``.
        auto_stream: the stream with the strongest Grad-CAM of the predicted class (what
            the "auto" stream setting shows), or None when every map is zero / no CAM.
        empty_streams: streams whose map of the predicted class is zero everywhere.
    """

    crop: np.ndarray | None
    cams: dict[str, np.ndarray] = field(default_factory=dict)
    caption: str = ""
    auto_stream: str | None = None
    empty_streams: frozenset[str] = frozenset()


def event_view(event: SpotEvent, crop: np.ndarray | None) -> EventView:
    """The Grad-CAM inset content of ``event`` (its prediction's CAMs of the predicted
    class, one picture per stream, over the apex ``crop``)."""
    pred = event.prediction
    if pred is None:
        caption = MACRO_NO_EMOTION if event.kind == "macro" else f"{event.kind} · no emotion"
        return EventView(crop=crop, caption=caption)
    caption = prediction_text(pred, event.kind)
    cams: dict[str, np.ndarray] = {}
    auto: str | None = None
    empty: set[str] = set()
    if pred.cams is not None and crop is not None:
        arr = np.asarray(pred.cams, dtype=np.float32)
        if arr.ndim == 4:
            k = predicted_class_index(pred)
            names = stream_names(pred, arr.shape[1])
            scores = cam_stream_scores(pred)
            for s, name in enumerate(names):
                cams[name] = cam_to_rgba(arr[k, s], crop.shape[0])
                if scores is not None and scores[s] <= 0.0:
                    empty.add(name)
            best = auto_cam_stream(pred)
            auto = names[best] if best is not None else None
    return EventView(crop=crop, cams=cams, caption=caption, auto_stream=auto,
                     empty_streams=frozenset(empty))
