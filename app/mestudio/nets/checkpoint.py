"""Training checkpoints: one ``torch.save`` dict of plain types plus the state dict.

Everything except the tensors of the state dict is stored as plain Python types (dict, list,
str, int, float, bool, None), so :func:`load_checkpoint` reads files with
``torch.load(weights_only=True)``: loading a checkpoint never runs code from the file.

Layout (``format = "mestudio-checkpoint/1"``)::

    {"format", "arch", "classes": [..], "num_classes", "model_kwargs": {..},
     "preprocess": {..}, "training": {..}, "metrics": {..}, "synthetic": bool,
     "created": ISO time, "mestudio_version", "torch_version", "params": int,
     "state_dict": {name: Tensor}}
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mestudio.errors import ModelFileError
from mestudio.fsutil import atomic_path

CHECKPOINT_FORMAT = "mestudio-checkpoint/1"


def to_plain(obj: Any, where: str = "value") -> Any:
    """Convert ``obj`` to plain JSON-like types (dicts with str keys, lists, scalars).

    Tuples become lists, numpy scalars/arrays Python numbers/lists, paths strings,
    dataclasses dicts. Non-finite floats are kept (they are plain floats).

    Raises:
        TypeError: for objects that have no plain equivalent (naming where they are).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.ndarray):
        return to_plain(obj.tolist(), where)
    if isinstance(obj, torch.Tensor):
        return to_plain(obj.detach().cpu().tolist(), where)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_plain(dataclasses.asdict(obj), where)
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, Sequence):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where} has type {type(obj).__name__}, which cannot be stored in a "
                    "checkpoint (use dicts, lists, strings and numbers)")


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, *, arch: str,
                    classes: Sequence[str], model_kwargs: Mapping[str, Any] | None = None,
                    preprocess: Mapping[str, Any] | None = None,
                    training: Mapping[str, Any] | None = None,
                    metrics: Mapping[str, Any] | None = None,
                    synthetic: bool = False) -> Path:
    """Write a checkpoint of ``model`` (atomically: a temporary file then a rename).

    Args:
        path: destination ``.pt`` file (parent folders are created).
        model: the network (any device; tensors are stored on the CPU).
        arch: registry name (``create_model(arch, len(classes), **model_kwargs)`` rebuilds it).
        classes: class names in logit order.
        model_kwargs: constructor keyword arguments; default ``model.config()``.
        preprocess: ``PreprocessConfig.to_metadata()`` of the features the model was trained on.
        training: what it was trained on, e.g. ``{"dataset": "casme2", "protocol": "loso",
            "epochs": 50, ...}``.
        metrics: evaluation figures, e.g. ``{"uf1": 0.71, "uar": 0.70}``.
        synthetic: True when trained on synthetic data only.

    Returns:
        The path written.
    """
    from mestudio import __version__

    if model_kwargs is None:
        config = getattr(model, "config", None)
        model_kwargs = config() if callable(config) else {}
    classes = [str(c) for c in classes]
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "arch": str(arch),
        "classes": classes,
        "num_classes": len(classes),
        "model_kwargs": to_plain(dict(model_kwargs), "model_kwargs"),
        "preprocess": to_plain(dict(preprocess or {}), "preprocess"),
        "training": to_plain(dict(training or {}), "training"),
        "metrics": to_plain(dict(metrics or {}), "metrics"),
        "synthetic": bool(synthetic),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mestudio_version": __version__,
        "torch_version": str(torch.__version__),
        "params": int(sum(p.numel() for p in model.parameters())),
        "state_dict": state,
    }
    out = Path(path)
    with atomic_path(out) as tmp:
        torch.save(ckpt, tmp)
    return out


def load_checkpoint(path: str | os.PathLike[str],
                    map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns:
        ``(model in eval mode, info)``; ``info`` holds every field of the file except the
        state dict, plus ``"path"``.

    Raises:
        ModelFileError: missing, corrupt or foreign file, unknown architecture, or weights
            that do not fit the architecture.
    """
    from mestudio.nets.registry import create_model

    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"checkpoint not found: {p}")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "WeightsUnpickler" in ln), lines[0] if lines else "")
        raise ModelFileError(f"{p} is not a readable mestudio checkpoint ({type(exc).__name__}: "
                             f"{detail}); train one with `mestudio train`") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{p} is not a mestudio checkpoint (format "
                             f"{ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__!r}, "
                             f"expected {CHECKPOINT_FORMAT})")
    for key in ("arch", "classes", "state_dict"):
        if key not in ckpt:
            raise ModelFileError(f"checkpoint {p} lacks {key!r}; it is damaged")
    try:
        model = create_model(ckpt["arch"], len(ckpt["classes"]), **ckpt.get("model_kwargs", {}))
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"checkpoint {p} describes a model this version cannot build: {exc}") from exc
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"the weights in {p} do not fit architecture {ckpt['arch']!r}: "
                             f"{str(exc).splitlines()[0]}") from exc
    model.eval()
    info = {k: v for k, v in ckpt.items() if k != "state_dict"}
    info["path"] = str(p)
    return model, info
