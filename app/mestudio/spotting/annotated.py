"""Spotting scored on hand-annotated real footage (``mestudio spot-eval --annotations``).

The annotation file is a CSV with one row per visible change of a face (the format of the
shared development set, ``data/real/annotations.csv``):

``clip,face,onset,apex,offset,kind,expression,confidence,note``

* ``clip``: the video's file name without ``.mp4``, relative to the annotation root
  (``../video/single_face`` is allowed); ``face``: the face number (0 for one face);
* ``onset``, ``apex``, ``offset``: 0-based frame numbers of the decoded video, inclusive;
* ``kind``: ``macro`` (a clearly visible expression), ``subtle`` (small but visible) or
  ``non-expression`` (talking, head turns, gaze shifts, eye closure: where nothing should be
  spotted);
* ``confidence``: ``high``, ``medium`` or ``low``.

Scores (per clip and pooled over the clips):

* **hit rate**: of the ``macro`` rows of high or medium confidence, the fraction that an
  expression event (``micro`` or ``macro``; never ``speech``) overlaps by at least a frame;
* **IoU F1**: MEGC one-to-one matching at IoU >= 0.5 (:mod:`mestudio.spotting.metrics`) of the
  expression events against the ``macro`` + ``subtle`` rows;
* **false events per minute**: expression events that overlap no ``macro``/``subtle`` row, per
  minute of video; and, of those, the ones inside a ``non-expression`` stretch (talking, head
  turns, gaze), per minute.

Labels (:func:`label_rows`, :func:`label_summary`): the ``macro`` rows whose description
names a class (:data:`LABEL_RULES`: smile/laugh -> positive, surprise -> surprise,
frown/sad/worried/fear -> negative) are scored twice: the label of the event that overlaps
them (named by the expression model or the micro-expression model, mapped to the three
classes by :data:`THREE_CLASS`), and the expression model's label of the annotated apex
frame (filled in by the command, which reads the frames), each with a confusion table.

Nothing here reads a video: :func:`score_clip` takes the events, :func:`plot_clips` the
per-frame signal (``frames.csv`` columns) for the picture.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.csvio import clean_text
from mestudio.errors import ConfigError
from mestudio.spotting.metrics import SpotScore, match_intervals

KINDS = ("macro", "subtle", "non-expression")
CONFIDENCES = ("high", "medium", "low")
COLUMNS = ("clip", "face", "onset", "apex", "offset", "kind", "expression", "confidence")
EXPRESSION_EVENT_KINDS = ("micro", "macro")
"""Event kinds that claim an expression (``speech`` events and others are not counted)."""


@dataclass(frozen=True)
class AnnotatedRow:
    """One annotated stretch of a clip (inclusive frames)."""

    clip: str
    face: int
    onset: int
    apex: int
    offset: int
    kind: str
    expression: str
    confidence: str
    line: int = 0

    @property
    def interval(self) -> tuple[int, int]:
        return self.onset, self.offset


def _clean(text: str) -> str:
    """Plain text (:func:`mestudio.csvio.clean_text`), whitespace trimmed."""
    return clean_text(text).strip()


def read_annotations(path: str | os.PathLike[str]) -> list[AnnotatedRow]:
    """Read and validate an annotation CSV.

    Raises:
        ConfigError: the file is missing, unreadable, or a row is malformed (the message
            names the file and the line).
    """
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise ConfigError(f"{p}: not an annotation file: missing column(s) "
                                  f"{', '.join(missing)} (expected {','.join(COLUMNS)})")
            rows: list[AnnotatedRow] = []
            for i, raw in enumerate(reader, start=2):
                d = {(k or "").strip(): (v or "") for k, v in raw.items() if k is not None}
                if not any(str(v).strip() for v in d.values()):
                    continue
                try:
                    onset, apex, offset, face = (int(str(d[c]).strip())
                                                 for c in ("onset", "apex", "offset", "face"))
                except ValueError:
                    raise ConfigError(f"{p}:{i}: onset, apex, offset and face must be whole "
                                      "frame numbers") from None
                kind = _clean(d["kind"]).lower()
                conf = _clean(d["confidence"]).lower()
                clip = _clean(d["clip"])
                if not clip:
                    raise ConfigError(f"{p}:{i}: empty clip name")
                if kind not in KINDS:
                    raise ConfigError(f"{p}:{i}: kind {kind!r} is not one of {', '.join(KINDS)}")
                if conf not in CONFIDENCES:
                    raise ConfigError(f"{p}:{i}: confidence {conf!r} is not one of "
                                      f"{', '.join(CONFIDENCES)}")
                if not 0 <= onset <= apex <= offset or face < 0:
                    raise ConfigError(f"{p}:{i}: frames must satisfy 0 <= onset <= apex <= "
                                      f"offset (got {onset}, {apex}, {offset})")
                rows.append(AnnotatedRow(clip, face, onset, apex, offset, kind,
                                         _clean(d["expression"]), conf, i))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such annotation file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{p}: cannot read the annotations: {exc}") from None
    if not rows:
        raise ConfigError(f"{p}: no annotation rows")
    return rows


def clips_of(rows: Iterable[AnnotatedRow]) -> list[str]:
    """The clip names in order of first appearance."""
    return list(dict.fromkeys(r.clip for r in rows))


def clip_path(root: str | os.PathLike[str], clip: str) -> Path:
    """The video of ``clip`` under ``root`` (``clip`` + ``.mp4``, or the name as given when it
    already has a suffix)."""
    p = Path(root) / clip
    return p if p.suffix else p.with_name(p.name + ".mp4")


def clip_name(clip: str) -> str:
    """A folder-safe name of a clip (``../video/single_face`` -> ``single_face``)."""
    return Path(clip).name


@dataclass
class ClipScore:
    """The scores of one clip (or, added up, of several)."""

    clip: str
    minutes: float = 0.0
    n_events: int = 0
    hits: int = 0
    hit_targets: int = 0
    spot: SpotScore = field(default_factory=lambda: SpotScore(0, 0, 0))
    false_events: int = 0
    false_in_nonexpr: int = 0
    n_speech: int = 0
    missed: list[str] = field(default_factory=list)

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.hit_targets if self.hit_targets else None

    @property
    def false_per_min(self) -> float | None:
        return self.false_events / self.minutes if self.minutes > 0 else None

    @property
    def false_nonexpr_per_min(self) -> float | None:
        return self.false_in_nonexpr / self.minutes if self.minutes > 0 else None

    def __add__(self, other: ClipScore) -> ClipScore:
        return ClipScore("pooled", self.minutes + other.minutes, self.n_events + other.n_events,
                         self.hits + other.hits, self.hit_targets + other.hit_targets,
                         self.spot + other.spot, self.false_events + other.false_events,
                         self.false_in_nonexpr + other.false_in_nonexpr,
                         self.n_speech + other.n_speech, self.missed + other.missed)

    def as_dict(self) -> dict[str, Any]:
        return {"clip": self.clip, "minutes": round(self.minutes, 4), "events": self.n_events,
                "speech_events": self.n_speech,
                "hits": self.hits, "hit_targets": self.hit_targets, "hit_rate": self.hit_rate,
                **{f"iou_{k}": v for k, v in self.spot.as_dict().items()},
                "false_events": self.false_events, "false_per_min": self.false_per_min,
                "false_in_non_expression": self.false_in_nonexpr,
                "false_in_non_expression_per_min": self.false_nonexpr_per_min,
                "missed": list(self.missed)}


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _event_interval(ev: Any) -> tuple[int, int]:
    if isinstance(ev, dict):
        return int(ev["onset"]), int(ev["offset"])
    return int(ev.onset), int(ev.offset)


def _event_kind(ev: Any) -> str:
    return str(ev.get("kind", "") if isinstance(ev, dict) else getattr(ev, "kind", ""))


def score_clip(clip: str, rows: Sequence[AnnotatedRow], events: Sequence[Any],
               n_frames: int, fps: float, iou: float = 0.5) -> ClipScore:
    """Score the events of one clip (face 0 of the annotation) against its rows."""
    rows = [r for r in rows if r.clip == clip]
    expr_events = [e for e in events if _event_kind(e) in EXPRESSION_EVENT_KINDS]
    ivs = [_event_interval(e) for e in expr_events]
    minutes = n_frames / fps / 60.0 if fps > 0 and n_frames > 0 else 0.0
    targets = [r for r in rows if r.kind == "macro" and r.confidence in ("high", "medium")]
    hit = [any(_overlaps(r.interval, iv) for iv in ivs) for r in targets]
    truth = [r.interval for r in rows if r.kind in ("macro", "subtle")]
    pairs = match_intervals(ivs, truth, iou)
    tp = len(pairs)
    spot = SpotScore(tp, len(ivs) - tp, len(truth) - tp)
    expr_rows = [r.interval for r in rows if r.kind in ("macro", "subtle")]
    non_rows = [r.interval for r in rows if r.kind == "non-expression"]
    false = [iv for iv in ivs if not any(_overlaps(iv, t) for t in expr_rows)]
    false_non = [iv for iv in false if any(_overlaps(iv, t) for t in non_rows)]
    missed = [f"{clip_name(clip)} {r.onset}-{r.offset} {r.expression}"
              for r, h in zip(targets, hit, strict=True) if not h]
    return ClipScore(clip, minutes, len(ivs), sum(hit), len(targets), spot, len(false),
                     len(false_non), sum(_event_kind(e) == "speech" for e in events), missed)


def pooled(scores: Iterable[ClipScore]) -> ClipScore:
    """The scores of several clips added up (counts summed, then the rates)."""
    total = ClipScore("pooled")
    for s in scores:
        total = total + s
    return total


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def format_table(scores: Sequence[ClipScore]) -> str:
    """The per-clip and pooled table ``spot-eval --annotations`` prints."""
    head = (f"{'clip':<22} {'min':>5} {'events':>6} {'hit':>9} {'IoU P':>6} {'IoU R':>6} "
            f"{'IoU F1':>6} {'false/min':>9} {'in talk/min':>11} {'speech':>6}")
    lines = [head, "-" * len(head)]
    for s in [*scores, pooled(scores)]:
        hit = f"{s.hits}/{s.hit_targets}" if s.hit_targets else "-"
        lines.append(f"{clip_name(s.clip):<22} {s.minutes:5.2f} {s.n_events:6d} {hit:>9} "
                     f"{_fmt(s.spot.precision):>6} {_fmt(s.spot.recall):>6} "
                     f"{_fmt(s.spot.f1):>6} {_fmt(s.false_per_min):>9} "
                     f"{_fmt(s.false_nonexpr_per_min):>11} {s.n_speech:6d}")
    return "\n".join(lines)


_KIND_COLOURS = {"macro": "#2e7d32", "subtle": "#9ccc65", "non-expression": "#bdbdbd"}
_EVENT_COLOURS = {"micro": "#d32f2f", "macro": "#1565c0", "speech": "#ff9800"}
_ACTIVITY_COLOURS = {"moving": "#ffb74d", "expression": "#64b5f6"}


def plot_clips(path: str | os.PathLike[str], clips: Sequence[dict[str, Any]]) -> Path:
    """One row per clip: the spotter's plotted score and threshold, the annotated stretches
    (green: expressions, grey: talking/head/gaze), the events (blue macro, red micro) and
    what the spotter saw (orange: moving or talking, light blue: expression). ``clips``:
    dicts with ``name``, ``signal`` (a :class:`~mestudio.csvio.VideoSignals` of the clip's
    ``frames.csv``, by frame number), ``rows`` and ``events``. Written atomically as PNG."""
    from mestudio.fsutil import agg_matplotlib

    agg_matplotlib()
    from matplotlib.figure import Figure

    from mestudio.fsutil import atomic_write_bytes

    n = max(1, len(clips))
    fig = Figure(figsize=(14, 1.9 * n), dpi=90)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, c in zip(axes, clips, strict=False):
        sig = c["signal"]
        frames = np.arange(len(sig.times))
        combined = sig.combined if sig.combined is not None else np.full(len(frames), np.nan)
        top = float(np.nanmax(combined, initial=1.0)) if len(frames) else 1.0
        ax.plot(frames, combined, lw=0.8, color="black", label="signal")
        if sig.threshold is not None:
            ax.plot(frames, sig.threshold, lw=0.8, color="#7b1fa2", ls="--", label="threshold")
        for r in c["rows"]:
            y0, y1 = (0.0, 0.18) if r.kind == "non-expression" else (0.2, 0.38)
            ax.axvspan(r.onset, r.offset + 1, ymin=y0, ymax=y1,
                       color=_KIND_COLOURS[r.kind], alpha=0.8, lw=0)
        for e in c["events"]:
            s, t = _event_interval(e)
            ax.axvspan(s, t + 1, ymin=0.42, ymax=0.55,
                       color=_EVENT_COLOURS.get(_event_kind(e), "#000000"), alpha=0.9, lw=0)
        for f, act in enumerate(sig.activity if sig.activity is not None else ()):
            if act in _ACTIVITY_COLOURS:
                ax.axvspan(f, f + 1, ymin=0.58, ymax=0.64, color=_ACTIVITY_COLOURS[act], lw=0)
        ax.set_xlim(0, max(len(frames) - 1, 1))
        ax.set_ylim(0, top * 1.05)
        ax.set_ylabel(clip_name(c["name"]), rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_title("annotated: expression (dark green; subtle: light green), talking/head/"
                      "gaze (grey) · events: macro (blue), micro (red)\nthe spotter saw: "
                      "moving or talking (orange), an expression (light blue) · score "
                      "(black), threshold (dashed)", fontsize=9)
    axes[-1].set_xlabel("frame")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(Path(path), buf.getvalue())


# ------------------------------------------------------------------------------- labels
#: Keywords of an annotation's description -> the three classes both recognisers can be
#: compared on (the micro-expression model's: negative, positive, surprise). The first rule
#: that matches wins; descriptions that match none (a pout, a tongue out, a grimace, a
#: smirk) are not scored.
LABEL_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("smirk",)),
    ("positive", ("smile", "laugh")),
    ("surprise", ("surprise", "jaw drop")),
    ("negative", ("frown", "sad", "crying", "cry", "worried", "fear", "disgust", "anger",
                  "angry")),
)
#: A class of either model -> the three classes (FER2013 and the 7-class micro sets).
THREE_CLASS = {"happy": "positive", "happiness": "positive", "positive": "positive",
               "surprise": "surprise", "negative": "negative", "angry": "negative",
               "anger": "negative", "disgust": "negative", "fear": "negative",
               "sad": "negative", "sadness": "negative", "contempt": "negative",
               "repression": "negative"}
LABEL_CLASSES = ("negative", "positive", "surprise")


def expected_class(description: str) -> str | None:
    """The class an annotation's description implies (:data:`LABEL_RULES`), or None."""
    text = description.lower()
    for cls, words in LABEL_RULES:
        if any(w in text for w in words):
            return cls or None
    return None


def three_class(label: str | None) -> str | None:
    """A model's class as negative/positive/surprise; None for neutral, others, unknown."""
    return THREE_CLASS.get(str(label).lower()) if label else None


@dataclass(frozen=True)
class LabelRow:
    """One annotated expression with a class: what the overlapping event was called, and
    what the expression model says of the annotated apex frame."""

    clip: str
    onset: int
    apex: int
    offset: int
    expression: str
    expected: str
    #: the 3-class label of the overlapping event (None: no event, or no emotion)
    event_label: str | None
    #: which model named that event: "expression", "micro" or "" (none)
    event_source: str
    event_spotted: bool
    #: the expression model on the apex frame: raw class and 3-class (None: none given)
    apex_raw: str | None = None
    apex_label: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _event_prediction(ev: Any) -> tuple[str | None, str]:
    pred = ev.get("prediction") if isinstance(ev, dict) else getattr(ev, "prediction", None)
    if pred is None:
        return None, ""
    return (None if pred.emotion is None else three_class(pred.label)), str(pred.source)


def label_rows(clip: str, rows: Sequence[AnnotatedRow], events: Sequence[Any]) -> list[LabelRow]:
    """The labelled ``macro`` rows of ``clip`` with the label of the event that overlaps
    each most (expression events only)."""
    out = []
    expr_events = [e for e in events if _event_kind(e) in EXPRESSION_EVENT_KINDS]
    for r in rows:
        if r.clip != clip or r.kind != "macro":
            continue
        expected = expected_class(r.expression)
        if expected is None:
            continue
        best, overlap = None, 0
        for ev in expr_events:
            a, b = _event_interval(ev)
            common = min(b, r.offset) - max(a, r.onset) + 1
            if common > overlap:
                best, overlap = ev, common
        label, source = _event_prediction(best) if best is not None else (None, "")
        out.append(LabelRow(clip, r.onset, r.apex, r.offset, r.expression, expected, label,
                            source, best is not None))
    return out


def _confusion(pairs: Sequence[tuple[str, str | None]]) -> dict[str, dict[str, int]]:
    table = {c: {p: 0 for p in (*LABEL_CLASSES, "none")} for c in LABEL_CLASSES}
    for want, got in pairs:
        table[want][got or "none"] += 1
    return table


def label_summary(rows: Sequence[LabelRow]) -> dict[str, Any]:
    """Accuracy (overall and per class) and confusion tables of the event labels (the events
    that overlap a labelled expression) and of the apex-frame labels."""
    def part(pairs: list[tuple[str, str | None]]) -> dict[str, Any]:
        right = sum(w == g for w, g in pairs)
        per: dict[str, dict[str, Any]] = {c: {"n": sum(w == c for w, _ in pairs),
                   "right": sum(w == g == c for w, g in pairs)} for c in LABEL_CLASSES}
        for v in per.values():
            v["accuracy"] = v["right"] / v["n"] if v["n"] else None
        return {"n": len(pairs), "right": right,
                "accuracy": right / len(pairs) if pairs else None,
                "per_class": per, "confusion": _confusion(pairs)}

    spotted = [r for r in rows if r.event_spotted]
    by_source: dict[str, Any] = {}
    for source in sorted({r.event_source for r in spotted if r.event_source}):
        by_source[source] = part([(r.expected, r.event_label) for r in spotted
                                  if r.event_source == source])
    apex = [(r.expected, r.apex_label) for r in rows if r.apex_raw is not None]
    return {"labelled": len(rows), "spotted": len(spotted),
            "events": part([(r.expected, r.event_label) for r in spotted]),
            "events_by_model": by_source,
            "apex": part(apex) if apex else None}


def format_labels(summary: Mapping[str, Any]) -> str:
    """The label part of the report: accuracies and confusion tables."""
    lines = [f"labels: {summary['labelled']} annotated expressions with a class "
             f"(smile/laugh -> positive, surprise -> surprise, frown/sad/worried/fear -> "
             f"negative), {summary['spotted']} overlapped by an event"]

    def block(title: str, part: Mapping[str, Any]) -> None:
        per = ", ".join(f"{c} {v['right']}/{v['n']}" for c, v in part["per_class"].items()
                        if v["n"])
        lines.append(f"{title}: {part['right']}/{part['n']} right "
                     f"({_fmt(part['accuracy'])}); per class: {per}")
        head = "  truth \\ said  " + " ".join(f"{c:>9}" for c in (*LABEL_CLASSES, "none"))
        lines.append(head)
        for want, row in part["confusion"].items():
            if sum(row.values()):
                lines.append(f"  {want:<14} " + " ".join(f"{row[c]:>9d}" for c in row))

    if summary["spotted"]:
        block("event labels", summary["events"])
        for source, part in summary["events_by_model"].items():
            lines.append(f"  named by the {source} model: {part['right']}/{part['n']}")
    if summary.get("apex"):
        block("expression model on the annotated apex frame", summary["apex"])
    return "\n".join(lines)
