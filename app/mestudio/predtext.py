"""How every window words a prediction and the recognition model (one place, so the live
table, the overlay, the review table and the kiosk agree).

An ensemble whose members disagree gives an ``uncertain`` prediction: it is shown as
"micro-expression (uncertain)", never with an emotion (:attr:`Prediction.emotion` is None),
and with the members' agreement where the confidence would be.
"""

from __future__ import annotations

from typing import Any

from mestudio.types import Prediction

#: What an uncertain prediction shows instead of an emotion.
UNCERTAIN_TEXT = "micro-expression (uncertain)"

#: Colour of the synthetic-model badge (the real-data badge is not coloured).
SYNTHETIC_BADGE_COLOUR = "#e8a33d"


def emotion_text(pred: Prediction) -> str:
    """The emotion, or :data:`UNCERTAIN_TEXT` for an uncertain prediction."""
    return pred.emotion or UNCERTAIN_TEXT


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


def prediction_text(pred: Prediction) -> str:
    """One line: ``"happiness 83 %"``, ``"negative 71 % · agreement 94 %"``,
    ``"micro-expression (uncertain) · agreement 55 %"``."""
    conf = confidence_text(pred)
    return emotion_text(pred) + ("" if conf == "—" else f" {conf}" if not pred.uncertain
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
