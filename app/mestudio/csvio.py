"""``frames.csv``: one row per frame, OpenFace-like and pandas-friendly.

Fixed columns: ``frame, timestamp, face_found, n_faces, confidence, box_x, box_y, box_w,
box_h``, then one ``x_<name>, y_<name>`` pair per landmark (names from the tracker, e.g.
``x_left_eye_outer`` for the 5-point model, ``x_p36`` for the 68-point one), then any extra
per-frame columns a later stage adds (e.g. the spotting signal) through ``extra`` dicts.
Missing values are empty cells; ``face_found`` is 1/0; coordinates are frame pixels.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from mestudio.errors import MestudioError
from mestudio.types import FrameResult

BASE_COLUMNS = ("frame", "timestamp", "face_found", "n_faces", "confidence",
                "box_x", "box_y", "box_w", "box_h")


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else str(round(value))
    return str(value)


class FramesCsvWriter:
    """Writes ``frames.csv`` row by row.

    Args:
        path: the CSV file (created or overwritten).
        landmark_names: names of the landmarks (``FaceTracker.landmark_names``).
        extra_columns: names of extra per-frame columns, in order. When empty, the keys of
            the first ``extra`` dict passed to :meth:`write` fix them.

    Raises:
        MestudioError: the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], landmark_names: Sequence[str] = (),
                 extra_columns: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.landmark_names = tuple(landmark_names)
        self.extra_columns: tuple[str, ...] | None = tuple(extra_columns) or None
        try:
            self._file: io.TextIOWrapper | None = open(self.path, "w", newline="",
                                                        encoding="utf-8")
        except OSError as exc:
            raise MestudioError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._csv = csv.writer(self._file)
        self._header_written = False
        self.rows = 0

    @property
    def columns(self) -> list[str]:
        cols = list(BASE_COLUMNS)
        for name in self.landmark_names:
            cols += [f"x_{name}", f"y_{name}"]
        return cols + list(self.extra_columns or ())

    def write(self, result: FrameResult, extra: Mapping[str, Any] | None = None) -> None:
        """Append the row of one frame; ``extra`` fills the extra columns (missing keys
        give empty cells; a key that is not a column raises ValueError)."""
        if self._file is None:
            raise ValueError("the CSV writer is closed")
        if not self._header_written:
            if self.extra_columns is None:
                self.extra_columns = tuple(extra or ())
            self._csv.writerow(self.columns)
            self._header_written = True
        face = result.face
        box = face.box if face.face_found and face.box is not None else (None,) * 4
        row = [result.frame.index, _cell(result.frame.timestamp_s, 6), _cell(face.face_found),
               face.n_faces, _cell(face.confidence if face.face_found else 0.0),
               *(_cell(None if v is None else float(v), 2) for v in box)]
        lm = face.landmarks if face.face_found else None
        for k in range(len(self.landmark_names)):
            if lm is not None and k < len(lm):
                row += [_cell(float(lm[k][0]), 2), _cell(float(lm[k][1]), 2)]
            else:
                row += ["", ""]
        if self.extra_columns:
            extra = extra or {}
            unknown = set(extra) - set(self.extra_columns)
            if unknown:
                raise ValueError(f"extra values {sorted(unknown)} are not columns of "
                                 f"{self.path.name}")
            row += [_cell(extra.get(c), 4) for c in self.extra_columns]
        self._csv.writerow(row)
        self.rows += 1

    def close(self) -> None:
        if self._file is not None:
            if not self._header_written:
                self._csv.writerow(self.columns)
            self._file.close()
            self._file = None

    def __enter__(self) -> FramesCsvWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
