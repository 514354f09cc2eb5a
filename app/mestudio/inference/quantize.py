"""Int8 dynamic quantization of an exported mestudio ONNX model (``mestudio export --int8``).

Batch-1 inference of M3ENet is memory bound: 88 % of its 24 MB of float32 weights sit in the
linear layers. :func:`quantize_int8` runs ONNX Runtime's dynamic quantization
(``onnxruntime.quantization.quantize_dynamic``, signed int8 weights, activations quantized per
batch at run time) on the ``MatMul``/``Gemm`` nodes only; convolutions stay float32, and so do
the graph's inputs and outputs. Initializers shared by several nodes (M3ENet's Grad-CAM head
multiplies by the weight of the second hidden layer again) are first given one copy per node:
the quantizer rewrites a weight in place for the node it quantizes, which would silently
change the other node's matrix.

Int8 cannot meet the 1e-4 equality check of a float32 export, so :func:`int8_agreement`
measures instead: top-1 agreement with the float32 torch model, the largest logit difference,
and the Pearson correlation of every Grad-CAM map with torch-autograd Grad-CAM.
:func:`feature_agreement` does the same on cached dataset features (``.npz`` files with ``flow``
and ``frames`` or ``clip`` and ``flow_seq`` arrays, as ``mestudio data prepare`` writes them).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.errors import ModelFileError

log = logging.getLogger(__name__)

QUANTIZATION = "int8-dynamic"
#: Export check thresholds for int8 models (random inputs).
MIN_TOP1_AGREEMENT = 0.9
MIN_CAM_CORRELATION = 0.95


def unshare_initializers(proto: Any) -> int:
    """Give every node its own copy of an initializer that several nodes read (in place).

    The first reader keeps the name; the others read ``NAME__shareK``. Returns the number of
    copies made.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in proto.graph.initializer}
    readers: dict[str, list[tuple[Any, int]]] = defaultdict(list)
    for node in proto.graph.node:
        for j, name in enumerate(node.input):
            if name in inits:
                readers[name].append((node, j))
    copies = 0
    for name, uses in readers.items():
        for k, (node, j) in enumerate(uses[1:], start=1):
            new_name = f"{name}__share{k}"
            proto.graph.initializer.append(
                numpy_helper.from_array(numpy_helper.to_array(inits[name]), new_name))
            node.input[j] = new_name
            copies += 1
    return copies


def quantize_int8(proto: Any, *, per_channel: bool = False,
                  exclude_nodes: list[str] | None = None) -> Any:
    """Dynamically quantize the ``MatMul``/``Gemm`` weights of ``proto`` to int8.

    Args:
        proto: an ``onnx.ModelProto`` as :func:`mestudio.inference.export.export_onnx` builds
            it (float32 weights); it is not modified.
        per_channel: one scale per output channel instead of one per tensor.
        exclude_nodes: node names to keep in float32.

    Returns:
        The quantized ``onnx.ModelProto`` with the original ``metadata_props`` (unchanged;
        the caller updates precision, quantization and weights hash).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    work = onnx.ModelProto()
    work.CopyFrom(proto)
    n_copies = unshare_initializers(work)
    if n_copies:
        log.info("gave %d shared weight(s) their own copy before quantization", n_copies)
    with tempfile.TemporaryDirectory(prefix="mestudio-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(work, os.fspath(src))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer warns about pre-processing via root logging
        try:
            quantize_dynamic(os.fspath(src), os.fspath(dst), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm"], per_channel=per_channel,
                             nodes_to_exclude=list(exclude_nodes or []),
                             extra_options={"MatMulConstBOnly": True})
        finally:
            root.setLevel(level)
        out = onnx.load(os.fspath(dst))
    del out.metadata_props[:]
    for entry in proto.metadata_props:
        new = out.metadata_props.add()
        new.key, new.value = entry.key, entry.value
    out.graph.name = proto.graph.name
    out.producer_name = proto.producer_name
    out.doc_string = proto.doc_string
    return out


def cam_correlation(cam: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Pearson correlation per map between two ``[N, K, S, h, w]`` Grad-CAM arrays.

    Maps constant in both (e.g. all zero: no positive evidence) count as agreeing (1.0);
    a map constant in only one of them counts as 0.0.

    Returns:
        ``mean``, ``min`` and ``maps`` (the number of maps compared).
    """
    a = cam.reshape(-1, cam.shape[-2] * cam.shape[-1]).astype(np.float64)
    b = ref.reshape(a.shape).astype(np.float64)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    na, nb = np.sqrt((a * a).sum(1)), np.sqrt((b * b).sum(1))
    scale = max(float(np.abs(ref).max()), 1e-30)
    flat_a, flat_b = na <= 1e-6 * scale, nb <= 1e-6 * scale
    r = np.zeros(len(a))
    both = ~flat_a & ~flat_b
    r[both] = (a[both] * b[both]).sum(1) / (na[both] * nb[both])
    r[flat_a & flat_b] = 1.0
    return {"mean": float(r.mean()), "min": float(r.min()), "maps": int(len(r))}


def _compare(sess: Any, model: Any, inputs: list[Any], with_cam: bool,
             labels: np.ndarray | None = None, cam_samples: int = 64) -> dict[str, Any]:
    import torch

    from mestudio.nets.gradcam import gradcam_autograd

    feed = {n: x.numpy() for n, x in zip(model.input_names, inputs, strict=True)}
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, feed), strict=True))
    with torch.no_grad():
        ref = model(*inputs).numpy()
    top_q, top_r = outs["logits"].argmax(1), ref.argmax(1)
    res: dict[str, Any] = {
        "samples": int(len(ref)),
        "top1_agreement": float((top_q == top_r).mean()),
        "logits_max_abs_diff": float(np.abs(outs["logits"] - ref).max()),
        "logits_max_abs": float(np.abs(ref).max()),
        "probs_max_abs_diff": float(np.abs(outs["probs"]
                                           - torch.softmax(torch.from_numpy(ref), 1).numpy()).max()),
    }
    if labels is not None:
        res["accuracy_int8"] = float((top_q == labels).mean())
        res["accuracy_fp32"] = float((top_r == labels).mean())
    if with_cam and "cam" in outs:
        n = min(cam_samples, len(ref))
        cam_ref = gradcam_autograd(model, *[x[:n] for x in inputs]).numpy()
        corr = cam_correlation(outs["cam"][:n], cam_ref)
        res.update(cam_corr_mean=corr["mean"], cam_corr_min=corr["min"], cam_maps=corr["maps"])
    return res


def _session(path: str | os.PathLike[str]) -> Any:
    import onnxruntime as ort

    from mestudio.inference.providers import CPU, quiet_onnxruntime, session_options

    quiet_onnxruntime()
    return ort.InferenceSession(os.fspath(path), session_options(threads=1), providers=[CPU])


def int8_agreement(path: str | os.PathLike[str], model: Any, with_cam: bool, n: int = 64,
                   seed: int = 11) -> dict[str, Any]:
    """Compare the int8 model at ``path`` with the float32 torch ``model`` on random inputs.

    Returns top-1 agreement, logit/probability max abs differences, and (with CAM) the mean
    and min Pearson correlation of the Grad-CAM maps with torch-autograd Grad-CAM.
    """
    import torch

    with torch.no_grad():
        inputs = model.example_inputs(n, seed=seed)
    return _compare(_session(path), model, list(inputs), with_cam)


def load_feature_dir(npz_dir: str | os.PathLike[str], input_names: tuple[str, ...] | list[str],
                     classes: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Read cached model inputs: every ``*.npz`` under ``npz_dir`` (recursively).

    Returns ``({input name: [N, ...] float32}, labels [N] or None)``; labels come from the
    ``native_label`` in each file's ``__meta__`` when every one names a class.

    Raises:
        ModelFileError: no usable files.
    """
    root = Path(npz_dir)
    files = sorted(root.rglob("*.npz"))
    arrays: dict[str, list[np.ndarray]] = {n: [] for n in input_names}
    labels: list[int] = []
    for f in files:
        with np.load(f) as z:
            if not all(n in z.files for n in input_names):
                continue
            for n in input_names:
                arrays[n].append(z[n].astype(np.float32))
            label = -1
            if "__meta__" in z.files:
                meta = json.loads(str(z["__meta__"]))
                name = meta.get("label", meta.get("native_label"))
                if name in classes:
                    label = classes.index(name)
            labels.append(label)
    if not labels:
        raise ModelFileError(f"no .npz feature files with inputs {', '.join(input_names)} under "
                             f"{root} (run `mestudio data prepare` to create them)")
    y = np.array(labels)
    return {n: np.stack(v) for n, v in arrays.items()}, (y if (y >= 0).all() else None)


def feature_agreement(path: str | os.PathLike[str], model: Any, classes: list[str],
                      npz_dir: str | os.PathLike[str], with_cam: bool) -> dict[str, Any]:
    """Like :func:`int8_agreement` on the cached dataset features in ``npz_dir`` (accuracies too
    when the files carry class labels)."""
    import torch

    feats, labels = load_feature_dir(npz_dir, list(model.input_names), classes)
    inputs = [torch.from_numpy(feats[n]) for n in model.input_names]
    res = _compare(_session(path), model, inputs, with_cam, labels=labels)
    res["source"] = os.fspath(npz_dir)
    return res
