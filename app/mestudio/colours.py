"""The colours of the emotions, one table for every view: the GUI (video tag, probability
bars, event tables, timeline), the kiosk and the kiosk statistics chart (``mestudio stats``).
No Qt here: the chart is drawn with matplotlib in a headless process."""

from __future__ import annotations

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
#: The expression model's class names (FER2013 adjectives) -> the emotion nouns every table
#: here is keyed by: one place, so colours, visitor words and moods cannot drift apart.
EMOTION_ALIASES = {"happy": "happiness", "sad": "sadness", "angry": "anger"}
EMOTION_COLOURS.update({alias: EMOTION_COLOURS[noun] for alias, noun in EMOTION_ALIASES.items()})
DEFAULT_EMOTION_COLOUR = "#9aa3b2"


def emotion_colour(label: str | None) -> str:
    """Colour (``#rrggbb``) of an emotion class, case-insensitive; grey when unknown or
    None."""
    if not label:
        return DEFAULT_EMOTION_COLOUR
    return EMOTION_COLOURS.get(label.lower(), DEFAULT_EMOTION_COLOUR)
