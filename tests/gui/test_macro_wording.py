"""A macro event's emotion is shown with its kind everywhere ("happiness (macro)") and with
the caveat that the models were trained on micro-expressions (mestudio.predtext)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mestudio.predtext import MACRO_CAVEAT, MACRO_NO_EMOTION, emotion_text, prediction_text
from mestudio.types import Prediction

CLASSES = ("happiness", "disgust")


def _pred() -> Prediction:
    return Prediction(np.array([0.64, 0.36], np.float32), "happiness", 0.64, CLASSES)


def test_predtext_words_a_macro_prediction_with_its_kind():
    p = _pred()
    assert emotion_text(p) == "happiness" and prediction_text(p) == "happiness 64 %"
    assert emotion_text(p, "macro") == "happiness (macro)"
    assert prediction_text(p, "macro") == "happiness (macro) 64 %"
    assert "micro-expressions" in MACRO_CAVEAT and MACRO_NO_EMOTION == "macro · no emotion"


def test_every_window_shows_the_kind_of_a_macro_prediction(qtbot, fakes):
    from PySide6.QtCore import Qt

    from mestudio.annotations import AnnotationDocument
    from mestudio.engine.kiosk import KioskStatus
    from mestudio.engine.overlays import event_view
    from mestudio.gui.kiosk_window import describe
    from mestudio.gui.review_panels import TABLE_COLUMNS, AnnotationTable
    from mestudio.gui.widgets.event_table import COLUMNS, EventTableModel
    from mestudio.gui.widgets.prob_bars import ProbBars

    ev = replace(fakes.planted_event(3, 20, 60, 30.0, kind="macro"), id=0, prediction=_pred())
    assert event_view(ev, None).caption == "happiness (macro) 64 %"
    assert event_view(replace(ev, prediction=None), None).caption == "macro · no emotion"

    bars = ProbBars()
    qtbot.addWidget(bars)
    bars.set_prediction(ev.prediction, ev)
    assert bars.classes() == CLASSES and bars.toolTip() == MACRO_CAVEAT
    bars.set_prediction(None, replace(ev, prediction=None))
    assert bars.message() == "Macro-expression: not classified." and bars.toolTip() == ""

    model = EventTableModel()
    model.add_event(ev)
    col = COLUMNS.index("emotion")
    assert model.index(0, col).data() == "happiness (macro)"
    assert MACRO_CAVEAT in model.index(0, col).data(Qt.ItemDataRole.ToolTipRole)

    doc = AnnotationDocument([ev], fps=30.0, n_frames=90)
    table = AnnotationTable()
    qtbot.addWidget(table)
    table.set_annotations(list(doc), None)
    row = {name: table.item(0, c).text() for c, name in enumerate(TABLE_COLUMNS)}
    assert row["predicted"] == "happiness (macro) 64 %"

    status = KioskStatus(state="watching", face_found=True, last_event=ev,
                         last_event_wall=1000.0)
    _mood, headline, detail = describe(status, greeting_s=10.0, now=1001.0)
    # visitors read plain words; staff (the staff key) see the class and where it comes from
    assert headline == "You smiled" and "macro" not in detail and "%" not in detail
    _mood, _headline, detail = describe(status, greeting_s=10.0, now=1001.0, staff=True)
    assert "happiness (macro)" in detail and MACRO_CAVEAT in detail
