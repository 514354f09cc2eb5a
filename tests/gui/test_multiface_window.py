"""The live window with every face analysed (scripted two-face pipeline, offscreen): each
face's box and number in its own colour, Tab and a click choose whose signal the plot shows
(the worker's session follows), the event table's face column, and each event's Grad-CAM
inset shows its own face. The single-face mode looks as before."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage

from mestudio.capture.base import FrameSource
from mestudio.engine.overlays import face_colour
from mestudio.types import FaceObservation, FaceResult, Frame, SpotterState

#: face 1: the larger, on the dark left half; face 2 on the bright right half
BOXES = {1: (30.0, 50.0, 120.0, 140.0), 2: (200.0, 70.0, 90.0, 110.0)}
LEVEL = {1: 0.2, 2: 0.9}  # each face's combined signal


class HalfSource(FrameSource):
    """320×240: the left half dark grey, the right half light grey (camera-like)."""

    def __init__(self, n: int = 100000) -> None:
        super().__init__()
        self.name, self.fps, self.n_frames = "halves", 30.0, n
        self.size, self.seekable = (320, 240), True
        self._img = np.full((240, 320, 3), 40, np.uint8)
        self._img[:, 160:] = 200

    def _read(self, i: int) -> Frame:
        return Frame(i, i / 30.0, self._img.copy())


def _face(frame: Frame, box: tuple[float, float, float, float]) -> FaceObservation:
    import cv2

    bx, by, bw, bh = box
    s = 64 / bw
    m = np.array([[s, 0, -bx * s], [0, s, -by * s]], np.float64)
    aligned = cv2.warpAffine(frame.image, m, (64, 64))
    pts = np.array([[bx + bw * 0.3, by + bh * 0.4], [bx + bw * 0.7, by + bh * 0.4]], np.float32)
    return FaceObservation(face_found=True, n_faces=2, confidence=0.9, box=box, landmarks=pts,
                           transform=m, aligned=aligned, mode="landmarks")


def two_face_factory(fakes, script=()):
    """A ``pipeline_fn`` of scripted pipelines that see two faces (``.last``: the newest)."""

    class TwoFaces(fakes.ScriptedPipeline):
        def __init__(self, config, **kw):
            super().__init__(config, **kw)
            self.selected_face = None
            self.followed: list[int] = []

        def process(self, frame, capture_time=None):
            res = super().process(frame, capture_time)
            faces = [FaceResult(fid, _face(frame, box),
                                SpotterState(signal={"brow_left": LEVEL[fid]},
                                             combined=LEVEL[fid], threshold=0.95))
                     for fid, box in BOXES.items()]
            primary = next((f for f in faces if f.face_id == self.selected_face), faces[0])
            self.followed.append(primary.face_id)
            res.face, res.spotter, res.faces = primary.face, primary.spotter, faces
            return res

    def factory(config):
        pipe = TwoFaces(config, script=list(script))
        factory.last = pipe
        return pipe

    factory.last = None
    return factory


def _pixels(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(h, img.bytesPerLine())
    return arr[:, : w * 3].reshape(h, w, 3).copy()


def _widget_box(video, box) -> tuple[float, float, float, float]:
    target = video.image_rect()
    scale = target.width() / 320
    x, y, w, h = box
    return target.x() + x * scale, target.y() + y * scale, w * scale, h * scale


def _edge_has(arr, video, box, colour: str) -> bool:
    """Some pixel along the left edge of ``box`` (widget coordinates) has ``colour``."""
    x, y, _w, h = _widget_box(video, box)
    want = np.array(QColor(colour).getRgb()[:3], float)
    xs = range(int(x) - 2, int(x) + 3)
    ys = range(int(y + 0.3 * h), int(y + 0.7 * h))
    patch = arr[np.ix_(list(ys), list(xs))].reshape(-1, 3).astype(float)
    return bool((np.abs(patch - want).max(axis=1) < 40).any())


def _combined(window) -> float:
    _t, values = window.plot.samples("combined")
    return float(values[-1]) if len(values) else float("nan")


def test_every_face_is_drawn_and_the_plot_follows_the_chosen_face(qtbot, make_window, fakes):
    ev1 = fakes.planted_event(20, 22, 26, 30.0)
    ev1.face_id = 1
    ev2 = fakes.planted_event(30, 33, 36, 30.0)
    ev2.face_id = 2
    factory = two_face_factory(fakes, [(28, ev1, "surprise"), (40, ev2, "happiness")])
    window = make_window(pipeline_fn=factory)
    window.open_callable(HalfSource, "halves", is_camera=False)
    qtbot.waitUntil(lambda: len(window.events.events()) == 2
                    and all(e.prediction is not None for e in window.events.events()),
                    timeout=20000)
    video = window.video

    # every face: its box and number in its colour; the largest face's signal by default
    assert [f.face_id for f in video.faces()] == [1, 2]
    assert window.plot_face() == 1 and video.selected_face() == 1
    assert abs(_combined(window) - LEVEL[1]) < 1e-6
    window.worker.set_paused(True)
    qtbot.wait(100)
    window._on_packet_ready()
    arr = _pixels(video)
    assert _edge_has(arr, video, BOXES[1], face_colour(1))
    assert _edge_has(arr, video, BOXES[2], face_colour(2))
    assert not _edge_has(arr, video, BOXES[1], face_colour(2))
    assert face_colour(1) != face_colour(2)

    # the event table's face column: each event's face, in its colour
    table = window.events
    assert table.faces_shown()
    from mestudio.gui.widgets.event_table import COLUMNS

    model = table.event_model()
    col = COLUMNS.index("face")
    faces = {model.event_at(r).id: model.index(r, col).data() for r in range(model.rowCount())}
    assert sorted(faces.values()) == ["1", "2"]
    assert table.horizontalHeader().visualIndex(col) == 1  # shown beside "#"
    # each event's Grad-CAM inset shows its own face: dark left face, bright right face
    by_face = {e.face_id: e for e in table.events()}
    assert window._views[by_face[1].id].crop.mean() < 80
    assert window._views[by_face[2].id].crop.mean() > 160
    table.select_event(by_face[2].id)
    assert video._event_crop is not None and video._event_crop.mean() > 160
    table.select_event(by_face[1].id)
    assert video._event_crop is not None and video._event_crop.mean() < 80
    window.worker.set_paused(False)

    # Tab: the next face; the session and the pipeline follow it, so does the plot
    window.activateWindow()
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Tab)
    assert window.selected_face() == 2 and window.plot_face() == 2
    assert abs(_combined(window) - LEVEL[2]) < 1e-6  # at once, from face 2's history
    assert window.plot.face() == 2
    qtbot.waitUntil(lambda: factory.last.selected_face == 2
                    and factory.last.followed[-1] == 2, timeout=5000)
    assert window.worker.session.selected_face == 2
    n = len(window.plot.samples("combined")[1])
    qtbot.waitUntil(lambda: len(window.plot.samples("combined")[1]) > n + 3, timeout=5000)
    assert abs(_combined(window) - LEVEL[2]) < 1e-6
    # the plot shades only the shown face's events
    assert [ev.face_id for ev, _span in window.plot.event_regions()] == [2]

    # a click on face 1 chooses it
    x, y, w, h = _widget_box(video, BOXES[1])
    qtbot.mouseClick(video, Qt.MouseButton.LeftButton, pos=QPoint(int(x + w / 2), int(y + h / 2)))
    assert window.selected_face() == 1 and window.plot_face() == 1
    assert abs(_combined(window) - LEVEL[1]) < 1e-6
    qtbot.waitUntil(lambda: factory.last.followed[-1] == 1, timeout=5000)
    assert video.face_at(QPointF(1, 1)) is None  # outside every face: nothing chosen


def test_single_face_mode_looks_as_before(qtbot, make_window, fakes):
    window = make_window(pipeline_fn=fakes.scripted_factory(
        script=[(10, fakes.planted_event(3, 5, 8, 30.0), "surprise")]))
    window.open_callable(lambda: fakes.SyntheticSource(n=60, size=(320, 240)), "clip",
                         is_camera=False)
    qtbot.waitUntil(lambda: len(window.events.events()) == 1, timeout=20000)
    assert not window.events.faces_shown()
    assert not window.act_next_face.isEnabled()  # Tab moves the keyboard focus, as usual
    assert window.video.faces() == [] and window.plot.face() is None
    assert window.plot_face() == 0
    assert window.events.event_model().index(0, 7).data() == "–"
