"""The kiosk statistics chart (issue 10): the GUI's emotion colours, whole-number visit
ticks, and a legend that covers no bar."""

from __future__ import annotations

from datetime import datetime

from matplotlib.colors import to_rgba

from mestudio.analytics.eventlog import EventLog
from mestudio.analytics.stats import aggregate, chart_figure
from mestudio.colours import emotion_colour


def _t(day: int, hour: int) -> float:
    return datetime(2025, 3, day, hour, 10).astimezone().timestamp()


def test_chart_uses_the_gui_colours_whole_visits_and_a_legend_beside_the_bars(tmp_path):
    path = tmp_path / "kiosk.sqlite"
    with EventLog(path, exhibit="hall-a") as elog:
        for day, visits, micro in ((3, 1, 6), (4, 3, 9), (5, 2, 7)):
            for _ in range(visits):
                elog.log("visit", duration_s=10, time_unix=_t(day, 9))
            for k in range(micro):
                elog.log("micro", emotion=("happiness", "surprise", "disgust")[k % 3],
                         confidence=0.8, duration_s=0.3, time_unix=_t(day, 10))
            elog.log("micro", duration_s=0.3, time_unix=_t(day, 11))  # unrecognised
    with EventLog(path, readonly=True) as elog:
        table = aggregate(elog.events(), "day")
    fig = chart_figure(table)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    ax = fig.axes[0]
    for container in ax.containers:
        emo = container.get_label().removeprefix("micro: ")
        if emo in ("happiness", "surprise", "disgust"):
            assert container.patches[0].get_facecolor() == to_rgba(emotion_colour(emo))
    visits_axis = fig.axes[1]
    ticks = [t for t in visits_axis.get_yticks() if visits_axis.get_ylim()[0] <= t
             <= visits_axis.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    renderer = canvas.get_renderer()
    legends = fig.legends + [a.get_legend() for a in fig.axes if a.get_legend() is not None]
    assert legends
    bars = [p.get_window_extent(renderer) for c in ax.containers for p in c.patches]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(b) for b in bars if b.width > 0 and b.height > 0)
