"""``mestudio import ststnet``: the authors' STSTNet fold weights as one verified ONNX ensemble.

The authors of STSTNet (Liong, Gan, See, Khor, Huang; FG 2019) published 68 PyTorch
state_dicts, one per leave-one-subject-out fold of the MEGC2019 composite (CASME II 145 +
SAMM 133 + SMIC-HS 164 = 442 samples, 68 subjects; classes negative, positive, surprise).
:func:`import_ststnet` loads them (:func:`mestudio.nets.ststnet_fg2019.load_published_weights`),
puts all folds in one graph on a shared input (:class:`~mestudio.nets.ststnet_fg2019.
STSTNetEnsemble`), exports it with the outputs of the ONNX contract plus ``agreement``,
checks ONNX Runtime against the fold-by-fold torch reference (probabilities and Grad-CAM to
1e-4) and writes the file atomically with its ``.sha256`` and model card.

The weights are never copied into the project: they are fetched from the authors'
repository (``mestudio models fetch ststnet-megc2019``) or imported by hand.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.errors import ModelFileError
from mestudio.fsutil import atomic_path
from mestudio.inference import contract

log = logging.getLogger(__name__)

#: File name of the ensemble in the user model folder (what the app looks for first).
ENSEMBLE_MODEL_NAME = "ststnet_megc2019.onnx"
PAPER = ("S.-T. Liong, Y. S. Gan, J. See, H.-Q. Khor, Y.-C. Huang: Shallow Triple Stream "
         "Three-dimensional CNN (STSTNet) for Micro-expression Recognition, IEEE FG 2019")
SOURCE = ("GitHub christy1206/STSTNet, branch master, folder STSTNet_Weights "
          "(68 fold files, one per held-out subject)")
TRAINING_DATASET = ("MEGC2019 composite: CASME II (145) + SAMM (133) + SMIC-HS (164) = 442 "
                    "micro-expression samples of 68 subjects; classes negative, positive, "
                    "surprise")
AUTHORS_LOSO = {"UF1": 0.7209, "UAR": 0.725,
                "note": "the authors' leave-one-subject-out result of their PyTorch "
                        "reproduction, each fold scored on its own held-out subject"}
TERMS = ("The weights come from a repository without a licence file and were trained on "
         "datasets licensed for research only: check the terms with the authors and the "
         "dataset owners before any non-research use.")
CARD_NOTES = (
    "The ensemble averages all 68 folds, so it has seen every subject of the composite: no "
    "leave-one-subject-out figure applies to it. The authors' figure (UF1 0.7209, UAR 0.725) "
    "is that of the single folds on their held-out subjects; `mestudio evaluate --folds` "
    "reproduces that protocol on data you hold.",
    "Measured by mestudio on action-unit patterns planted by its synthesiser into the real "
    "faces of its test data (patterns the network never saw), through the application's own "
    "alignment, TV-L1, strain and this recipe: 3-class UAR 0.856 on 460 events of 1-3 % "
    "face-width amplitude and 0.912 at 4-6 % (chance 0.333); the same inputs in the wrong "
    "channel order lose the positive class. `mestudio bench planted` measures it again.",
    "Agreement (share of the 68 folds that agree with the ensemble) separates events from "
    "frame pairs without one: median 0.97 on planted events, 0.76 on no-event pairs. Below "
    "the recognition setting min_agreement (default 0.7: keeps 85 % of planted events, "
    "rejects 40 % of no-event pairs) an event is shown as \"micro-expression (uncertain)\" "
    "with no emotion.",
    "Three classes only (negative, positive, surprise): a lab posed-expression model, not a "
    "reading of what a person feels. Micro-expressions are not a lie detector.",
    TERMS,
)


def find_weight_files(source: str | os.PathLike[str]) -> list[Path]:
    """The ``.pth`` files of ``source`` (one file, or every ``*.pth`` of a folder, sorted).

    Raises:
        ModelFileError: a missing path, or a folder without ``.pth`` files.
    """
    p = Path(source)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.glob("*.pth") if f.is_file())
        if not files:
            raise ModelFileError(f"{p} holds no .pth files (the STSTNet fold weights, e.g. "
                                 "006.pth, s01.pth, sub01.pth)")
        return files
    raise ModelFileError(f"STSTNet weights not found: {p} (a .pth file or a folder of them)")


def _sha256(path: Path) -> str:
    from mestudio.inference.export import sha256_file

    return sha256_file(path)


def check_hashes(files: Sequence[Path], expected: Mapping[str, str]) -> None:
    """Raise ModelFileError naming every file whose sha256 differs from ``expected[name]``
    (files not in ``expected`` are refused too)."""
    bad = []
    for f in files:
        want = expected.get(f.name)
        if want is None:
            bad.append(f"{f.name} (not a published fold file)")
        elif _sha256(f) != want.lower():
            bad.append(f"{f.name} (sha256 differs from the published one)")
    if bad:
        raise ModelFileError("refusing STSTNet weights that are not the published ones: "
                             + ", ".join(bad[:6]) + (" ..." if len(bad) > 6 else ""))


def _metadata(folds: Sequence[Any], names: Sequence[str], name: str, opset: int,
              cam_size: tuple[int, int]) -> dict[str, Any]:
    from mestudio import __version__
    from mestudio.nets.flops import complexity
    from mestudio.nets.ststnet_fg2019 import MEGC2019_CLASSES
    from mestudio.preprocess import ststnet_megc2019_config

    fold = folds[0]
    pre = ststnet_megc2019_config().to_metadata()
    flow_method, flow_params = contract.flow_description(pre)
    figures = complexity(fold)
    n = len(folds)
    return {
        "schema_version": contract.SCHEMA_VERSION,
        "name": name,
        "description": (f"STSTNet (FG 2019), {n}-fold ensemble of the authors' weights trained "
                        "on real micro-expressions (CASME II + SAMM + SMIC), 3 classes"),
        "architecture": fold.arch,
        "input_kind": fold.input_kind,
        "classes": list(MEGC2019_CLASSES),
        "input_size": fold.input_size,
        "color": False,
        "preprocess": pre,
        "flow_method": flow_method,
        "flow_params": flow_params,
        "normalisation": contract.normalisation_description(pre),
        "training": {"dataset": TRAINING_DATASET, "protocol": "leave-one-subject-out folds",
                     "folds": n, "source": SOURCE, "paper": PAPER},
        "training_data": "real",
        "protocol": "ensemble of leave-one-subject-out folds (no held-out subject)",
        "metrics": {"authors_fold_loso": AUTHORS_LOSO} if n > 1 else {},
        "synthetic": False,
        "streams": list(fold.stream_names),
        "has_cam": True,
        "cam_size": list(cam_size),
        "model_kwargs": fold.config(),
        "params": int(figures["params"]) * n,
        "macs": int(figures["macs"]) * n,
        "precision": "fp32",
        "opset": opset,
        "ensemble": {"folds": n, "fold_files": list(names),
                     "combination": "mean of the folds' softmax; cam: mean of the folds' "
                                    "Grad-CAM maps; agreement: share of folds whose top class "
                                    "is the ensemble's"},
        "paper": PAPER,
        "source": SOURCE,
        "terms": TERMS,
        "card_notes": list(CARD_NOTES),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "mestudio_version": __version__,
    }


def _verify(path: Path, folds: Sequence[Any], atol: float = 1e-4, batch: int = 4,
            seed: int = 3) -> dict[str, Any]:
    """ONNX Runtime vs the fold-by-fold torch reference on recipe-like inputs (0..255)."""
    import onnxruntime as ort
    import torch

    from mestudio.inference.providers import CPU, quiet_onnxruntime, session_options
    from mestudio.nets.ststnet_fg2019 import ensemble_reference

    quiet_onnxruntime()
    g = torch.Generator().manual_seed(seed)
    s = folds[0].input_size
    flow = torch.randint(0, 256, (batch, 3, s, s), generator=g).float()
    frames = torch.rand(batch, 3, 1, s, s, generator=g)
    sess = ort.InferenceSession(os.fspath(path), session_options(threads=1), providers=[CPU])
    outs = dict(zip([o.name for o in sess.get_outputs()],
                    sess.run(None, {"flow": flow.numpy(), "frames": frames.numpy()}), strict=True))
    ref = {k: v.numpy() for k, v in ensemble_reference(folds, flow, frames).items()}
    checks: dict[str, Any] = {"batch": batch, "atol": atol, "reference": "fold-by-fold torch, "
                              "Grad-CAM by autograd"}
    d_probs = float(np.abs(outs["probs"] - ref["probs"]).max())
    d_cam = float(np.abs(outs["cam"] - ref["cam"]).max())
    d_logits = float(np.abs(outs["logits"] - np.log(ref["probs"])).max())
    d_agree = float(np.abs(outs["agreement"] - ref["agreement"]).max())
    checks.update(probs_max_abs_diff=d_probs, cam_max_abs_diff=d_cam,
                  logits_max_abs_diff=d_logits, agreement_max_abs_diff=d_agree,
                  cam_max_abs=float(np.abs(ref["cam"]).max()))
    problems = []
    if not d_probs <= atol:
        problems.append(f"probs differ by {d_probs:.2e}")
    if not d_cam <= atol:
        problems.append(f"cam differs by {d_cam:.2e}")
    if not d_agree <= 1e-6:
        problems.append(f"agreement differs by {d_agree:.2e}")
    from mestudio.inference.export import conclude_checks

    return conclude_checks(checks, problems, "STSTNet ensemble check (ONNX Runtime vs torch)")


def import_ststnet(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                   out_path: str | os.PathLike[str], *, name: str | None = None,
                   expected_sha256: Mapping[str, str] | None = None, opset: int = 17,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """Build the ONNX ensemble of STSTNet fold files.

    Args:
        source: one ``.pth`` file, a folder of them, or a list of files.
        out_path: the ``.onnx`` file to write (atomically; parent folders are created).
        name: display name (default: the file's stem).
        expected_sha256: ``{file name: sha256}``; when given, every file must match.
        opset: ONNX opset (>= 17).
        progress: called as ``progress(done, total)`` while the folds load.

    Returns:
        The path of the ONNX file (``NAME.onnx.sha256`` and the card are written beside it).

    Raises:
        ModelFileError: missing/unreadable/foreign weight files, a hash mismatch, or a
            failed ONNX-vs-torch check (nothing is left at ``out_path`` then).
    """
    import onnx
    import torch

    from mestudio.inference.export import (
        _ensure_inputs,
        _set_output_shapes,
        seal_proto,
        write_companions,
    )
    from mestudio.nets.ststnet_fg2019 import STSTNetEnsemble, load_published_weights
    from mestudio.onnxtrace import trace_onnx

    t0 = time.perf_counter()
    if isinstance(source, (str, os.PathLike)):
        files = find_weight_files(source)
    else:
        files = [Path(f) for f in source]
        if not files:
            raise ModelFileError("no STSTNet weight files given")
    if expected_sha256 is not None:
        check_hashes(files, expected_sha256)
    folds = []
    for i, f in enumerate(files):
        folds.append(load_published_weights(f))
        if progress:
            progress(i + 1, len(files))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    name = name or out.name.removesuffix(".onnx")
    ensemble = STSTNetEnsemble(folds).eval()
    s = folds[0].input_size
    example = (torch.rand(2, 3, s, s) * 255, torch.rand(2, 3, 1, s, s))
    outputs = ["logits", "probs", "cam", "agreement"]
    proto = trace_onnx(ensemble, example, list(folds[0].input_names), outputs, opset)

    _ensure_inputs(proto, contract.expected_inputs(folds[0].input_kind, s, 1))
    k = ensemble.num_classes
    _set_output_shapes(proto, {"logits": ("N", k), "probs": ("N", k),
                               "cam": ("N", k, 1, *ensemble.cam_size), "agreement": ("N",)})
    proto.graph.name = "ststnet_fg2019_ensemble"
    proto.producer_name = "mestudio"
    proto.doc_string = f"STSTNet (FG 2019) ensemble of {len(folds)} folds; classes negative, " \
                       "positive, surprise"
    meta = _metadata(folds, [f.name for f in files], name, opset, ensemble.cam_size)
    seal_proto(proto, meta)
    with atomic_path(out) as tmp_out:
        onnx.save(proto, os.fspath(tmp_out))
        checks = _verify(tmp_out, folds)
    write_companions(out, meta, checks)
    log.info("imported %d STSTNet folds into %s (%.0f KB) in %.1f s", len(folds), out,
             out.stat().st_size / 1e3, time.perf_counter() - t0)
    return out
