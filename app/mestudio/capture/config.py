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
        sequence_fps: frame rate of image-sequence folders (0 = assume 30 fps and say so).
        frame_cache: recently decoded video frames kept for cheap re-reads (review mode
            stepping back); 0 disables.
        open_timeout_s: longest time a camera may take to open before it is reported absent.
        stall_timeout_s: a camera that delivers no frame for this long is reported as
            disconnected (and reopened by the live loop).
    """

    camera_index: int = 0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    reopen_initial_s: float = 0.5
    reopen_max_s: float = 5.0
    sequence_fps: float = 0.0
    frame_cache: int = 16
    open_timeout_s: float = 3.0
    stall_timeout_s: float = 2.0
