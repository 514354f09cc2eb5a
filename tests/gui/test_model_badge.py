"""Which recognition model runs is always visible (status bar, kiosk, settings), and an
ensemble's uncertain prediction is shown as "micro-expression (uncertain)" without an
emotion.

The real-data model is built once per session from the published STSTNet weights in the
shared folder (``mestudio import ststnet``, a few seconds); those tests skip without them.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from mestudio.config import AppConfig
from mestudio.types import FaceObservation, FrameResult, Prediction

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC_MODEL = ROOT / "models" / "m3enet_synthetic.onnx"
AMBER = (0xE8, 0xA3, 0x3D)


@pytest.fixture(scope="session")
def real_model(shared_dir: Path, tmp_path_factory) -> Path:
    """The real-data STSTNet ensemble, imported into a fresh model folder."""
    src = shared_dir / "models" / "ststnet_megc2019"
    if not src.is_dir():
        pytest.skip("the published STSTNet weights (models/ststnet_megc2019) are not in the "
                    "shared folder")
    out = tmp_path_factory.mktemp("models") / "ststnet_megc2019.onnx"
    proc = subprocess.run([sys.executable, "-m", "mestudio", "import", "ststnet", str(src),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture
def models_dir_with_real(real_model: Path, monkeypatch) -> Path:
    """MESTUDIO_MODELS_DIR holds the real ensemble (the shipped synthetic model is in the
    repository's models/)."""
    monkeypatch.setenv("MESTUDIO_MODELS_DIR", str(real_model.parent))
    return real_model.parent


def _model_info(path: Path) -> dict:
    from mestudio.engine.pipeline import engine_info
    from mestudio.inference.engine import InferenceEngine

    return engine_info(InferenceEngine(path))


def _amber_pixels(widget) -> int:
    img = widget.grab().toImage()
    n = 0
    for y in range(0, img.height(), 2):
        for x in range(0, img.width(), 2):
            c = img.pixelColor(x, y)
            if max(abs(c.red() - AMBER[0]), abs(c.green() - AMBER[1]),
                   abs(c.blue() - AMBER[2])) < 12:
                n += 1
    return n


def _window_with_model(make_window, fakes, qtbot, info: dict):
    def factory(config):
        pipe = fakes.ScriptedPipeline(config, recognition=config.recognition.enabled)
        pipe.model_info = dict(info)
        return pipe

    window = make_window(pipeline_fn=factory)
    window.resize(800, 600)
    window.open_callable(lambda: fakes.SyntheticSource(n=20), "clip", is_camera=False)
    qtbot.waitUntil(lambda: bool(window._pipeline_info.get("badge")), timeout=15000)
    qtbot.wait(50)  # the status bar lays out again
    return window


def _badge_fits(window) -> None:
    badge, bar = window.model_badge, window.statusBar()
    assert badge.isVisible()
    assert badge.width() >= badge.sizeHint().width()  # not cut...
    right = badge.mapTo(bar, badge.rect().topRight()).x()
    assert 0 <= right <= bar.width()  # ...nor pushed out of the 800 px window
    shown = [label for label in window.status_labels.values() if label.isVisible()]
    # the figures that say whether the run can be trusted stay; the model's name (also in
    # the badge's tooltip and the settings) gives way first
    assert window.status_labels["dropped"] in shown and window.status_labels["latency"] in shown
    for label in shown:  # and those shown are not cut either
        assert label.width() >= label.sizeHint().width(), label.text()


@pytest.mark.skipif(not SYNTHETIC_MODEL.is_file(), reason="models/m3enet_synthetic.onnx absent")
def test_synthetic_model_badge_is_amber(qtbot, make_window, fakes):
    window = _window_with_model(make_window, fakes, qtbot, _model_info(SYNTHETIC_MODEL))
    assert window.model_badge.text() == "SYNTHETIC DEMO MODEL"
    assert window.model_badge.property("synthetic") is True
    assert "synthetic" in window.model_badge.toolTip()
    _badge_fits(window)
    assert _amber_pixels(window.model_badge) > 20
    # the first window says how to get the real-data model, in one command
    assert any("mestudio models fetch ststnet-megc2019" in m for m in window.messages)


def test_real_ensemble_badge_is_plain_with_its_description(qtbot, make_window, fakes,
                                                           real_model):
    window = _window_with_model(make_window, fakes, qtbot, _model_info(real_model))
    assert window.model_badge.text() == "real-data model · 3 classes"
    assert window.model_badge.textFormat() == Qt.TextFormat.PlainText
    assert "STSTNet" in window.model_badge.toolTip()  # the model's one-line description
    _badge_fits(window)
    assert _amber_pixels(window.model_badge) == 0
    assert not any("models fetch" in m for m in window.messages)


# ----------------------------------------------------------------------------- uncertain
def _uncertain_prediction() -> Prediction:
    return Prediction(np.array([0.45, 0.35, 0.20], np.float32), "positive", 0.45,
                      ("negative", "positive", "surprise"), agreement=0.4, uncertain=True)


def test_uncertain_event_shows_no_emotion_in_the_live_window(qtbot, make_window, fakes):
    from mestudio.gui.worker import DisplayPacket

    window = make_window(pipeline_fn=fakes.scripted_factory())
    ev = replace(fakes.planted_event(3, 5, 8, 30.0), id=4)
    done = replace(ev, prediction=_uncertain_prediction())
    frame = fakes.SyntheticSource(size=(320, 240))._read(10)
    res = FrameResult(frame=frame, face=fakes.ScriptedPipeline.face_for(frame),
                      events=[ev], updated_events=[done])
    window.apply_packet(DisplayPacket(result=res, capture_time=None, flow=None, samples=[],
                                      events=[ev], updated_events=[done], event_views={}))
    model = window.events.event_model()
    row = model.row_of(4)
    cells = [model.index(row, c).data() for c in range(model.columnCount())]
    assert model.index(row, 5).data() == "uncertain"   # beside kind "micro"
    assert model.index(row, 6).data() == "agreement 40 %"
    assert "micro-expression (uncertain)" in model.index(row, 5).data(
        Qt.ItemDataRole.ToolTipRole)
    assert not any("positive" in str(c) for c in cells)  # the top class is not shown
    assert "micro-expression (uncertain)" in window.probs.message()
    assert not window.probs.classes()  # no bars ranking the emotions
    tag = window.video.emotion_tag()
    assert tag is not None and tag[0] == "micro-expression (uncertain) · agreement 40 %"


def test_confident_ensemble_prediction_shows_its_agreement(qtbot, make_window, fakes):
    from mestudio.gui.widgets.event_table import EventTableModel

    pred = replace(_uncertain_prediction(), agreement=0.94, uncertain=False)
    model = EventTableModel()
    model.add_event(replace(fakes.planted_event(3, 5, 8, 30.0), id=1, prediction=pred))
    assert model.index(0, 5).data() == "positive"
    assert model.index(0, 6).data() == "45 %"
    assert "agreement 94 %" in model.index(0, 6).data(Qt.ItemDataRole.ToolTipRole)


def test_uncertain_event_in_the_review_table_and_the_kiosk_text(qtbot, fakes):
    from mestudio.annotations import AnnotationDocument
    from mestudio.engine.kiosk import KioskStatus
    from mestudio.gui.kiosk_window import describe
    from mestudio.gui.review_panels import TABLE_COLUMNS, AnnotationTable

    ev = replace(fakes.planted_event(3, 5, 8, 30.0), id=0, prediction=_uncertain_prediction())
    doc = AnnotationDocument([ev], fps=30.0, n_frames=60)
    table = AnnotationTable()
    qtbot.addWidget(table)
    table.set_annotations(list(doc), None)
    row = {name: table.item(0, c).text() for c, name in enumerate(TABLE_COLUMNS)}
    assert row["predicted"] == "micro-expression (uncertain) · agreement 40 %"
    assert row["label"] == "—"  # no emotion pre-filled from an uncertain prediction
    status = KioskStatus(state="watching", face_found=True, last_event=ev,
                         last_event_wall=1000.0)
    mood, headline, detail = describe(status, greeting_s=10.0, now=1001.0)
    assert headline == "A fleeting expression!"       # no emotion named, in visitor words
    assert "positive" not in headline + detail and "%" not in detail
    mood, headline, detail = describe(status, greeting_s=10.0, now=1001.0, staff=True)
    assert "micro-expression (uncertain)" in detail and "agreement 40 %" in detail


# ----------------------------------------------------------------------------- kiosk
def test_kiosk_shows_the_model_mark(qtbot, tmp_path, real_model):
    from mestudio.capture.base import FrameSource
    from mestudio.capture.live import LiveCapture
    from mestudio.engine.kiosk import KioskSession
    from mestudio.gui.kiosk_window import KioskWindow
    from mestudio.types import Frame

    info = _model_info(real_model)

    class Clip(FrameSource):
        def __init__(self) -> None:
            super().__init__()
            self.name, self.fps, self.n_frames, self.size, self.seekable = \
                "clip", 30.0, 60, (96, 72), True

        def _read(self, i: int) -> Frame:
            return Frame(i, i / 30.0, np.full((72, 96, 3), 60, np.uint8))

    class Pipe:
        model_info = info
        degraded: list[str] = []

        def process(self, frame, capture_time=None):
            return FrameResult(frame=frame, face=FaceObservation(face_found=True))

        def finish(self):
            return []

        def close(self):
            pass

    cfg = AppConfig()

    def factory():
        return KioskSession(cfg, lambda: Clip(), tmp_path / "kiosk.sqlite", pipeline=Pipe(),
                            capture=LiveCapture(lambda: Clip(), pace=True, loop=True))

    win = KioskWindow(cfg, factory)
    qtbot.addWidget(win, before_close_func=lambda w: w.shutdown())
    win.resize(1024, 600)
    win.show()
    qtbot.wait(500)
    assert not win.model_mark.isVisible()  # staff words: not on the visitor screen
    win.toggle_staff()                     # the staff key (Ctrl+Shift+D)
    qtbot.waitUntil(lambda: win.model_mark.isVisible(), timeout=10000)
    assert win.model_mark.text() == "real-data model · 3 classes"
    assert win.model_mark.textFormat() == Qt.TextFormat.PlainText
    assert win.model_mark.fontMetrics().height() >= 12  # small but readable
    assert win.model_mark.width() >= win.model_mark.sizeHint().width()
    win.shutdown()


# ----------------------------------------------------------------------------- settings
def test_settings_dialog_lists_both_models_with_descriptions(qtbot, tmp_path,
                                                             models_dir_with_real):
    from mestudio.gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(AppConfig(), settings_file=tmp_path / "settings.json")
    qtbot.addWidget(dialog)
    items = dialog.model.items()
    texts = [t for t, _ in items]
    real = next(i for i, t in enumerate(texts) if t.startswith("ststnet_megc2019"))
    synth = next(i for i, t in enumerate(texts) if t.startswith("m3enet_synthetic"))
    assert "real-data model · 3 classes" in texts[real] and "(default)" in texts[real]
    assert "SYNTHETIC DEMO MODEL" in texts[synth] and "(default)" not in texts[synth]
    assert "STSTNet" in items[real][1] and "synthetic" in items[synth][1]
    # the default model is selected and stored as ""
    assert dialog.model.combo.currentIndex() == real and dialog.config().recognition.model == ""
    assert dialog.model.description.textFormat() == Qt.TextFormat.PlainText
    assert "STSTNet" in dialog.model.description.text()
    dialog.model.combo.setCurrentIndex(synth)
    assert "synthetic" in dialog.model.description.text()
    assert Path(dialog.config().recognition.model).resolve() == SYNTHETIC_MODEL.resolve()
    dialog.accept()
    from mestudio.config import load_settings

    saved = load_settings(tmp_path / "settings.json")
    assert Path(saved.recognition.model).resolve() == SYNTHETIC_MODEL.resolve()
    again = SettingsDialog(saved, settings_file=tmp_path / "settings.json")
    qtbot.addWidget(again)
    assert again.model.combo.currentIndex() == again.model.combo.findData(
        saved.recognition.model)
    assert again.model.browse_button.isEnabled()  # another file can still be chosen


def test_settings_dialog_shows_the_whole_model_description(qtbot, tmp_path):
    """The settings dialog cut the model description to two lines (issue 22, item 18):
    the label is as tall as its wrapped text needs, the path breaks after its slashes."""
    from mestudio.gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(AppConfig(), settings_file=tmp_path / "settings.json")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    qtbot.wait(50)
    desc = dialog.model.description
    assert desc.text()
    assert desc.height() >= desc.heightForWidth(desc.width()) > 0
    assert desc.text().replace("\u200b", "") == dialog.model.items()[
        dialog.model.combo.currentIndex()][1]
