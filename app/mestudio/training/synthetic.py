"""``--dataset synthetic``: a leave-one-subject-out-able dataset rendered with :mod:`mestudio.synth`.

Subjects are distinct real faces (identities of :func:`mestudio.synth.collect_faces`: the
scikit-image astronaut, every face of the shared test photos, one identity per face
video; copies of the same person share one identity); classes are the synthetic
action-unit patterns (:data:`mestudio.synth.CLASSES`, :data:`mestudio.synth.AU_PATTERNS`).
Every sample is a short clip — a few neutral frames, one planted micro-expression, its
offset — rendered on one of the identity's face images (mirrored/recoloured at random),
with the synthesiser's distractors (slight head motion, illumination drift, sensor noise).

The release is written to disk like a real dataset so that ``data check``, ``data
prepare`` and ``train`` treat it exactly like CASME II::

    ROOT/synthetic.json                    manifest (settings, identities, samples)
    ROOT/frames/S01/happiness_00/img1.jpg  frames 1..offset of each sample (JPEG q95)

``load(root)`` generates the release when ``root`` holds no manifest (settings: the
defaults of :class:`SyntheticSettings`, or those given to the dataset). Generation is
deterministic (seeded), parallel (a process pool) and resumable: a sample whose folder
already holds its ``sample.json`` is not rendered again.

When the shared face data is absent only the astronaut is available; the dataset then
falls back to variants of that face (mirrored, recoloured, rescaled) as pseudo-subjects
and says so (``identities_distinct: false``): such folds are NOT independent people.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mestudio.errors import DatasetError
from mestudio.fsutil import atomic_write_text
from mestudio.shareddata import shared_data_dir
from mestudio.training.datasets.base import (
    THREE_CLASSES,
    Annotation,
    DatasetReport,
    MEDataset,
)

logger = logging.getLogger(__name__)

MANIFEST = "synthetic.json"
MANIFEST_FORMAT = "mestudio-synthetic/1"
SAMPLE_DONE = "sample.json"
FRAMES_DIR = "frames"

#: The synthetic classes (mirrors :data:`mestudio.synth.CLASSES`; kept here so that listing
#: datasets does not import the synthesiser).
SYNTH_CLASSES: tuple[str, ...] = ("happiness", "disgust", "surprise", "sadness", "repression")
SYNTH_TO_3CLASS: dict[str, str] = {"happiness": "positive", "surprise": "surprise",
                                   "disgust": "negative", "sadness": "negative",
                                   "repression": "negative"}


def default_faces_dir() -> Path | None:
    """The folder of public face photos/videos used for identities, or None.

    Looked up in ``$MESTUDIO_FACES_DIR``, then ``$MESTUDIO_TEST_DATA/data``, then the
    ``shared/data`` folder beside a development checkout (``<repo>/../shared/data``).
    """
    env = os.environ.get("MESTUDIO_FACES_DIR")
    if env:
        return Path(env)
    data = shared_data_dir()
    if data is not None and ((data / "images").is_dir() or (data / "video").is_dir()):
        return data
    return None


@dataclass
class SyntheticSettings:
    """How the synthetic release is rendered.

    Attributes:
        per_class: samples per identity and class.
        fps: frame rate of the clips (30 = a webcam, what the live pipeline sees).
        seed: master seed (every sample's seed derives from it).
        faces_dir: folder with ``images/`` and ``video/`` of face photos/videos ("" = look
            it up with :func:`default_faces_dir`; "none" = the scikit-image astronaut only).
        max_identities: use at most this many identities (0 = all).
        video_frames: face images taken from each video (different poses of one identity).
        amplitude: micro-expression peak displacement range as fractions of the face
            width (the synthesiser's default 1-3 %).
        distractors: head motion, illumination drift and sensor noise in every clip.
        variation: probability of a random mirror/recolour of the face per sample.
        min_identities: with fewer distinct identities than this, pseudo-identities
            (variants of the available faces) are added — and reported as not distinct.
        crop_size: side of the rendered frames in pixels; every face photo is resampled so
            that the face spans the same share of it (inter-ocular distance ``crop_size /
            4.5``, ~57 px at 256: like a webcam face, so the tracker's 128 px aligned crop
            is downsampled as it is live).
        image_format: ``jpg`` (quality 95, like the datasets' releases) or ``png``.
    """

    per_class: int = 6
    fps: float = 30.0
    seed: int = 0
    faces_dir: str = ""
    max_identities: int = 0
    video_frames: int = 3
    amplitude: tuple[float, float] = (0.01, 0.03)
    distractors: bool = True
    variation: float = 0.5
    min_identities: int = 4
    crop_size: int = 256
    image_format: str = "jpg"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["amplitude"] = list(self.amplitude)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SyntheticSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "amplitude" in kw:
            kw["amplitude"] = tuple(float(a) for a in kw["amplitude"])
        return cls(**kw)

    def resolved_faces_dir(self) -> Path | None:
        if self.faces_dir.lower() == "none":
            return None
        if self.faces_dir:
            return Path(self.faces_dir).expanduser()
        return default_faces_dir()


@dataclass
class _Task:
    """One sample to render (picklable for the process pool)."""

    subject: str
    identity: str
    face_index: int
    label: str
    rep: int
    seed: int
    folder: str
    extra: dict[str, Any] = field(default_factory=dict)


def _collect_identities(settings: SyntheticSettings) -> tuple[dict[str, list[Any]], bool, str]:
    """``({identity: [FaceImage, ...]}, distinct, description)``."""
    import numpy as np

    from mestudio.synth import augment_face, collect_faces

    faces_dir = settings.resolved_faces_dir()
    faces = collect_faces(faces_dir, video_frames=settings.video_frames,
                          min_side=settings.crop_size, max_side=settings.crop_size)
    by_id: dict[str, list[Any]] = {}
    for f in faces:
        by_id.setdefault(f.identity, []).append(f)
    distinct = True
    source = f"{faces_dir}" if faces_dir is not None else "scikit-image only"
    if len(by_id) < settings.min_identities:
        distinct = False
        rng = np.random.default_rng([settings.seed, 77])
        originals = [(k, v[0]) for k, v in sorted(by_id.items())]
        i = 0
        while len(by_id) < settings.min_identities:
            name, face = originals[i % len(originals)]
            variant = augment_face(face, rng)
            by_id[f"{name}~variant{i + 1}"] = [variant]
            i += 1
        logger.warning("synthetic dataset: only %d distinct face identities available (%s); "
                       "added %d variants of them as pseudo-subjects — LOSO folds are then NOT "
                       "independent people", len(originals), source, i)
    if settings.max_identities > 0:
        keep = sorted(by_id)[: settings.max_identities]
        by_id = {k: by_id[k] for k in keep}
    return by_id, distinct, source


def _plan(settings: SyntheticSettings, identities: dict[str, list[Any]]) -> list[_Task]:
    import numpy as np

    tasks = []
    for si, identity in enumerate(sorted(identities)):
        subject = f"S{si + 1:02d}"
        n_faces = len(identities[identity])
        for ci, label in enumerate(SYNTH_CLASSES):
            for r in range(settings.per_class):
                seed = int(np.random.default_rng([settings.seed, si, ci, r]).integers(0, 2**31 - 1))
                tasks.append(_Task(subject=subject, identity=identity,
                                   face_index=(ci * settings.per_class + r) % n_faces,
                                   label=label, rep=r, seed=seed,
                                   folder=f"{subject}/{label}_{r:02d}"))
    return tasks


_WORKER_FACES: dict[str, list[Any]] = {}


def _init_worker(identities: dict[str, list[Any]]) -> None:
    import cv2

    cv2.setNumThreads(1)
    _WORKER_FACES.clear()
    _WORKER_FACES.update(identities)


def _render(task: _Task, root: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Render one sample into ``root/frames/<folder>`` and return its manifest entry."""
    import cv2
    import numpy as np

    from mestudio.synth import augment_face, synthesize_sample

    s = SyntheticSettings.from_dict(settings)
    folder = Path(root) / FRAMES_DIR / task.folder
    done = folder / SAMPLE_DONE
    if done.is_file():
        try:
            return dict(json.loads(done.read_text()))
        except (OSError, json.JSONDecodeError):
            pass  # damaged: render again
    face = _WORKER_FACES[task.identity][task.face_index]
    rng = np.random.default_rng([task.seed, 5])
    variant = "original"
    if rng.random() < s.variation:
        face = augment_face(face, rng, rescale=False)
        variant = face.source.split("+", 1)[-1]
    frames, event = synthesize_sample(face, task.label, fps=s.fps, seed=task.seed,
                                      amplitude=(float(s.amplitude[0]), float(s.amplitude[1])),
                                      distractors=s.distractors)
    folder.mkdir(parents=True, exist_ok=True)
    last = event.offset  # frames after the offset are not part of the sample
    ext, params = (("png", [cv2.IMWRITE_PNG_COMPRESSION, 1]) if s.image_format == "png"
                   else ("jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]))
    for i in range(last + 1):
        path = folder / f"img{i + 1}.{ext}"
        if not cv2.imwrite(str(path), frames[i], params):
            raise OSError(f"cannot write {path}")
    entry = {
        "subject": task.subject,
        "identity": task.identity,
        "filename": Path(task.folder).name,
        "folder": task.folder,
        "label": task.label,
        "aus": "+".join(a.removeprefix("AU") for a in event.aus),
        "onset": event.onset + 1,
        "apex": event.apex + 1,
        "offset": event.offset + 1,
        "first_frame": 1,
        "amplitude": round(float(event.amplitude), 5),
        "seed": task.seed,
        "face_source": face.source,
        "face_variant": variant,
        "size": [int(frames[0].shape[1]), int(frames[0].shape[0])],
    }
    atomic_write_text(done, json.dumps(entry, indent=1), durable=False)  # a resume marker
    return entry


def generate(root: str | os.PathLike[str], settings: SyntheticSettings | None = None, *,
             workers: int = 2, progress: bool = True) -> Path:
    """Render the synthetic release into ``root`` (resumable) and write its manifest.

    Args:
        root: output folder (created).
        settings: what to render (default :class:`SyntheticSettings`).
        workers: processes rendering in parallel (1 = in this process). Workers are
            spawned: a script calling this must do so under ``if __name__ == "__main__":``.
        progress: show a tqdm progress bar on stderr (only when it is a terminal).

    Returns:
        The manifest path.

    Raises:
        DatasetError: ``root`` holds a manifest of different settings.
    """
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm import tqdm

    from mestudio.synth import AU_PATTERNS, CLASSES

    settings = settings or SyntheticSettings()
    if tuple(CLASSES) != SYNTH_CLASSES:
        raise DatasetError("the synthesiser's classes changed; update training/synthetic.py")
    out = Path(root).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("settings") != settings.to_dict():
            raise DatasetError(f"{out} already holds a synthetic release with other settings; "
                               "use another --root or delete it")
        return manifest
    identities, distinct, source = _collect_identities(settings)
    tasks = _plan(settings, identities)
    logger.info("synthetic dataset: %d identities x %d classes x %d = %d samples -> %s",
                len(identities), len(SYNTH_CLASSES), settings.per_class, len(tasks), out)
    entries: list[dict[str, Any]] = []
    bar = tqdm(total=len(tasks), desc="render synthetic", unit="sample", file=sys.stderr,
               disable=not progress or None, dynamic_ncols=True)
    try:
        if workers <= 1:
            _init_worker(identities)
            for t in tasks:
                entries.append(_render(t, str(out), settings.to_dict()))
                bar.update(1)
        else:
            ctx = get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(identities,)) as pool:
                futures = [pool.submit(_render, t, str(out), settings.to_dict()) for t in tasks]
                for f in futures:
                    entries.append(f.result())
                    bar.update(1)
    finally:
        bar.close()
    subjects: dict[str, dict[str, Any]] = {}
    for si, identity in enumerate(sorted(identities)):
        faces = identities[identity]
        subjects[f"S{si + 1:02d}"] = {"identity": identity,
                                      "faces": [f.source for f in faces]}
    data = {
        "format": MANIFEST_FORMAT,
        "fps": settings.fps,
        "classes": list(SYNTH_CLASSES),
        "au_patterns": {k: list(v) for k, v in AU_PATTERNS.items()},
        "settings": settings.to_dict(),
        "faces": source,
        "identities_distinct": distinct,
        "subjects": subjects,
        "samples": entries,
    }
    atomic_write_text(manifest, json.dumps(data, indent=1))
    return manifest


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a synthetic release.

    Raises:
        DatasetError: missing, unreadable or of another format.
    """
    path = Path(root).expanduser() / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path.parent} holds no synthetic release ({MANIFEST} missing)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is damaged ({exc}); delete the folder and generate it "
                           "again") from exc
    if data.get("format") != MANIFEST_FORMAT:
        raise DatasetError(f"{path} is not a mestudio synthetic manifest")
    return dict(data)


class SyntheticDataset(MEDataset):
    """The synthetic AU-pattern dataset (see the module docstring).

    Args:
        settings: generation settings used when the root holds no release yet.
        workers: rendering processes for that generation.
        progress: its progress bar (stderr, only on a terminal).
        layout, sheet: accepted for the registry's common signature (ignored).
    """

    name = "synthetic"
    title = "Synthetic AU patterns"
    fps = 30.0
    native_classes = SYNTH_CLASSES
    class_maps = {"3class": dict(SYNTH_TO_3CLASS)}
    class_orders = {"3class": THREE_CLASSES}
    LAYOUTS = {"synthetic": (FRAMES_DIR,)}

    def __init__(self, *, settings: SyntheticSettings | None = None, workers: int = 2,
                 layout: str = "auto", sheet: str | Path | None = None,
                 progress: bool = True) -> None:
        super().__init__(layout="auto", sheet=None)
        self.settings = settings
        self.workers = workers
        self.progress = progress
        self.manifest: dict[str, Any] = {}

    def _read_release(self, root: Path, report: DatasetReport
                      ) -> tuple[list[Annotation], list[Path]]:
        if not (root / MANIFEST).is_file():
            if any(root.iterdir()) and not (root / FRAMES_DIR).is_dir():
                raise DatasetError(f"{root} is neither empty nor a synthetic release: give an "
                                   "empty or new folder as --root to generate one there")
            logger.info("no synthetic release in %s: generating one", root)
            generate(root, self.settings or SyntheticSettings(), workers=self.workers,
                     progress=self.progress)
        data = read_manifest(root)
        if self.settings is not None and data.get("settings") != self.settings.to_dict():
            raise DatasetError(f"{root} holds a synthetic release rendered with other settings "
                               f"({data.get('settings')}); give another --root for these")
        self.manifest = data
        self.fps = float(data.get("fps", 30.0))
        report.fps = self.fps
        report.sheet = root / MANIFEST
        report.layout = "synthetic"
        report.rows = len(data.get("samples", []))
        report.frames_root = root / FRAMES_DIR
        report.info["faces"] = str(data.get("faces", ""))
        report.info["identities distinct"] = "yes" if data.get("identities_distinct") else \
            "NO (variants of the same face: folds are not independent people)"
        s = data.get("settings", {})
        report.info["settings"] = ", ".join(f"{k}={v}" for k, v in s.items())
        anns = []
        for i, e in enumerate(data.get("samples", [])):
            folder = report.frames_root / e["folder"]
            anns.append(Annotation(
                subject=e["subject"], filename=e["filename"], onset=int(e["onset"]),
                apex=int(e["apex"]), offset=int(e["offset"]), label=e["label"],
                aus=e.get("aus", ""), row=i + 1,
                texts={k: str(e[k]) for k in ("onset", "apex", "offset")},
                folder=folder if folder.is_dir() else None, expected_folder=e["folder"],
                extra={"identity": e.get("identity", ""), "amplitude": e.get("amplitude"),
                       "face_source": e.get("face_source", ""), "synthetic": True},
            ))
        folders = [p for s in sorted((report.frames_root).glob("*")) if s.is_dir()
                   for p in sorted(s.glob("*")) if p.is_dir()]
        return anns, folders


def _factory(**kwargs: Any) -> SyntheticDataset:
    allowed = {k: v for k, v in kwargs.items() if k in ("settings", "workers", "layout", "sheet",
                                                          "progress")}
    return SyntheticDataset(**allowed)


def register() -> None:
    """Add ``synthetic`` to the dataset registry (idempotent)."""
    from mestudio.training.datasets import DATASETS, register_dataset

    if "synthetic" not in DATASETS:
        register_dataset("synthetic", _factory)

