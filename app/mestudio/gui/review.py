"""Main-window extension: File ▸ Review a recording… (and Review this video).

:func:`install_main_window` is called by :class:`mestudio.gui.main_window.MainWindow` once
the window is built; the review window itself is :mod:`mestudio.gui.review_window`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from mestudio.errors import MestudioError
from mestudio.gui.review_window import ReviewWindow, open_review

log = logging.getLogger(__name__)

__all__ = ["install_main_window", "open_review"]

VIDEO_FILTER = ("Videos and recordings (*.mp4 *.avi *.mov *.mkv *.webm *.m4v *.mpg);;"
                "All files (*)")


def _open(window: Any, path: str | Path) -> ReviewWindow | None:
    from mestudio.capture.recorder import resolve_video

    try:
        return open_review(resolve_video(Path(path)), config=window.config())
    except MestudioError as exc:
        window.show_message(str(exc), dialog=True)
        return None


def install_main_window(window: Any) -> None:
    """Add the review entries to the main window's File menu."""
    def choose() -> None:
        name, _ = QFileDialog.getOpenFileName(window, "Review a video or recording", "",
                                              VIDEO_FILTER)
        if name:
            _open(window, name)

    def review_current() -> None:
        spec = getattr(window, "_spec", None)
        if isinstance(spec, (str, Path)) and Path(spec).exists():
            window.worker.set_paused(True)
            _open(window, spec)
        else:
            window.show_message("review works on video files and image folders: open one, or "
                                "record a session first")

    act = QAction("&Review a video or recording…", window, shortcut=QKeySequence("Ctrl+R"))
    act.triggered.connect(choose)
    act_current = QAction("Review &this video", window)
    act_current.triggered.connect(review_current)
    menu = window.file_menu
    before = getattr(window, "act_settings", None)
    for a in (act, act_current):
        if before is not None:
            menu.insertAction(before, a)
        else:
            menu.addAction(a)
    window.review_actions = (act, act_current)
    window.open_review = lambda path: _open(window, path)
