"""Generic CNN baselines of the M3ENet paper's Tables 2 and 4, on M3ENet's inputs.

The M3ENet paper (Sensors 2025) compares its network with AlexNet, VGG16, ResNet18,
GoogLeNet (Table 2) and EfficientNet (Table 4). They are re-implemented here in plain torch
(no torchvision, no pretrained weights), trained from scratch like every other network of
:mod:`mestudio.nets`, and take the **same inputs as M3ENet** (input kind ``keyframes``):

* ``flow [N, 3, S, S]`` = (u, v, strain) between onset and apex;
* ``frames [N, 3, C, S, S]`` = (onset, apex, offset), C = 1 grey or 3 colour.

**How the inputs are stacked.** A single-stream CNN reads one image, so the maps are stacked
as channels: ``inputs="flow+frames"`` (the default) gives ``3 + 3*C`` channels — u, v,
strain, onset, apex, offset (6 channels grey, 12 colour) — i.e. everything M3ENet sees;
``inputs="flow"`` gives the classic 3-channel "optical-flow image" (u, v, strain) and ignores
``frames``. The choice is part of :meth:`config` and so travels in checkpoints.

**Adaptation to 48-64 px inputs.** ImageNet stems (stride 4 or 2 + max pooling) would
reduce a 48 px map to 1-2 px before the last stage, so every network's stem keeps the
resolution and downsamples so that the last feature map is ``S / 8`` (6x6 at 48 px, 8x8 at
64 px) like M3ENet's — the Grad-CAM resolution of every baseline is then the same:

* AlexNet: 5x5 stride-1 conv1 (instead of 11x11 stride 4) and 2x2 max pools after conv1,
  conv2 and conv5; FC 4096-4096 as published (``hidden``); 256 x 6 x 6 = 9216 features at
  48 px, exactly AlexNet's. About 57 M parameters at 48 px (ImageNet AlexNet: 61 M).
* VGG16: the 13 3x3 convolutions with batch norm (VGG16-BN; without it VGG16 does not train
  from scratch), the fourth and fifth max pools dropped (48 -> 1 px otherwise), so the five
  stages run at 48, 24, 12, 6, 6 px (ImageNet: 224 ... 14); flatten 512 x 6 x 6; FC
  4096-4096 as published. About 107 M parameters at 48 px (ImageNet VGG16: 138 M; the
  first FC layer reads 18 432 features instead of 25 088).
* ResNet18: a 3x3 stride-1 stem without max pooling (the CIFAR form), stages at 48, 24,
  12, 6 px, global average pooling, linear. 11.2 M parameters.
* GoogLeNet (Inception v1, no auxiliary classifiers): 3x3 stem (64), max pool, 1x1 (64) +
  3x3 (192) convolutions, max pool -> inception 3a, 3b at S/4, max pool -> 4a-4e and 5a, 5b
  at S/8 (the pool between 4e and 5a dropped), global average pooling, dropout, linear.
  About 5.6 M parameters.
* EfficientNet-B0: the B0 stages (MBConv1/6, kernels 3/5, squeeze-excitation, SiLU) with
  the stem's stride and stage 2's stride set to 1 (total stride 8 instead of 32), 1x1 conv
  to 1280, global average pooling, dropout 0.2, linear. About 4.0 M parameters.

HTNet lives in :mod:`mestudio.nets.htnet`.

Grad-CAM: one stream ``face``, the last convolutional maps (before the flatten or the global
average pooling); the heads are affine + MLP, so :mod:`mestudio.nets.gradcam` computes it
analytically like for the other networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mestudio.nets.blocks import (
    CamHead,
    Flatten,
    GlobalAvgPool,
    MERNet,
    check_input,
    linear_layers,
)
from mestudio.nets.registry import register

INPUT_CHOICES = ("flow+frames", "flow")


class KeyframeStackNet(MERNet):
    """Base of the single-stream baselines: stacks the key-frame inputs as channels.

    Args:
        num_classes: K.
        in_channels: 1 (grey) or 3 (colour) frames.
        input_size: side S of the inputs in pixels.
        inputs: ``"flow+frames"`` (u, v, strain, onset, apex, offset: ``3 + 3C`` channels)
            or ``"flow"`` (u, v, strain only; ``frames`` ignored).
    """

    stream_names = ("face",)

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 inputs: str = "flow+frames") -> None:
        super().__init__(num_classes, in_channels, input_size)
        if inputs not in INPUT_CHOICES:
            raise ValueError(f"inputs must be one of {', '.join(INPUT_CHOICES)}, got {inputs!r}")
        self.inputs = inputs

    @property
    def stacked_channels(self) -> int:
        """Channels of the stacked input image."""
        return 3 + (3 * self.in_channels if self.inputs == "flow+frames" else 0)

    def stack(self, flow: Tensor, frames: Tensor | None) -> Tensor:
        """``[N, 3 (+3C), S, S]``: u, v, strain (then onset, apex, offset)."""
        check_input(flow, "flow", "[N, 3, H, W] (u, v, strain)", 4)
        if self.inputs == "flow":
            return flow
        if frames is None:
            raise ValueError("this model takes frames [N, 3, C, H, W] as well (inputs=flow+frames)")
        check_input(frames, "frames", "[N, 3, C, H, W] (onset, apex, offset)", 5)
        s = self.input_size
        return torch.cat([flow, frames.reshape(-1, 3 * self.in_channels, s, s)], dim=1)

    def trunk(self, x: Tensor) -> Tensor:
        """Last convolutional maps of the stacked image."""
        raise NotImplementedError

    def features(self, flow: Tensor, frames: Tensor | None = None) -> list[Tensor]:  # type: ignore[override]
        """One map ``[N, C_last, S/8, S/8]`` (the last convolutional maps)."""
        return [self.trunk(self.stack(flow, frames))]

    def config(self) -> dict:
        return {**super().config(), "inputs": self.inputs}


def init_weights(model: nn.Module) -> None:
    """The usual initialisation of these CNNs (as in their papers' reference code):
    convolutions He-normal (fan-out, ReLU gain), norms 1 / 0, linear layers
    ``U(-1/sqrt(n), 1/sqrt(n))`` with zero bias. (PyTorch's default conv init shrinks the
    signal layer after layer: a freshly built deep network would answer the same for every
    input.)"""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / m.in_features ** 0.5
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _side8(size: int) -> int:
    """Side after three 2x2 max pools (floor), as used by AlexNet and VGG16 here."""
    return size // 8


class _ConvFCNet(KeyframeStackNet):
    """AlexNet/VGG-style: ``convs`` then flatten and three FC layers (``hidden``, dropout)."""

    convs: nn.Sequential
    embed: nn.Module
    fc: nn.ModuleList
    hidden: int
    head_dropout: float

    def _fc_head(self, channels: int, input_size: int, num_classes: int) -> None:
        side = _side8(input_size)
        self.embed = Flatten()
        self.fc = nn.ModuleList([nn.Linear(channels * side * side, self.hidden),
                                 nn.Linear(self.hidden, self.hidden),
                                 nn.Linear(self.hidden, num_classes)])

    def trunk(self, x: Tensor) -> Tensor:
        return self.convs(x)

    def cam_head(self) -> CamHead:
        return CamHead(embeds=[self.embed], layers=linear_layers(self.fc))

    def config(self) -> dict:
        return {**super().config(), "hidden": self.hidden, "dropout": self.head_dropout}


# ---- AlexNet --------------------------------------------------------------------------------

@register("alexnet", input_kind="keyframes",
          description="AlexNet baseline (small-input stem) on u, v, strain + key frames stacked")
class AlexNet(_ConvFCNet):
    """AlexNet (Krizhevsky et al. 2012) sized for 48-64 px inputs (see the module docstring).

    Convolutions 64 (5x5) -> pool -> 192 (5x5) -> pool -> 384, 256, 256 (3x3) -> pool, ReLU
    after each; flatten; dropout, FC ``hidden``, ReLU, dropout, FC ``hidden``, ReLU, FC K.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 inputs: str = "flow+frames", hidden: int = 4096, dropout: float = 0.5) -> None:
        super().__init__(num_classes, in_channels, input_size, inputs)
        self.hidden = int(hidden)
        self.head_dropout = float(dropout)
        relu = nn.ReLU
        self.convs = nn.Sequential(
            nn.Conv2d(self.stacked_channels, 64, 5, padding=2), relu(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 192, 5, padding=2), relu(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(192, 384, 3, padding=1), relu(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), relu(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), relu(inplace=True), nn.MaxPool2d(2),
        )
        self._fc_head(256, input_size, num_classes)


# ---- VGG16 ----------------------------------------------------------------------------------

#: VGG16's configuration D; "M" = 2x2 max pool. The 4th and 5th pools are dropped here.
VGG16_LAYERS: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                       512, 512, 512, 512, 512, 512)


@register("vgg16", input_kind="keyframes",
          description="VGG16-BN baseline (small-input pooling) on u, v, strain + key frames")
class VGG16(_ConvFCNet):
    """VGG16 with batch norm (Simonyan & Zisserman 2015, configuration D) for small inputs.

    Thirteen 3x3 convolutions (BN, ReLU) with max pools after the 2nd, 4th and 7th (VGG's
    last two pools are dropped: 48 -> 6 px); flatten 512 x 6 x 6;
    dropout, FC ``hidden``, ReLU, dropout, FC ``hidden``, ReLU, FC K.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 inputs: str = "flow+frames", hidden: int = 4096, dropout: float = 0.5) -> None:
        super().__init__(num_classes, in_channels, input_size, inputs)
        self.hidden = int(hidden)
        self.head_dropout = float(dropout)
        layers: list[nn.Module] = []
        ch = self.stacked_channels
        for item in VGG16_LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(ch, item, 3, padding=1), nn.BatchNorm2d(item),
                           nn.ReLU(inplace=True)]
                ch = item
        self.convs = nn.Sequential(*layers)
        self._fc_head(512, input_size, num_classes)


# ---- ResNet18 -------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """ResNet basic block: 3x3 conv (stride) + BN + ReLU, 3x3 conv + BN, projection
    shortcut (1x1 conv + BN) when the shape changes, add, ReLU. No conv biases."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@register("resnet18", input_kind="keyframes",
          description="ResNet18 baseline (CIFAR-style stem) on u, v, strain + key frames")
class ResNet18(KeyframeStackNet):
    """ResNet18 (He et al. 2016) with a 3x3 stride-1 stem and no max pool (48 -> 6 px).

    Stages of two basic blocks at 64, 128, 256, 512 channels (strides 1, 2, 2, 2), global
    average pooling, dropout (0 by default), linear.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 inputs: str = "flow+frames", width: int = 64, dropout: float = 0.0) -> None:
        super().__init__(num_classes, in_channels, input_size, inputs)
        self.width = int(width)
        self.head_dropout = float(dropout)
        w = self.width
        self.stem = nn.Sequential(nn.Conv2d(self.stacked_channels, w, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        ch = w
        for i, out in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(ch, out, stride), BasicBlock(out, out, 1)]
            ch = out
        self.stages = nn.Sequential(*blocks)
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(8 * w, num_classes)
        init_weights(self)

    def trunk(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


    def config(self) -> dict:
        return {**super().config(), "width": self.width, "dropout": self.head_dropout}


# ---- GoogLeNet ------------------------------------------------------------------------------

def _conv_bn(in_ch: int, out_ch: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class Inception(nn.Module):
    """Inception module (v1, with batch norm): 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 (the "5x5"
    branch, as in torchvision's implementation: a 3x3) | 3x3 max pool -> 1x1, concatenated."""

    def __init__(self, in_ch: int, c1: int, c3r: int, c3: int, c5r: int, c5: int,
                 pool: int) -> None:
        super().__init__()
        self.b1 = _conv_bn(in_ch, c1, 1)
        self.b2 = nn.Sequential(_conv_bn(in_ch, c3r, 1), _conv_bn(c3r, c3, 3))
        self.b3 = nn.Sequential(_conv_bn(in_ch, c5r, 1), _conv_bn(c5r, c5, 3))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), _conv_bn(in_ch, pool, 1))
        self.out_channels = c1 + c3 + c5 + pool

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


#: Inception v1's module widths (Szegedy et al. 2015, Table 1): 1x1, 3x3 reduce, 3x3,
#: 5x5 reduce, 5x5, pool projection.
INCEPTION_WIDTHS = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


@register("googlenet", input_kind="keyframes",
          description="GoogLeNet (Inception v1) baseline, small-input stem, on u, v, strain + key frames")
class GoogLeNet(KeyframeStackNet):
    """GoogLeNet / Inception v1 (with batch norm, no auxiliary classifiers) for small inputs.

    Stem: 3x3 conv 64, 2x2 max pool, 1x1 conv 64, 3x3 conv 192, 2x2 max pool (S -> S/4);
    inception 3a, 3b; 2x2 max pool (S/8); 4a-4e, 5a, 5b (no pool between 4e and 5a); global
    average pooling, dropout 0.4, linear.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 inputs: str = "flow+frames", dropout: float = 0.4) -> None:
        super().__init__(num_classes, in_channels, input_size, inputs)
        self.head_dropout = float(dropout)
        self.stem = nn.Sequential(
            _conv_bn(self.stacked_channels, 64, 3), nn.MaxPool2d(2),
            _conv_bn(64, 64, 1), _conv_bn(64, 192, 3), nn.MaxPool2d(2))
        mods: list[nn.Module] = []
        ch = 192
        for name, widths in INCEPTION_WIDTHS.items():
            block = Inception(ch, *widths)
            mods.append(block)
            ch = block.out_channels
            if name == "3b":
                mods.append(nn.MaxPool2d(2))
        self.inceptions = nn.Sequential(*mods)
        self.out_channels = ch  # 1024
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(ch, num_classes)
        init_weights(self)

    def trunk(self, x: Tensor) -> Tensor:
        return self.inceptions(self.stem(x))


    def config(self) -> dict:
        return {**super().config(), "dropout": self.head_dropout}


# ---- EfficientNet-B0 ------------------------------------------------------------------------

class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global mean -> 1x1 conv (reduce, SiLU) -> 1x1 conv -> sigmoid
    -> channel weights."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class MBConv(nn.Module):
    """Mobile inverted bottleneck (EfficientNet): 1x1 expansion (``expand`` x, BN, SiLU;
    none when ``expand`` is 1), ``k x k`` depthwise conv (stride, BN, SiLU), squeeze-excite
    (reduction to ``in_ch / 4``), 1x1 projection (BN), identity shortcut when the shape is
    kept. (Stochastic depth is left out.)"""

    def __init__(self, in_ch: int, out_ch: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        mid = in_ch * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(in_ch, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.SiLU()]
        layers += [nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False),
                   nn.BatchNorm2d(mid), nn.SiLU(),
                   SqueezeExcite(mid, max(1, in_ch // 4)),
                   nn.Conv2d(mid, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out + x if self.residual else out


#: EfficientNet-B0's stages (Tan & Le 2019, Table 1): expansion, kernel, stride, channels,
#: layers. Stage 2's stride (2 in B0) is 1 here, and so is the stem's.
EFFICIENTNET_B0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 1, 24, 2), (6, 5, 2, 40, 2),
                          (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4),
                          (6, 3, 1, 320, 1))


@register("efficientnet_b0", input_kind="keyframes", aliases=("efficientnet",),
          description="EfficientNet-B0 baseline (total stride 8) on u, v, strain + key frames")
class EfficientNetB0(KeyframeStackNet):
    """EfficientNet-B0 for small inputs: stem 3x3 conv 32 with stride 1 (B0: 2), the seven
    MBConv stages with stage 2's stride set to 1 (so S -> S/8), 1x1 conv to 1280 (BN, SiLU),
    global average pooling, dropout 0.2, linear."""

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 inputs: str = "flow+frames", dropout: float = 0.2) -> None:
        super().__init__(num_classes, in_channels, input_size, inputs)
        self.head_dropout = float(dropout)
        self.stem = nn.Sequential(nn.Conv2d(self.stacked_channels, 32, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(32), nn.SiLU())
        blocks: list[nn.Module] = []
        ch = 32
        for expand, k, stride, out, n in EFFICIENTNET_B0_STAGES:
            for i in range(n):
                blocks.append(MBConv(ch, out, expand, k, stride if i == 0 else 1))
                ch = out
        self.blocks = nn.Sequential(*blocks)
        self.top = nn.Sequential(nn.Conv2d(ch, 1280, 1, bias=False), nn.BatchNorm2d(1280),
                                 nn.SiLU())
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(1280, num_classes)
        init_weights(self)

    def trunk(self, x: Tensor) -> Tensor:
        return self.top(self.blocks(self.stem(x)))


    def config(self) -> dict:
        return {**super().config(), "dropout": self.head_dropout}

