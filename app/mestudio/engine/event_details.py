"""What the review window's per-event panel shows, computed without Qt: the onset/apex/offset
crops, the flow and strain pictures of the model's input, and the prediction with its Grad-CAM
per stream (:func:`compute_event_details`). The review window runs it off the GUI thread
(``gui.review_panels.EventDetailsLoader``) and only draws the arrays. Model inputs are made by
the model's input kind (:func:`mestudio.preprocess.input_kind`), as in live recognition; the
pictures by :mod:`mestudio.engine.overlays`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mestudio.engine.overlays import (
    auto_cam_stream,
    cam_over,
    cam_stream_scores,
    flow_to_bgr,
    predicted_class_index,
    scalar_to_bgr,
    stream_names,
)
from mestudio.predtext import EXPRESSION_NOTE, MACRO_CAVEAT
from mestudio.types import Frame, Prediction, SpotEvent

log = logging.getLogger(__name__)

#: Side of the thumbnails (pixels).
THUMB_PX = 128


# ====================================================================== pictures (numpy)
def thumbnail(img: np.ndarray, side: int = THUMB_PX) -> np.ndarray:
    import cv2

    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    scale = side / max(h, w)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    return np.ascontiguousarray(cv2.resize(img, (max(1, round(w * scale)),
                                                 max(1, round(h * scale))),
                                           interpolation=interp))


@dataclass
class EventDetails:
    """Everything the per-event panel shows for one annotation.

    Attributes:
        event: the event the pictures belong to (frame indices at computation time).
        thumbs: ``{"onset"|"apex"|"offset": BGR uint8}`` (aligned face crops when the face
            was found, else the whole frames).
        aligned: True when ``thumbs`` are aligned face crops.
        flow: BGR picture of the (u, v) flow onset→apex (model input), or None.
        strain: BGR picture of the optical strain, or None.
        cams: ``{stream: BGR picture}`` Grad-CAM of the predicted class over the apex crop.
        cam_auto: the stream with the strongest Grad-CAM of the predicted class (see
            :mod:`mestudio.engine.overlays`), or None (no Grad-CAM, or every map is zero).
        cam_empty: streams whose map of the predicted class is zero everywhere.
        prediction: the model's prediction (recomputed when a model is loaded, else the one
            stored with the event), or None.
        notes: human lines on what is missing and why.
    """

    event: SpotEvent
    thumbs: dict[str, np.ndarray] = field(default_factory=dict)
    aligned: bool = False
    flow: np.ndarray | None = None
    strain: np.ndarray | None = None
    cams: dict[str, np.ndarray] = field(default_factory=dict)
    prediction: Prediction | None = None
    notes: list[str] = field(default_factory=list)
    cam_auto: str | None = None
    cam_empty: frozenset[str] = frozenset()


def recorded_crops(read_frame: Callable[[int], Frame], frames: list[int],
                   transforms: Callable[[int], np.ndarray | None] | None,
                   size: int) -> list[np.ndarray] | None:
    """The aligned crops of ``frames`` cut with the transforms the analysis recorded
    (``frames.csv``'s ``align_m*`` columns: exactly the crops live recognition and
    ``analyze`` used), or None when one of them has no recorded transform."""
    from mestudio.face.align import cut_crop

    if transforms is None:
        return None
    found = [transforms(i) for i in frames]
    kept = [m for m in found if m is not None]
    if len(kept) != len(found):
        return None
    return [cut_crop(read_frame(i).image, m, size) for i, m in zip(frames, kept, strict=True)]


def compute_event_details(read_frame: Callable[[int], Frame], event: SpotEvent, *,
                          engine: Any = None, tracker_config: Any = None,
                          macro_engine: Any = None,
                          transforms: Callable[[int], np.ndarray | None] | None = None
                          ) -> EventDetails:
    """Compute the pictures of one event (call it off the GUI thread).

    Args:
        read_frame: random access to the video (``FrameSource.read``).
        event: the event (onset/apex/offset frame indices).
        engine: an ``InferenceEngine`` to recompute the prediction and Grad-CAM, or None.
        tracker_config: face tracker settings for the alignment.
        macro_engine: the expression model; a macro event is then recognised by it (from
            its apex frame, aligned on its own as in live recognition), as in the pipeline.
        transforms: frame index -> the alignment transform the analysis recorded for the
            event's face (``frames.csv``), or None. When every frame used has one, the crops
            are cut with them at ``tracker_config.align_size``: the very crops of live
            recognition, so an event gets the numbers of the file (one recognition path).
            Otherwise the key frames are aligned here, by the face found on the onset.
    """
    out = EventDetails(event=event, prediction=event.prediction)
    keys = ("onset", "apex", "offset")
    read_frame = functools.cache(read_frame)  # each frame decoded once: used again below
    frames = [read_frame(i) for i in (event.onset, event.apex, event.offset)]
    for f, i in zip(frames, (event.onset, event.apex, event.offset), strict=False):
        if f.index != i:  # the source must be frame-exact; say so if not
            out.notes.append(f"asked for frame {i}, the video returned {f.index}")
    images = [f.image for f in frames]
    try:
        import mestudio.preprocess as pp  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        out.thumbs = {k: thumbnail(img) for k, img in zip(keys, images, strict=False)}
        out.notes.append(f"flow, strain and Grad-CAM unavailable ({exc})")
        return out
    cfg = pp.PreprocessConfig()
    if engine is not None and getattr(engine, "preprocess_config", None):
        try:
            cfg = pp.PreprocessConfig.from_metadata(engine.preprocess_config)
        except Exception as exc:  # noqa: BLE001 - fall back to the defaults, and say so
            out.notes.append(f"model preprocessing settings unreadable ({exc}); defaults used")
    from mestudio.face.config import TrackerConfig

    align_size = (tracker_config or TrackerConfig()).align_size
    recorded = recorded_crops(read_frame, [event.onset, event.apex, event.offset], transforms,
                              align_size)
    try:
        crops = [pp._resize(c, cfg.flow_size) for c in recorded] if recorded is not None \
            else pp.align_keyframes(images, cfg.flow_size, tracker_config)
        out.aligned = True
    except Exception as exc:  # noqa: BLE001 - no face in the frames: show them whole
        log.info("alignment failed for event %d: %s", event.id, exc)
        out.thumbs = {k: thumbnail(img) for k, img in zip(keys, images, strict=False)}
        out.notes.append(f"no face aligned ({exc}); no flow or Grad-CAM")
        return out
    out.thumbs = {k: thumbnail(c) for k, c in zip(keys, crops, strict=False)}
    inputs = pp.keyframe_inputs(crops[0], crops[1], crops[2], cfg)
    flow = np.asarray(inputs["flow"], np.float32)  # (3, S, S): u, v, strain
    out.flow = thumbnail(flow_to_bgr(flow[0], flow[1]))
    out.strain = thumbnail(scalar_to_bgr(flow[2]))
    if event.kind == "macro" and macro_engine is not None:
        engine = macro_engine  # named by the expression model, as in live recognition
        out.notes.append(EXPRESSION_NOTE)
    elif event.kind == "macro":
        # recognised like a micro event, from its own interval; say where the emotion comes from
        out.notes.append(MACRO_CAVEAT)
        from mestudio.engine.recognition import model_allows_macro

        if engine is not None and not model_allows_macro(engine):
            out.notes.append("this model recognises micro-expressions only: no emotion for a "
                             "macro-expression")
            return out
    if engine is None:
        if event.prediction is None:
            out.notes.append("no recognition model loaded: no emotion, no Grad-CAM")
        elif event.prediction is not None:
            out.notes.append("Grad-CAM needs the recognition model (none loaded)")
        return out
    try:
        # The model's input kind picks the frames and makes the inputs, as in live
        # recognition (mestudio.preprocess.InputKind); its crops are the recorded ones of the
        # analysis when there are, else aligned like the key frames above.
        kind = pp.input_kind(str(getattr(engine, "input_kind", pp.DEFAULT_INPUT_KIND)))
        if engine is macro_engine:
            cfg = pp.PreprocessConfig.from_metadata(engine.preprocess_config)
        used = kind.select([(i, i) for i in range(event.onset, event.offset + 1)],
                           event.onset, event.apex, event.offset, cfg)
        if used is None:
            raise ValueError(f"the event is too short for a model of {kind.name} inputs")
        model_crops = recorded_crops(read_frame, list(used), transforms, align_size)
        if model_crops is None:
            model_crops = crops if used == [event.onset, event.apex, event.offset] else \
                pp.align_keyframes([read_frame(i).image for i in used], cfg.flow_size,
                                   tracker_config)
        if kind.name == "face":  # one still face: the Grad-CAM goes over that crop
            crops = [crops[0], model_crops[0], crops[2]]
        fps = None
        if cfg.evm:  # magnification works in Hz: the rate of the chosen frames
            times = [read_frame(i).timestamp_s for i in used]
            span = times[-1] - times[0]
            fps = [(len(used) - 1) / span if span > 0 else 30.0]
        pred = engine.predict(pp.model_inputs(kind, [model_crops], cfg, fps=fps))[0]
    except Exception as exc:  # noqa: BLE001 - show the rest of the panel
        log.warning("recognition of event %d failed: %s", event.id, exc)
        out.notes.append(f"recognition failed: {exc}")
        return out
    out.prediction = pred
    if pred.cams is not None and np.asarray(pred.cams).ndim == 4:
        cams = np.asarray(pred.cams, np.float32)
        k = predicted_class_index(pred)
        names = stream_names(pred, cams.shape[1])
        base = crops[1]
        for s, name in enumerate(names):
            out.cams[name] = thumbnail(cam_over(base, cams[k, s]))
        scores = cam_stream_scores(pred)
        if scores is not None:
            out.cam_empty = frozenset(n for n, v in zip(names, scores, strict=False) if v <= 0)
        best = auto_cam_stream(pred)
        out.cam_auto = names[best] if best is not None else None
        if out.cam_empty:
            out.notes.append(f"Grad-CAM of {pred.emotion or 'the top class'} is zero in "
                             f"{', '.join(sorted(out.cam_empty))}: no region of "
                             f"{'that stream' if len(out.cam_empty) == 1 else 'those streams'}"
                             " supports the prediction")
    else:
        out.notes.append("the model has no Grad-CAM output")
    return out


