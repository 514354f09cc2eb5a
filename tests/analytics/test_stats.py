"""Kiosk statistics: aggregation, the stats command, CSV and chart output."""

from __future__ import annotations

import csv
from datetime import datetime

import pytest

from mestudio.analytics.eventlog import EventLog
from mestudio.analytics.stats import aggregate, render_chart
from mestudio.cli import main


def _t(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2025, 3, day, hour, minute).astimezone().timestamp()


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "kiosk.sqlite"
    with EventLog(path, exhibit="hall-a") as elog:
        elog.log("visit", duration_s=10, time_unix=_t(3, 9, 5))
        elog.log("micro", emotion="happiness", confidence=0.9, duration_s=0.3,
                 time_unix=_t(3, 9, 6))
        elog.log("micro", emotion="surprise", confidence=0.5, duration_s=0.2,
                 time_unix=_t(3, 9, 7))
        elog.log("macro", duration_s=1.5, time_unix=_t(3, 10, 1))
        elog.log("visit", duration_s=30, time_unix=_t(4, 14), exhibit="hall-b")
        elog.log("micro", duration_s=0.4, time_unix=_t(4, 14, 1), exhibit="hall-b")
    return path


def test_aggregate_by_day_hour_and_exhibit(db):
    with EventLog(db, readonly=True) as elog:
        events = elog.events()
    by_day = aggregate(events, "day")
    assert [r.key for r in by_day.rows] == ["2025-03-03", "2025-03-04"]
    d3, d4 = by_day.rows
    assert (d3.visits, d3.micro, d3.macro) == (1, 2, 1)
    assert d3.emotions == {"happiness": 1, "surprise": 1}
    assert d3.mean_confidence == pytest.approx(0.7)
    assert d4.emotions == {"unrecognised": 1} and d4.mean_confidence is None
    assert by_day.emotions[-1] == "unrecognised"
    by_hour = aggregate(events, "hour")
    assert [r.key for r in by_hour.rows] == ["2025-03-03 09:00", "2025-03-03 10:00",
                                              "2025-03-04 14:00"]
    by_ex = aggregate(events, "exhibit")
    assert {r.key: r.visits for r in by_ex.rows} == {"hall-a": 1, "hall-b": 1}
    assert by_ex.total.micro == 3 and by_ex.total.mean_visit_s == pytest.approx(20)


def test_stats_command_prints_exports_csv_and_renders_a_chart(db, tmp_path, capsys):
    out_csv, out_png = tmp_path / "o.csv", tmp_path / "o.png"
    assert main(["stats", "--db", str(db), "--by", "day", "--csv", str(out_csv),
                 "--chart", str(out_png)]) == 0
    text = capsys.readouterr().out
    assert "6 logged events" in text and "2025-03-03" in text and "total" in text
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["day"] for r in rows] == ["2025-03-03", "2025-03-04"]
    assert rows[0]["micro_happiness"] == "1" and rows[0]["visits"] == "1"
    import matplotlib.image as mpimg

    img = mpimg.imread(out_png)
    assert img.shape[0] > 200 and img.shape[1] > 400
    assert img[..., :3].std() > 0.05  # something was drawn


def test_stats_filters_by_exhibit_and_date(db, tmp_path, capsys):
    assert main(["stats", "--db", str(db), "--by", "exhibit", "--exhibit", "hall-b"]) == 0
    text = capsys.readouterr().out
    assert "hall-b" in text and "hall-a" not in text
    assert main(["stats", "--db", str(db), "--since", "2025-03-04"]) == 0
    assert "2 logged events" in capsys.readouterr().out


def test_stats_on_a_missing_database_is_a_one_line_error(tmp_path, capsys):
    assert main(["stats", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_empty_log_renders_a_no_events_chart(tmp_path):
    png = render_chart(aggregate([], "day"), tmp_path / "e.png")
    assert png.stat().st_size > 1000


def test_recognised_macro_events_have_emotion_columns_and_confidence():
    """``stats`` showed ``mean_confidence -`` and no emotion for recognised macro events
    (issue 22, item 18)."""
    from mestudio.analytics.eventlog import LoggedEvent
    from mestudio.analytics.stats import aggregate

    t = 1_700_000_000.0
    rows = [LoggedEvent(1, "", t, "hall", "macro", "happiness", 0.8, 1.2, 0),
            LoggedEvent(2, "", t + 1, "hall", "macro", "happiness", 0.6, 1.0, 0),
            LoggedEvent(3, "", t + 2, "hall", "macro", None, None, 2.0, 0)]
    table = aggregate(rows, by="exhibit")
    assert table.header() == ["exhibit", "visits", "mean_visit_s", "micro", "macro",
                              "macro_happiness", "mean_confidence"]
    assert table.as_records() == [["hall", 0, None, 0, 3, 2, 0.7]]
