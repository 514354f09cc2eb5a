"""Export a trained network to ONNX with in-graph Grad-CAM (the ONNX contract).

:func:`export_onnx` takes a checkpoint (or a ``(model, info)`` pair), folds batch norm into
the convolutions, wraps the network in :class:`mestudio.nets.gradcam.AnalyticGradCAM` and
writes ``NAME.onnx`` (opset >= 17, dynamic batch, outputs ``logits``, ``probs``, ``cam``) with
the ``mestudio.*`` metadata, then checks ONNX Runtime against torch on random inputs (logits
to 1e-4, CAM against torch-autograd Grad-CAM to 1e-4) and writes ``NAME.onnx.sha256`` and
the model card ``NAME.card.json`` / ``NAME.card.md`` beside it.

``fp16=True`` stores the weights as float16 (half the file) with a ``Cast`` to float32 in
front of each, so inputs, outputs and arithmetic stay float32; the check then compares
against torch with the same rounded weights and reports how far the fp16 model is from the
fp32 one (``fp16_check`` in the card).

``int8=True`` applies ONNX Runtime dynamic quantization (int8 weights) to the ``MatMul``/``Gemm``
nodes, the Grad-CAM head's included (:mod:`mestudio.inference.quantize`); convolutions, inputs
and outputs stay float32. The 1e-4 check is replaced by an agreement check against the float32
torch model on random inputs (top-1 agreement >= 0.9, mean Grad-CAM Pearson correlation with
torch-autograd Grad-CAM >= 0.95, logit difference reported) and, with ``validate_features``,
on cached dataset features; the figures go into the card (``int8_check``).
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.errors import ModelFileError
from mestudio.fsutil import atomic_path, atomic_write_text
from mestudio.inference import contract
from mestudio.preprocess import input_kind

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
#: Initializers with fewer elements stay float32 in fp16 exports (epsilons, scalars, shapes).
FP16_MIN_ELEMENTS = 64


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# torch-side preparation


def fold_batchnorm(model: Any) -> Any:
    """A copy of ``model`` (eval mode) with every BatchNorm folded into the convolution before it.

    A network whose class sets ``fold_bn = False`` (batch norm after an activation) is
    returned unfolded. Handles ``nn.Sequential`` runs ``(Conv, BatchNorm)`` and the ``convN``/``bnN`` attribute
    pairs of the residual blocks. Raises ``RuntimeError`` if a BatchNorm is left unfolded.
    """
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    bns = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    model = copy.deepcopy(model).eval()
    if not getattr(model, "fold_bn", True):  # BN after an activation (STSTNet FG 2019)
        return model
    with torch.no_grad():
        for module in list(model.modules()):
            if isinstance(module, nn.Sequential):
                keys = list(module._modules)
                for a, b in zip(keys, keys[1:], strict=False):
                    conv, bn = module._modules[a], module._modules[b]
                    if isinstance(conv, convs) and isinstance(bn, bns):
                        module._modules[a] = fuse_conv_bn_eval(conv, bn)
                        module._modules[b] = nn.Identity()
            for i in range(1, 4):
                conv_i, bn_i = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
                if isinstance(conv_i, convs) and isinstance(bn_i, bns):
                    setattr(module, f"conv{i}", fuse_conv_bn_eval(conv_i, bn_i))
                    setattr(module, f"bn{i}", nn.Identity())
    left = [name for name, m in model.named_modules() if isinstance(m, bns)]
    if left:
        raise RuntimeError(f"batch norm layers not folded: {left}")
    return model


def _round_fp16_(module: Any) -> None:
    """Round (in place) every float tensor with >= FP16_MIN_ELEMENTS elements to float16 precision."""
    import torch

    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if t.is_floating_point() and t.numel() >= FP16_MIN_ELEMENTS:
                t.copy_(t.half().float())


# --------------------------------------------------------------------------------------------
# ONNX post-processing


def _ensure_inputs(proto: Any, shapes: Mapping[str, tuple[int | str, ...]]) -> None:
    """Add inputs the tracer dropped (a baseline that ignores ``frames``) and fix the order."""
    from onnx import TensorProto, helper

    present = {i.name: i for i in proto.graph.input}
    new_inputs = []
    for name, shape in shapes.items():
        if name in present:
            new_inputs.append(present[name])
        else:
            new_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
    others = [i for i in proto.graph.input if i.name not in shapes]
    del proto.graph.input[:]
    proto.graph.input.extend(new_inputs + others)


def _set_output_shapes(proto: Any, shapes: Mapping[str, tuple[int | str, ...]]) -> None:
    """Write the contract's output shapes (the tracer may leave symbolic names)."""
    for out in proto.graph.output:
        if out.name not in shapes:
            continue
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        for d in shapes[out.name]:
            dim = dims.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = int(d)


def _weights_to_fp16(proto: Any) -> int:
    """Store float initializers with >= FP16_MIN_ELEMENTS elements as float16 + Cast nodes.

    Only tensors whose values float16 represents exactly are converted (the weights, rounded
    beforehand); derived float32 constants (the precomputed CAM projection) stay float32, so
    the conversion itself changes no number. Returns the number of converted initializers.
    """
    from onnx import TensorProto, helper, numpy_helper

    casts = []
    converted = 0
    for init in proto.graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < FP16_MIN_ELEMENTS:
            continue
        half_arr = arr.astype(np.float16)
        if not np.array_equal(half_arr.astype(np.float32), arr):
            continue
        name = init.name
        half = numpy_helper.from_array(half_arr, name + "__fp16")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [name + "__fp16"], [name], to=TensorProto.FLOAT,
                                      name=name + "__cast"))
        converted += 1
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(casts + nodes)
    return converted


# --------------------------------------------------------------------------------------------


def _resolve(source: Any) -> tuple[Any, dict[str, Any]]:
    from mestudio.nets.checkpoint import load_checkpoint

    if isinstance(source, (str, os.PathLike)):
        return load_checkpoint(source)
    if isinstance(source, tuple) and len(source) == 2:
        model, info = source
        info = dict(info or {})
        info.setdefault("arch", getattr(model, "arch", type(model).__name__.lower()))
        if "classes" not in info:
            info["classes"] = [f"class{i}" for i in range(model.num_classes)]
        info.setdefault("model_kwargs", model.config() if hasattr(model, "config") else {})
        for key in ("preprocess", "training", "metrics"):
            info.setdefault(key, {})
        info.setdefault("synthetic", False)
        return model, info
    raise TypeError("export_onnx takes a checkpoint path or a (model, info) pair")


def _build_metadata(model: Any, info: Mapping[str, Any], name: str, precision: str,
                    with_cam: bool, cam_size: tuple[int, int], complexity: Mapping[str, int],
                    opset: int) -> dict[str, Any]:
    from mestudio import __version__

    pre = dict(info.get("preprocess") or {})
    training = dict(info.get("training") or {})
    flow_method, flow_params = contract.flow_description(pre)
    input_size = int(pre.get("input_size", model.input_size))
    color = bool(pre.get("color", model.in_channels == 3))
    synthetic = bool(info.get("synthetic", False))
    data = training.get("dataset") or training.get("data") or ("synthetic" if synthetic else "unknown")
    meta: dict[str, Any] = {
        "schema_version": contract.SCHEMA_VERSION,
        "name": name,
        "architecture": info["arch"],
        "input_kind": model.input_kind,
        "classes": [str(c) for c in info["classes"]],
        "input_size": input_size,
        "color": color,
        "preprocess": pre,
        "flow_method": flow_method,
        "flow_params": flow_params,
        "normalisation": contract.normalisation_description(pre),
        "training": training,
        "training_data": str(data),
        "protocol": str(training.get("protocol", "unknown")),
        "metrics": dict(info.get("metrics") or {}),
        "synthetic": synthetic,
        "streams": list(model.stream_names),
        "has_cam": with_cam,
        "cam_size": list(cam_size),
        "model_kwargs": dict(info.get("model_kwargs") or {}),
        "params": int(complexity["params"]),
        "macs": int(complexity["macs"]),
        "precision": precision,
        "opset": opset,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mestudio_version": __version__,
    }
    if input_kind(model.input_kind).is_clip:
        meta["clip_len"] = int(model.clip_len)
    return meta


def _verify(path: Path, model: Any, reference: Any, with_cam: bool, atol: float = 1e-4,
            seed: int = 1, batch: int = 3, rtol: float = 1e-5) -> dict[str, Any]:
    """Compare ONNX Runtime on ``path`` with torch ``reference`` (logits, probs, CAM).

    Allowed difference: ``atol + rtol * max|reference|`` (float32 rounding grows with the
    magnitude of a trained network's outputs; for outputs of order 1 this is ``atol``).
    """
    import onnxruntime as ort
    import torch

    from mestudio.inference.providers import CPU, quiet_onnxruntime, session_options
    from mestudio.nets.gradcam import gradcam_autograd

    quiet_onnxruntime()
    sess = ort.InferenceSession(os.fspath(path), session_options(threads=1),
                                providers=[CPU])
    inputs = model.example_inputs(batch, seed=seed)
    feed = {n: x.numpy() for n, x in zip(model.input_names, inputs, strict=True)}
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed), strict=True))
    with torch.no_grad():
        logits_ref = reference(*inputs)
    checks: dict[str, Any] = {"batch": batch, "atol": atol}
    d_logits = float(np.abs(outs["logits"] - logits_ref.numpy()).max())
    probs_ref = torch.softmax(logits_ref, 1).numpy()
    d_probs = float(np.abs(outs["probs"] - probs_ref).max())
    checks.update(logits_max_abs_diff=d_logits, probs_max_abs_diff=d_probs)
    problems = []
    tol_logits = atol + rtol * float(np.abs(logits_ref.numpy()).max())
    if not d_logits <= tol_logits:
        problems.append(f"logits differ by {d_logits:.2e} (> {tol_logits:.2g})")
    if not d_probs <= atol:
        problems.append(f"probs differ by {d_probs:.2e} (> {atol:g})")
    if with_cam:
        cam_ref = gradcam_autograd(reference, *inputs).numpy()
        if outs["cam"].shape != cam_ref.shape:
            problems.append(f"cam has shape {outs['cam'].shape}, autograd Grad-CAM {cam_ref.shape}")
        else:
            d_cam = float(np.abs(outs["cam"] - cam_ref).max())
            checks.update(cam_max_abs_diff=d_cam, cam_max_abs=float(np.abs(cam_ref).max()))
            tol_cam = atol + rtol * float(np.abs(cam_ref).max())
            if not d_cam <= tol_cam:
                problems.append(f"cam differs from autograd Grad-CAM by {d_cam:.2e} "
                                f"(> {tol_cam:.2g})")
    checks["passed"] = not problems
    if problems:
        shown = path.name.removesuffix(".tmp")
        raise ModelFileError(f"export check failed for {shown}: " + "; ".join(problems)
                             + " — please report this as a bug")
    return checks


def _fp16_agreement(model32: Any, model16: Any, n: int = 64, seed: int = 7) -> dict[str, Any]:
    """How far fp16-rounded weights move the outputs on ``n`` random samples."""
    import torch

    inputs = model32.example_inputs(n, seed=seed)
    with torch.no_grad():
        p32 = torch.softmax(model32(*inputs), 1)
        p16 = torch.softmax(model16(*inputs), 1)
    return {
        "samples": n,
        "argmax_agreement": float((p32.argmax(1) == p16.argmax(1)).float().mean()),
        "probs_max_abs_diff": float((p32 - p16).abs().max()),
    }


def _verify_int8(path: Path, model: Any, info: Mapping[str, Any], with_cam: bool,
                 validate_features: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Agreement check of an int8 export with the float32 torch model (raises on failure)."""
    from mestudio.inference import quantize

    rand = quantize.int8_agreement(path, model, with_cam)
    result: dict[str, Any] = {"random": rand}
    if validate_features is not None:
        result["features"] = quantize.feature_agreement(path, model, list(info["classes"]),
                                                        validate_features, with_cam)
    result["thresholds"] = {"top1_agreement": quantize.MIN_TOP1_AGREEMENT,
                            "cam_corr_mean": quantize.MIN_CAM_CORRELATION}
    problems = []
    for label, res in result.items():
        if label == "thresholds":
            continue
        if res["top1_agreement"] < quantize.MIN_TOP1_AGREEMENT:
            problems.append(f"top class agrees with float32 on only {res['top1_agreement']:.1%} "
                            f"of {res['samples']} {label} samples")
        if "cam_corr_mean" in res and res["cam_corr_mean"] < quantize.MIN_CAM_CORRELATION:
            problems.append(f"Grad-CAM correlation with float32 is {res['cam_corr_mean']:.3f} "
                            f"on {label} samples (< {quantize.MIN_CAM_CORRELATION})")
    if problems:
        shown = path.name.removesuffix(".tmp")
        raise ModelFileError(f"int8 export check failed for {shown}: " + "; ".join(problems)
                             + " — export it without --int8")
    checks = {"batch": rand["samples"], "atol": "n/a (int8: agreement check)",
              "logits_max_abs_diff": rand["logits_max_abs_diff"],
              "probs_max_abs_diff": rand["probs_max_abs_diff"], "int8_check": result,
              "passed": True}
    return checks


def _int8_text(check: Mapping[str, Any]) -> list[str]:
    """Card lines describing the int8 agreement figures."""
    lines = []
    for label, res in check.items():
        if label == "thresholds":
            continue
        what = "random" if label == "random" else f"cached ({res.get('source')})"
        line = (f"int8 vs float32 on {res['samples']} {what} samples: top class agrees on "
                f"{res['top1_agreement'] * 100:.1f} %, logits differ by at most "
                f"{res['logits_max_abs_diff']:.2e} (largest logit {res['logits_max_abs']:.2f})")
        if "cam_corr_mean" in res:
            line += (f", Grad-CAM Pearson correlation mean {res['cam_corr_mean']:.3f} over "
                     f"{res['cam_maps']} maps")
        if "accuracy_int8" in res:
            line += (f"; accuracy int8 {res['accuracy_int8'] * 100:.1f} % vs float32 "
                     f"{res['accuracy_fp32'] * 100:.1f} %")
        lines.append(line + ".")
    return lines


def _append_int8_card(out: Path, check: Mapping[str, Any]) -> None:
    from mestudio.inference.card import card_paths

    md = card_paths(out)[1]
    text = md.read_text(encoding="utf-8")
    section = ["", "## Int8 quantization", "",
               "Weights of the linear layers (MatMul/Gemm, Grad-CAM head included) are int8 "
               "(ONNX Runtime dynamic quantization; activations quantized per batch at run "
               "time); convolutions, inputs and outputs are float32. Check thresholds: top-1 "
               f"agreement >= {check['thresholds']['top1_agreement']}, mean Grad-CAM "
               f"correlation >= {check['thresholds']['cam_corr_mean']}.", ""]
    section += [f"- {line}" for line in _int8_text(check)]
    marker = "\n## Intended use and limitations"
    if marker in text:
        text = text.replace(marker, "\n".join(section) + "\n" + marker, 1)
    else:
        text += "\n".join(section) + "\n"
    atomic_write_text(md, text)


def write_companions(out: Path, meta: Mapping[str, Any], checks: Mapping[str, Any],
                     card: bool = True) -> str:
    """Write ``NAME.onnx.sha256`` and (``card``) the model card beside the finished model
    file ``out``; returns the file's sha256."""
    from mestudio.inference import card as model_card

    digest = sha256_file(out)
    atomic_write_text(out.with_name(out.name + ".sha256"), f"{digest}  {out.name}\n")
    if card:
        model_card.write_card(out, meta, checks, digest)
    return digest


def conclude_checks(checks: dict[str, Any], problems: list[str], what: str) -> dict[str, Any]:
    """``checks`` with ``passed``; ModelFileError naming every problem (a bug to report)
    when there is one. ``what``: e.g. ``"STSTNet ensemble check (ONNX Runtime vs torch)"``."""
    checks["passed"] = not problems
    if problems:
        raise ModelFileError(f"{what} failed: " + "; ".join(problems)
                             + " — please report this as a bug")
    return checks


def seal_proto(proto: Any, meta: dict[str, Any]) -> None:
    """Record the weights' sha256 in ``meta``, write ``meta`` as the ``mestudio.*``
    metadata of ``proto`` and check the graph (ModelFileError when it is not valid ONNX)."""
    import onnx

    meta["weights_sha256"] = contract.weights_sha256(proto)
    del proto.metadata_props[:]
    for key, value in contract.encode_metadata(meta).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:  # pragma: no cover - exporter bug
        raise ModelFileError(f"the exported graph is not valid ONNX: {exc}") from exc


def export_onnx(source: str | os.PathLike[str] | tuple[Any, Mapping[str, Any]],
                out_path: str | os.PathLike[str], *, fp16: bool = False, cam: bool = True,
                verify: bool = True, opset: int = DEFAULT_OPSET, card: bool = True,
                name: str | None = None, int8: bool = False,
                validate_features: str | os.PathLike[str] | None = None) -> Path:
    """Export a network to an ONNX file that follows the contract.

    Args:
        source: a checkpoint path (:func:`mestudio.nets.checkpoint.save_checkpoint`) or a
            ``(model, info)`` pair with ``info`` like a checkpoint's (``arch``, ``classes``,
            ``preprocess``, ``training``, ``metrics``, ``synthetic``; missing keys get
            defaults).
        out_path: the ``.onnx`` file to write (parent folders are created).
        fp16: store weights as float16 (inputs, outputs and arithmetic stay float32).
        cam: include the ``cam`` output (False: ``logits`` and ``probs`` only).
        verify: run the ONNX Runtime vs torch check (raises ModelFileError on mismatch).
        opset: ONNX opset (>= 17).
        card: write the model card ``NAME.card.json``/``NAME.card.md`` (``NAME.onnx.sha256``
            is always written).
        name: display name stored in the metadata (default: the file's stem).
        int8: dynamically quantize the MatMul/Gemm weights to int8 (not with ``fp16``).
        validate_features: with ``int8``, a folder of cached ``.npz`` model inputs to measure
            top-1 agreement (and accuracy, when they carry labels) on.

    Returns:
        The path of the ONNX file.
    """
    import onnx

    from mestudio.nets.flops import complexity
    from mestudio.nets.gradcam import AnalyticGradCAM

    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    if int8 and fp16:
        raise ValueError("int8 and fp16 exclude each other")
    t0 = time.perf_counter()
    model, info = _resolve(source)
    if len(info["classes"]) != model.num_classes:
        raise ModelFileError(f"{len(info['classes'])} class names for a model with "
                             f"{model.num_classes} outputs")
    pre = info.get("preprocess") or {}
    if "input_size" in pre and int(pre["input_size"]) != model.input_size:
        raise ModelFileError(f"the checkpoint's preprocessing makes {pre['input_size']} px inputs "
                             f"but the network was built for {model.input_size} px")
    if "color" in pre and bool(pre["color"]) != (model.in_channels == 3):
        raise ModelFileError(f"the checkpoint's preprocessing has color={pre['color']} but the "
                             f"network takes {model.in_channels}-channel frames")
    if input_kind(model.input_kind).is_clip and "clip_len" in pre \
            and int(pre["clip_len"]) != model.clip_len:
        raise ModelFileError(f"the checkpoint's preprocessing makes clips of {pre['clip_len']} "
                             f"frames but the network was built for {model.clip_len}")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    name = name or out.name.removesuffix(".onnx")

    model = copy.deepcopy(model).cpu().float().eval()
    figures = complexity(model)
    # Export form: BN folded; architectures may offer a faster equivalent (M3ENet: parallel
    # streams as grouped convolutions). The check below compares it with the original.
    variant = getattr(model, "inference_variant", None)
    fused = fold_batchnorm(variant() if callable(variant) else model)
    reference = model  # fp32: compare with the network as trained (checks the BN folding too)
    fp16_check = None
    if fp16:
        # Round the weights first: the CAM constants are then computed from the rounded
        # weights (and stay float32), so ONNX Runtime must match this rounded network exactly.
        _round_fp16_(fused)
        fp16_check = _fp16_agreement(model, fused)
        reference = fused
    wrapper = AnalyticGradCAM(fused, with_cam=cam).eval()

    input_names = list(model.input_names)
    output_names = ["logits", "probs"] + (["cam"] if cam else [])
    shapes = contract.expected_inputs(model.input_kind, model.input_size, model.in_channels,
                                      model.clip_len)
    example = model.example_inputs(2)
    from mestudio.onnxtrace import trace_onnx

    proto = trace_onnx(wrapper, example, input_names, output_names, opset)

    _ensure_inputs(proto, shapes)
    k = model.num_classes
    out_shapes: dict[str, tuple[int | str, ...]] = {"logits": ("N", k), "probs": ("N", k)}
    if cam:
        out_shapes["cam"] = ("N", k, len(model.stream_names), *wrapper.cam_size)
    _set_output_shapes(proto, out_shapes)
    precision = "fp32"
    if fp16:
        n_conv = _weights_to_fp16(proto)
        precision = "fp16-weights"
        log.info("stored %d weight tensors as float16", n_conv)
    if int8:
        from mestudio.inference.quantize import QUANTIZATION, quantize_int8

        proto = quantize_int8(proto)
        precision = QUANTIZATION
    proto.graph.name = info["arch"]
    proto.producer_name = "mestudio"
    proto.doc_string = (f"mestudio {info['arch']} ({model.input_kind} inputs), classes: "
                        + ", ".join(info["classes"]))
    meta = _build_metadata(model, info, name, precision, cam,
                           getattr(wrapper, "cam_size", (0, 0)), figures, opset)
    if int8:
        meta["quantization"] = QUANTIZATION
    seal_proto(proto, meta)
    checks: dict[str, Any] = {}
    with atomic_path(out) as tmp_out:
        onnx.save(proto, os.fspath(tmp_out))
        if verify and int8:
            checks = _verify_int8(tmp_out, model, info, cam, validate_features)
        elif verify:  # before the file takes its name: a failed export leaves nothing behind
            checks = _verify(tmp_out, model, reference, cam)
            log.info("export check passed: logits diff %.1e, cam diff %s",
                     checks["logits_max_abs_diff"], f"{checks.get('cam_max_abs_diff', 0):.1e}")
    if fp16_check is not None:
        checks["fp16_check"] = fp16_check
    write_companions(out, meta, checks, card)
    if card:
        if "int8_check" in checks:
            _append_int8_card(out, checks["int8_check"])
    log.info("exported %s (%s, %.1f MB) in %.1f s", out, info["arch"],
             out.stat().st_size / 1e6, time.perf_counter() - t0)
    return out
