"""Synthetic micro-expressions injected into real face images and videos, with ground truth.

Typical use::

    from mestudio.synth import synthesize_clip, write_clip
    clip = synthesize_clip(fps=30, duration_s=20, seed=1)      # the astronaut, 640×480
    img = clip.frame(123)                                       # random access, BGR uint8
    write_clip(clip, "out/")                                    # out/clip.mp4 + out/truth.json

    frames, event = synthesize_sample(face, "happiness", fps=30, seed=7)   # training sample

See :mod:`mestudio.synth.aus` for the action-unit fields and the class patterns,
:mod:`mestudio.synth.faces` for the face identities of a synthetic training set.
No Qt, no torch.
"""

from __future__ import annotations

from mestudio.synth.aus import AU_NAMES, AU_PATTERNS, CLASS_TO_3CLASS, CLASSES
from mestudio.synth.clip import (
    TRUTH_FORMAT,
    SynthClip,
    default_counts,
    resolve_face,
    synthesize_clip,
    synthesize_sample,
    synthesize_samples_for,
)
from mestudio.synth.config import SynthConfig
from mestudio.synth.events import PlantedEvent, make_event, plan_event
from mestudio.synth.faces import (
    FaceImage,
    StillFace,
    VideoFace,
    astronaut_face,
    augment_face,
    collect_faces,
    load_face,
)
from mestudio.synth.geometry import FaceGeometry, detect_faces, estimate_geometry
from mestudio.synth.output import read_truth, write_clip

__all__ = [
    "AU_NAMES", "AU_PATTERNS", "CLASSES", "CLASS_TO_3CLASS", "TRUTH_FORMAT", "FaceGeometry",
    "FaceImage", "PlantedEvent", "StillFace", "SynthClip", "SynthConfig", "VideoFace",
    "astronaut_face", "augment_face", "collect_faces", "default_counts", "detect_faces",
    "estimate_geometry", "load_face", "make_event", "plan_event", "read_truth", "resolve_face",
    "synthesize_clip", "synthesize_sample", "synthesize_samples_for", "write_clip",
]
