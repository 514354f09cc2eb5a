"""Configuration of the kiosk and its event log."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KioskConfig:
    """Kiosk settings.

    Attributes:
        exhibit: name of the exhibit written with every event.
        db_path: SQLite event log path ("" = ``events.sqlite`` in the user data dir).
        exit_keys: key combination that closes the kiosk (Qt key sequence text).
        visit_min_s: a face must stay in view this long (seconds) to count as a visit.
        visit_gap_s: a visit ends when no face was seen for this long (seconds).
        prediction_wait_s: a micro-expression is logged when its emotion arrives, or
            without an emotion after this many seconds.
        show_camera: show the (mirrored) live picture on the kiosk screen; it is never
            stored either way.
        loop_file: when the kiosk runs on a video file, play it in a loop.
        greeting_s: how long the kiosk shows the last expression before returning to the
            idle message (seconds).
    """

    exhibit: str = "default"
    db_path: str = ""
    exit_keys: str = "Ctrl+Shift+Q"
    visit_min_s: float = 1.0
    visit_gap_s: float = 2.0
    prediction_wait_s: float = 5.0
    show_camera: bool = True
    loop_file: bool = True
    greeting_s: float = 4.0
