"""``frames.csv``: one row per frame, OpenFace-like and pandas-friendly.

Fixed columns: ``frame, timestamp, face_found, n_faces, confidence, box_x, box_y, box_w,
box_h``, then one ``x_<name>, y_<name>`` pair per landmark (names from the tracker, e.g.
``x_left_eye_outer`` for the 5-point model, ``x_p36`` for the 68-point one), then (written by
``analyze``) the face's alignment transform ``align_m00 … align_m12`` (:data:`ALIGN_COLUMNS`:
frame pixels to the aligned crop, 9 significant digits), then any extra per-frame columns a
later stage adds through ``extra`` dicts. The spotting stage adds
(:func:`spotter_columns`) ``signal_<roi>`` per ROI (pixels of flow magnitude in a 128-px
aligned crop, head motion removed, low-passed), ``signal_combined`` (the spotter's detection
score expressed in pixels, compared with ``spot_threshold``), ``spot_threshold`` and
``spot_baseline`` (pixels), ``spot_state`` (the micro detector's: ``calibrating``, ``idle``,
``rising``, ``in_event``, ``no_face``; see :mod:`mestudio.spotting.spotter`) and
``spot_activity`` (what the face is doing: ``calibrating``, ``rest``, ``moving`` (talking,
head motion), ``expression``, ``no_face``; see :mod:`mestudio.spotting.expression`). Missing values are empty cells; ``face_found`` is 1/0;
coordinates are frame pixels. A frame whose image could not be decoded
(``FrameResult.info["status"] == "unreadable"``; ``mestudio analyze`` adds a ``status``
column: ``ok`` or ``unreadable``) has ``face_found``, ``n_faces`` and ``confidence`` empty.

**Long format** (every face analysed, ``tracker.faces = "all"``; as OpenFace's multi-face
output): one row per face per frame, a ``face_id`` column after ``timestamp``
(:data:`LONG_BASE_COLUMNS`), the other columns as above and of that face (its box, landmarks
and spotting values). Rows are in frame order, the faces of a frame by ``face_id``. A face
whose track is kept while it is missing has ``face_found`` 0. A frame without any face (or
unreadable) has one row with ``face_id`` empty. Files of the single-face mode have no
``face_id`` column and are unchanged. :func:`read_frames_csv` reads both.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from mestudio.errors import MestudioError
from mestudio.types import FaceObservation, FaceResult, FrameResult, SpotterState

BASE_COLUMNS = ("frame", "timestamp", "face_found", "n_faces", "confidence",
                "box_x", "box_y", "box_w", "box_h")
#: The alignment transform of a frame (``FaceObservation.transform``: frame pixels to the
#: aligned crop, ``[[m00, m01, m02], [m10, m11, m12]]``), written by ``analyze`` after the
#: landmarks so that review cuts exactly the crops live recognition used.
ALIGN_COLUMNS = ("align_m00", "align_m01", "align_m02", "align_m10", "align_m11", "align_m12")
#: The fixed columns of the long format (one row per face per frame).
LONG_BASE_COLUMNS = ("frame", "timestamp", "face_id", *BASE_COLUMNS[2:])


#: First characters that make a spreadsheet (Excel, LibreOffice, Sheets) read a cell as a
#: formula or a command: text from a file or a user starting with one of them is escaped.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def clean_text(value: str) -> str:
    """``value`` without control characters (C0 and C1, DEL, NUL; a spreadsheet cell or an
    xlsx file cannot hold them): tabs and line breaks become spaces, the rest is dropped."""
    if value.isprintable():
        return value
    return "".join(" " if c in "\t\n\r\v\f" else c for c in value
                   if c.isprintable() or c in "\t\n\r\v\f" or c == " ")


def is_formula_like(value: Any) -> bool:
    """True when ``value`` is text that a spreadsheet would run as a formula (``=HYPERLINK(...)``,
    ``+cmd``, ``@SUM``, a leading tab/CR), also after leading spaces (a space, NBSP, an
    ideographic space) and in full-width forms (``＝``, ``＋``, ``－``, ``＠``), which
    spreadsheets read the same way. A plain number written as text (``"-0.25"``) is not."""
    if not isinstance(value, str):
        return False
    head = unicodedata.normalize("NFKC", value[:64]).lstrip()
    if not head:
        return False
    return (head.startswith(FORMULA_TRIGGERS) or value.startswith(FORMULA_TRIGGERS)) and \
        _PLAIN_NUMBER.fullmatch(unicodedata.normalize("NFKC", value).strip()) is None


def safe_text(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: control characters removed
    (:func:`clean_text`), then formula-like text gets a leading single quote
    (``'=HYPERLINK(...)``); numbers and other text are returned unchanged."""
    if not isinstance(value, str):
        return value
    value = clean_text(value)
    return "'" + value if is_formula_like(value) else value


def safe_row(row: Iterable[Any]) -> list[Any]:
    """:func:`safe_text` applied to every cell of a CSV row (header or data)."""
    return [safe_text(v) for v in row]


def append_xlsx_row(ws: Any, row: Sequence[Any]) -> None:
    """Append ``row`` to an openpyxl worksheet with every text cell stored as text: openpyxl
    would otherwise store ``"=HYPERLINK(...)"`` as a live formula. Formula-like text also gets
    Excel's quote prefix (shown as typed, not re-evaluated when edited). Numbers stay numbers."""
    ws.append([clean_text(v) if isinstance(v, str) else v for v in row])
    for cell in ws[ws.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
            if is_formula_like(cell.value):
                cell.quotePrefix = True


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
    return safe_text(str(value))


class FramesCsvWriter:
    """Writes ``frames.csv`` row by row.

    Args:
        path: the CSV file (created or overwritten).
        landmark_names: names of the landmarks (``FaceTracker.landmark_names``).
        extra_columns: names of extra per-frame columns, in order. When empty, the keys of
            the first ``extra`` dict passed to :meth:`write` fix them.
        long_format: one row per face per frame with a ``face_id`` column
            (:meth:`write_face`); else one row per frame (:meth:`write`).
        alignment: add the :data:`ALIGN_COLUMNS` after the landmarks (9 significant
            digits: the crop cut again from them is the same to the pixel).

    Raises:
        MestudioError: the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], landmark_names: Sequence[str] = (),
                 extra_columns: Sequence[str] = (), long_format: bool = False,
                 alignment: bool = False) -> None:
        self.path = Path(path)
        self.alignment = bool(alignment)
        self.landmark_names = tuple(landmark_names)
        self.long_format = bool(long_format)
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
        cols = list(LONG_BASE_COLUMNS if self.long_format else BASE_COLUMNS)
        for name in self.landmark_names:
            cols += [f"x_{name}", f"y_{name}"]
        if self.alignment:
            cols += ALIGN_COLUMNS
        return cols + list(self.extra_columns or ())

    def write(self, result: FrameResult, extra: Mapping[str, Any] | None = None) -> None:
        """Append the row of one frame; ``extra`` fills the extra columns (missing keys
        give empty cells; a key that is not a column raises ValueError). In the long
        format: the row of the frame's primary face (``FrameResult.face``) under its
        ``face_id``; :meth:`write_face` writes the others."""
        if self.long_format:
            fid = next((f.face_id for f in result.faces if f.face is result.face), None)
            self.write_face(result, fid, extra, face=result.face)
            return
        self._write_row(result, result.face, None, extra)

    def write_face(self, result: FrameResult, face_id: int | None,
                   extra: Mapping[str, Any] | None = None,
                   face: FaceObservation | None = None) -> None:
        """Long format: append the row of one face of a frame (``face_id`` None: the
        frame's one row when it has no face; ``face`` is then a "no face" observation)."""
        if not self.long_format:
            raise ValueError(f"{self.path.name} is not written in the long format")
        self._write_row(result, face if face is not None else FaceObservation(False),
                        face_id, extra)

    def _write_row(self, result: FrameResult, face: FaceObservation, face_id: int | None,
                   extra: Mapping[str, Any] | None) -> None:
        if self._file is None:
            raise ValueError("the CSV writer is closed")
        if not self._header_written:
            if self.extra_columns is None:
                self.extra_columns = tuple(extra or ())
            self._csv.writerow(safe_row(self.columns))
            self._header_written = True
        box = face.box if face.face_found and face.box is not None else (None,) * 4
        row = [result.frame.index, _cell(result.frame.timestamp_s, 6), _cell(face.face_found),
               face.n_faces, _cell(face.confidence if face.face_found else 0.0),
               *(_cell(None if v is None else float(v), 2) for v in box)]
        if result.info.get("status") == "unreadable":
            row[2:5] = ["", "", ""]  # the image could not be decoded: nothing is known
        if self.long_format:
            row.insert(2, _cell(face_id))
        lm = face.landmarks if face.face_found else None
        for k in range(len(self.landmark_names)):
            if lm is not None and k < len(lm):
                row += [_cell(float(lm[k][0]), 2), _cell(float(lm[k][1]), 2)]
            else:
                row += ["", ""]
        if self.alignment:
            m = face.transform if face.face_found else None
            row += ([f"{float(v):.9g}" for v in np.asarray(m, np.float64).reshape(6)]
                    if m is not None else [""] * len(ALIGN_COLUMNS))
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
                self._csv.writerow(safe_row(self.columns))
            self._file.close()
            self._file = None

    def __enter__(self) -> FramesCsvWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def spotter_columns(roi_names: Sequence[str]) -> tuple[str, ...]:
    """The spotting columns of ``frames.csv`` for these ROIs, in order."""
    return (*(f"signal_{r}" for r in roi_names), "signal_combined", "spot_threshold",
            "spot_baseline", "spot_state", "spot_activity")


def spotter_values(state: SpotterState | None, roi_names: Sequence[str]) -> dict[str, Any]:
    """The spotting cells of one frame (empty when there is no state or no face)."""
    if state is None:
        return {}
    out: dict[str, Any] = {"spot_state": state.state, "spot_activity": state.activity,
                           "spot_threshold": state.threshold, "spot_baseline": state.baseline}
    if state.state != "no_face":
        for r in roi_names:
            v = state.signal.get(r)
            out[f"signal_{r}"] = None if v is None else float(v)
        out["signal_combined"] = float(state.combined)
    return out


class SpotterRowBuffer:
    """Holds frame rows until the spotter's *final* values for their frame are known.

    The online spotter low-passes the signal with a centred kernel, so a frame's smoothed
    value (and the detector's state at it) is final a few frames later
    (``Pipeline.pop_spotter_states``). Rows are written in frame order as soon as their
    final state is known; frames without a face (nothing to wait for) follow in order. A row
    waits at most ``max_wait`` frames, then the live (causal) state is written.

    Args:
        writer: the ``frames.csv`` writer (its extra columns include :func:`spotter_columns`).
        roi_names: the spotting ROIs.
        max_wait: most rows held back.
    """

    def __init__(self, writer: FramesCsvWriter, roi_names: Sequence[str],
                 max_wait: int = 512) -> None:
        self.writer = writer
        self.roi_names = tuple(roi_names)
        self.max_wait = int(max_wait)
        self._rows: list[FrameResult] = []
        self._final: dict[int, SpotterState] = {}
        self.live_rows = 0

    def add(self, result: FrameResult,
            final_states: Sequence[tuple[int, float, SpotterState]] = ()) -> None:
        """Queue the row of ``result``; ``final_states`` are the newly final
        ``(index, t, state)`` of earlier (or this) frames."""
        self._rows.append(result)
        self._take(final_states)
        self._write_ready(force=False)

    def flush(self, final_states: Sequence[tuple[int, float, SpotterState]] = ()) -> None:
        """Write every row still held (end of stream, after ``Pipeline.finish()``)."""
        self._take(final_states)
        self._write_ready(force=True)

    def _take(self, final_states: Sequence[tuple[int, float, SpotterState]]) -> None:
        for index, _t, state in final_states:
            self._final[int(index)] = state

    def _write_ready(self, force: bool) -> None:
        n = 0
        for r in self._rows:
            idx = r.frame.index
            final = self._final.pop(idx, None)
            if final is None:
                waiting = r.spotter is not None and r.spotter.state != "no_face" \
                    and r.face.face_found
                if waiting and not force and len(self._rows) - n <= self.max_wait:
                    break
                state = r.spotter
                self.live_rows += int(waiting)
            else:
                state = final
            self.writer.write(r, spotter_values(state, self.roi_names))
            n += 1
        if n:
            last = self._rows[n - 1].frame.index
            del self._rows[:n]
            for k in [k for k in self._final if k <= last]:
                del self._final[k]


#: ``(face_id, frame index, timestamp_s, state)``: ``Pipeline.pop_face_states``.
FaceStates = Sequence[tuple[int, int, float, SpotterState]]


class FaceRowBuffer:
    """:class:`SpotterRowBuffer` for the long format: one row per face per frame
    (``FrameResult.faces``), each written with that face's *final* spotter values
    (``Pipeline.pop_face_states``) once they are known. The rows of a frame are written
    together, in ``face_id`` order, when every face of the frame has its final state (faces
    not found have nothing to wait for); a frame without any face gets one row with an
    empty ``face_id``. A frame waits at most ``max_wait`` frames, then the live (causal)
    states are written.

    Args:
        writer: a long-format writer (:meth:`FramesCsvWriter.write_face`; its extra columns
            include :func:`spotter_columns`).
        roi_names: the spotting ROIs.
        max_wait: most frames held back.
    """

    def __init__(self, writer: Any, roi_names: Sequence[str], max_wait: int = 512) -> None:
        self.writer = writer
        self.roi_names = tuple(roi_names)
        self.max_wait = int(max_wait)
        self._rows: list[FrameResult] = []
        self._final: dict[tuple[int, int], SpotterState] = {}
        self.live_rows = 0

    def add(self, result: FrameResult, final_states: FaceStates = ()) -> None:
        """Queue the rows of ``result``; ``final_states`` are the newly final
        ``(face_id, index, t, state)`` of earlier (or this) frames."""
        self._rows.append(result)
        self._take(final_states)
        self._write_ready(force=False)

    def flush(self, final_states: FaceStates = ()) -> None:
        """Write every row still held (end of stream, after ``Pipeline.finish()``)."""
        self._take(final_states)
        self._write_ready(force=True)

    def _take(self, final_states: FaceStates) -> None:
        for face_id, index, _t, state in final_states:
            self._final[(int(face_id), int(index))] = state

    @staticmethod
    def _waits(face: FaceResult) -> bool:
        st = face.spotter
        return st is not None and st.state != "no_face" and face.face.face_found

    def _write_ready(self, force: bool) -> None:
        n = 0
        for r in self._rows:
            idx = r.frame.index
            faces = sorted(r.faces, key=lambda f: f.face_id)
            pending = [f for f in faces if self._waits(f) and (f.face_id, idx) not in self._final]
            if pending and not force and len(self._rows) - n <= self.max_wait:
                break
            self.live_rows += len(pending)
            if not faces:
                self.writer.write_face(r, None, {})
            for f in faces:
                final = self._final.pop((f.face_id, idx), None)
                state = final if final is not None else f.spotter
                self.writer.write_face(r, f.face_id, spotter_values(state, self.roi_names),
                                       face=f.face)
            n += 1
        if n:
            last = self._rows[n - 1].frame.index
            del self._rows[:n]
            for k in [k for k in self._final if k[1] <= last]:
                del self._final[k]


# ----------------------------------------------------------------- reading frames.csv back
#: The face box columns of ``frames.csv``.
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")


@dataclass
class VideoSignals:
    """Per-frame motion signals of the whole video (for the signal plot).

    Attributes:
        times: ``(N,)`` frame times in seconds (NaN for frames not analysed).
        rois: per-ROI ``(N,)`` motion in pixels.
        combined, threshold: ``(N,)`` or None.
        activity: ``(N,)`` what the spotter saw the face doing (``spot_activity``: ``rest``,
            ``moving``, ``expression``, ...; "" where unknown), or None without that column.
        face_id: the face these signals are of, in a long-format ``frames.csv``
            (NaN where that face was not tracked); None for a single-face file.
        faces: long format: every face's signals by ``face_id`` (this object's values are
            those of one of them, the face analysed longest); empty for a single-face file.
        boxes: ``(N, 4)`` the face box ``(x, y, w, h)`` per frame (NaN where not found), or
            None without the box columns (review marks the faces of a long-format file).
        transforms: ``(N, 2, 3)`` the alignment transform per frame (NaN where not found),
            or None without the :data:`ALIGN_COLUMNS` (files of older versions).
    """

    times: np.ndarray
    rois: dict[str, np.ndarray] = field(default_factory=dict)
    combined: np.ndarray | None = None
    threshold: np.ndarray | None = None
    activity: np.ndarray | None = None
    face_id: int | None = None
    faces: dict[int, VideoSignals] = field(default_factory=dict, repr=False, compare=False)
    boxes: np.ndarray | None = field(default=None, repr=False, compare=False)
    transforms: np.ndarray | None = field(default=None, repr=False, compare=False)

    def transform_at(self, i: int) -> np.ndarray | None:
        """The alignment transform ``(2, 3)`` of frame ``i``, or None."""
        t = self.transforms
        if t is None or not 0 <= i < len(t) or not np.isfinite(t[i]).all():
            return None
        return t[i]

    def of_face(self, face_id: int | None) -> VideoSignals:
        """The signals of face ``face_id`` (long format), else these."""
        if face_id is None or not self.faces:
            return self
        return self.faces.get(int(face_id), self)

    def peak_between(self, onset: int, offset: int) -> int:
        """The frame of the highest combined (else summed ROI) signal in ``[onset, offset]``."""
        sig = self.combined
        if sig is None and self.rois:
            sig = np.nansum(np.vstack(list(self.rois.values())), axis=0)
        if sig is None:
            return (onset + offset) // 2
        seg = sig[onset:offset + 1]
        if not len(seg) or np.all(np.isnan(seg)):
            return (onset + offset) // 2
        return onset + int(np.nanargmax(seg))


def read_frames_csv(path: str | os.PathLike[str], n_frames: int | None = None
                    ) -> VideoSignals | None:
    """Read the motion signals from a ``frames.csv`` written by ``mestudio analyze``.

    Recognised columns (those of :mod:`mestudio.csvio`): ``frame``; ``timestamp`` (or
    ``timestamp_s``); per-ROI signals ``signal_<roi>`` (or ``roi_<roi>``);
    ``signal_combined`` (or ``combined``); ``spot_threshold`` (or ``threshold``); and, in
    the long format, ``face_id``: the signals of every face are then in
    :attr:`VideoSignals.faces` and the ones returned are of the face with the most analysed
    frames (:func:`read_frames_csv_faces` gives them all). Returns None when the file has no
    signal column.
    """
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        rows = list(reader)
    if "frame" not in cols or not rows:
        return None
    roi_cols = {c: c.split("_", 1)[1] for c in cols
                if (c.startswith("signal_") or c.startswith("roi_"))
                and c not in ("signal_combined",)}
    combined_col = "combined" if "combined" in cols else (
        "signal_combined" if "signal_combined" in cols else None)
    time_col = "timestamp_s" if "timestamp_s" in cols else (
        "timestamp" if "timestamp" in cols else None)
    if not roi_cols and combined_col is None:
        return None
    frames = [int(float(r["frame"])) for r in rows]
    n = max(max(frames) + 1, n_frames or 0)
    threshold_col = next((c for c in ("spot_threshold", "threshold") if c in cols), None)
    activity_col = "spot_activity" if "spot_activity" in cols else None

    def column(name: str | None, picked: Sequence[int]) -> np.ndarray | None:
        if name is None:
            return None
        out = np.full(n, np.nan)
        for k in picked:
            v = rows[k].get(name, "")
            try:
                out[frames[k]] = float(v) if v not in ("", None) else np.nan
            except ValueError:
                pass
        return out

    def text_column(name: str | None, picked: Sequence[int]) -> np.ndarray | None:
        if name is None:
            return None
        out = np.full(n, "", dtype=object)
        for k in picked:
            out[frames[k]] = rows[k].get(name) or ""
        return out

    everything = range(len(rows))
    times = column(time_col, everything)
    if times is None:
        times = np.full(n, np.nan)

    def signals(picked: Sequence[int], face_id: int | None) -> VideoSignals:
        rois = {roi: arr for c, roi in roi_cols.items()
                if (arr := column(c, picked)) is not None}
        box = [column(c, picked) for c in BOX_COLUMNS] if all(
            c in cols for c in BOX_COLUMNS) else None
        align = [column(c, picked) for c in ALIGN_COLUMNS] if all(
            c in cols for c in ALIGN_COLUMNS) else None
        return VideoSignals(times=times, rois=rois, combined=column(combined_col, picked),
                            threshold=column(threshold_col, picked),
                            activity=text_column(activity_col, picked), face_id=face_id,
                            boxes=None if box is None else np.stack(
                                [c for c in box if c is not None], axis=1),
                            transforms=None if align is None else
                            np.stack([c for c in align if c is not None],
                                     axis=1).reshape(-1, 2, 3))

    if "face_id" not in cols:
        return signals(everything, None)
    by_face: dict[int, list[int]] = {}
    for k, r in enumerate(rows):
        text = (r.get("face_id") or "").strip()
        if text:
            try:
                by_face.setdefault(int(float(text)), []).append(k)
            except ValueError:
                continue
    faces = {fid: signals(picked, fid) for fid, picked in sorted(by_face.items())}
    if not faces:
        return signals((), None)

    def analysed(fid: int) -> int:
        sig = faces[fid].combined
        return int(np.isfinite(sig).sum()) if sig is not None else len(by_face[fid])

    main = max(faces, key=lambda fid: (analysed(fid), -fid))
    return dataclasses.replace(faces[main], faces=faces)


def read_frames_csv_faces(path: str | os.PathLike[str], n_frames: int | None = None
                          ) -> dict[int, VideoSignals]:
    """Every face's signals of a ``frames.csv`` by ``face_id`` (a single-face file: its
    one face as ``0``); empty when the file has no signal column."""
    sig = read_frames_csv(path, n_frames)
    if sig is None:
        return {}
    return dict(sig.faces) if sig.faces else {0: sig}
