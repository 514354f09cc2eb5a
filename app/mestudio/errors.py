"""The one exception family a user can cause.

Every error a user can provoke (a bad file, no camera, a wrong model, a broken annotation
sheet) raises a subclass of :class:`MestudioError` whose message says what is wrong and what
to do. The CLI prints the message on one line and exits with code 2; the GUI shows it.
"""

from __future__ import annotations


class MestudioError(Exception):
    """Base class of all user-facing errors of mestudio."""


class SourceError(MestudioError):
    """A frame source cannot be opened or read (missing, corrupt, empty or not a video)."""


class CameraError(SourceError):
    """A camera cannot be opened or stopped delivering frames (unplugged)."""


class ModelFileError(MestudioError):
    """A model file is missing, corrupt, of the wrong kind or fails its hash check."""


class DatasetError(MestudioError):
    """A dataset release or its annotation sheet cannot be read."""


class FaceNotFoundError(MestudioError, ValueError):
    """No face was found where one is needed (e.g. the first frame of a sample to align).

    Also a :class:`ValueError`, so code written against the earlier bare ``ValueError``
    keeps catching it.
    """


class ConfigError(MestudioError):
    """A configuration value or file is invalid."""


class OfflineError(MestudioError):
    """A download was asked for but the network cannot be reached."""
