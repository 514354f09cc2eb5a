"""Reusable Qt widgets of mestudio (video view, signal plot, probability bars, event table).

The colours every widget shares live here so that the video overlays, the plot and the
table agree (a micro-expression is the same teal everywhere).
"""

from __future__ import annotations

from typing import Any

#: Plot area colours (match assets/style.qss).
PLOT_BACKGROUND = "#17191e"
PLOT_FOREGROUND = "#aab2c0"

#: Spotted intervals and event markers: micro vs macro.
MICRO_COLOUR = "#27c4b4"
MACRO_COLOUR = "#e8a33d"

#: One colour per region of interest (cycled for unknown names).
ROI_COLOURS = ("#5aa9ff", "#ff7ab6", "#9be15d", "#ffd166", "#c39bff", "#6ee7f7", "#ff9f6e",
               "#b8c0cc")

#: Emotions the synthetic and the real models use; unknown classes get a grey.
EMOTION_COLOURS = {
    "happiness": "#f7c948",
    "disgust": "#7bc96f",
    "surprise": "#5aa9ff",
    "sadness": "#7f8cff",
    "repression": "#c39bff",
    "fear": "#b07cff",
    "anger": "#ff6b6b",
    "contempt": "#d9a066",
    "others": "#9aa3b2",
    "positive": "#f7c948",
    "negative": "#ff6b6b",
}
DEFAULT_EMOTION_COLOUR = "#9aa3b2"


def roi_colour(name: str, order: int) -> str:
    """Colour of the ROI ``name`` that is the ``order``-th in the signal dict."""
    return ROI_COLOURS[order % len(ROI_COLOURS)]


def emotion_colour(label: str | None) -> str:
    """Colour of an emotion class (grey when unknown or None)."""
    if not label:
        return DEFAULT_EMOTION_COLOUR
    return EMOTION_COLOURS.get(label.lower(), DEFAULT_EMOTION_COLOUR)


def plain_label(label: Any) -> Any:
    """Make a ``QLabel`` show its text as typed, never as HTML: every label that shows text
    from a file or a model (annotation labels, class and model names, messages) goes through
    this, so ``<img src=file:///…>`` in a label is shown, not loaded. Returns ``label``."""
    from PySide6.QtCore import Qt

    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def plain_tooltip(text: str) -> str:
    """A tool tip that shows ``text`` as typed (tool tips guess rich text from the text:
    this escapes it and keeps its line breaks)."""
    import html

    if not text:
        return ""
    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>"
