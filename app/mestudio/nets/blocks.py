"""Building blocks shared by the architectures, and the base class every network derives from.

Every network of :mod:`mestudio.nets` is split in two parts so that Grad-CAM can be computed
analytically (inside an exported ONNX graph, without autograd):

* ``features(*inputs) -> [A_s]``: one feature map ``A_s`` of shape ``[N, C_s, h, w]`` per
  *stream* ``s`` (the last spatial maps of the network);
* a *head* from those maps to the logits that is **piecewise linear in a known way**:
  an affine embedding per stream (:class:`FlattenLinear`, :class:`GlobalAvgPool`,
  :class:`AvgPoolFlatten`, :class:`Flatten`), concatenation, then a stack of
  ``nn.Linear`` layers with ReLU between them (none after the last one).

The gradient of a logit with respect to ``A_s`` is then a product of weight matrices and
ReLU masks (see :mod:`mestudio.nets.gradcam`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# --------------------------------------------------------------------------------------------
# Affine stream embeddings (A_s [N, C, h, w] -> e_s [N, D]); they must stay affine.


class Flatten(nn.Module):
    """``[N, C, h, w] -> [N, C*h*w]`` (channel-major, like ``torch.flatten``)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(x, 1)


class FlattenLinear(nn.Module):
    """Flatten ``[N, C, h, w]`` then a linear layer to ``[N, out_features]``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(torch.flatten(x, 1))


class GlobalAvgPool(nn.Module):
    """Spatial mean ``[N, C, h, w] -> [N, C]``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


class AvgPoolFlatten(nn.Module):
    """``k x k`` average pooling (stride ``k``) then flatten: ``[N, C, h, w] -> [N, C*(h//k)*(w//k)]``."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(F.avg_pool2d(x, self.kernel, self.kernel), 1)


def linear_layers(layers: nn.ModuleList) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of ``layers`` as a typed list (raises if another kind is there)."""
    out = []
    for layer in layers:
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"analytic heads take nn.Linear layers only, got {type(layer).__name__}")
        out.append(layer)
    return out


@dataclass
class CamHead:
    """The analytic head of a network.

    Attributes:
        embeds: one affine module per stream, ``A_s [N, C_s, h, w] -> e_s [N, D_s]``.
        layers: the MLP applied to ``concat(e_s)``; ReLU between layers, none after the last.
    """

    embeds: list[nn.Module]
    layers: list[nn.Linear]


class MERNet(nn.Module):
    """Base class of the micro-expression networks.

    Subclasses set the class attributes and implement :meth:`features` and
    :meth:`cam_head`; ``forward`` is ``head(features(x))``.

    Attributes:
        arch: registry name, e.g. ``"m3enet"`` (set by
            :func:`mestudio.nets.registry.register`).
        input_kind: the :class:`mestudio.preprocess.InputKind` the network takes, e.g.
            ``"keyframes"`` (inputs ``flow [N,3,H,W]``, ``frames [N,3,C,H,W]``) or ``"clip"``
            (inputs ``clip [N,T,C,H,W]``, ``flow_seq [N,T-1,2,H,W]``) (set by ``register``).
        input_names: names of the inputs in call order (the ONNX input names; the kind's).
        stream_names: names of the Grad-CAM streams, one per feature map of :meth:`features`.
        num_classes, in_channels (1 grey or 3 colour), input_size (pixels), clip_len (frames,
        clip models only).
    """

    arch: str = ""
    input_kind: str = "keyframes"
    input_names: tuple[str, ...] = ("flow", "frames")
    stream_names: tuple[str, ...] = ()
    head_dropout: float = 0.0

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 clip_len: int = 8) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (colour), got {in_channels}")
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.input_size = int(input_size)
        self.clip_len = int(clip_len)

    # -- to implement -----------------------------------------------------------------------
    def features(self, *inputs: Tensor) -> list[Tensor]:
        """The per-stream feature maps ``A_s`` ``[N, C_s, h, w]``."""
        raise NotImplementedError

    def cam_head(self) -> CamHead:
        """The analytic head (see :class:`CamHead`). The default is the single-stream head:
        global average pooling (``self.pool``) then one linear layer (``self.fc``); networks
        with another head override it."""
        pool, fc = self.pool, self.fc
        if not isinstance(pool, nn.Module) or not isinstance(fc, nn.Linear):
            raise NotImplementedError(f"{type(self).__name__} has no pool + fc head")
        return CamHead(embeds=[pool], layers=[fc])

    # -- shared -----------------------------------------------------------------------------
    def head(self, acts: list[Tensor]) -> Tensor:
        """Logits ``[N, K]`` from the stream maps."""
        spec = self.cam_head()
        z = torch.cat([embed(a) for embed, a in zip(spec.embeds, acts, strict=True)], dim=1)
        for i, layer in enumerate(spec.layers):
            if i > 0:
                z = F.relu(z)
            if self.head_dropout > 0:
                z = F.dropout(z, self.head_dropout, self.training)
            z = layer(z)
        return z

    def forward(self, *inputs: Tensor) -> Tensor:  # noqa: D102
        return self.head(self.features(*inputs))

    def forward_with_activations(self, *inputs: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``(logits [N, K], [A_s [N, C_s, h, w] for each stream])``."""
        acts = self.features(*inputs)
        return self.head(acts), acts

    def input_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """Shapes of the inputs for a batch of ``batch`` samples, keyed by input name (the
        input kind's :meth:`~mestudio.preprocess.InputKind.shapes`)."""
        from mestudio.preprocess import input_kind

        shapes = input_kind(self.input_kind).shapes(self.input_size, self.in_channels,
                                                    self.clip_len)
        return {name: (batch, *shape) for name, shape in shapes.items()}

    def example_inputs(self, batch: int = 1, seed: int = 0) -> tuple[Tensor, ...]:
        """Random inputs of the right shapes (flow ~ N(0, 1), frames/clip ~ U(0, 1))."""
        g = torch.Generator().manual_seed(seed)
        out = []
        for name, shape in self.input_shapes(batch).items():
            if name in ("flow", "flow_seq"):
                out.append(torch.randn(shape, generator=g))
            else:
                out.append(torch.rand(shape, generator=g))
        return tuple(out)

    def config(self) -> dict:
        """The keyword arguments that rebuild this model with ``create_model``."""
        return {"in_channels": self.in_channels, "input_size": self.input_size}


def check_input(x: Tensor, name: str, expected: str, ndim: int) -> None:
    """Raise ``ValueError`` naming the expected shape when ``x`` has the wrong rank."""
    if x.dim() != ndim:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------
# 2D residual block (M3ENet)


class ResidualBlock(nn.Module):
    """Residual block of M3ENet.

    3x3 conv (stride ``s``) + BN + ReLU, 3x3 conv + BN, a 1x1 conv (stride ``s``) + BN
    shortcut when the shape changes (else identity), add, ReLU.
    Input ``[N, in_ch, H, W]``, output ``[N, out_ch, ceil(H/s), ceil(W/s)]``.
    Convolutions keep their bias, as in the authors' published code (this is what gives the
    paper's 6.01 M parameters).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride),
                                          nn.BatchNorm2d(out_ch))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def residual_stack(in_ch: int, channels: tuple[int, ...], stride: int = 2) -> nn.Sequential:
    """Residual blocks ``in_ch -> channels[0] -> ...``, each with ``stride``."""
    blocks = []
    for ch in channels:
        blocks.append(ResidualBlock(in_ch, ch, stride))
        in_ch = ch
    return nn.Sequential(*blocks)


def downsampled(size: int, n: int, stride: int = 2) -> int:
    """Side of a ``size`` px map after ``n`` stride-``stride`` 3x3 convs with padding 1."""
    for _ in range(n):
        size = math.floor((size - 1) / stride) + 1
    return size


# --------------------------------------------------------------------------------------------
# 3D blocks (IM3DR-MFER)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet channel shuffle of ``[N, C, ...]`` with ``groups`` groups (C % groups == 0):
    output channel ``j * groups + g`` is input channel ``g * (C // groups) + j``."""
    if groups <= 1:
        return x
    c = x.shape[1]
    return x.unflatten(1, (groups, c // groups)).transpose(1, 2).flatten(1, 2)


def shuffle_permutation(channels: int, groups: int) -> Tensor:
    """Index ``perm`` with ``x[:, perm] == channel_shuffle(x, groups)`` (exports as one Gather)."""
    return torch.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


class ChannelTimeAttention(nn.Module):
    """Channel-time attention of CASANet, without dimensionality reduction.

    The spatial average and maximum of ``[N, C, T, H, W]`` (each ``[N, C, T, 1, 1]``) pass
    through one shared ``C -> C`` convolution over time (kernel 3, no channel reduction);
    their sum through a sigmoid gives a weight per channel and time step.
    """

    def __init__(self, channels: int, kernel_t: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (kernel_t, 1, 1), padding=(kernel_t // 2, 0, 0))

    def forward(self, x: Tensor) -> Tensor:
        avg = x.mean(dim=(3, 4), keepdim=True)
        mx = x.amax(dim=(3, 4), keepdim=True)
        return x * torch.sigmoid(self.conv(avg) + self.conv(mx))


class SpatialTimeAttention(nn.Module):
    """Spatial-time attention of CASANet: channel max and mean ``[N, 2, T, H, W]`` -> 3D conv
    (``3 x k x k``) -> sigmoid -> one weight per voxel."""

    def __init__(self, kernel: int = 7, kernel_t: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 1, (kernel_t, kernel, kernel),
                              padding=(kernel_t // 2, kernel // 2, kernel // 2))

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CASA(nn.Module):
    """CASANet attention: channel-time attention followed by spatial-time attention."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channel_time = ChannelTimeAttention(channels)
        self.spatial_time = SpatialTimeAttention()

    def forward(self, x: Tensor) -> Tensor:
        return self.spatial_time(self.channel_time(x))


class GroupedBasicBlock3d(nn.Module):
    """3D ResNet basic block with grouped 3x3x3 convolutions and channel shuffle.

    conv3x3x3 (groups, stride) + BN + ReLU + shuffle, conv3x3x3 (groups) + BN,
    [CASA attention], 1x1x1 conv + BN shortcut when the shape changes, add, ReLU.
    Input ``[N, in_ch, T, H, W]``, output ``[N, out_ch, T', H', W']``.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int, int] = (1, 1, 1),
                 groups: int = 4, attention: bool = False) -> None:
        super().__init__()
        g1 = groups if in_ch % groups == 0 and out_ch % groups == 0 else 1
        g2 = groups if out_ch % groups == 0 else 1
        self.groups = g1
        self.shuffle: Tensor
        self.register_buffer("shuffle", shuffle_permutation(out_ch, g1), persistent=False)
        self.conv1 = nn.Conv3d(in_ch, out_ch, 3, stride, 1, groups=g1, bias=False)
        self.bn1 = nn.BatchNorm3d(out_ch)
        self.conv2 = nn.Conv3d(out_ch, out_ch, 3, 1, 1, groups=g2, bias=False)
        self.bn2 = nn.BatchNorm3d(out_ch)
        self.attention: nn.Module = CASA(out_ch) if attention else nn.Identity()
        self.shortcut: nn.Module
        if tuple(stride) != (1, 1, 1) or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv3d(in_ch, out_ch, 1, stride, bias=False),
                                          nn.BatchNorm3d(out_ch))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.groups > 1:
            out = out.index_select(1, self.shuffle)  # channel shuffle
        out = self.attention(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class MultiScaleContext3d(nn.Module):
    """Multi-scale context-aware fusion module (ASPP-like, 3D).

    Parallel branches on ``[N, C, T, H, W]``: a 1x1x1 conv, 3x3x3 convs with spatial dilation
    ``d`` for each ``d`` in ``dilations`` and a global-context branch (global average ->
    1x1x1 conv, broadcast); concatenated, fused by a 1x1x1 conv + BN + ReLU and added to the
    input. Output has the input's shape.
    """

    def __init__(self, channels: int, dilations: tuple[int, ...] = (1, 2, 3),
                 branch_channels: int | None = None) -> None:
        super().__init__()
        b = branch_channels or max(channels // 4, 8)

        def branch(k: int, d: int) -> nn.Sequential:
            pad = (k // 2, d * (k // 2), d * (k // 2))
            return nn.Sequential(
                nn.Conv3d(channels, b, k, padding=pad, dilation=(1, d, d), bias=False),
                nn.BatchNorm3d(b), nn.ReLU(inplace=True))

        self.branches = nn.ModuleList([branch(1, 1)] + [branch(3, d) for d in dilations])
        self.context = nn.Sequential(nn.Conv3d(channels, b, 1, bias=False), nn.ReLU(inplace=True))
        n = len(self.branches) + 1
        self.fuse = nn.Sequential(nn.Conv3d(n * b, channels, 1, bias=False),
                                  nn.BatchNorm3d(channels), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        outs = [branch(x) for branch in self.branches]
        ctx = self.context(x.mean(dim=(2, 3, 4), keepdim=True))
        outs.append(ctx.expand_as(outs[0]))
        return x + self.fuse(torch.cat(outs, dim=1))
