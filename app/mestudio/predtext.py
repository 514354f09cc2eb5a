"""How every window words a prediction and the recognition model (one place, so the live
table, the overlay, the review table and the kiosk agree).

An ensemble whose members disagree gives an ``uncertain`` prediction: it is shown as
"micro-expression (uncertain)", never with an emotion (:attr:`Prediction.emotion` is None),
and with the members' agreement where the confidence would be.

Macro-expressions. With the expression model (``mestudio models fetch``: FER2013, real
faces), a macro event is named by it and shown as ``"happiness (expression model)"``
(the model's ``happy`` read as a noun, :data:`EXPRESSION_WORDS`), with
:data:`EXPRESSION_NOTE` in the longer views. Without it, a macro event's emotion comes from
a model trained on micro-expressions: it is shown with the kind, ``"happiness (macro)"``,
and the longer views (details, tooltips, kiosk) add :data:`MACRO_CAVEAT`
(:func:`macro_caveat` picks the right one). A macro event without a prediction is
``"macro · no emotion"`` (:data:`MACRO_NO_EMOTION`). :func:`named_by_text` says which model
named an event, in one line.
"""

from __future__ import annotations

from typing import Any

from mestudio.colours import EMOTION_ALIASES
from mestudio.types import Prediction

#: What an uncertain prediction shows instead of an emotion.
UNCERTAIN_TEXT = "micro-expression (uncertain)"

#: What a macro event's emotion is followed by (``"happiness (macro)"``).
MACRO_SUFFIX = " (macro)"

#: The caveat shown with a macro event's emotion (details notes, tooltips, kiosk).
MACRO_CAVEAT = ("macro-expression: the emotion comes from a model trained on "
                "micro-expressions, take it as a hint")

#: What an expression-model prediction is followed by.
EXPRESSION_SUFFIX = " (expression model)"

#: The note shown with an expression-model prediction (details notes, tooltips).
EXPRESSION_NOTE = ("named by the expression model (trained on FER2013 photos of real faces): "
                   "it names the facial expression, not a felt emotion")

#: How the expression model's class names read (nouns, like the micro-expression classes).
EXPRESSION_WORDS = EMOTION_ALIASES  # the others (surprise, fear, ...) are nouns already

#: The caption of a macro event without a prediction.
MACRO_NO_EMOTION = "macro · no emotion"

#: What the first window says while the synthetic demo model is the one in use.
REAL_MODEL_HINT = ("synthetic demo model in use: for the model trained on real "
                   "micro-expressions run `mestudio models fetch ststnet-megc2019`")

#: Colour of the synthetic-model badge (the real-data badge is not coloured).
SYNTHETIC_BADGE_COLOUR = "#e8a33d"


def is_expression(pred: Prediction | None) -> bool:
    """Whether ``pred`` comes from the expression model (not a micro-expression model)."""
    return pred is not None and getattr(pred, "source", "micro") == "expression"


def emotion_words(emotion: str | None, kind: str = "micro", source: str = "micro") -> str:
    """How an event's emotion reads, from what the files and windows keep of it: the
    class ``emotion`` (None: uncertain) of an event of ``kind`` named by ``source``
    (``"micro"`` or ``"expression"``, :attr:`Prediction.source`). ``"happiness (expression
    model)"``, ``"happiness (macro)"``, ``"positive"``; uncertain: ``"macro-expression (no
    clear expression)"``, ``"macro-expression (uncertain)"``, :data:`UNCERTAIN_TEXT`."""
    if source == "expression":
        return "macro-expression (no clear expression)" if emotion is None else \
            EXPRESSION_WORDS.get(emotion, emotion) + EXPRESSION_SUFFIX
    if emotion is None:
        return "macro-expression (uncertain)" if kind == "macro" else UNCERTAIN_TEXT
    return emotion + kind_suffix(kind)


def uncertain_text(kind: str = "micro", pred: Prediction | None = None) -> str:
    """:data:`UNCERTAIN_TEXT`, ``"macro-expression (uncertain)"`` for a macro event, or
    ``"macro-expression (no clear expression)"`` when the expression model saw none."""
    return emotion_words(None, kind, "expression" if is_expression(pred) else "micro")


def label_text(pred: Prediction) -> str:
    """The class as shown: the expression model's ``happy`` as ``happiness``; a
    micro-expression model's class as it is."""
    return EXPRESSION_WORDS.get(pred.label, pred.label) if is_expression(pred) else pred.label


def kind_suffix(kind: str = "micro") -> str:
    """:data:`MACRO_SUFFIX` for a macro event, ``""`` otherwise (a micro-expression
    model's prediction; the expression model's reads :data:`EXPRESSION_SUFFIX`)."""
    return MACRO_SUFFIX if kind == "macro" else ""


def macro_caveat(pred: Prediction | None) -> str:
    """The note of a macro event's prediction: :data:`EXPRESSION_NOTE` or
    :data:`MACRO_CAVEAT`."""
    return EXPRESSION_NOTE if is_expression(pred) else MACRO_CAVEAT


def emotion_text(pred: Prediction, kind: str = "micro") -> str:
    """The emotion (``"happiness"``, a macro event's ``"happiness (macro)"`` or
    ``"happiness (expression model)"``), or :func:`uncertain_text` for an uncertain
    prediction."""
    return emotion_words(pred.emotion, kind, pred.source)


def named_by_text(pred: Prediction, kind: str = "micro") -> str:
    """Which model named the event, in one line: ``"macro-expression: happiness (expression
    model, fer2013_mini_xception)"`` or ``"micro-expression: positive (ststnet_megc2019)"``."""
    what = "no clear expression" if pred.emotion is None else label_text(pred)
    model = pred.model_name or ("expression model" if is_expression(pred) else
                                "micro-expression model")
    if is_expression(pred):
        model = f"expression model, {model}" if pred.model_name else model
    return f"{kind}-expression: {what} ({model})"


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
    ``"happiness (macro) 64 %"`` or ``"happiness (expression model) 94 %"``."""
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
    description = describe_metadata(info)
    macro = info.get("macro_model")
    if isinstance(macro, dict) and macro:
        badge += " + expression model"
        description += (f"; macro expressions: {describe_metadata(macro)} (trained on "
                        f"{macro.get('training_data') or 'real faces'})")
    return badge, description, synthetic
