"""QApplication set-up shared by every GUI command (demo, live, review, kiosk).

What lives here:

* :func:`check_display` - refuses cleanly (one-line :class:`MestudioError`, exit code 2)
  when no window can be opened, instead of letting Qt abort the process;
* :func:`create_app` - the one ``QApplication`` with the application name, icon, the dark
  style sheet of ``assets/style.qss`` and pyqtgraph's colours;
* :func:`add_gui_arguments` / :func:`run_gui` - the common ``--screenshot PATH`` and
  ``--exit-after SECONDS`` options and the event loop around a window.

The window protocol :func:`run_gui` understands (all optional, duck-typed):

* ``finished`` - a Qt signal the window emits when nothing more will happen (the clip
  ended). Under the offscreen platform without ``--exit-after`` the program then exits,
  so ``make demo`` on a headless machine never hangs.
* ``ready_for_screenshot`` - a Qt signal emitted once the window shows meaningful content
  (e.g. after N processed frames). With ``--screenshot`` and no ``--exit-after`` the
  window is grabbed then and the program exits.
* ``shutdown()`` - called before the event loop ends (stop threads, flush files).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mestudio.errors import MestudioError

if TYPE_CHECKING:  # pragma: no cover
    from PySide6.QtWidgets import QApplication, QWidget

log = logging.getLogger(__name__)

APP_NAME = "mestudio"
APP_DISPLAY_NAME = "mestudio — micro-expression studio"

#: Without --exit-after on an offscreen platform, a window that never emits ``finished``
#: (a live camera) is closed after this many seconds: nobody can see or close it.
HEADLESS_MAX_S = 60.0


def assets_dir() -> Path | None:
    """The folder with the icon, the style sheet and the texts, or None when not found.

    Looked up in order: ``$MESTUDIO_ASSETS_DIR``, the PyInstaller bundle
    (``sys._MEIPASS/assets``), the repository's ``assets/`` (editable install).
    """
    candidates: list[Path] = []
    env = os.environ.get("MESTUDIO_ASSETS_DIR")
    if env:
        candidates.append(Path(env).expanduser())
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        candidates.append(Path(meipass) / "assets")
    candidates.append(Path(__file__).resolve().parents[3] / "assets")
    for cand in candidates:
        if (cand / "style.qss").is_file():
            return cand
    return None


def asset_path(name: str) -> Path | None:
    """Path of one asset file (``"icon.png"``, ``"about.txt"``...), or None if missing."""
    base = assets_dir()
    if base is None:
        return None
    path = base / name
    return path if path.is_file() else None


def is_offscreen() -> bool:
    """True when Qt renders without a screen (``QT_QPA_PLATFORM=offscreen`` or ``minimal``)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    return platform in ("offscreen", "minimal")


def _x11_display_reachable(display: str) -> bool:
    """Cheap check of a local X display (``:N`` or ``unix:N``); remote ones are assumed ok."""
    name = display.split(".")[0]
    if name.startswith("unix:"):
        name = name[4:]
    if not name.startswith(":"):
        return True  # host:N - a TCP display, let Qt try
    number = name[1:]
    if not number.isdigit():
        return True
    return Path(f"/tmp/.X11-unix/X{number}").exists()


# ---------------------------------------------------------------- xcb platform libraries
#: Loaded by Qt >= 6.5 for the xcb platform (not always a link-time dependency).
XCB_CURSOR_LIB = "libxcb-cursor.so.0"


def _library_loads(name: str) -> bool:
    """True when the shared library ``name`` (a soname such as ``libxcb-cursor.so.0``) can
    be loaded by the dynamic linker."""
    import ctypes

    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def _elf_needed(path: Path) -> list[str]:
    """The ``DT_NEEDED`` entries (sonames of the libraries it links) of a 64-bit
    little-endian ELF shared object; [] when it cannot be read or is another format."""
    import struct

    try:
        data = path.read_bytes()
    except OSError:
        return []
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # ELF64, little endian
        return []
    try:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                    for i in range(shnum)]
        out: list[str] = []
        for sec in sections:
            if sec[1] != 6:  # SHT_DYNAMIC
                continue
            strtab = sections[sec[6]]  # sh_link: the section of the names (.dynstr)
            str_off = strtab[4]
            for off in range(sec[4], sec[4] + sec[5], 16):
                tag, val = struct.unpack_from("<qQ", data, off)
                if tag == 0:  # DT_NULL
                    break
                if tag == 1:  # DT_NEEDED
                    end = data.index(b"\0", str_off + val)
                    out.append(data[str_off + val:end].decode("ascii", "replace"))
        return out
    except (struct.error, IndexError, ValueError):
        return []


def _qt_dir() -> Path | None:
    """The ``Qt`` folder of the PySide6 installation (plugins/, lib/), without importing Qt."""
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    qt = Path(list(spec.submodule_search_locations)[0]) / "Qt"
    return qt if qt.is_dir() else None


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that usually ships the library ``soname`` (Debian's
    naming rule: ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``, ``libxkbcommon-x11.so.0`` ->
    ``libxkbcommon-x11-0``)."""
    base, _, version = soname.lower().partition(".so")
    major = version.lstrip(".").split(".")[0]
    if not major:
        return base
    return f"{base}-{major}" if base[-1:].isdigit() else f"{base}{major}"


def missing_xcb_libraries() -> list[str]:
    """Sonames of the system libraries the Qt xcb platform plugin needs but the dynamic
    linker cannot find (``[]`` when it can be loaded).

    Qt aborts the whole process (core dump) when the plugin cannot be loaded, with a
    message that names ``libxcb-cursor0`` even when other libraries are missing; this
    checks ``libxcb-cursor.so.0`` and every library linked by ``libqxcb.so`` and
    ``libQt6XcbQpa`` (read from their ELF headers) that is not part of Qt itself.
    """
    names = [XCB_CURSOR_LIB]
    qt = _qt_dir()
    if qt is not None:
        for lib in (qt / "plugins" / "platforms" / "libqxcb.so",
                    *sorted((qt / "lib").glob("libQt6XcbQpa.so*"))[:1]):
            for name in _elf_needed(lib):
                if not name.startswith("libQt6") and name not in names:
                    names.append(name)
    return [n for n in names if not _library_loads(n)]


def _will_use_xcb() -> bool:
    """True when Qt will pick its xcb (X11) platform: Linux, ``QT_QPA_PLATFORM`` ``xcb``,
    or unset with ``$DISPLAY`` set and no Wayland session (Qt then prefers Wayland)."""
    if not sys.platform.startswith("linux"):
        return False
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if platform == "xcb":
        return True
    if platform or not os.environ.get("DISPLAY"):
        return False
    return not os.environ.get("WAYLAND_DISPLAY")


def check_xcb_libraries() -> None:
    """Raise :class:`MestudioError` (one line: what to install, or the offscreen
    alternative) when Qt would use the xcb platform and its libraries are missing."""
    if not _will_use_xcb():
        return
    missing = missing_xcb_libraries()
    if not missing:
        return
    packages = " ".join(dict.fromkeys(debian_package(n) for n in missing))
    which = "it" if len(missing) == 1 else "them"
    raise MestudioError(
        f"cannot open a window: the Qt xcb (X11) platform needs {', '.join(missing)}, which "
        f"cannot be loaded; install {which} (Debian/Ubuntu: `sudo apt-get install {packages}`) "
        "or run with QT_QPA_PLATFORM=offscreen (no visible window; use --screenshot or "
        "--exit-after)")


def check_display() -> None:
    """Raise :class:`MestudioError` when no window can be opened on this machine.

    Qt aborts the whole process (no Python exception) when it cannot connect to a display;
    this check turns the common cases into a one-line message: Linux without ``$DISPLAY`` /
    ``$WAYLAND_DISPLAY`` and without an offscreen platform, a local X display whose
    socket does not exist, or missing libraries of the xcb platform plugin
    (:func:`check_xcb_libraries`, e.g. ``libxcb-cursor0``).
    """
    if is_offscreen() or not sys.platform.startswith("linux"):
        return
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    display = os.environ.get("DISPLAY", "")
    wayland = os.environ.get("WAYLAND_DISPLAY", "")
    hint = ("run it in a desktop session, under `xvfb-run`, or with QT_QPA_PLATFORM=offscreen "
            "together with --screenshot/--exit-after")
    if platform.startswith("wayland"):
        if not wayland:
            raise MestudioError(f"cannot open a window: $WAYLAND_DISPLAY is not set; {hint}")
        return
    if platform in ("", "xcb"):
        if display:
            if not _x11_display_reachable(display):
                raise MestudioError(
                    f"cannot open a window: X display {display} is not running; {hint}")
            check_xcb_libraries()
            return
        if wayland and platform == "":
            return
        raise MestudioError(f"cannot open a window: no display ($DISPLAY is not set); {hint}")


#: Qt messages that say nothing to a user (offscreen platform limitations).
_QUIET_QT_MESSAGES = ("propagateSizeHints", "QFont::setPointSize", "This plugin does not support")


def _route_qt_messages() -> None:
    """Send Qt's own warnings to :mod:`logging` (logger ``mestudio.qt``) instead of stderr;
    the offscreen platform's "not supported" notes go to debug level."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("mestudio.qt")

    def handler(mode: QtMsgType, _context: object, message: str) -> None:
        if any(q in message for q in _QUIET_QT_MESSAGES) or mode == QtMsgType.QtDebugMsg:
            qt_log.debug("%s", message)
        elif mode == QtMsgType.QtInfoMsg:
            qt_log.info("%s", message)
        else:
            qt_log.warning("%s", message)

    qInstallMessageHandler(handler)


def create_app(argv: list[str] | None = None) -> QApplication:
    """The process's ``QApplication`` (created once, reused afterwards) with name, icon,
    style sheet and pyqtgraph colours set.

    Raises:
        MestudioError: no display (see :func:`check_display`).
    """
    check_display()
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        _route_qt_messages()
        app = QApplication(argv if argv is not None else [sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName("mestudio")
    from mestudio import __version__

    app.setApplicationVersion(__version__)
    icon = asset_path("icon.png") or asset_path("icon.svg")
    if icon is not None:
        app.setWindowIcon(QIcon(str(icon)))
    if not app.property("mestudio_styled"):
        app.setStyle("Fusion")
        qss = asset_path("style.qss")
        if qss is not None:
            app.setStyleSheet(qss.read_text(encoding="utf-8"))
        else:
            log.warning("assets/style.qss not found: using the default Qt look")
        app.setProperty("mestudio_styled", True)
    import pyqtgraph as pg

    from mestudio.gui.widgets import PLOT_BACKGROUND, PLOT_FOREGROUND

    pg.setConfigOptions(background=PLOT_BACKGROUND, foreground=PLOT_FOREGROUND, antialias=False)
    return app


def add_gui_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--screenshot PATH`` and ``--exit-after SECONDS`` (every GUI command has them)."""
    parser.add_argument("--screenshot", type=Path, metavar="PATH",
                        help="save a PNG of the window (at --exit-after, else once the window "
                             "shows content) and exit")
    parser.add_argument("--exit-after", type=float, metavar="SECONDS",
                        help="close the window after this many seconds")


def add_window_arguments(parser: argparse.ArgumentParser) -> None:
    """The live window's options (``demo`` and ``live``): the common GUI options plus
    ``--frames``, ``--overlays`` and ``--stats``."""
    add_gui_arguments(parser)
    parser.add_argument("--frames", type=int, default=240, metavar="N",
                        help="with --screenshot and no --exit-after: grab the window after N "
                             "processed frames (default 240, i.e. 8 s at 30 fps)")
    parser.add_argument("--overlays", metavar="LIST",
                        help="comma-separated overlays to show (box, landmarks, rois, flow, "
                             "strain, gradcam, emotion); default: box,landmarks,gradcam,emotion")
    parser.add_argument("--stats", action="store_true",
                        help="print frame rates, dropped frames and latency at exit")


def save_screenshot(widget: QWidget, path: Path) -> Path:
    """Render ``widget`` (works on the offscreen platform too) into a PNG at ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MestudioError(f"cannot create the folder for the screenshot {path}: {exc}") from exc
    pixmap = widget.grab()
    if pixmap.isNull() or not pixmap.save(str(path), "PNG"):
        raise MestudioError(f"cannot write the screenshot {path}: check the path and permissions")
    log.info("screenshot saved: %s (%dx%d)", path, pixmap.width(), pixmap.height())
    return path


def run_gui(window_factory: Callable[[], QWidget], args: argparse.Namespace, *,
            fullscreen: bool = False, headless_max_s: float = HEADLESS_MAX_S) -> int:
    """Create the application, show the window ``window_factory()`` builds and run the
    event loop; handles ``--screenshot``/``--exit-after`` and Ctrl+C.

    Args:
        window_factory: builds the top-level window (called after the QApplication exists).
        args: parsed arguments with ``screenshot`` (Path or None) and ``exit_after``
            (seconds or None), see :func:`add_gui_arguments`.
        fullscreen: show full screen (kiosk).
        headless_max_s: on an offscreen platform without ``--exit-after``, exit after this
            many seconds at the latest.

    Returns:
        The process exit code (0).

    Raises:
        MestudioError: no display, or the screenshot cannot be written.
    """
    app = create_app()
    from PySide6.QtCore import QCoreApplication, QEvent, QTimer

    window = window_factory()
    screenshot: Path | None = getattr(args, "screenshot", None)
    exit_after: float | None = getattr(args, "exit_after", None)
    if exit_after is not None and exit_after < 0:
        raise MestudioError("--exit-after must be >= 0 seconds")
    state: dict[str, Any] = {"done": False, "error": None, "running": False}

    def finish(reason: str) -> None:
        if state["done"]:
            return
        state["done"] = True
        log.info("closing the window (%s)", reason)
        if screenshot is not None:
            try:
                save_screenshot(window, screenshot)
            except MestudioError as exc:
                state["error"] = exc
        shutdown = getattr(window, "shutdown", None)
        if callable(shutdown):
            shutdown()
        window.close()
        if state["running"]:
            app.quit()

    if fullscreen:
        window.showFullScreen()
    else:
        window.show()

    if exit_after is not None:
        QTimer.singleShot(int(exit_after * 1000), window, lambda: finish("--exit-after"))
    elif screenshot is not None:
        ready = getattr(window, "ready_for_screenshot", None)
        if ready is not None:
            ready.connect(lambda *a: finish("screenshot"))
        else:
            QTimer.singleShot(3000, window, lambda: finish("screenshot"))
    if exit_after is None and is_offscreen():
        finished = getattr(window, "finished", None)
        if finished is not None:
            finished.connect(lambda *a: finish("the source ended"))
        QTimer.singleShot(int(headless_max_s * 1000), window,
                          lambda: finish(f"offscreen limit {headless_max_s:g} s"))
        if screenshot is None:
            print(f"mestudio: no screen (QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM')}): "
                  "the window is invisible and closes when the source ends (at most "
                  f"{headless_max_s:g} s); use --exit-after/--screenshot, or unset "
                  "QT_QPA_PLATFORM on a desktop", file=sys.stderr)

    # Ctrl+C in the terminal, or SIGTERM (kill, a service manager stopping a kiosk): the
    # window closes as when its close button is pressed (what was found is kept). Python
    # only runs signal handlers between bytecodes, so wake the interpreter regularly.
    stops = [s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None]
    previous = {s: signal.getsignal(s) for s in stops}
    in_main = _is_main_thread()
    if in_main:
        signal.signal(signal.SIGINT, lambda *a: finish("Ctrl+C"))
        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, lambda *a: finish("a termination signal"))
    tick = QTimer(window)
    tick.timeout.connect(lambda: None)
    tick.start(250)

    def quit_if_running(*_a: Any) -> None:
        # Only while our exec() runs: QCoreApplication.quit() outside of it leaves the
        # thread's "quit now" flag set, and every later QEventLoop.exec() in the process
        # (dialogs, pytest-qt's waits, a second window) would return at once.
        if state["running"]:
            app.quit()

    window.destroyed.connect(quit_if_running)
    try:
        if not state["done"]:
            state["running"] = True
            app.exec()
    finally:
        state["running"] = False
        # Closing the last window inside exec() also *posts* a Quit event to the
        # application (quitOnLastWindowClosed). Left in the queue, it is delivered by the
        # next processEvents() anywhere in the process - after exec() returned - and calls
        # QCoreApplication.exit(), which leaves the thread's "quit now" flag set: every
        # later QEventLoop.exec() (dialogs, a second window, pytest-qt's waits) would then
        # return at once and timers would never fire again.
        QCoreApplication.removePostedEvents(app, QEvent.Type.Quit)
        if in_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        try:
            tick.stop()
            window.destroyed.disconnect(quit_if_running)
        except (RuntimeError, TypeError):  # the window was deleted already
            pass
    if not state["done"]:  # the user closed the window
        state["done"] = True
        shutdown = getattr(window, "shutdown", None)
        if callable(shutdown):
            shutdown()
    if state["error"] is not None:
        raise state["error"]
    return 0


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
