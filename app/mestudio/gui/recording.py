"""Main-window extension: opt-in recording of a live session (File ▸ Record session).

While recording, every frame the pipeline processes goes to a
:class:`mestudio.capture.recorder.SessionRecorder` (fed in the worker thread through
``PipelineWorker.add_result_sink``); stopping writes the complete ``events.json``. The
recording folder opens in review mode.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from mestudio.errors import MestudioError

log = logging.getLogger(__name__)


def recordings_dir() -> Path:
    """Where recordings go: ``$MESTUDIO_RECORDINGS_DIR``, else ``mestudio`` in the user's
    videos folder."""
    env = os.environ.get("MESTUDIO_RECORDINGS_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_videos_dir

    return Path(user_videos_dir()) / "mestudio"


class RecordingController(QObject):
    """The Record action of the main window.

    Attributes:
        recorder: the running :class:`SessionRecorder`, or None.
        folder: parent folder of new recordings.
        last: folder of the last finished recording.
    """

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.recorder: Any = None
        self.folder = recordings_dir()
        self.last: Path | None = None
        self.action = QAction("Re&cord session", window, checkable=True,
                              shortcut=QKeySequence("Ctrl+Shift+R"))
        self.action.setToolTip("Record the video and the events of this session for review "
                               "(Ctrl+Shift+R). Off by default; nothing is recorded otherwise.")
        self.action.toggled.connect(self._on_toggled)
        self.folder_action = QAction("Recordings &folder…", window)
        self.folder_action.triggered.connect(self.choose_folder)
        menu = window.file_menu
        before = getattr(window, "act_settings", None)
        for a in (self.action, self.folder_action):
            if before is not None:
                menu.insertAction(before, a)
            else:
                menu.addAction(a)
        toolbar = getattr(window, "toolbar", None)
        if toolbar is not None:
            toolbar.addAction(self.action)
        source_changed = getattr(window, "source_changed", None)
        if source_changed is not None:  # a new source or a replay: this recording ends
            source_changed.connect(lambda *_: self.stop(reason="the source changed"))

    def choose_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self.window, "Recordings folder",
                                                str(self.folder))
        if name:
            self.folder = Path(name)

    def _on_toggled(self, on: bool) -> None:
        try:
            if on:
                self.start()
            else:
                self.stop()
        except MestudioError as exc:
            self.window.show_message(str(exc), dialog=True)
            self.action.blockSignals(True)
            self.action.setChecked(self.recorder is not None)
            self.action.blockSignals(False)

    def start(self, folder: str | os.PathLike[str] | None = None) -> Path:
        """Start recording the current source into a new folder under ``folder`` (default
        :attr:`folder`); returns the recording folder."""
        from mestudio.capture.recorder import SessionRecorder, new_recording_dir

        if self.recorder is not None:
            return self.recorder.out_dir
        info = getattr(self.window, "source_info", None)
        if info is None:
            raise MestudioError("open a camera, a video or the demo first, then record")
        cfg = self.window.config()
        fps = info.fps or self.window.worker.stats().capture_fps or cfg.capture.fps
        size = tuple(info.size) if info.size and info.size[0] > 0 else None
        model = getattr(self.window, "_pipeline_info", {}).get("model")
        out = new_recording_dir(Path(folder) if folder is not None else self.folder)
        self.recorder = SessionRecorder(out, fps=float(fps), size=size, source_name=info.label,
                                        model=model if isinstance(model, dict) else None,
                                        micro_max_s=cfg.spotter.micro_max_s)
        self.window.worker.add_result_sink(self.recorder)
        if not self.action.isChecked():
            self.action.blockSignals(True)
            self.action.setChecked(True)
            self.action.blockSignals(False)
        self.window.show_message(f"recording to {out}", banner=False)
        return out

    def stop(self, reason: str = "") -> Path | None:
        """Stop recording; the worker finalises the files. Returns the recording folder
        (None when nothing was recorded: a recording without a frame leaves no folder).
        ``reason``: why it stopped when the user did not ask (shown on the video)."""
        rec, self.recorder = self.recorder, None
        if self.action.isChecked():
            self.action.blockSignals(True)
            self.action.setChecked(False)
            self.action.blockSignals(False)
        if rec is None:
            return None
        self.window.worker.remove_result_sink(rec, final=True)
        why = f"{reason}: " if reason else ""
        if rec.n_frames == 0:  # e.g. started at the end of a clip: nothing to review
            self.window.show_message(f"recording stopped ({why}no frame was recorded): no "
                                     "folder kept", banner=bool(reason))
            return None
        self.last = rec.out_dir
        self.window.show_message(f"recording {'stopped (' + reason + ') and ' if reason else ''}"
                                 f"saved in {rec.out_dir} — review it with File ▸ Review a "
                                 "video or recording", banner=bool(reason))
        return rec.out_dir


def install_main_window(window: Any) -> None:
    """Add File ▸ Record session to the main window; a recording still running when the
    window shuts down is finalised after the worker has stopped."""
    controller = RecordingController(window)
    window.recording = controller
    original = window.shutdown

    def shutdown() -> None:
        rec, controller.recorder = controller.recorder, None
        original()  # stops the worker thread: no more frames reach the recorder
        if rec is not None:
            try:
                rec.close()
                controller.last = rec.out_dir
                log.info("recording finalised at shutdown: %s", rec.out_dir)
            except Exception:  # noqa: BLE001 - shutting down must go on
                log.exception("finalising the recording failed")

    window.shutdown = shutdown
