"""One recognition path: review's event panel cuts the very crops live recognition and
``analyze`` used (the alignment transforms ``frames.csv`` records), so an event gets the
numbers of the file (issue 22, item 12). Before, review aligned the key frames itself and
its probabilities differed from the file's by up to 0.16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mestudio.capture import open_source
from mestudio.cli import main
from mestudio.csvio import ALIGN_COLUMNS, read_frames_csv
from mestudio.engine.event_details import compute_event_details
from mestudio.events_io import read_events_json
from mestudio.inference.engine import engine_from_config

pytestmark = pytest.mark.usefixtures("torch_one_thread")
DEMO = "demo:duration=14,seed=3"


@pytest.fixture(scope="module")
def analysed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysed")
    assert main(["analyze", DEMO, "--out", str(out), "--no-progress"]) == 0
    return out


def test_frames_csv_records_the_alignment_of_every_face_frame(analysed: Path) -> None:
    header = (analysed / "frames.csv").read_text().splitlines()[0].split(",")
    assert all(c in header for c in ALIGN_COLUMNS)
    sig = read_frames_csv(analysed / "frames.csv")
    assert sig is not None and sig.transforms is not None
    m = sig.transform_at(10)
    assert m is not None and m.shape == (2, 3)
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    assert 0.05 < scale < 5  # a similarity: frame pixels -> 128 px crop


def test_review_recognises_an_event_exactly_as_the_analysis_did(analysed: Path) -> None:
    events, _ = read_events_json(analysed / "events.json")
    recognised = [e for e in events if e.prediction is not None]
    assert len(recognised) >= 3
    sig = read_frames_csv(analysed / "frames.csv")
    engine = engine_from_config()
    with open_source(DEMO) as source:
        for ev in recognised:
            details = compute_event_details(source.read, ev, engine=engine,
                                            transforms=sig.transform_at)
            assert details.prediction is not None, details.notes
            assert details.prediction.label == ev.prediction.label
            assert np.abs(details.prediction.probs - ev.prediction.probs).max() < 2e-3
