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
    """

    exhibit: str = "default"
    db_path: str = ""
    exit_keys: str = "Ctrl+Shift+Q"
