"""The editable annotation model of review mode (no Qt): spotted events plus human labels,
edited with undo/redo, saved as JSON and exported as a CASME II-style coding sheet.

An :class:`AnnotationDocument` holds :class:`Annotation` s, each a
:class:`~mestudio.types.SpotEvent` (frame indices, times, the model's prediction) plus what a
human coder adds: the emotion ``label``, the ``aus`` (action units, e.g. ``"AU4+AU7"``), a
``note`` and the ``origin`` (``"auto"``: from the spotter, ``"edited"``: from the spotter and
changed by hand, ``"manual"``: added by hand). Every change is a command on an undo stack
(:meth:`~AnnotationDocument.undo`, :meth:`~AnnotationDocument.redo`); views observe the
document through :meth:`~AnnotationDocument.add_listener`.

Annotation file (``mestudio-annotations/1``), the events of ``events.json``
(:func:`mestudio.events_io.event_to_dict`) with the annotation fields added::

    {"format": "mestudio-annotations/1", "source": "clip.mp4", "subject": "01",
     "filename": "EP02_01", "fps": 30.0, "n_frames": 900, "model": {...} | null,
     "saved": "2025-11-21T17:30:12+01:00",
     "events": [{"id": 0, "onset": 12, "apex": 15, "offset": 19, ..., "emotion": "surprise",
                 "label": "surprise", "aus": "AU1+AU2", "note": "", "origin": "edited"}]}

Coding sheet (xlsx and CSV), one row per annotation sorted by onset, the columns of the
CASME II sheet: ``Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units,
Estimated Emotion``.

Several faces: events keep the ``face_id`` of the face they belong to (``event.face_id``:
the track number from 1 when every face was analysed, 0 for the single face and for
annotations added by hand unless given). When the document has faces (the analysis ran
with ``"faces": "all"`` or an event has a ``face_id`` above 0), the coding sheet's
``Subject`` is per face: ``<subject>-face<N>`` (``face<N>`` without a subject); events of
face 0 keep the plain subject (:meth:`AnnotationDocument.subject_of`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mestudio.csvio import append_xlsx_row, clean_text, safe_row
from mestudio.errors import MestudioError
from mestudio.fsutil import atomic_path, atomic_write_text
from mestudio.types import Prediction, SpotEvent

log = logging.getLogger(__name__)

ANNOTATIONS_FORMAT = "mestudio-annotations/1"
CODING_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                  "Action Units", "Estimated Emotion")
ORIGINS = ("auto", "edited", "manual")

Listener = Callable[[str, "int | None"], None]


class AnnotationError(MestudioError):
    """An edit that would make an annotation invalid, or an unreadable annotation file."""


@dataclass(frozen=True)
class Annotation:
    """One annotated facial movement (immutable; edits replace it).

    Attributes:
        event: frame indices (inclusive, from 0), their times in seconds, kind, ROI, peak
            and the model's prediction (``event.prediction``; None when not recognised).
        label: the coder's emotion label (defaults to the predicted emotion), or None.
        aus: action units as free text, e.g. ``"AU4+AU7"``.
        note: free text.
        origin: ``"auto"``, ``"edited"`` or ``"manual"``.
    """

    event: SpotEvent
    label: str | None = None
    aus: str = ""
    note: str = ""
    origin: Literal["auto", "edited", "manual"] = "auto"

    @property
    def id(self) -> int:
        return self.event.id

    @property
    def onset(self) -> int:
        return self.event.onset

    @property
    def apex(self) -> int:
        return self.event.apex

    @property
    def offset(self) -> int:
        return self.event.offset

    @property
    def kind(self) -> str:
        return self.event.kind

    @property
    def face_id(self) -> int:
        """The face it belongs to (0: the single face, or not known)."""
        return self.event.face_id

    @property
    def predicted(self) -> str | None:
        """The model's emotion for this event, or None (also when the prediction is
        uncertain: "micro-expression (uncertain)" has no emotion)."""
        return self.event.prediction.emotion if self.event.prediction is not None else None

    def to_dict(self) -> dict[str, Any]:
        from mestudio.events_io import event_to_dict

        return {**event_to_dict(self.event), "label": self.label, "aus": self.aus,
                "note": self.note, "origin": self.origin}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Annotation:
        """Inverse of :meth:`to_dict`; an events.json event becomes an ``auto`` annotation
        labelled with its predicted emotion."""
        from mestudio.events_io import event_from_dict

        ev = event_from_dict(d)
        origin = d.get("origin", "auto")
        if origin not in ORIGINS:
            raise AnnotationError(f"event {ev.id}: origin must be one of {ORIGINS}, got {origin!r}")
        label = d["label"] if "label" in d else d.get("emotion")
        label = clean_text(str(label)).strip() if label not in (None, "") else ""
        return Annotation(ev, label=label or None,
                          aus=clean_text(str(d.get("aus") or "")),
                          note=clean_text(str(d.get("note") or "")), origin=origin)


# ------------------------------------------------------------------ commands (undo/redo)
class _Command:
    text = ""

    def apply(self, doc: AnnotationDocument) -> int | None:
        raise NotImplementedError

    def revert(self, doc: AnnotationDocument) -> int | None:
        raise NotImplementedError


@dataclass
class _Replace(_Command):
    before: Annotation
    after: Annotation
    text: str = "edit"

    def apply(self, doc: AnnotationDocument) -> int | None:
        doc._items[self.after.id] = self.after
        return self.after.id

    def revert(self, doc: AnnotationDocument) -> int | None:
        doc._items[self.before.id] = self.before
        return self.before.id


@dataclass
class _Insert(_Command):
    item: Annotation
    text: str = "add event"

    def apply(self, doc: AnnotationDocument) -> int | None:
        doc._items[self.item.id] = self.item
        return self.item.id

    def revert(self, doc: AnnotationDocument) -> int | None:
        del doc._items[self.item.id]
        return None


@dataclass
class _Remove(_Command):
    item: Annotation
    text: str = "delete event"

    def apply(self, doc: AnnotationDocument) -> int | None:
        del doc._items[self.item.id]
        return None

    def revert(self, doc: AnnotationDocument) -> int | None:
        doc._items[self.item.id] = self.item
        return self.item.id


# ------------------------------------------------------------------ the document
class AnnotationDocument:
    """The annotations of one video, with undo/redo.

    Args:
        events: spotted events (``SpotEvent``) or :class:`Annotation` s to start from.
        fps: frame rate of the video (frames per second), to turn indices into seconds.
        n_frames: number of frames of the video (edits are clamped to ``[0, n_frames)``), or
            None when unknown.
        timestamps: optional per-frame times in seconds ``(n_frames,)``; overrides ``fps``.
        source: the video's file name (stored in the JSON).
        subject: ``Subject`` column of the coding sheet.
        filename: ``Filename`` column of the coding sheet (default: the source's stem).
        micro_max_s: events up to this duration are ``micro``, longer ones ``macro``
            (seconds, SpotterConfig.micro_max_s).
        model: the model description of ``events.json`` (kept when saving).
        faces: the face mode of the analysis (``"primary"`` or ``"all"``; ``events.json``'s
            ``faces``), or None when unknown (kept when saving).
    """

    def __init__(self, events: Iterable[SpotEvent | Annotation] = (), *, fps: float,
                 n_frames: int | None = None, timestamps: Sequence[float] | None = None,
                 source: str = "", subject: str = "", filename: str | None = None,
                 micro_max_s: float = 0.5, model: dict | None = None,
                 faces: str | None = None) -> None:
        if not fps or not math.isfinite(fps) or fps <= 0:
            raise AnnotationError(f"the video's frame rate is unknown ({fps!r}); cannot place "
                                  "annotations in time")
        self.fps = float(fps)
        self.n_frames = n_frames
        self.timestamps = list(timestamps) if timestamps is not None else None
        self.source = source
        self.subject = subject
        self.filename = filename if filename is not None else Path(source).stem
        self.micro_max_s = micro_max_s
        self.model = model
        self.faces = faces
        self.path: Path | None = None
        self.pending_onset: int | None = None
        self._items: dict[int, Annotation] = {}
        self._undo: list[_Command] = []
        self._redo: list[_Command] = []
        self._saved_top: _Command | None = None
        self._listeners: list[Listener] = []
        for e in events:
            ann = e if isinstance(e, Annotation) else Annotation(e, label=(
                e.prediction.emotion if e.prediction is not None else None))
            if ann.id < 0 or ann.id in self._items:
                ann = dataclasses.replace(ann, event=dataclasses.replace(
                    ann.event, id=self._next_id()))
            self._items[ann.id] = ann

    # ---------------------------------------------------------- observing
    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(what, id)`` after every change; ``what`` is the command text
        (``"set onset"``, ``"undo"``...), ``id`` the annotation to show (None after a
        removal)."""
        self._listeners.append(callback)

    def _notify(self, what: str, ann_id: int | None) -> None:
        for cb in list(self._listeners):
            cb(what, ann_id)

    # ---------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(self.annotations)

    def __contains__(self, ann_id: object) -> bool:
        return ann_id in self._items

    @property
    def annotations(self) -> list[Annotation]:
        """All annotations sorted by onset (then id)."""
        return sorted(self._items.values(), key=lambda a: (a.onset, a.offset, a.id))

    @property
    def events(self) -> list[SpotEvent]:
        """The annotations' events sorted by onset."""
        return [a.event for a in self.annotations]

    def get(self, ann_id: int) -> Annotation:
        try:
            return self._items[ann_id]
        except KeyError:
            raise AnnotationError(f"no event with id {ann_id}") from None

    def at_frame(self, frame: int) -> list[Annotation]:
        """Annotations whose ``[onset, offset]`` contains ``frame``."""
        return [a for a in self.annotations if a.onset <= frame <= a.offset]

    def next_after(self, frame: int) -> Annotation | None:
        """The first annotation with onset after ``frame``."""
        return next((a for a in self.annotations if a.onset > frame), None)

    def previous_before(self, frame: int) -> Annotation | None:
        """The last annotation with onset before ``frame``."""
        before = [a for a in self.annotations if a.onset < frame]
        return before[-1] if before else None

    def time_of(self, frame: int) -> float:
        """Time of frame ``frame`` in seconds."""
        if self.timestamps is not None and 0 <= frame < len(self.timestamps):
            return float(self.timestamps[frame])
        return frame / self.fps

    # ---------------------------------------------------------- undo / redo
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_text(self) -> str:
        return self._undo[-1].text if self._undo else ""

    @property
    def redo_text(self) -> str:
        return self._redo[-1].text if self._redo else ""

    @property
    def modified(self) -> bool:
        """True when there are changes since the last save/load."""
        return (self._undo[-1] if self._undo else None) is not self._saved_top

    def _push(self, cmd: _Command) -> int | None:
        ann_id = cmd.apply(self)
        self._undo.append(cmd)
        self._redo.clear()
        self._notify(cmd.text, ann_id)
        return ann_id

    def undo(self) -> bool:
        """Revert the last change; False when there is nothing to undo."""
        if not self._undo:
            return False
        cmd = self._undo.pop()
        ann_id = cmd.revert(self)
        self._redo.append(cmd)
        self._notify(f"undo {cmd.text}", ann_id)
        return True

    def redo(self) -> bool:
        """Re-apply the last undone change; False when there is nothing to redo."""
        if not self._redo:
            return False
        cmd = self._redo.pop()
        ann_id = cmd.apply(self)
        self._undo.append(cmd)
        self._notify(f"redo {cmd.text}", ann_id)
        return True

    # ---------------------------------------------------------- editing
    def _check_frame(self, frame: int) -> int:
        frame = int(frame)
        if frame < 0 or (self.n_frames is not None and frame >= self.n_frames):
            last = f"{self.n_frames - 1}" if self.n_frames is not None else "the last frame"
            raise AnnotationError(f"frame {frame} is outside the video (0..{last})")
        return frame

    def _kind(self, onset: int, offset: int) -> Literal["micro", "macro"]:
        return "micro" if self.time_of(offset) - self.time_of(onset) <= self.micro_max_s + 1e-9 \
            else "macro"

    def _with_frames(self, ann: Annotation, onset: int, apex: int, offset: int) -> Annotation:
        ev = dataclasses.replace(ann.event, onset=onset, apex=apex, offset=offset,
                                 onset_s=self.time_of(onset), apex_s=self.time_of(apex),
                                 offset_s=self.time_of(offset), kind=self._kind(onset, offset))
        return dataclasses.replace(ann, event=ev,
                                   origin="manual" if ann.origin == "manual" else "edited")

    def _replace(self, before: Annotation, after: Annotation, text: str) -> int:
        if after == before:
            return before.id
        self._push(_Replace(before, after, text))
        return after.id

    def set_onset(self, ann_id: int, frame: int) -> None:
        """Move the onset to ``frame``; the apex follows when it would come before the onset.

        Raises:
            AnnotationError: ``frame`` after the offset or outside the video.
        """
        a = self.get(ann_id)
        frame = self._check_frame(frame)
        if frame > a.offset:
            raise AnnotationError(f"onset {frame} would come after the offset {a.offset}; "
                                  "move the offset first")
        self._replace(a, self._with_frames(a, frame, max(a.apex, frame), a.offset), "set onset")

    def set_offset(self, ann_id: int, frame: int) -> None:
        """Move the offset to ``frame``; the apex follows when it would come after it.

        Raises:
            AnnotationError: ``frame`` before the onset or outside the video.
        """
        a = self.get(ann_id)
        frame = self._check_frame(frame)
        if frame < a.onset:
            raise AnnotationError(f"offset {frame} would come before the onset {a.onset}; "
                                  "move the onset first")
        self._replace(a, self._with_frames(a, a.onset, min(a.apex, frame), frame), "set offset")

    def set_apex(self, ann_id: int, frame: int) -> None:
        """Move the apex to ``frame`` (must lie within onset..offset)."""
        a = self.get(ann_id)
        frame = self._check_frame(frame)
        if not a.onset <= frame <= a.offset:
            raise AnnotationError(f"apex {frame} must lie between the onset {a.onset} and the "
                                  f"offset {a.offset}")
        self._replace(a, self._with_frames(a, a.onset, frame, a.offset), "set apex")

    def set_label(self, ann_id: int, label: str | None) -> None:
        """Set the coder's emotion label (None or "" clears it)."""
        a = self.get(ann_id)
        label = clean_text(label or "").strip() or None
        origin = a.origin if a.origin == "manual" or label == a.predicted else "edited"
        self._replace(a, dataclasses.replace(a, label=label, origin=origin), "change label")

    def set_aus(self, ann_id: int, aus: str) -> None:
        """Set the action units text (e.g. ``"AU4+AU7"``)."""
        a = self.get(ann_id)
        self._replace(a, dataclasses.replace(a, aus=clean_text(aus).strip()), "change action units")

    def set_note(self, ann_id: int, note: str) -> None:
        a = self.get(ann_id)
        self._replace(a, dataclasses.replace(a, note=clean_text(note)), "change note")

    def store_prediction(self, ann_id: int, prediction: Prediction) -> bool:
        """Store the model's prediction computed for an annotation's current frames (an added
        or edited event). The label follows when it was empty or the previous prediction's
        (a label the coder chose is kept). Not an undoable edit of its own: it follows from
        the frames, and undoing the frame edit brings back the event as it was.

        Returns:
            True when something changed (listeners then get ``"store prediction"``).
        """
        a = self.get(ann_id)
        old = a.event.prediction
        if old is prediction or (old is not None and old.label == prediction.label and
                                 old.classes == prediction.classes and
                                 np.allclose(old.probs, prediction.probs, atol=1e-6)):
            return False
        label = prediction.emotion if a.label is None or a.label == a.predicted else a.label
        self._items[ann_id] = dataclasses.replace(
            a, label=label, event=dataclasses.replace(a.event, prediction=prediction))
        self._notify("store prediction", ann_id)
        return True

    def delete(self, ann_id: int) -> None:
        """Remove an annotation."""
        self._push(_Remove(self.get(ann_id)))

    def _next_id(self) -> int:
        return max(self._items, default=-1) + 1

    def add(self, onset: int, offset: int, apex: int | None = None, *,
            label: str | None = None, aus: str = "", face_id: int = 0) -> int:
        """Add a hand-made annotation; ``apex`` defaults to the middle frame. Returns its id.
        Onset and offset are swapped when given in reverse order; ``face_id``: the face it
        belongs to (0: the single face / not said)."""
        onset, offset = sorted((self._check_frame(onset), self._check_frame(offset)))
        apex = (onset + offset) // 2 if apex is None else self._check_frame(apex)
        if not onset <= apex <= offset:
            raise AnnotationError(f"apex {apex} must lie between the onset {onset} and the "
                                  f"offset {offset}")
        ev = SpotEvent(onset=onset, apex=apex, offset=offset, onset_s=self.time_of(onset),
                       apex_s=self.time_of(apex), offset_s=self.time_of(offset),
                       kind=self._kind(onset, offset), roi="manual", peak=math.nan,
                       id=self._next_id(), face_id=max(0, int(face_id)))
        self._push(_Insert(Annotation(ev, label=(label or None), aus=aus, origin="manual")))
        return ev.id

    def mark(self, frame: int, apex: Callable[[int, int], int] | None = None) -> int | None:
        """Mark an onset (first call) then an offset (second call) to add an annotation.

        Args:
            frame: the current frame.
            apex: optional ``apex(onset, offset) -> frame`` choosing the apex (e.g. the
                signal's peak); default the middle frame.

        Returns:
            None after the first mark, the new annotation's id after the second.
        """
        frame = self._check_frame(frame)
        if self.pending_onset is None:
            self.pending_onset = frame
            self._notify("mark onset", None)
            return None
        onset, offset = sorted((self.pending_onset, frame))
        self.pending_onset = None
        return self.add(onset, offset, apex(onset, offset) if apex is not None else None)

    def cancel_mark(self) -> None:
        self.pending_onset = None
        self._notify("cancel mark", None)

    # ---------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        doc = {"format": ANNOTATIONS_FORMAT, "source": self.source, "subject": self.subject,
               "filename": self.filename, "fps": self.fps, "n_frames": self.n_frames,
               "micro_max_s": self.micro_max_s, "model": self.model,
               "saved": datetime.now().astimezone().isoformat(timespec="seconds")}
        if self.faces is not None:
            doc["faces"] = self.faces
        doc["events"] = [a.to_dict() for a in self.annotations]
        return doc

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the annotation JSON atomically (temp file, fsync, rename); the document is
        then unmodified. ``path`` defaults to the file it was loaded from/saved to."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise AnnotationError("no file name to save the annotations to")
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        atomic_write_text(target, text)
        self.path = target
        self._saved_top = self._undo[-1] if self._undo else None
        self._notify("save", None)
        log.info("annotations saved to %s (%d events)", target, len(self))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, fps: float | None = None,
             n_frames: int | None = None, micro_max_s: float | None = None,
             video: str | os.PathLike[str] | None = None, clamp: bool = False
             ) -> AnnotationDocument:
        """Open an annotation file or an ``events.json``.

        ``fps``/``n_frames`` (from the opened video) override the file's values.

        Args:
            video: the video the events are opened with; a file whose ``source`` names
                another video is refused.
            clamp: clamp events that reach outside ``[0, n_frames)`` to the video instead of
                refusing the file (events entirely outside are refused either way).

        Raises:
            AnnotationError: missing/unreadable file, invalid events, an event outside the
                video (one line naming it), or the events of another video.
        """
        from mestudio.events_io import EVENTS_FORMAT, EventsFileError

        path = Path(path)
        if not path.is_file():
            raise AnnotationError(f"annotation file {path} does not exist")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AnnotationError(f"{path} is not a readable JSON file ({exc})") from None
        fmt = doc.get("format") if isinstance(doc, dict) else None
        if fmt not in (ANNOTATIONS_FORMAT, EVENTS_FORMAT):
            raise AnnotationError(f"{path} is neither an annotation file nor an events.json "
                                  f"(format {fmt!r}); open the file saved by review mode or "
                                  "written by `mestudio analyze`/a recording")
        assert isinstance(doc, dict)
        raw = doc.get("events")
        if not isinstance(raw, list):
            raise AnnotationError(f"{path}: 'events' must be a list")
        try:
            items = [Annotation.from_dict(d) for d in raw]
        except EventsFileError as exc:
            raise AnnotationError(f"{path}: {exc}") from None
        file_fps = doc.get("fps")
        use_fps = fps or file_fps
        if not use_fps:
            raise AnnotationError(f"{path} has no frame rate; open it together with its video")
        try:
            use_fps = float(use_fps)
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}: the frame rate {use_fps!r} is not a number") from None
        if not math.isfinite(use_fps) or use_fps <= 0:
            raise AnnotationError(f"{path}: the frame rate {use_fps!r} is not a positive number")
        source = str(doc.get("source") or "")
        if video is not None and source and Path(source).name != Path(video).name:
            raise AnnotationError(
                f"{path} holds the events of {Path(source).name!r}, not of "
                f"{Path(video).name!r}; open it with that video (or correct its \"source\")")
        if n_frames is None:
            file_n = doc.get("n_frames")
            n_frames = file_n if isinstance(file_n, int) and not isinstance(file_n, bool) \
                and file_n > 0 else None
        items = _fit_to_video(items, n_frames, use_fps, path, clamp)
        out = cls(items, fps=use_fps,
                  n_frames=n_frames,
                  source=source, subject=str(doc.get("subject") or ""),
                  filename=doc.get("filename"),
                  micro_max_s=micro_max_s if micro_max_s is not None else
                  float(doc.get("micro_max_s", 0.5)), model=doc.get("model"),
                  faces=str(doc["faces"]) if doc.get("faces") else None)
        out.path = path if fmt == ANNOTATIONS_FORMAT else None
        return out

    # ---------------------------------------------------------- coding sheet
    @property
    def per_face(self) -> bool:
        """Whether the coding sheet names a subject per face: the analysis ran on every
        face (``faces == "all"``) or an event belongs to a numbered face."""
        return self.faces == "all" or any(a.face_id > 0 for a in self._items.values())

    def subject_of(self, ann: Annotation, per_face: bool | None = None) -> str:
        """The ``Subject`` of ``ann`` on the coding sheet: ``<subject>-face<N>`` (or
        ``face<N>``) for an event of face N > 0 when subjects are per face (``per_face``;
        None: :attr:`per_face`), else :attr:`subject`."""
        per_face = self.per_face if per_face is None else per_face
        if not per_face or ann.face_id <= 0:
            return self.subject
        return f"{self.subject}-face{ann.face_id}" if self.subject else f"face{ann.face_id}"

    def coding_rows(self, frame_base: int = 0, per_face: bool | None = None
                    ) -> list[list[Any]]:
        """Rows of the coding sheet (:data:`CODING_COLUMNS`), sorted by onset.

        Args:
            frame_base: added to every frame index (1 for sheets that count frames from 1).
            per_face: a ``Subject`` per face (:meth:`subject_of`); None: when the document
                has faces (:attr:`per_face`).
        """
        per_face = self.per_face if per_face is None else per_face
        return [[self.subject_of(a, per_face), self.filename, a.onset + frame_base,
                 a.apex + frame_base, a.offset + frame_base, a.aus, a.label or ""]
                for a in self.annotations]

    def export_csv(self, path: str | os.PathLike[str], frame_base: int = 0,
                   per_face: bool | None = None) -> Path:
        """Write the coding sheet as CSV (UTF-8, header :data:`CODING_COLUMNS`); text that a
        spreadsheet would run as a formula gets a leading ``'`` (:func:`mestudio.csvio.safe_text`).
        ``per_face``: see :meth:`coding_rows`."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(CODING_COLUMNS)
        w.writerows(safe_row(r) for r in self.coding_rows(frame_base, per_face))
        path = Path(path)
        atomic_write_text(path, buf.getvalue())
        return path

    def export_xlsx(self, path: str | os.PathLike[str], frame_base: int = 0,
                    per_face: bool | None = None) -> Path:
        """Write the coding sheet as an Excel workbook (one sheet, header row in bold); every text
        cell is stored as text, never as a formula (:func:`mestudio.csvio.append_xlsx_row`).
        ``per_face``: see :meth:`coding_rows`."""
        from openpyxl import Workbook
        from openpyxl.styles import Font

        wb = Workbook()
        ws = wb.active
        ws.title = "Sheet1"
        ws.append(list(CODING_COLUMNS))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in self.coding_rows(frame_base, per_face):
            append_xlsx_row(ws, row)
        for col, width in zip("ABCDEFG", (10, 18, 12, 12, 12, 16, 18), strict=False):
            ws.column_dimensions[col].width = width
        ws.freeze_panes = "A2"
        path = Path(path)
        with atomic_path(path) as tmp:
            wb.save(tmp)
        return path


def _fit_to_video(items: list[Annotation], n_frames: int | None, fps: float, path: Path,
                  clamp: bool) -> list[Annotation]:
    """Refuse (or, with ``clamp``, clamp to ``[0, n_frames)``) events outside the video;
    clamped events get their times from ``fps`` (frames per second).

    Raises:
        AnnotationError: one line naming the first bad event and the video's frame range.
    """
    last = n_frames - 1 if n_frames is not None else None
    out = []
    for a in items:
        lo, hi = a.onset, a.offset
        inside = lo >= 0 and (last is None or hi <= last)
        if inside:
            out.append(a)
            continue
        where = f"frames 0..{last}" if last is not None else "frames from 0"
        overlaps = hi >= 0 and (last is None or lo <= last)
        if not clamp or not overlaps:
            hint = "; pass --clamp-frames to clamp it to the video" if overlaps else ""
            raise AnnotationError(
                f"{path.name}: event {a.id} (onset {lo}, apex {a.apex}, offset {hi}) lies "
                f"outside the video ({where}){hint}")
        top = last if last is not None else hi

        def fit(f: int, top: int = top) -> int:
            return min(max(f, 0), top)

        on, ap, off = fit(lo), fit(a.apex), fit(hi)
        ev = dataclasses.replace(a.event, onset=on, apex=ap, offset=off, onset_s=on / fps,
                                 apex_s=ap / fps, offset_s=off / fps)
        log.warning("%s: event %d clamped to the video: %d-%d-%d -> %d-%d-%d", path.name, a.id,
                    lo, a.apex, hi, ev.onset, ev.apex, ev.offset)
        out.append(dataclasses.replace(a, event=ev))
    return out


def find_annotation_file(video: str | os.PathLike[str]) -> Path | None:
    """The annotation/events file that belongs to a video file or image-sequence folder,
    looked up beside it: ``<stem>.annotations.json``, ``annotations.json``,
    ``<stem>.events.json``, ``events.json`` (for a folder: inside it, then beside it)."""
    video = Path(video)
    stem = video.stem if video.is_file() else video.name
    names = [f"{stem}.annotations.json", "annotations.json", f"{stem}.events.json",
             "events.json"]
    folders = [video, video.parent] if video.is_dir() else [video.parent]
    for folder in folders:
        for name in names:
            cand = folder / name
            if cand.is_file() and (name.startswith(stem) or _belongs_to(cand, video)):
                return cand
    return None


def _belongs_to(path: Path, video: Path) -> bool:
    """A shared name (``events.json``) belongs to ``video`` when its ``source`` is that
    video's name (or not given)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    source = doc.get("source") if isinstance(doc, dict) else None
    return not source or Path(str(source)).name == video.name


def default_annotation_path(video: str | os.PathLike[str]) -> Path:
    """Where review mode saves annotations by default: ``<stem>.annotations.json`` beside the
    video (inside an image-sequence folder)."""
    video = Path(video)
    if video.is_dir():
        return video / f"{video.name}.annotations.json"
    return video.with_name(f"{video.stem}.annotations.json")
