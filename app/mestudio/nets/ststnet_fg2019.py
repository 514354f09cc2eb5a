"""STSTNet exactly as published (Liong, Gan, See, Khor, Huang; FG 2019), for the authors' weights.

The authors' PyTorch reproduction (GitHub ``christy1206/STSTNet``, ``main.py``) reads a
``[N, 3, 28, 28]`` image (their ``norm_u_v_os`` PNGs, loaded with OpenCV, values 0..255) and
runs three streams side by side::

    conv_k: Conv2d(3 -> 3 / 5 / 8, 3x3, padding 2)   28 -> 30
    ReLU -> BatchNorm2d                               (ReLU comes BEFORE batch norm)
    MaxPool2d(3, stride 3, padding 1)                 30 -> 10
    Dropout(0.5)
    concat (16 channels) -> AvgPool2d(2) -> 5x5x16 = 400 -> Linear(400, 3)

Classes of the MEGC2019 composite: 0 negative, 1 positive, 2 surprise. The module keeps the
authors' attribute names (``conv1..3``, ``bn1..3``, ``fc``) so their state_dicts load as
they are (:func:`load_published_weights`); :data:`KEY_MAP` documents the mapping (identity).

Because ReLU sits between convolution and batch norm, the batch norm can NOT be folded into
the convolution (``fold_bn = False``); it stays a per-channel affine map at inference.

:class:`STSTNetEnsemble` runs many folds of this network on one shared input in one pass
(one convolution with the filters of every fold, one grouped classifier) and returns the
mean of the folds' softmax, the mean of their Grad-CAM maps and the share of folds that agree
with the ensemble's top class.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mestudio.errors import ModelFileError
from mestudio.nets.blocks import AvgPoolFlatten, CamHead, MERNet, check_input
from mestudio.nets.gradcam import spatial_mean_jacobian
from mestudio.nets.registry import register

#: The published classes of the MEGC2019 composite, in the network's output order.
MEGC2019_CLASSES = ("negative", "positive", "surprise")
#: The authors' state_dict keys -> ours (the same names: the module mirrors theirs).
KEY_MAP = {f"{layer}.{p}": f"{layer}.{p}" for layer in ("conv1", "conv2", "conv3", "fc")
           for p in ("weight", "bias")} | {
    f"bn{i}.{p}": f"bn{i}.{p}" for i in (1, 2, 3)
    for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
FILTERS = (3, 5, 8)


def _pooled_side(input_size: int) -> int:
    """Side after the padded 3x3 convolution (+2) and the padded 3/3 max pooling."""
    conv = input_size + 2
    return (conv + 2 - 3) // 3 + 1


@register("ststnet_fg2019", input_kind="keyframes",
          description=("STSTNet exactly as published (28 px, ReLU before BN; loads the authors' "
                       "MEGC2019 fold weights), FG 2019"))
class STSTNetFG2019(MERNet):
    """The published STSTNet (see the module docstring); ``[N, 3, 28, 28] -> [N, 3]``.

    Input channels are whatever the weights were trained on; for the authors' MEGC2019
    weights that is the ``ststnet-megc2019`` recipe of :mod:`mestudio.preprocess`
    (channels strain, V, U as 0..255 values). Takes the key-frame signature
    ``model(flow, frames)`` and ignores ``frames``. Grad-CAM stream ``flow``: the 16
    concatenated 10x10 maps before the average pooling.
    """

    stream_names = ("flow",)
    fold_bn = False  # ReLU between conv and BN: nothing to fold

    def __init__(self, num_classes: int = 3, in_channels: int = 1, input_size: int = 28,
                 dropout: float = 0.5) -> None:
        super().__init__(num_classes, in_channels, input_size)
        self.conv1 = nn.Conv2d(3, FILTERS[0], 3, padding=2)
        self.conv2 = nn.Conv2d(3, FILTERS[1], 3, padding=2)
        self.conv3 = nn.Conv2d(3, FILTERS[2], 3, padding=2)
        self.bn1 = nn.BatchNorm2d(FILTERS[0])
        self.bn2 = nn.BatchNorm2d(FILTERS[1])
        self.bn3 = nn.BatchNorm2d(FILTERS[2])
        self.maxpool = nn.MaxPool2d(3, stride=3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.embed = AvgPoolFlatten(2)
        side = _pooled_side(input_size) // 2
        self.fc = nn.Linear(sum(FILTERS) * side * side, num_classes)
        self.dropout_p = float(dropout)

    def features(self, flow: Tensor, frames: Tensor | None = None) -> list[Tensor]:  # type: ignore[override]
        """``[A [N, 16, 10, 10]]`` from ``flow [N, 3, 28, 28]``; ``frames`` is ignored."""
        check_input(flow, "flow", "[N, 3, H, W]", 4)
        maps = []
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            maps.append(self.dropout(self.maxpool(bn(F.relu(conv(flow))))))
        return [torch.cat(maps, dim=1)]

    def cam_head(self) -> CamHead:
        return CamHead(embeds=[self.embed], layers=[self.fc])

    def config(self) -> dict:
        return {**super().config(), "dropout": self.dropout_p}


def load_published_weights(path: str | os.PathLike[str]) -> STSTNetFG2019:
    """One of the authors' fold files (a ``state_dict`` saved by their ``main.py``) as an
    :class:`STSTNetFG2019` in eval mode.

    Raises:
        ModelFileError: unreadable file, not a state_dict, or keys/shapes of another network.
    """
    p = Path(path)
    try:
        state = torch.load(os.fspath(p), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelFileError(f"STSTNet weight file not found: {p}") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise ModelFileError(f"{p} is not a readable PyTorch weight file (corrupt, truncated "
                             f"or another format: {type(exc).__name__})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelFileError(f"{p} is not a state_dict of tensors (STSTNet fold file expected)")
    model = STSTNetFG2019()
    expected = model.state_dict()
    mapped: dict[str, Tensor] = {KEY_MAP.get(str(k), str(k)): v for k, v in state.items()}
    missing = sorted(set(expected) - set(mapped))
    extra = sorted(set(mapped) - set(expected))
    if missing or extra:
        raise ModelFileError(
            f"{p} is not an STSTNet (FG 2019) weight file: "
            + "; ".join(s for s in (f"missing {', '.join(missing[:4])}" if missing else "",
                                    f"unexpected {', '.join(extra[:4])}" if extra else "") if s))
    bad = [f"{k} {tuple(mapped[k].shape)} (expected {tuple(v.shape)})"
           for k, v in expected.items() if tuple(mapped[k].shape) != tuple(v.shape)]
    if bad:
        raise ModelFileError(f"{p}: tensors of the wrong shape: {', '.join(bad[:3])}")
    if not all(bool(torch.isfinite(v.float()).all()) for v in mapped.values()):
        raise ModelFileError(f"{p} holds NaN or infinite weights")
    model.load_state_dict(mapped, strict=True)
    return model.eval()


def _stat(t: Tensor | None) -> Tensor:
    """A tensor the published network always has (bias, running statistics)."""
    if t is None:
        raise ValueError("STSTNet layers must have biases and batch-norm running statistics")
    return t


class STSTNetEnsemble(nn.Module):
    """Many :class:`STSTNetFG2019` folds on one shared input, computed in one pass.

    ``forward(flow, frames)`` returns ``(logits [N, K], probs [N, K], cam [N, K, 1, h, w],
    agreement [N])`` where ``probs`` is the mean of the folds' softmax, ``logits`` its
    logarithm (``softmax(logits) == probs``), ``cam`` the mean of the folds' raw Grad-CAM maps
    of each class, ``agreement`` the share of folds whose top class is the ensemble's.

    The three convolutions of every fold become one ``Conv2d(3 -> 16 F)``; batch norm (after
    ReLU) a per-channel scale and shift; the folds' classifiers one batched product. Eval
    mode only (dropout is the identity).
    """

    conv_weight: Tensor
    conv_bias: Tensor
    bn_scale: Tensor
    bn_shift: Tensor
    fc_weight: Tensor
    fc_bias: Tensor
    cam_weight: Tensor

    def __init__(self, folds: Sequence[STSTNetFG2019], with_cam: bool = True) -> None:
        super().__init__()
        if not folds:
            raise ValueError("an ensemble needs at least one fold")
        first = folds[0]
        if any(f.num_classes != first.num_classes or f.input_size != first.input_size
               for f in folds):
            raise ValueError("every fold must have the same classes and input size")
        self.num_folds = len(folds)
        self.num_classes = first.num_classes
        self.input_size = first.input_size
        self.in_channels = first.in_channels
        self.with_cam = with_cam
        channels = sum(FILTERS)
        side = _pooled_side(first.input_size)
        weights: list[Tensor] = []
        biases: list[Tensor] = []
        scales: list[Tensor] = []
        shifts: list[Tensor] = []
        fc_w: list[Tensor] = []
        fc_b: list[Tensor] = []
        cam_w: list[Tensor] = []
        ebar = spatial_mean_jacobian(first.embed, (channels, side, side))  # [400, 16] float64
        with torch.no_grad():
            for fold in folds:
                fold = fold.eval()
                for conv, bn in ((fold.conv1, fold.bn1), (fold.conv2, fold.bn2),
                                 (fold.conv3, fold.bn3)):
                    mean, var = _stat(bn.running_mean), _stat(bn.running_var)
                    weights.append(conv.weight)
                    biases.append(_stat(conv.bias))
                    scale = bn.weight / torch.sqrt(var + bn.eps)
                    scales.append(scale)
                    shifts.append(bn.bias - mean * scale)
                fc_w.append(fold.fc.weight)
                fc_b.append(fold.fc.bias)
                cam_w.append((fold.fc.weight.double() @ ebar).float())  # [K, 16]
        self.register_buffer("conv_weight", torch.cat(weights).clone())        # [16F, 3, 3, 3]
        self.register_buffer("conv_bias", torch.cat(biases).clone())           # [16F]
        self.register_buffer("bn_scale", torch.cat(scales).view(1, -1, 1, 1).clone())
        self.register_buffer("bn_shift", torch.cat(shifts).view(1, -1, 1, 1).clone())
        self.register_buffer("fc_weight", torch.stack(fc_w).transpose(1, 2).clone())  # [F, 400, K]
        self.register_buffer("fc_bias", torch.stack(fc_b).clone())                   # [F, K]
        self.register_buffer("cam_weight", torch.stack(cam_w).clone())                # [F, K, 16]
        self.cam_size = (side, side)

    def forward(self, flow: Tensor, frames: Tensor | None = None) -> tuple[Tensor, ...]:
        check_input(flow, "flow", "[N, 3, H, W]", 4)
        n_folds, k = self.num_folds, self.num_classes
        x = F.conv2d(flow, self.conv_weight, self.conv_bias, padding=2)
        x = F.relu(x) * self.bn_scale + self.bn_shift
        acts = F.max_pool2d(x, 3, 3, 1)                                   # [N, 16F, h, w]
        side = acts.shape[-1]
        pooled = F.avg_pool2d(acts, 2, 2).reshape(-1, n_folds, sum(FILTERS) * (side // 2) ** 2)
        fold_logits = torch.matmul(pooled.transpose(0, 1), self.fc_weight).transpose(0, 1)
        fold_logits = fold_logits + self.fc_bias                          # [N, F, K]
        fold_probs = torch.softmax(fold_logits, dim=2)
        probs = fold_probs.mean(dim=1)                                    # [N, K]
        logits = torch.log(probs.clamp_min(1e-30))
        top = probs.argmax(dim=1, keepdim=True)                           # [N, 1]
        agreement = (fold_logits.argmax(dim=2) == top).to(probs.dtype).mean(dim=1)
        if not self.with_cam:
            return logits, probs, agreement
        maps = acts.reshape(-1, n_folds, sum(FILTERS), side * side)       # [N, F, 16, hw]
        cam = F.relu(torch.matmul(self.cam_weight.unsqueeze(0), maps))    # [N, F, K, hw]
        cam = cam.mean(dim=1).reshape(-1, k, 1, side, side)
        return logits, probs, cam, agreement


def ensemble_reference(folds: Sequence[STSTNetFG2019], flow: Tensor,
                       frames: Tensor | None = None) -> dict[str, Tensor]:
    """The ensemble's outputs computed fold by fold with the plain networks and torch
    autograd Grad-CAM (the reference that the fast form and the ONNX file are checked
    against): ``probs``, ``cam``, ``agreement``."""
    from mestudio.nets.gradcam import gradcam_autograd

    probs, cams, tops = [], [], []
    for fold in folds:
        fold.eval()
        with torch.no_grad():
            p = torch.softmax(fold(flow, frames), dim=1)
        probs.append(p)
        tops.append(p.argmax(dim=1))
        cams.append(gradcam_autograd(fold, *([flow] if frames is None else [flow, frames])))
    mean = torch.stack(probs).mean(dim=0)
    agreement = (torch.stack(tops) == mean.argmax(dim=1)).float().mean(dim=0)
    return {"probs": mean, "cam": torch.stack(cams).mean(dim=0), "agreement": agreement}
