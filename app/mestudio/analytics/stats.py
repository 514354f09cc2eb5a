"""Engagement statistics from the kiosk event log: aggregation, CSV export and a chart PNG.

Aggregation keys (``by``):

* ``"hour"``: calendar hour in the local time the event was logged with (``2025-11-21 17:00``);
* ``"hour-of-day"``: hour of the day over all days (``17:00``), the busy-hours profile;
* ``"day"``: calendar day (``2025-11-21``);
* ``"exhibit"``: exhibit name.

Each row counts visits (a face in view), micro- and macro-expressions, micro-expressions per
recognised emotion (``unrecognised`` when no emotion was given), and gives the mean visit
duration (seconds) and the mean recognition confidence.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mestudio.analytics.eventlog import LoggedEvent
from mestudio.csvio import safe_row
from mestudio.errors import ConfigError
from mestudio.fsutil import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

GROUPINGS = ("hour", "hour-of-day", "day", "exhibit")
UNRECOGNISED = "unrecognised"


@dataclass
class StatsRow:
    """Aggregates of one bucket.

    Attributes:
        key: bucket label (see module docstring).
        visits: number of visits (a face came into view and left).
        visit_time_s: total time faces were in view, seconds.
        micro, macro: number of micro-/macro-expressions.
        emotions: micro-expression count per recognised emotion (``unrecognised`` for none).
        macro_emotions: macro-expression count per recognised emotion (only those with one).
        confidence_sum, confidence_n: for the mean recognition confidence (micro and macro
            events with a confidence).
    """

    key: str
    visits: int = 0
    visit_time_s: float = 0.0
    micro: int = 0
    macro: int = 0
    emotions: dict[str, int] = field(default_factory=dict)
    macro_emotions: dict[str, int] = field(default_factory=dict)
    confidence_sum: float = 0.0
    confidence_n: int = 0

    @property
    def mean_visit_s(self) -> float | None:
        return self.visit_time_s / self.visits if self.visits else None

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence_sum / self.confidence_n if self.confidence_n else None


@dataclass
class StatsTable:
    """The result of :func:`aggregate`: rows sorted by key, emotion columns sorted by name
    (``macro_emotions``: the emotions recognised for macro-expressions, when any were)."""

    by: str
    rows: list[StatsRow]
    emotions: list[str]
    macro_emotions: list[str] = field(default_factory=list)

    @property
    def total(self) -> StatsRow:
        """All rows summed (key ``"total"``)."""
        t = StatsRow("total")
        for r in self.rows:
            t.visits += r.visits
            t.visit_time_s += r.visit_time_s
            t.micro += r.micro
            t.macro += r.macro
            t.confidence_sum += r.confidence_sum
            t.confidence_n += r.confidence_n
            for e, n in r.emotions.items():
                t.emotions[e] = t.emotions.get(e, 0) + n
            for e, n in r.macro_emotions.items():
                t.macro_emotions[e] = t.macro_emotions.get(e, 0) + n
        return t

    def header(self) -> list[str]:
        return [self.by, "visits", "mean_visit_s", "micro", "macro",
                *[f"micro_{e}" for e in self.emotions],
                *[f"macro_{e}" for e in self.macro_emotions], "mean_confidence"]

    def as_records(self, with_total: bool = False) -> list[list[object]]:
        """Rows as lists matching :meth:`header` (None for undefined means)."""
        out: list[list[object]] = []
        for r in [*self.rows, *([self.total] if with_total else [])]:
            mv, mc = r.mean_visit_s, r.mean_confidence
            out.append([r.key, r.visits, None if mv is None else round(mv, 2), r.micro, r.macro,
                        *[r.emotions.get(e, 0) for e in self.emotions],
                        *[r.macro_emotions.get(e, 0) for e in self.macro_emotions],
                        None if mc is None else round(mc, 3)])
        return out


def bucket_key(event: LoggedEvent, by: str) -> str:
    """The bucket of one event for grouping ``by`` (local time of logging)."""
    if by == "exhibit":
        return event.exhibit
    dt = event.local_datetime
    if by == "hour":
        return dt.strftime("%Y-%m-%d %H:00")
    if by == "hour-of-day":
        return dt.strftime("%H:00")
    if by == "day":
        return dt.strftime("%Y-%m-%d")
    raise ConfigError(f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}")


def aggregate(events: Iterable[LoggedEvent], by: str = "day") -> StatsTable:
    """Group events into buckets and count them.

    Args:
        events: rows of the event log.
        by: one of :data:`GROUPINGS`.
    """
    if by not in GROUPINGS:
        raise ConfigError(f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}")
    rows: dict[str, StatsRow] = {}
    emotions: set[str] = set()
    macro_emotions: set[str] = set()
    for ev in events:
        key = bucket_key(ev, by)
        row = rows.setdefault(key, StatsRow(key))
        if ev.kind == "visit":
            row.visits += 1
            row.visit_time_s += ev.duration_s
        elif ev.kind == "macro":
            row.macro += 1
            if ev.emotion:  # recognised (a macro-expression model, or the micro one's hint)
                row.macro_emotions[ev.emotion] = row.macro_emotions.get(ev.emotion, 0) + 1
                macro_emotions.add(ev.emotion)
                if ev.confidence is not None:
                    row.confidence_sum += ev.confidence
                    row.confidence_n += 1
        elif ev.kind == "micro":
            row.micro += 1
            emo = ev.emotion or UNRECOGNISED
            row.emotions[emo] = row.emotions.get(emo, 0) + 1
            emotions.add(emo)
            if ev.confidence is not None:
                row.confidence_sum += ev.confidence
                row.confidence_n += 1
    ordered = sorted(emotions, key=lambda e: (e == UNRECOGNISED, e))
    return StatsTable(by, [rows[k] for k in sorted(rows)], ordered, sorted(macro_emotions))


def format_table(table: StatsTable) -> str:
    """A readable fixed-width text table with a total row."""
    header = table.header()
    recs = table.as_records(with_total=bool(table.rows))
    cells = [[("-" if v is None else str(v)) for v in r] for r in recs]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(header, widths, strict=False)))]
    lines.append("  ".join("-" * w for w in widths))
    for n, c in enumerate(cells):
        if n == len(cells) - 1 and table.rows:
            lines.append("  ".join("-" * w for w in widths))
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(c, widths, strict=False))))
    if not table.rows:
        lines.append("(no events)")
    return "\n".join(lines)


def write_csv(table: StatsTable, path: str | os.PathLike[str]) -> Path:
    """Write the aggregates (without the total row) as CSV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(safe_row(table.header()))
    for r in table.as_records():
        w.writerow(safe_row("" if v is None else v for v in r))
    atomic_write_text(path, buf.getvalue())  # complete or not there at all
    return path


def render_chart(table: StatsTable, path: str | os.PathLike[str], *,
                 title: str | None = None, size_in: tuple[float, float] = (10.0, 5.0),
                 dpi: int = 100) -> Path:
    """Render a PNG of :func:`chart_figure`. Uses matplotlib's Agg backend (no display
    needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = chart_figure(table, title=title, size_in=size_in, dpi=dpi)
    with atomic_path(path, keep_suffix=True) as tmp:  # complete or not there at all
        fig.savefig(tmp, format=path.suffix[1:].lower() or "png")
    log.info("chart written to %s", path)
    return path


def chart_figure(table: StatsTable, *, title: str | None = None,
                 size_in: tuple[float, float] = (10.0, 5.0), dpi: int = 100) -> Any:
    """The chart as a matplotlib ``Figure``: stacked bars of micro-expressions per emotion
    (the GUI's emotion colours, :mod:`mestudio.colours`) and macro-expressions per bucket,
    visits as a line on a second axis with whole-number ticks, and the legend beside the
    plot, never over a bar."""
    from mestudio.fsutil import agg_matplotlib

    agg_matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from mestudio.colours import DEFAULT_EMOTION_COLOUR, emotion_colour

    fig = Figure(figsize=(float(size_in[0]), float(size_in[1])), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    keys = [r.key for r in table.rows]
    x = list(range(len(keys)))
    if not keys:
        ax.text(0.5, 0.5, "no events logged", ha="center", va="center", fontsize=16,
                transform=ax.transAxes)
        ax.set_axis_off()
    else:
        bottom = [0.0] * len(keys)
        for emo in table.emotions:
            vals = [float(r.emotions.get(emo, 0)) for r in table.rows]
            color = DEFAULT_EMOTION_COLOUR if emo == "unrecognised" else emotion_colour(emo)
            ax.bar(x, vals, bottom=bottom, label=f"micro: {emo}", color=color,
                   edgecolor="#555555", linewidth=0.5)
            bottom = [b + v for b, v in zip(bottom, vals, strict=False)]
        macro = [float(r.macro) for r in table.rows]
        ax.bar(x, macro, bottom=bottom, label="macro", color="white", edgecolor="#555555",
               hatch="//")
        ax.set_ylabel("expressions")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: whole numbers
        ax.set_xticks(x, keys, rotation=45 if len(keys) > 6 else 0, ha="right"
                      if len(keys) > 6 else "center")
        ax.set_xlabel(table.by)
        handles, labels = ax.get_legend_handles_labels()
        if any(r.visits for r in table.rows):
            ax2 = ax.twinx()
            ax2.plot(x, [r.visits for r in table.rows], "o-", color="#d62728", label="visits")
            ax2.set_ylabel("visits", color="#d62728")
            ax2.set_ylim(bottom=0)
            ax2.yaxis.set_major_locator(MaxNLocator(integer=True))  # no "2.5 visits"
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        # one legend, outside the axes (right of the plot): it never hides a bar
        fig.legend(handles, labels, loc="outside right upper", fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or f"mestudio kiosk: expressions by {table.by}")
    return fig
