"""Settings dialog: spotting sensitivity and durations, recognition model and device, face
detector and landmark model files, which faces are analysed (the largest or every face, and
how many at most), camera. Saved with :func:`mestudio.config.save_settings`
(``settings.json`` in the user config folder) and loaded at the next start."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from mestudio.config import AppConfig, save_settings
from mestudio.gui.widgets import plain_label, plain_tooltip

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
#: ``tracker.faces`` choices: (setting, text shown).
FACE_MODES = (("primary", "The largest face"),
              ("all", "Every face (each its own number and events)"))


class _FileField(QWidget):
    """A path line edit with a "Browse…" button ("" = automatic look-up)."""

    def __init__(self, text: str, filter_: str, placeholder: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._filter = filter_
        self.edit = QLineEdit(text)
        self.edit.setPlaceholderText(placeholder)
        self.edit.setClearButtonEnabled(True)
        button = QPushButton("Browse…")
        button.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(button)

    def _browse(self) -> None:
        start = self.edit.text() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model file", start, self._filter)
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text().strip()


class _ModelChoice(QWidget):
    """The recognition model: every model :func:`~mestudio.inference.catalog.find_models`
    finds (the default marked), each with its one-line description, plus "Browse…" for any
    other file. :meth:`text` is the ``recognition.model`` setting: ``""`` for the default
    model, else the chosen file's path."""

    def __init__(self, current: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setObjectName("ModelChoice")
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(28)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("Choose another .onnx model file")
        self.browse_button.clicked.connect(self._browse)
        self.description = plain_label(QLabel(""))  # text from model files: plain text
        self.description.setObjectName("ModelDescription")
        self.description.setWordWrap(True)
        self._descriptions: list[str] = []
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(self.browse_button)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addLayout(row)
        col.addWidget(self.description)
        try:
            from mestudio.inference.catalog import find_models

            self.entries = find_models()
        except Exception as exc:  # noqa: BLE001 - the dialog opens without the list
            log.warning("cannot list the recognition models: %s", exc)
            self.entries = []
        if not any(e.default for e in self.entries):
            self._add("default model (none found in the model folders)", "",
                      "The shipped model is looked up when recognition starts.")
        for e in self.entries:
            self._add(f"{e.name} — {e.badge}" + ("  (default)" if e.default else ""),
                      "" if e.default else str(e.path), f"{e.description}\n{e.path}")
        self.combo.currentIndexChanged.connect(self._show_description)
        self.set_path(current)

    def _add(self, text: str, data: str, description: str) -> int:
        self.combo.addItem(text, data)
        i = self.combo.count() - 1
        self.combo.setItemData(i, plain_tooltip(description), Qt.ItemDataRole.ToolTipRole)
        self._descriptions.append(description)
        return i

    def _add_file(self, path: str) -> int:
        """An item for a model file outside the list (a setting or a browsed file)."""
        from mestudio.inference.catalog import describe_metadata, model_badge, read_metadata

        p = Path(path).expanduser()
        meta = read_metadata(p) if p.is_file() else None
        if meta is not None and "classes" in meta:
            badge = model_badge(bool(meta.get("synthetic")), len(meta.get("classes") or []))
            name = str(meta.get("name") or p.name.removesuffix(".onnx"))
            return self._add(f"{name} — {badge}  (this file)", path,
                             f"{describe_metadata(meta)}\n{p}")
        why = "file not found" if not p.is_file() else "no mestudio model metadata"
        return self._add(f"{p.name} ({why})", path, f"{why}: {p}")

    def set_path(self, path: str) -> None:
        """Select ``path`` ("" = the default model), adding an item when it is not listed."""
        path = (path or "").strip()
        index = -1
        if not path:
            index = self.combo.findData("")
        else:
            try:
                target = Path(path).expanduser().resolve()
            except OSError:
                target = None
            for i in range(self.combo.count()):
                data = str(self.combo.itemData(i) or "")
                if data and (data == path or (target is not None
                                              and Path(data).expanduser().resolve() == target)):
                    index = i
                    break
            if index < 0:
                index = self._add_file(path)
        self.combo.setCurrentIndex(max(0, index))
        self._show_description(self.combo.currentIndex())

    def _show_description(self, index: int) -> None:
        ok = 0 <= index < len(self._descriptions)
        # a long path breaks after its slashes (a zero-width space), not off the edge
        text = self._descriptions[index] if ok else ""
        self.description.setText(text.replace("/", "/\u200b").replace("\\", "\\\u200b"))
        self._fit_description()

    def _fit_description(self) -> None:
        """Give the wrapped description the height its lines need at its width (a form
        layout otherwise gives a word-wrapped label one or two lines and cuts the rest)."""
        width = self.description.width() or self.description.sizeHint().width()
        self.description.setMinimumHeight(max(0, self.description.heightForWidth(width)))

    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        super().resizeEvent(event)
        self._fit_description()

    def _browse(self) -> None:
        start = self.text() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model file", start,
                                              "ONNX models (*.onnx);;All files (*)")
        if path:
            self.set_path(path)

    def items(self) -> list[tuple[str, str]]:
        """``(text, description)`` of every listed model."""
        return [(self.combo.itemText(i), self._descriptions[i]) for i in range(self.combo.count())]

    def text(self) -> str:
        return str(self.combo.currentData() or "").strip()


class SettingsDialog(QDialog):
    """Edits a copy of an :class:`AppConfig`; :meth:`config` returns the edited copy.

    Accepting validates the values (durations in order, model files exist) and saves them to
    ``settings_file`` (default: the user's ``settings.json``).
    """

    def __init__(self, config: AppConfig, parent: QWidget | None = None,
                 settings_file: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("SettingsDialog")
        self.setMinimumWidth(520)
        self._original = config
        self._settings_file = settings_file
        self.saved_path: Path | None = None
        layout = QVBoxLayout(self)

        spot = QGroupBox("Spotting")
        form = QFormLayout(spot)
        self.sensitivity = QDoubleSpinBox()
        self.sensitivity.setRange(0.0, 1.0)
        self.sensitivity.setSingleStep(0.05)
        self.sensitivity.setDecimals(2)
        # Typed text counts when finished (Enter, focus out): "0.65" typed key by key would
        # otherwise pass through 0, move the slider, and the slider would reset the text.
        self.sensitivity.setKeyboardTracking(False)
        self.sensitivity_slider = QSlider(Qt.Orientation.Horizontal)
        self.sensitivity_slider.setRange(0, 100)
        self.sensitivity_slider.valueChanged.connect(
            lambda v: None if int(round(self.sensitivity.value() * 100)) == v
            else self.sensitivity.setValue(v / 100.0))
        self.sensitivity.valueChanged.connect(
            lambda v: self.sensitivity_slider.setValue(int(round(v * 100))))
        row = QHBoxLayout()
        row.addWidget(self.sensitivity_slider, 1)
        row.addWidget(self.sensitivity)
        form.addRow("Sensitivity (0 = strict, 1 = finds weak movements)", row)
        self.min_duration = self._seconds(0.0, 2.0, 0.01)
        self.micro_max = self._seconds(0.05, 2.0, 0.05)
        self.max_duration = self._seconds(0.2, 30.0, 0.5)
        form.addRow("Shortest event (s)", self.min_duration)
        form.addRow("Longest micro-expression (s)", self.micro_max)
        form.addRow("Longest event followed (s)", self.max_duration)
        layout.addWidget(spot)

        rec = QGroupBox("Recognition")
        form = QFormLayout(rec)
        self.recognition = QCheckBox("Recognise the emotion of micro-expressions")
        form.addRow(self.recognition)
        self.model = _ModelChoice(config.recognition.model)
        form.addRow("Model", self.model)
        self.macro_off = QCheckBox("Name macro expressions with the expression model "
                                   "(trained on real faces: FER2013)")
        self.macro_off.setToolTip(
            "On: smiles, frowns and surprise lasting longer than a micro-expression are named "
            "by the expression model (mestudio models fetch builds it). Off: the model above "
            "names them as it would a micro-expression.")
        form.addRow(self.macro_off)
        self.macro_model = _FileField(
            "" if config.recognition.macro_model.lower() == "off"
            else config.recognition.macro_model, "ONNX models (*.onnx);;All files (*)",
            "fer2013_mini_xception.onnx from the model folders")
        form.addRow("Expression model", self.macro_model)
        self.macro_off.toggled.connect(self.macro_model.setEnabled)
        self.min_agreement = QDoubleSpinBox()
        self.min_agreement.setRange(0.0, 1.0)
        self.min_agreement.setSingleStep(0.05)
        self.min_agreement.setDecimals(2)
        self.min_agreement.setToolTip(
            "Ensembles only: below this share of members agreeing, an event is shown as "
            "\"micro-expression (uncertain)\" without an emotion")
        form.addRow("Least agreement (ensembles)", self.min_agreement)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        form.addRow("Device", self.device)
        layout.addWidget(rec)

        face = QGroupBox("Face")
        form = QFormLayout(face)
        self.detector = _FileField(config.tracker.detector_model,
                                   "ONNX models (*.onnx);;All files (*)",
                                   "YuNet from the models folder, else Haar")
        self.landmarks = _FileField(config.tracker.landmark_model,
                                    "LBF models (*.yaml);;All files (*)",
                                    "68-point, else 5-point LBF, else box only")
        form.addRow("Face detector", self.detector)
        form.addRow("Landmark model", self.landmarks)
        self.faces = QComboBox()
        self.faces.setObjectName("FaceMode")
        for value, text in FACE_MODES:
            self.faces.addItem(text, value)
        self.faces.setToolTip("The largest face only, or every face in the picture, each "
                              "with its own face number, motion signal and events")
        form.addRow("Faces analysed", self.faces)
        self.max_faces = QSpinBox()
        self.max_faces.setObjectName("MaxFaces")
        self.max_faces.setRange(1, 64)
        self.max_faces.setToolTip("Every face: most faces analysed at once (the largest "
                                  "first)")
        self.faces.currentIndexChanged.connect(
            lambda _i: self.max_faces.setEnabled(self.faces.currentData() == "all"))
        form.addRow("Most faces at once", self.max_faces)
        self.camera = QSpinBox()
        self.camera.setRange(0, 63)
        form.addRow("Default camera", self.camera)
        layout.addWidget(face)

        self.error = plain_label(QLabel(""))
        self.error.setObjectName("ErrorLabel")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            lambda: self._load(AppConfig()))
        layout.addWidget(buttons)
        self._load(config)

    @staticmethod
    def _seconds(lo: float, hi: float, step: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(lo, hi)
        box.setSingleStep(step)
        box.setDecimals(2)
        box.setSuffix(" s")
        box.setKeyboardTracking(False)
        return box

    def _load(self, cfg: AppConfig) -> None:
        self.sensitivity.setValue(cfg.spotter.sensitivity)
        self.min_duration.setValue(cfg.spotter.min_duration_s)
        self.micro_max.setValue(cfg.spotter.micro_max_s)
        self.max_duration.setValue(cfg.spotter.max_duration_s)
        self.recognition.setChecked(cfg.recognition.enabled)
        self.model.set_path(cfg.recognition.model)
        on = cfg.recognition.macro_model.strip().lower() != "off"
        self.macro_off.setChecked(on)
        self.macro_model.setEnabled(on)
        self.macro_model.edit.setText(cfg.recognition.macro_model if on else "")
        self.min_agreement.setValue(cfg.recognition.min_agreement)
        device = cfg.recognition.device if cfg.recognition.device in DEVICES else "auto"
        self.device.setCurrentText(device)
        self.detector.edit.setText(cfg.tracker.detector_model)
        self.landmarks.edit.setText(cfg.tracker.landmark_model)
        index = self.faces.findData(cfg.tracker.faces)
        self.faces.setCurrentIndex(index if index >= 0 else 0)
        self.max_faces.setValue(max(1, int(cfg.tracker.max_faces)))
        self.max_faces.setEnabled(self.faces.currentData() == "all")
        self.camera.setValue(cfg.capture.camera_index)

    def config(self) -> AppConfig:
        """The edited settings (a new object; the one given is not changed)."""
        cfg = copy.deepcopy(self._original)
        cfg.spotter.sensitivity = float(self.sensitivity.value())
        cfg.spotter.min_duration_s = float(self.min_duration.value())
        cfg.spotter.micro_max_s = float(self.micro_max.value())
        cfg.spotter.max_duration_s = float(self.max_duration.value())
        cfg.recognition.enabled = self.recognition.isChecked()
        cfg.recognition.model = self.model.text()
        cfg.recognition.macro_model = self.macro_model.text() if self.macro_off.isChecked() \
            else "off"
        cfg.recognition.min_agreement = float(self.min_agreement.value())
        cfg.recognition.device = self.device.currentText()
        cfg.tracker.detector_model = self.detector.text()
        cfg.tracker.landmark_model = self.landmarks.text()
        cfg.tracker.faces = str(self.faces.currentData() or "primary")
        cfg.tracker.max_faces = int(self.max_faces.value())
        cfg.capture.camera_index = int(self.camera.value())
        return cfg

    def problems(self) -> list[str]:
        """What is wrong with the values (empty when they can be saved)."""
        cfg = self.config()
        out = []
        s = cfg.spotter
        if not s.min_duration_s < s.micro_max_s <= s.max_duration_s:
            out.append("Durations must satisfy: shortest event < longest micro-expression "
                       "<= longest event.")
        macro = "" if cfg.recognition.macro_model == "off" else cfg.recognition.macro_model
        for label, text in (("Model", cfg.recognition.model), ("Expression model", macro),
                            ("Face detector", cfg.tracker.detector_model),
                            ("Landmark model", cfg.tracker.landmark_model)):
            if text and not Path(text).expanduser().is_file():
                how = "choose a listed model" if label == "Model" else \
                    "clear the field to use the automatic look-up"
                out.append(f"{label}: file not found: {text} ({how}).")
        return out

    def accept(self) -> None:
        problems = self.problems()
        if problems:
            self.error.setText("\n".join(problems))
            self.error.show()
            return
        try:
            self.saved_path = save_settings(self.config(), self._settings_file)
        except OSError as exc:
            self.error.setText(f"Cannot save the settings: {exc}")
            self.error.show()
            return
        super().accept()
