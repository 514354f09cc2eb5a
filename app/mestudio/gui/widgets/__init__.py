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

#: Emotion colours: the one table of :mod:`mestudio.colours` (the kiosk chart uses it too).
from mestudio.colours import DEFAULT_EMOTION_COLOUR, EMOTION_COLOURS, emotion_colour  # noqa: E402

__all__ = ["DEFAULT_EMOTION_COLOUR", "EMOTION_COLOURS", "MACRO_COLOUR", "MICRO_COLOUR",
           "PLOT_BACKGROUND", "PLOT_FOREGROUND", "ROI_COLOURS", "emotion_colour",
           "plain_label", "plain_tooltip", "roi_colour"]


def roi_colour(name: str, order: int) -> str:
    """Colour of the ROI ``name`` that is the ``order``-th in the signal dict."""
    return ROI_COLOURS[order % len(ROI_COLOURS)]



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


def unlisted_shortcuts(window: Any, listed: str) -> list[str]:
    """``"KEYS  what it does"`` for every action of ``window`` whose shortcut ``listed`` (a
    written key table) does not mention: what a later module added (review, recording)
    is never missing from Help ▸ Keys."""
    import re

    from PySide6.QtGui import QAction, QKeySequence

    lines: dict[str, str] = {}
    for act in window.findChildren(QAction):
        what = act.text().replace("&", "").rstrip("…").strip()
        for seq in act.shortcuts():
            keys = seq.toString(QKeySequence.SequenceFormat.PortableText)
            if keys and what and not re.search(rf"(?<![\w+]){re.escape(keys)}(?![\w+])",
                                               listed):
                lines.setdefault(keys, f"{keys}  {what}")
    return [lines[k] for k in sorted(lines)]
