"""``mestudio stats``: engagement statistics from a kiosk event log."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

NAME = "stats"
HELP = "aggregate a kiosk event log by hour, day or exhibit; export CSV and a chart PNG"


def _date(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date/time: {text!r} (use 2025-11-21 or "
                                         "2025-11-21T14:00)") from exc
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time
    return dt.timestamp()


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None,
                        help="event log written by `mestudio kiosk` (default: the kiosk's "
                        "configured/default database)")
    parser.add_argument("--by", choices=("hour", "hour-of-day", "day", "exhibit"),
                        default="day", help="grouping (default: day)")
    parser.add_argument("--exhibit", default=None, help="only this exhibit")
    parser.add_argument("--since", type=_date, default=None, metavar="DATE",
                        help="only events at or after this local date/time (ISO 8601)")
    parser.add_argument("--until", type=_date, default=None, metavar="DATE",
                        help="only events before this local date/time (ISO 8601)")
    parser.add_argument("--csv", type=Path, default=None, metavar="OUT",
                        help="write the aggregates to this CSV file")
    parser.add_argument("--chart", type=Path, default=None, metavar="OUT.png",
                        help="render a chart to this PNG file")


def run(args: argparse.Namespace) -> int:
    from mestudio.analytics.eventlog import EventLog, resolve_db_path
    from mestudio.analytics.stats import aggregate, format_table, render_chart, write_csv
    from mestudio.config import load_settings

    db = resolve_db_path(args.db, load_settings().kiosk.db_path)
    with EventLog(db, readonly=True) as elog:
        events = elog.events(since=args.since, until=args.until, exhibit=args.exhibit)
    table = aggregate(events, by=args.by)
    if elog.damage:
        # What could be read is shown; the damage in one line (the kiosk moves the file
        # aside and starts a fresh log on its next start).
        print(f"mestudio stats: warning: {elog.damage}", file=sys.stderr)
    print(f"{db}: {len(events)} logged events" + (" (damaged file: incomplete)"
                                                  if elog.damage else ""))
    print(format_table(table))
    if args.csv:
        print(f"CSV written to {write_csv(table, args.csv)}")
    if args.chart:
        title = f"mestudio kiosk{' — ' + args.exhibit if args.exhibit else ''}: " \
                f"expressions by {args.by}"
        print(f"chart written to {render_chart(table, args.chart, title=title)}")
    return 0
