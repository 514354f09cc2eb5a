"""Reading and writing spotted events (``events.json`` / ``events.csv``) and synthetic truth.

``events.json`` (format ``mestudio-events/1``)::

    {"format": "mestudio-events/1", "source": "clip.mp4", "fps": 30.0, "n_frames": 900,
     "model": {...} | null,
     "faces": "primary", "max_faces": 4,
     "events": [{"id": 0, "face_id": 0, "onset": 12, "apex": 15, "offset": 19,
                 "onset_s": 0.4, "apex_s": 0.5, "offset_s": 0.633, "duration_s": 0.233,
                 "kind": "micro", "roi": "brow_left", "peak": 0.81, "emitted_index": 27,
                 "emotion": null, "confidence": null, "agreement": null,
                 "uncertain": false, "recognised_by": null, "probabilities": {}}]}

Frame indices are inclusive and count from 0 in the source; times are seconds; ``peak`` is
the spotting signal in pixels. ``face_id`` is the face the event belongs to: its track number
(from 1, never reused within a run) when every face was analysed (``"faces": "all"``), 0 in
the single-face mode; files without it read as 0. ``emotion``/``confidence``/``probabilities`` stay empty
(``null`` / ``{}``) until an event has been recognised. ``agreement`` is the share of an
ensemble's members that agree with its top class (``null`` for single models); an event whose
agreement is below the recogniser's threshold has ``"uncertain": true`` and
``"emotion": null`` (shown as "micro-expression (uncertain)"), its probabilities kept.
``recognised_by`` says which model named the event: ``"micro"`` (the micro-expression
model) or ``"expression"`` (the expression model of macro events, FER2013 classes);
``null`` before recognition.

``events.csv`` has one row per event with the same fields, ``prob_<class>`` columns for the
class probabilities and empty cells where a value is missing (pandas reads them as NaN).

``truth.json`` (format ``mestudio-truth/1``, written by ``mestudio synth``) is read by
:func:`read_truth_json` for ``mestudio spot-eval``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.csvio import safe_row
from mestudio.errors import MestudioError
from mestudio.fsutil import atomic_write_text
from mestudio.types import Prediction, SpotEvent

log = logging.getLogger(__name__)

EVENTS_FORMAT = "mestudio-events/1"
TRUTH_FORMAT = "mestudio-truth/1"

CSV_COLUMNS = ("id", "face_id", "onset", "apex", "offset", "onset_s", "apex_s", "offset_s", "duration_s",
               "kind", "roi", "peak", "emitted_index", "emotion", "confidence", "agreement",
               "uncertain", "recognised_by")


class EventsFileError(MestudioError):
    """An events or truth file is missing, not JSON, or not in the expected format."""


def _num(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def event_to_dict(ev: SpotEvent) -> dict[str, Any]:
    """One event as the JSON object of ``events.json`` (plain Python types only)."""
    pred = ev.prediction
    probs: dict[str, float] = {}
    if pred is not None:
        probs = {str(c): float(p) for c, p in zip(pred.classes, np.asarray(pred.probs).tolist(),
                                                  strict=False)}
    return {
        "id": int(ev.id),
        "face_id": int(ev.face_id),
        "onset": int(ev.onset),
        "apex": int(ev.apex),
        "offset": int(ev.offset),
        "onset_s": round(float(ev.onset_s), 6),
        "apex_s": round(float(ev.apex_s), 6),
        "offset_s": round(float(ev.offset_s), 6),
        "duration_s": round(float(ev.duration_s), 6),
        "kind": ev.kind,
        "roi": ev.roi,
        "peak": _num(ev.peak),
        "emitted_index": int(ev.emitted_index),
        "emotion": pred.emotion if pred is not None else None,
        "confidence": _num(pred.confidence) if pred is not None else None,
        "agreement": _num(pred.agreement) if pred is not None else None,
        "uncertain": bool(pred.uncertain) if pred is not None else False,
        "recognised_by": pred.source if pred is not None else None,
        "probabilities": probs,
    }


def _face_id(value: Any) -> int:
    """``face_id`` of a file: missing or empty (files written before faces had numbers,
    hand-made tables) is 0, the single face."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    fid = int(float(value))
    if fid < 0:
        raise ValueError(f"face_id must be 0 or more, got {fid}")
    return fid


def event_from_dict(d: dict[str, Any]) -> SpotEvent:
    """Inverse of :func:`event_to_dict`. Raises EventsFileError naming the missing/bad key."""
    if not isinstance(d, dict):
        raise EventsFileError(f"an event must be a JSON object, got {type(d).__name__}")
    try:
        onset, apex, offset = int(d["onset"]), int(d["apex"]), int(d["offset"])
        kind = str(d.get("kind", "micro"))
        if kind not in ("micro", "macro"):
            raise ValueError(f"kind must be 'micro' or 'macro', got {kind!r}")
        if not onset <= apex <= offset:
            raise ValueError(f"need onset <= apex <= offset, got {onset}, {apex}, {offset}")
        onset_s = float(d.get("onset_s", math.nan))
        offset_s = float(d.get("offset_s", math.nan))
        apex_s = float(d.get("apex_s", math.nan))
        peak = d.get("peak")
        prediction = None
        probs = d.get("probabilities") or {}
        emotion = d.get("emotion")
        uncertain = str(d.get("uncertain", "")).strip().lower() in ("true", "1")
        if emotion is not None or (uncertain and probs):
            classes = tuple(str(c) for c in probs)
            p = np.asarray([float(v) for v in probs.values()], dtype=np.float32)
            conf = d.get("confidence")
            label = str(emotion) if emotion is not None else classes[int(np.argmax(p))]
            agreement = d.get("agreement")
            prediction = Prediction(
                probs=p, label=label,
                confidence=float(conf) if conf is not None else (float(p.max()) if p.size else
                                                                 math.nan),
                classes=classes, agreement=float(agreement) if agreement is not None else None,
                uncertain=uncertain,
                source="expression" if d.get("recognised_by") == "expression" else "micro")
        return SpotEvent(
            onset=onset, apex=apex, offset=offset, onset_s=onset_s, apex_s=apex_s,
            offset_s=offset_s, kind=kind,  # type: ignore[arg-type]
            roi=str(d.get("roi", "")), peak=float(peak) if peak is not None else math.nan,
            emitted_index=int(d.get("emitted_index", -1)), prediction=prediction,
            id=int(d.get("id", -1)), face_id=_face_id(d.get("face_id")))
    except KeyError as exc:
        raise EventsFileError(f"event {d.get('id', '?')} has no {exc.args[0]!r} field") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise EventsFileError(f"event {d.get('id', '?')} is invalid: {exc}") from None


def write_events_json(path: str | os.PathLike[str], events: Iterable[SpotEvent],
                      meta: dict[str, Any] | None = None) -> Path:
    """Write ``events.json``.

    Args:
        path: output file.
        events: the spotted events (any order; written as given).
        meta: ``source``, ``fps``, ``n_frames``, ``model`` (dict or None) and any extra keys
            (e.g. ``"spotter": {...}`` with the configuration used, ``"faces"`` and
            ``"max_faces"``: the face mode); missing ones are null.

    Returns:
        the path written (atomically and durably: :func:`mestudio.fsutil.atomic_write_text`).
    """
    meta = dict(meta or {})
    doc: dict[str, Any] = {
        "format": EVENTS_FORMAT,
        "source": meta.pop("source", None),
        "fps": _num(meta.pop("fps", None)),
        "n_frames": meta.pop("n_frames", None),
        "model": meta.pop("model", None),
    }
    doc.update(meta)
    doc["events"] = [event_to_dict(ev) for ev in events]
    path = Path(path)
    atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return path


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise EventsFileError(f"{what} file {path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventsFileError(f"{what} file {path} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise EventsFileError(f"cannot read {what} file {path}: {exc.strerror}") from None


def read_events_json(path: str | os.PathLike[str]) -> tuple[list[SpotEvent], dict[str, Any]]:
    """Read ``events.json``; returns ``(events, meta)`` where ``meta`` holds every top-level
    key except ``events``. Raises EventsFileError for a missing/invalid file."""
    path = Path(path)
    doc = _load_json(path, "events")
    if not isinstance(doc, dict) or doc.get("format") != EVENTS_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise EventsFileError(
            f"{path} is not a mestudio events file (format {found!r}, expected "
            f"{EVENTS_FORMAT!r}); pass the events.json written by 'mestudio analyze'")
    raw = doc.get("events")
    if not isinstance(raw, list):
        raise EventsFileError(f"{path}: 'events' must be a list")
    try:
        events = [event_from_dict(d) for d in raw]
    except EventsFileError as exc:
        raise EventsFileError(f"{path}: {exc}") from None
    meta = {k: v for k, v in doc.items() if k != "events"}
    return events, meta


def write_events_csv(path: str | os.PathLike[str], events: Sequence[SpotEvent]) -> Path:
    """Write ``events.csv``: one row per event, columns :data:`CSV_COLUMNS` then
    ``prob_<class>`` for every class seen; empty cells for missing values."""
    rows = [event_to_dict(ev) for ev in events]
    classes: list[str] = []
    for r in rows:
        for c in r["probabilities"]:
            if c not in classes:
                classes.append(c)
    header = list(CSV_COLUMNS) + [f"prob_{c}" for c in classes]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(safe_row(header))
    for r in rows:
        line = ["" if r[k] is None else r[k] for k in CSV_COLUMNS]
        line += ["" if c not in r["probabilities"] else r["probabilities"][c] for c in classes]
        w.writerow(safe_row(line))
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


def read_events_csv(path: str | os.PathLike[str]) -> list[SpotEvent]:
    """Read an ``events.csv`` written by :func:`write_events_csv` back into events."""
    path = Path(path)
    if not path.is_file():
        raise EventsFileError(f"events file {path} does not exist")
    out = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("onset", "apex", "offset") if c not in (reader.fieldnames or [])]
        if missing:
            raise EventsFileError(f"{path} is not an events.csv (no {', '.join(missing)} column)")
        for row in reader:
            d: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items()}
            d["probabilities"] = {k[5:]: float(v) for k, v in row.items()
                                  if k.startswith("prob_") and v != ""}
            for k in ("onset_s", "apex_s", "offset_s"):
                if d.get(k) is None:
                    d[k] = math.nan
            for k in ("id", "emitted_index"):
                if d.get(k) is None:
                    d.pop(k, None)
            out.append(event_from_dict(d))
    return out


def read_truth_json(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read a ``truth.json`` (format ``mestudio-truth/1``) written by ``mestudio synth``.

    Returns:
        ``(events, meta)``: the planted events as dicts with at least ``onset``, ``offset``
        (inclusive frame indices) and ``kind`` (``"micro"``, ``"macro"`` or ``"blink"``), and
        the other top-level keys.
    """
    path = Path(path)
    doc = _load_json(path, "truth")
    if not isinstance(doc, dict) or doc.get("format") != TRUTH_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise EventsFileError(
            f"{path} is not a mestudio truth file (format {found!r}, expected "
            f"{TRUTH_FORMAT!r}); pass the truth.json written by 'mestudio synth'")
    raw = doc.get("events")
    if not isinstance(raw, list):
        raise EventsFileError(f"{path}: 'events' must be a list")
    events = []
    for i, d in enumerate(raw):
        try:
            onset, offset = int(d["onset"]), int(d["offset"])
            kind = str(d["kind"])
        except (KeyError, TypeError, ValueError):
            raise EventsFileError(
                f"{path}: truth event {i} needs integer 'onset'/'offset' and a 'kind'") from None
        if offset < onset:
            raise EventsFileError(f"{path}: truth event {i} has offset {offset} < onset {onset}")
        events.append({**d, "onset": onset, "offset": offset, "kind": kind})
    meta = {k: v for k, v in doc.items() if k != "events"}
    return events, meta
