"""Multi-face test clips built from the shared real faces, with per-frame ground truth.

Every builder returns a :class:`MultiFaceClip`: a seekable
:class:`~mestudio.capture.base.FrameSource` (random-access ``read(i)``, timestamps ``i / fps``,
640×480 at 30 fps by default, deterministic) that also carries the ground truth:

* ``slots``: the names of the faces, back to front (a later slot is drawn over an earlier);
* ``boxes[i, s]``: the face box ``(x, y, w, h)`` of slot ``s`` in frame ``i`` (frame pixels,
  YuNet-like: 2.1 × 3.05 inter-ocular distances around the face centre), NaN while the face
  is not shown;
* ``visible[i, s]``: the fraction of that box actually seen (0 when hidden or off the
  picture; < 1 when another face passes in front or the box leaves the picture);
* ``events[name]``: the micro-expressions planted by :mod:`mestudio.synth` on that face, with
  onset/apex/offset as frame indices *of the composite clip* (empty for the real faces).

Faces are square tiles cut from the shared videos/photo (a soft ellipse around the head), on a
plain grey background. The face streams (:func:`face_stream`):

* ``"still"``: ``single_face.mp4`` frames 0–15, back and forth (nearly still, no expression:
  the person smiles broadly from frame ~17);
* ``"smile"``: the whole ``single_face.mp4`` (72 frames, back and forth: a broad smile);
* ``"speech"``: ``frontal_speech.mp4`` (first 5 s, back and forth: a talking face);
* ``"planted"``: ``images/single_face.jpg`` rendered by
  :func:`mestudio.synth.synthesize_clip` with planted micro-expressions (no distractors
  unless asked).

Builders: :func:`side_by_side_clip`, :func:`crossing_clip`, :func:`leave_return_clip`.
Use them from a test (``tests/`` is on ``sys.path``)::

    from multiface_clips import side_by_side_clip

    clip = side_by_side_clip(data_dir)              # data_dir: the conftest fixture
    for frame in clip:                               # or clip.read(i)
        ...
    clip.slot_of(i, box)                             # which face a tracked box is (or None)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mestudio.capture.base import FrameSource
from mestudio.face.detect import iou
from mestudio.synth.events import PlantedEvent
from mestudio.synth.geometry import FaceGeometry
from mestudio.types import Box, Frame

FPS = 30.0
SIZE = (640, 480)
TILE = 200
#: Background colour (BGR): plain grey-blue.
BACKGROUND = (110, 100, 90)
#: A tile is this many inter-ocular distances wide (the face box is 2.1 × 3.05 of them).
TILE_IOD = 4.5
#: Face box relative to the face centre (between eyes and mouth), in inter-ocular distances:
#: centre offset (dx, dy) and size (w, h) — measured against YuNet on the shared faces.
BOX_OFFSET = (0.0, -0.15)
BOX_SIZE = (2.1, 3.05)
STREAMS = ("still", "smile", "speech", "planted")


def face_box(g: FaceGeometry) -> Box:
    """The YuNet-like face box ``(x, y, w, h)`` of a five-point geometry."""
    cx, cy = g.center
    d = g.iod
    w, h = BOX_SIZE[0] * d, BOX_SIZE[1] * d
    cx, cy = cx + BOX_OFFSET[0] * d, cy + BOX_OFFSET[1] * d
    return (float(cx - w / 2), float(cy - h / 2), float(w), float(h))


# ---- face streams ------------------------------------------------------------------------------
@dataclass
class FaceStream:
    """Square face tiles over time: ``tile(k)`` → ``(image (S, S, 3), geometry in tile px)``.

    Attributes:
        kind: one of :data:`STREAMS`.
        side: tile side ``S`` (pixels).
        events: planted events (frame indices of the stream), sorted by onset.
    """

    kind: str
    side: int
    frames: list[np.ndarray] | None = None
    geometries: list[FaceGeometry] | None = None
    synth: object | None = None  # a mestudio.synth SynthClip
    events: list[PlantedEvent] = field(default_factory=list)

    def tile(self, k: int) -> tuple[np.ndarray, FaceGeometry]:
        if self.synth is not None:
            from mestudio.synth.clip import SynthClip

            clip = self.synth
            assert isinstance(clip, SynthClip)
            k = min(max(k, 0), clip.n_frames - 1)
            g = clip.geometry
            if clip.head.active:
                g = g.transformed(clip.head_matrix(k))
            return clip.frame(k), g
        assert self.frames is not None and self.geometries is not None
        n = len(self.frames)
        period = max(1, 2 * (n - 1))
        k %= period
        k = k if k < n else period - k  # back and forth: no jump at the end
        return self.frames[k], self.geometries[k]


@functools.lru_cache(maxsize=4)
def _video_face(path: str, max_duration_s: float | None):
    from mestudio.synth.faces import load_face

    return load_face(path, max_duration_s=max_duration_s)


@functools.lru_cache(maxsize=16)
def _video_tiles(path: str, first: int, last: int | None, side: int,
                 max_duration_s: float | None) -> tuple[list[np.ndarray], list[FaceGeometry]]:
    vf = _video_face(path, max_duration_s)
    frames = vf.frames[first:last]
    geoms = vf.geometries[first:last]
    centres = np.array([g.center for g in geoms])
    iod = float(np.median([g.iod for g in geoms]))
    cx, cy = np.median(centres, axis=0)
    s = side / (TILE_IOD * iod)
    m = np.array([[s, 0.0, side / 2 - s * cx], [0.0, s, side / 2 - s * cy]])
    tiles = [cv2.warpAffine(f, m, (side, side), flags=cv2.INTER_AREA if s < 1 else
                            cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for f in frames]
    for t in tiles:
        t.flags.writeable = False
    return tiles, [g.transformed(m) for g in geoms]


@functools.lru_cache(maxsize=8)
def _planted(path: str, side: int, duration_s: float, seed: int, n_micro: int,
             distractors: bool, fps: float):
    from mestudio.synth.clip import synthesize_clip
    from mestudio.synth.faces import StillFace, crop_face
    from mestudio.synth.geometry import estimate_geometry

    img = cv2.imread(path)
    if img is None:
        raise FileNotFoundError(path)
    crop, g = crop_face(img, estimate_geometry(img, what=path), side_iod=TILE_IOD,
                        min_side=side, max_side=side)
    return synthesize_clip(StillFace(crop, g, Path(path).name), fps=fps, duration_s=duration_s,
                           seed=seed, n_micro=n_micro, n_macro=0, n_blinks=0,
                           distractors=distractors)


def face_stream(data_dir: Path, kind: str, *, side: int = TILE, duration_s: float = 10.0,
                fps: float = FPS, seed: int = 0, n_micro: int = 3,
                distractors: bool = False) -> FaceStream:
    """One face's tiles over time (see the module for the kinds).

    ``duration_s``, ``seed``, ``n_micro``, ``distractors`` concern only ``"planted"`` (the
    length of the synthetic clip; the tile repeats its last frame beyond it). The video
    streams are at their own 30 fps; ``fps`` should be 30 for them.
    """
    video = Path(data_dir) / "video"
    if kind == "still":
        frames, geoms = _video_tiles(str(video / "single_face.mp4"), 0, 16, side, None)
    elif kind == "smile":
        frames, geoms = _video_tiles(str(video / "single_face.mp4"), 0, None, side, None)
    elif kind == "speech":
        frames, geoms = _video_tiles(str(video / "frontal_speech.mp4"), 0, 150, side, 5.0)
    elif kind == "planted":
        clip = _planted(str(Path(data_dir) / "images" / "single_face.jpg"), side,
                        float(duration_s), int(seed), int(n_micro), bool(distractors), fps)
        return FaceStream(kind, side, synth=clip, events=list(clip.events))
    else:
        raise ValueError(f"unknown face stream {kind!r}; known: {', '.join(STREAMS)}")
    return FaceStream(kind, side, frames=frames, geometries=geoms)


@functools.lru_cache(maxsize=8)
def _ellipse_mask(side: int) -> np.ndarray:
    """Soft head-shaped alpha ``(S, S, 1)`` float32 in 0..1."""
    m = np.zeros((side, side), np.float32)
    cv2.ellipse(m, (side // 2, int(side * 0.47)), (int(side * 0.34), int(side * 0.46)), 0, 0,
                360, 1.0, -1)
    k = max(3, (side // 20) | 1)
    soft = np.asarray(cv2.GaussianBlur(m, (k, k), 0), np.float32)
    soft.flags.writeable = False
    return soft[..., None]


# ---- the composite clip ----------------------------------------------------------------------
@dataclass
class FaceSlot:
    """One face of a composite clip.

    Attributes:
        name: its name in the ground truth (e.g. ``"speech"``, ``"left"``).
        stream: its tiles.
        xy: ``(n, 2)`` top-left corner of its tile per composite frame (frame pixels).
        shown: ``(n,)`` bool: drawn in that frame.
        start: composite frame of its stream frame 0 (stream frame = ``i - start``).
    """

    name: str
    stream: FaceStream
    xy: np.ndarray
    shown: np.ndarray
    start: int = 0


class MultiFaceClip(FrameSource):
    """Several real faces composited on a plain background, with ground truth (module doc).

    Attributes:
        slots: slot names, back to front.
        boxes: ``(n_frames, n_slots, 4)`` float64 face boxes, NaN where not shown.
        visible: ``(n_frames, n_slots)`` float64 visible fraction of each face box.
        events: planted events per slot name, in composite frame indices.
        faces: the :class:`FaceSlot` objects.
    """

    n_frames: int
    fps: float

    def __init__(self, faces: Sequence[FaceSlot], n_frames: int, *, fps: float = FPS,
                 size: tuple[int, int] = SIZE, name: str = "multi-face clip") -> None:
        super().__init__()
        self.name = name
        self.fps = self._fps = float(fps)
        self.n_frames = self._n = int(n_frames)
        self.size = (int(size[0]), int(size[1]))
        self.seekable = True
        self.faces = list(faces)
        self.slots = [f.name for f in self.faces]
        if len(set(self.slots)) != len(self.slots):
            raise ValueError(f"slot names must differ: {self.slots}")
        n, ns = self._n, len(self.faces)
        self.boxes = np.full((n, ns, 4), np.nan)
        self.visible = np.zeros((n, ns))
        self.events: dict[str, list[PlantedEvent]] = {}
        for s, f in enumerate(self.faces):
            if f.xy.shape != (n, 2) or f.shown.shape != (n,):
                raise ValueError(f"slot {f.name}: xy must be ({n}, 2) and shown ({n},)")
            self.events[f.name] = [e.shifted(f.start, self._fps) for e in f.stream.events
                                   if e.offset + f.start < n]
            for i in range(n):
                if f.shown[i]:
                    _, g = f.stream.tile(i - f.start)
                    x, y, w, h = face_box(g)
                    x0, y0 = self._corner(f, i)
                    self.boxes[i, s] = (x + x0, y + y0, w, h)
        self._compute_visibility()

    # ---- geometry ---------------------------------------------------------------------------
    @staticmethod
    def _corner(f: FaceSlot, i: int) -> tuple[int, int]:
        return int(round(float(f.xy[i, 0]))), int(round(float(f.xy[i, 1])))

    def _compute_visibility(self) -> None:
        w_img, h_img = self.size
        for i in range(self._n):
            for s, f in enumerate(self.faces):
                if not f.shown[i]:
                    continue
                x, y, w, h = self.boxes[i, s]
                bx0, by0 = int(math.floor(x)), int(math.floor(y))
                bx1, by1 = int(math.ceil(x + w)), int(math.ceil(y + h))
                area = max(1, (bx1 - bx0) * (by1 - by0))
                seen = np.zeros((by1 - by0, bx1 - bx0), bool)
                cx0, cy0 = max(bx0, 0), max(by0, 0)
                cx1, cy1 = min(bx1, w_img), min(by1, h_img)
                if cx1 <= cx0 or cy1 <= cy0:
                    continue
                seen[cy0 - by0:cy1 - by0, cx0 - bx0:cx1 - bx0] = True
                for front in self.faces[s + 1:]:
                    if not front.shown[i]:
                        continue
                    fx, fy = self._corner(front, i)
                    m = _ellipse_mask(front.stream.side)[..., 0] > 0.5
                    side = front.stream.side
                    ox0, oy0 = max(fx, bx0), max(fy, by0)
                    ox1, oy1 = min(fx + side, bx1), min(fy + side, by1)
                    if ox1 <= ox0 or oy1 <= oy0:
                        continue
                    seen[oy0 - by0:oy1 - by0, ox0 - bx0:ox1 - bx0] &= \
                        ~m[oy0 - fy:oy1 - fy, ox0 - fx:ox1 - fx]
                self.visible[i, s] = float(seen.sum()) / area

    def slot_of(self, i: int, box: Box | None, min_iou: float = 0.3) -> int | None:
        """The slot whose true face box in frame ``i`` overlaps ``box`` best (IoU at least
        ``min_iou``), or None."""
        if box is None:
            return None
        best, best_iou = None, min_iou
        for s in range(len(self.slots)):
            if np.isnan(self.boxes[i, s, 0]):
                continue
            v = iou(tuple(self.boxes[i, s]), box)  # type: ignore[arg-type]
            if v >= best_iou:
                best, best_iou = s, v
        return best

    def truth(self, i: int) -> dict[str, tuple[Box, float]]:
        """``{slot name: (box, visible fraction)}`` of the faces shown in frame ``i``."""
        out: dict[str, tuple[Box, float]] = {}
        for s, name in enumerate(self.slots):
            if self.faces[s].shown[i]:
                x, y, w, h = (float(v) for v in self.boxes[i, s])
                out[name] = ((x, y, w, h), float(self.visible[i, s]))
        return out

    # ---- rendering --------------------------------------------------------------------------
    def image(self, i: int) -> np.ndarray:
        w_img, h_img = self.size
        canvas = np.empty((h_img, w_img, 3), np.float32)
        canvas[:] = BACKGROUND
        for f in self.faces:
            if not f.shown[i]:
                continue
            tile, _ = f.stream.tile(i - f.start)
            side = f.stream.side
            alpha = _ellipse_mask(side)
            x0, y0 = self._corner(f, i)
            cx0, cy0 = max(x0, 0), max(y0, 0)
            cx1, cy1 = min(x0 + side, w_img), min(y0 + side, h_img)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            src = tile[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0].astype(np.float32)
            a = alpha[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            dst = canvas[cy0:cy1, cx0:cx1]
            dst += a * (src - dst)
        return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)

    def _read(self, i: int) -> Frame:
        return Frame(i, i / self._fps, self.image(i))


# ---- builders --------------------------------------------------------------------------------
def _frames(duration_s: float, fps: float) -> int:
    return max(1, int(round(duration_s * fps)))


def side_by_side_clip(data_dir: Path, *, faces: Sequence[str] = ("still", "speech", "planted"),
                      duration_s: float = 5.0, fps: float = FPS, size: tuple[int, int] = SIZE,
                      sides: Sequence[int] | None = None, seed: int = 0, n_micro: int = 3,
                      distractors: bool = False) -> MultiFaceClip:
    """Two or more faces side by side, not moving across the picture (each keeps its own
    motion: the still face, the talker, the planted micro-expressions).

    Args:
        data_dir: the shared ``data`` folder.
        faces: stream kinds, left to right; a slot is named after its kind (a repeated kind
            gets ``_2``, ``_3``).
        sides: tile side per face (default: as large as fits, at most 200 px); different
            sides make faces of different sizes (for ``max_faces``).
        seed, n_micro, distractors: of the planted face (see :func:`face_stream`).
    """
    n = _frames(duration_s, fps)
    w_img, h_img = size
    k = len(faces)
    default = min(TILE, (w_img - 10 * (k + 1)) // k, h_img - 20)
    sides = list(sides) if sides is not None else [default] * k
    gap = (w_img - sum(sides)) / (k + 1)
    slots: list[FaceSlot] = []
    names: list[str] = []
    x = gap
    for kind, side in zip(faces, sides, strict=True):
        stream = face_stream(data_dir, kind, side=int(side), duration_s=duration_s, fps=fps,
                             seed=seed, n_micro=n_micro, distractors=distractors)
        name = kind if kind not in names else f"{kind}_{names.count(kind) + 1}"
        names.append(kind)
        xy = np.tile([x, (h_img - side) / 2], (n, 1))
        slots.append(FaceSlot(name, stream, xy, np.ones(n, bool)))
        x += side + gap
    return MultiFaceClip(slots, n, fps=fps, size=size, name="side by side")


#: Vertical offset between the two crossing faces, in tile sides, per variant.
CROSSING_DY = {"gap": 1.05, "overlap": 0.45, "occlusion": 0.0}


def crossing_clip(data_dir: Path, variant: str = "overlap", *, hold_s: float = 1.0,
                  cross_s: float = 3.0, fps: float = FPS, size: tuple[int, int] = SIZE,
                  side: int = 180, faces: tuple[str, str] = ("still", "speech")
                  ) -> MultiFaceClip:
    """Two faces that swap sides: ``hold_s`` still, ``cross_s`` moving horizontally past each
    other at constant speed, ``hold_s`` still again.

    Slot ``"left"`` (the first face) starts on the left and is behind; slot ``"right"`` starts
    on the right and passes in front. Variants (:data:`CROSSING_DY`): ``"gap"`` — one above
    the other, the face boxes never touch; ``"overlap"`` — the front face covers about the
    lower half of the back one as they cross (``visible`` says how much); ``"occlusion"`` —
    same height, the back face is hidden completely for a moment.
    """
    if variant not in CROSSING_DY:
        raise ValueError(f"unknown crossing variant {variant!r}; known: {', '.join(CROSSING_DY)}")
    w_img, h_img = size
    n_hold, n_cross = _frames(hold_s, fps), _frames(cross_s, fps)
    n = 2 * n_hold + n_cross
    dy = CROSSING_DY[variant] * side
    y_back = (h_img - side - dy) / 2
    y_front = y_back + dy
    if variant == "gap":
        y_back, y_front = max(0.0, y_back), min(h_img - side, y_front)
    x_l, x_r = 20.0, w_img - side - 20.0
    i = np.arange(n)
    u = np.clip((i - n_hold) / max(1, n_cross - 1), 0.0, 1.0)
    xa = x_l + (x_r - x_l) * u
    xb = x_r - (x_r - x_l) * u
    slots = [FaceSlot("left", face_stream(data_dir, faces[0], side=side, fps=fps),
                      np.stack([xa, np.full(n, y_back)], 1), np.ones(n, bool)),
             FaceSlot("right", face_stream(data_dir, faces[1], side=side, fps=fps),
                      np.stack([xb, np.full(n, y_front)], 1), np.ones(n, bool))]
    return MultiFaceClip(slots, n, fps=fps, size=size, name=f"crossing ({variant})")


def leave_return_clip(data_dir: Path, away_s: float, *, leave_at_s: float = 1.5,
                      after_s: float = 1.5, mode: str = "hide", fps: float = FPS,
                      size: tuple[int, int] = SIZE, side: int = TILE,
                      faces: tuple[str, str] = ("still", "speech")) -> MultiFaceClip:
    """Slot ``"leaving"`` (left) is away for ``away_s`` from ``leave_at_s``; slot
    ``"staying"`` (right) stays all along.

    ``mode="hide"``: the face vanishes and reappears at the same place (a cut);
    ``mode="exit"``: it slides out of the picture to the left in 0.3 s, stays out
    (``away_s`` counts from when it is completely out), then slides back in 0.3 s.
    ``boxes``/``visible`` follow it (``visible`` 0 while away).
    """
    if mode not in ("hide", "exit"):
        raise ValueError(f"mode must be 'hide' or 'exit', got {mode!r}")
    w_img, h_img = size
    n_leave, n_away = _frames(leave_at_s, fps), _frames(away_s, fps)
    n_slide = _frames(0.3, fps) if mode == "exit" else 0
    n = n_leave + 2 * n_slide + n_away + _frames(after_s, fps)
    gap = (w_img - 2 * side) / 3
    x0, y0 = gap, (h_img - side) / 2
    xa = np.full(n, x0)
    shown = np.ones(n, bool)
    if mode == "hide":
        shown[n_leave:n_leave + n_away] = False
    else:
        out = -float(side) - 2.0
        ramp = np.linspace(0.0, 1.0, n_slide + 1)[1:]
        xa[n_leave:n_leave + n_slide] = x0 + (out - x0) * ramp
        xa[n_leave + n_slide:n_leave + n_slide + n_away] = out
        back = n_leave + n_slide + n_away
        xa[back:back + n_slide] = out + (x0 - out) * ramp
        shown[n_leave + n_slide:n_leave + n_slide + n_away] = False
    slots = [FaceSlot("leaving", face_stream(data_dir, faces[0], side=side, fps=fps),
                      np.stack([xa, np.full(n, y0)], 1), shown),
             FaceSlot("staying", face_stream(data_dir, faces[1], side=side, fps=fps),
                      np.tile([2 * gap + side, y0], (n, 1)), np.ones(n, bool))]
    return MultiFaceClip(slots, n, fps=fps, size=size,
                         name=f"leave and return ({away_s:g} s, {mode})")
