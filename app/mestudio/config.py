"""The application's configuration: one dataclass tree with defaults that work.

Each module owns its section (``TrackerConfig`` in ``face/config.py`` and so on); this module
composes them and persists user settings as JSON in the user config directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mestudio.analytics.config import KioskConfig
from mestudio.capture.config import CaptureConfig
from mestudio.errors import ConfigError
from mestudio.face.config import TrackerConfig
from mestudio.inference.config import RecognitionConfig
from mestudio.spotting.config import SpotterConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class AppConfig:
    """Everything a user can set (the GUI's settings dialog edits this)."""

    capture: CaptureConfig = field(default_factory=CaptureConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    spotter: SpotterConfig = field(default_factory=SpotterConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    kiosk: KioskConfig = field(default_factory=KioskConfig)


def user_config_dir() -> Path:
    from platformdirs import user_config_dir as _ucd

    return Path(_ucd("mestudio", appauthor=False))


def user_data_dir() -> Path:
    from platformdirs import user_data_dir as _udd

    return Path(_udd("mestudio", appauthor=False))


def settings_path() -> Path:
    return user_config_dir() / "settings.json"


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from a (possibly partial) dict; unknown keys are ignored,
    values of the wrong type raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping for {cls.__name__}, got {type(data).__name__}")
    kwargs: dict[str, Any] = {}
    defaults = cls()  # type: ignore[call-arg]
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        current = getattr(defaults, f.name)
        value = data[f.name]
        if dataclasses.is_dataclass(current):
            kwargs[f.name] = from_dict(type(current), value)
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{cls.__name__}.{f.name} must be true/false, got {value!r}")
            kwargs[f.name] = value
        elif isinstance(current, (int, float)) and not isinstance(current, bool):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"{cls.__name__}.{f.name} must be a number, got {value!r}")
            kwargs[f.name] = type(current)(value)
        elif isinstance(current, str):
            kwargs[f.name] = str(value)
        else:
            kwargs[f.name] = value
    return cls(**kwargs)


def load_settings(path: Path | None = None) -> AppConfig:
    """The user's saved settings, or defaults. A corrupt file is reported and ignored
    (defaults are used, the file is kept as ``settings.json.bad``)."""
    path = path or settings_path()
    if not path.is_file():
        return AppConfig()
    try:
        return from_dict(AppConfig, json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ConfigError, UnicodeDecodeError) as exc:
        log.warning("ignoring unreadable settings %s (%s); using defaults", path, exc)
        try:
            os.replace(path, path.with_suffix(".json.bad"))
        except OSError:
            pass
        return AppConfig()


def save_settings(cfg: AppConfig, path: Path | None = None) -> Path:
    """Write settings atomically (:func:`mestudio.fsutil.atomic_write_text`: temp file,
    fsync, rename; the file's mode follows the umask)."""
    from mestudio.fsutil import atomic_write_text

    path = path or settings_path()
    return atomic_write_text(path, json.dumps(to_dict(cfg), indent=2))
