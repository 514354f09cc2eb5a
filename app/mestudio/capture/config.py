"""Configuration of frame sources."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CaptureConfig:
    """Camera and file source settings.

    Attributes:
        camera_index: OpenCV camera index for live mode.
        width, height: requested camera resolution in pixels (the camera may refuse).
        fps: requested camera frame rate (the actual rate is measured).
        reopen_initial_s: first back-off before reopening a camera that disappeared (seconds).
        reopen_max_s: longest back-off between reopen attempts (seconds).
    """

    camera_index: int = 0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    reopen_initial_s: float = 0.5
    reopen_max_s: float = 5.0
