"""How every window words a prediction and the recognition model (one place, so the live
table, the overlay, the review table and the kiosk agree).

An ensemble whose members disagree gives an ``uncertain`` prediction: it is shown as
"micro-expression (uncertain)", never with an emotion (:attr:`Prediction.emotion` is None),
and with the members' agreement where the confidence would be.

Macro-expressions. When recognition handles macro events too (``recognition.macro``), a
macro event's emotion comes from a model trained on micro-expressions: it is always shown
with the kind, ``"happiness (macro)"`` (:func:`emotion_text` with ``kind="macro"``), and the
longer views (details, tooltips, kiosk) add :data:`MACRO_CAVEAT`. A macro event without a
prediction is ``"macro · no emotion"`` (:data:`MACRO_NO_EMOTION`).
"""

from __future__ import annotations

from typing import Any

from mestudio.types import Prediction

#: What an uncertain prediction shows instead of an emotion.
UNCERTAIN_TEXT = "micro-expression (uncertain)"

#: What a macro event's emotion is followed by (``"happiness (macro)"``).
MACRO_SUFFIX = " (macro)"

#: The caveat shown with a macro event's emotion (details notes, tooltips, kiosk).
MACRO_CAVEAT = ("macro-expression: the emotion comes from a model trained on "
                "micro-expressions, take it as a hint")

#: The caption of a macro event without a prediction.
MACRO_NO_EMOTION = "macro · no emotion"

#: Colour of the synthetic-model badge (the real-data badge is not coloured).
SYNTHETIC_BADGE_COLOUR = "#e8a33d"


def uncertain_text(kind: str = "micro") -> str:
    """:data:`UNCERTAIN_TEXT`, or ``"macro-expression (uncertain)"`` for a macro event."""
    return "macro-expression (uncertain)" if kind == "macro" else UNCERTAIN_TEXT


def kind_suffix(kind: str = "micro") -> str:
    """:data:`MACRO_SUFFIX` for a macro event, ``""`` otherwise."""
    return MACRO_SUFFIX if kind == "macro" else ""


def emotion_text(pred: Prediction, kind: str = "micro") -> str:
    """The emotion (``"happiness"``, a macro event's ``"happiness (macro)"``), or
    :func:`uncertain_text` for an uncertain prediction."""
    if pred.emotion is None:
        return uncertain_text(kind)
    return pred.emotion + kind_suffix(kind)


def agreement_text(pred: Prediction) -> str:
    """``"agreement 62 %"`` for an ensemble's prediction, ``""`` for a single model's."""
    a = pred.agreement
    return "" if a is None else f"agreement {a * 100:.0f} %"


def confidence_text(pred: Prediction) -> str:
    """``"83 %"``, ``"83 % · agreement 100 %"``, or only the agreement when uncertain (the
    confidence belongs to an emotion that is not shown)."""
    parts = [] if pred.uncertain else [f"{pred.confidence * 100:.0f} %"]
    if pred.agreement is not None:
        parts.append(agreement_text(pred))
    return " · ".join(parts) or "—"


def prediction_text(pred: Prediction, kind: str = "micro") -> str:
    """One line: ``"happiness 83 %"``, ``"negative 71 % · agreement 94 %"``,
    ``"micro-expression (uncertain) · agreement 55 %"``; a macro event's
    ``"happiness (macro) 64 %"``."""
    conf = confidence_text(pred)
    return emotion_text(pred, kind) + ("" if conf == "—" else f" {conf}" if not pred.uncertain
                                 else f" · {conf}")


def model_mark(info: dict[str, Any] | None) -> tuple[str, str, bool]:
    """The status-bar/kiosk mark of a recognition model from its info dict (the pipeline's
    ``model_info``): ``(text, description, synthetic)``; ``("", "", False)`` without a
    model."""
    from mestudio.inference.catalog import describe_metadata, model_badge

    if not info:
        return "", "", False
    synthetic = bool(info.get("synthetic"))
    n_classes = len(info.get("classes") or [])
    badge = model_badge(synthetic, n_classes) if synthetic or n_classes else "real-data model"
    return badge, describe_metadata(info), synthetic
