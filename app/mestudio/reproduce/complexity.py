"""Table 4's counts: FLOPs the way the M3ENet paper counted them, and the configurations of the
baselines that reproduce (or come closest to) the paper's parameter and FLOP counts.

**How the paper counted FLOPs.** The paper does not say. Its figures are reproduced to the
printed digit by the rules of the widely used counter *thop* (pytorch-OpCounter 0.1.x), which
:func:`thop_flops` applies with forward hooks on leaf modules:

* convolutions and linear layers: their multiply-accumulates (biases not counted);
* batch / layer / group / instance norm *modules*: 2 per input element, 4 with an affine
  scale and shift;
* ``nn.AdaptiveAvgPool``: (window + 1) per output element; ``nn.AvgPool``: 1 per output
  element; ``nn.Softmax`` modules: 3n - 1 per row of n; ``nn.LeakyReLU``/``nn.PReLU``: 1 per
  element;
* nothing else: ReLU and other activations, max pooling, additions, concatenation, attention
  products and every functional call (``F.relu``, ``torch.softmax``, ``x.mean``) count 0,
  as do modules thop does not know.

With these rules M3ENet (K = 5, 48 px grey) counts 42.87 M (paper 42.87 M), and the standard
forms of the baselines below give the paper's VGG-16 (723.58 M), ResNet-18 (98.44 M) and HTNet
(215.45 M) exactly: so the paper's "FLOPs" are thop's count (a MAC-based count, not 2 x MACs).
(:func:`mestudio.nets.flops.count_flops`'s ``paper_flops``, MACs + biases + norms + ReLUs,
gives 42.81 M for M3ENet: close, but it does not reproduce the baselines.)

**Which configurations the paper measured.** Our baselines are adapted to 48 px inputs
(:mod:`mestudio.nets.baselines`: stride-1 stems, fewer pools, M3ENet's six stacked input
channels), so their counts differ from the paper's. :data:`REFERENCES` holds, per Table 4 row,
the configuration found to reproduce the paper's figures (or the closest found), built here
for counting only (written from the architectures' papers; built on the ``meta`` device, no
memory or weights):

* VGG-16: the standard network (13 convolutions with biases, no batch norm, **all five**
  pools: 48 px -> 1 x 1 x 512, then FC 4096-4096-K) on a 3-channel 48 px image;
* ResNet-18: the ImageNet form (7 x 7 stride-2 stem and 3 x 3 max pool: 48 -> 12 px before
  the first stage) on a 3-channel 48 px image;
* GoogLeNet: Inception v1 as published (ImageNet stem, real 5 x 5 branches, conv biases, no
  batch norm) on a 3-channel 48 px image: close, not exact;
* EfficientNet: the standard B0 and B1 (stride 32): neither gives 7.98 M;
* HTNet: the authors' published configuration (dim 256, heads 3, three levels of 2, 2 and 10
  transformer blocks, widths 256-512-1024) on a 3-channel 48 px image cut into 12 px patches
  (a 4 x 4 patch grid, as the authors' 28 px / 7 px): 139.66 M parameters, 215.45 M;
* SSRLTS-ViT, CNNCapsNet: none (the paper does not describe them and their sources were not
  found; our networks are stand-ins).

The parameter counts these give are 0.001-0.008 M above the paper's for VGG-16, ResNet-18 and
HTNet at K = 5: the paper's are consistent with truncation to two decimals (or fewer classes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mestudio.nets.baselines import EFFICIENTNET_B0_STAGES, INCEPTION_WIDTHS, BasicBlock, MBConv
from mestudio.nets.flops import count_params, run_hooked

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
_ADAPTIVE_AVG = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_AVG = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)


def thop_flops(model: nn.Module, *inputs: Tensor) -> dict[str, int]:
    """FLOPs **per sample** counted by thop's rules (module docstring), with a breakdown.

    Returns:
        ``macs`` (convolutions and linear layers), ``norm``, ``pool``, ``other`` (softmax
        modules, leaky/parametric ReLUs) and ``flops`` (their sum: the paper's figure).
    """
    counts = {"macs": 0, "norm": 0, "pool": 0, "other": 0}

    def hook(module: nn.Module, args: tuple, out: Tensor) -> None:
        x = args[0]
        if isinstance(module, _CONVS):
            k = math.prod(module.kernel_size)
            counts["macs"] += out.numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            counts["macs"] += out.numel() * module.in_features
        elif isinstance(module, _NORMS):
            affine = bool(getattr(module, "affine", False)
                          or getattr(module, "elementwise_affine", False))
            counts["norm"] += 2 * x.numel() * (2 if affine else 1)
        elif isinstance(module, _ADAPTIVE_AVG):
            window = x.numel() // max(out.numel(), 1)
            counts["pool"] += (window + 1) * out.numel()
        elif isinstance(module, _AVG):
            counts["pool"] += out.numel()
        elif isinstance(module, nn.Softmax):
            n = x.shape[module.dim if module.dim is not None else -1]
            counts["other"] += (x.numel() // n) * (3 * n - 1)
        elif isinstance(module, (nn.LeakyReLU, nn.PReLU)):
            counts["other"] += x.numel()

    n = run_hooked(model, inputs, hook, [m for m in model.modules() if not list(m.children())])
    out = {k: v // n for k, v in counts.items()}
    out["flops"] = sum(out.values())
    return out


# ---- reference configurations (counting only) --------------------------------------------------

def _image(size: int, channels: int = 3) -> Tensor:
    return torch.zeros(1, channels, size, size)


class StandardVGG16(nn.Module):
    """VGG-16 (configuration D) as published: 13 3x3 convolutions with biases and ReLU, a
    2x2 max pool after each of the five stages, flatten, FC 4096-4096-K with ReLU."""

    def __init__(self, num_classes: int, in_channels: int = 3, input_size: int = 48) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_channels
        for stage in ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)):
            for width in stage:
                layers += [nn.Conv2d(ch, width, 3, padding=1), nn.ReLU()]
                ch = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        side = input_size // 32
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(512 * side * side, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class ImageNetResNet18(nn.Module):
    """ResNet-18 in its ImageNet form: 7x7 stride-2 convolution, BN, ReLU, 3x3 stride-2 max
    pool, four stages of two basic blocks (64-512 channels), adaptive average pool, linear."""

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
                                  nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks: list[nn.Module] = []
        ch = 64
        for i, width in enumerate((64, 128, 256, 512)):
            blocks += [BasicBlock(ch, width, 1 if i == 0 else 2), BasicBlock(width, width)]
            ch = width
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def _conv_relu(in_ch: int, out_ch: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, k, stride, k // 2), nn.ReLU())


class _InceptionV1Module(nn.Module):
    """Inception module as published: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1."""

    def __init__(self, in_ch: int, c1: int, c3r: int, c3: int, c5r: int, c5: int,
                 pool: int) -> None:
        super().__init__()
        self.b1 = _conv_relu(in_ch, c1, 1)
        self.b2 = nn.Sequential(_conv_relu(in_ch, c3r, 1), _conv_relu(c3r, c3, 3))
        self.b3 = nn.Sequential(_conv_relu(in_ch, c5r, 1), _conv_relu(c5r, c5, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), _conv_relu(in_ch, pool, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


class InceptionV1(nn.Module):
    """GoogLeNet (Szegedy et al. 2015) as published, without auxiliary classifiers: 7x7/2
    convolution, 3x3/2 max pool, 1x1 64, 3x3 192, 3x3/2 max pool, inception 3a-3b, max
    pool, 4a-4e, max pool, 5a-5b, adaptive average pool, dropout, linear (conv biases, no
    batch norm; the LRN layers, which have no parameters and count 0, left out)."""

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _conv_relu(in_channels, 64, 7, 2), nn.MaxPool2d(3, 2, ceil_mode=True),
            _conv_relu(64, 64, 1), _conv_relu(64, 192, 3), nn.MaxPool2d(3, 2, ceil_mode=True))
        mods: list[nn.Module] = []
        ch = 192
        for name, widths in INCEPTION_WIDTHS.items():
            mods.append(_InceptionV1Module(ch, *widths))
            ch = widths[0] + widths[2] + widths[4] + widths[5]
            if name == "3b":
                mods.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            elif name == "4e":
                mods.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        self.inceptions = nn.Sequential(*mods)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.pool(self.inceptions(self.stem(x))), 1)
        return self.fc(self.dropout(x))


def _round_filters(channels: int, width: float) -> int:
    """EfficientNet's channel rounding (to a multiple of 8, never below 90 %)."""
    scaled = channels * width
    out = max(8, int(scaled + 4) // 8 * 8)
    return out + 8 if out < 0.9 * scaled else out


class StandardEfficientNet(nn.Module):
    """EfficientNet-B0/B1/... as published (total stride 32): 3x3/2 stem, the seven MBConv
    stages (B0's widths x ``width``, repeats x ``depth`` rounded up), 1x1 convolution to
    1280 x ``width``, adaptive average pool, dropout, linear."""

    def __init__(self, num_classes: int, width: float = 1.0, depth: float = 1.0,
                 in_channels: int = 3) -> None:
        super().__init__()
        stem = _round_filters(32, width)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(stem), nn.SiLU())
        strides = (1, 2, 2, 2, 1, 2, 1)
        blocks: list[nn.Module] = []
        ch = stem
        for (expand, k, _stride, out, n), stride in zip(EFFICIENTNET_B0_STAGES, strides,
                                                         strict=True):
            out = _round_filters(out, width)
            for i in range(math.ceil(n * depth)):
                blocks.append(MBConv(ch, out, expand, k, stride if i == 0 else 1))
                ch = out
        self.blocks = nn.Sequential(*blocks)
        top = _round_filters(1280, width)
        self.top = nn.Sequential(nn.Conv2d(ch, top, 1, bias=False), nn.BatchNorm2d(top),
                                 nn.SiLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(top, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.pool(self.top(self.blocks(self.stem(x)))), 1)
        return self.fc(self.dropout(x))


class _ChannelLayerNorm(nn.Module):
    """Layer norm over the channels of ``[N, C, H, W]`` written with tensor operations, as in
    the HTNet authors' code (so thop's rules count it 0, as they did there)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        var = x.var(dim=1, unbiased=False, keepdim=True)
        mean = x.mean(dim=1, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.g + self.b


class _MapAttention(nn.Module):
    """Multi-head self-attention over the positions of ``[B, C, h, w]`` maps with 1x1
    convolutions (``C // heads`` channels per head, no bias on q, k, v)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        head_dim = dim // heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Conv2d(dim, 3 * head_dim * heads, 1, bias=False)
        self.out = nn.Conv2d(head_dim * heads, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w).transpose(2, 3)
                   for t in self.qkv(x).chunk(3, dim=1))
        attn = torch.softmax(q @ k.transpose(2, 3) * self.scale, dim=-1)
        return self.out((attn @ v).transpose(2, 3).reshape(b, -1, h, w))


class _MapTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_mult: int = 4) -> None:
        super().__init__()
        self.norm1 = _ChannelLayerNorm(dim)
        self.attn = _MapAttention(dim, heads)
        self.norm2 = _ChannelLayerNorm(dim)
        self.mlp = nn.Sequential(nn.Conv2d(dim, dim * mlp_mult, 1), nn.GELU(),
                                 nn.Conv2d(dim * mlp_mult, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PublishedHTNet(nn.Module):
    """HTNet in the configuration its authors published (Wang et al., Neurocomputing 2024):
    ``p x p`` patches embedded by a linear map to ``dim`` channels; ``levels`` levels, level i
    (from the bottom) with ``dim * 2**i`` channels and ``heads * 2**i`` heads, running
    ``repeats[i]`` transformer blocks inside each of ``4**(levels-1-i)`` blocks of the map
    (a learned position embedding per level), then an aggregation (3x3 convolution to the
    next width, layer norm, 3x3/2 max pool) except after the top level; layer norm, mean over
    the positions, linear. Written here from that description, for counting."""

    def __init__(self, num_classes: int, input_size: int = 48, patch: int = 12,
                 in_channels: int = 3, dim: int = 256, heads: int = 3, levels: int = 3,
                 repeats: tuple[int, ...] = (2, 2, 10)) -> None:
        super().__init__()
        self.patch = patch
        self.levels = levels
        grid = input_size // patch
        blocks = 2 ** (levels - 1)
        seq_len = (grid // blocks) ** 2
        dims = [dim * 2 ** i for i in range(levels)]
        self.embed = nn.Conv2d(in_channels * patch * patch, dims[0], 1)
        self.pos = nn.ParameterList([nn.Parameter(torch.zeros(seq_len)) for _ in dims])
        self.stages = nn.ModuleList(
            nn.Sequential(*[_MapTransformerBlock(d, heads * 2 ** i) for _ in range(n)])
            for i, (d, n) in enumerate(zip(dims, repeats, strict=True)))
        self.aggregate = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dims[i], dims[i + 1], 3, padding=1),
                          _ChannelLayerNorm(dims[i + 1]), nn.MaxPool2d(3, 2, 1))
            for i in range(levels - 1))
        self.norm = _ChannelLayerNorm(dims[-1])
        self.fc = nn.Linear(dims[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        p = self.patch
        x = x.reshape(b, c, hh // p, p, ww // p, p).permute(0, 3, 5, 1, 2, 4)
        x = self.embed(x.reshape(b, p * p * c, hh // p, ww // p))
        for i, stage in enumerate(self.stages):
            n = 2 ** (self.levels - 1 - i)  # blocks per side
            _, ch, h, w = x.shape
            t = x.reshape(b, ch, n, h // n, n, w // n).permute(0, 2, 4, 1, 3, 5)
            t = t.reshape(b * n * n, ch, h // n, w // n)
            t = stage(t + self.pos[i][: t.shape[2] * t.shape[3]].reshape(1, 1, *t.shape[2:]))
            x = t.reshape(b, n, n, ch, h // n, w // n).permute(0, 3, 1, 4, 2, 5)
            x = x.reshape(b, ch, h, w)
            if i < len(self.aggregate):
                x = self.aggregate[i](x)
        return self.fc(self.norm(x).mean(dim=(2, 3)))


@dataclass(frozen=True)
class Reference:
    """A configuration built to compare with the paper's counts of one Table 4 row.

    Attributes:
        label: what it is, in a few words.
        build: ``build(num_classes) -> (model, inputs)``.
    """

    label: str
    build: Callable[[int], tuple[nn.Module, tuple[Tensor, ...]]]


REFERENCES: dict[str, tuple[Reference, ...]] = {
    "vgg16": (Reference("standard VGG-16 (no BN, 5 pools, FC 4096-4096-K), 3 x 48 x 48",
                        lambda k: (StandardVGG16(k), (_image(48),))),),
    "resnet18": (Reference("ImageNet-form ResNet-18 (7x7/2 stem + max pool), 3 x 48 x 48",
                           lambda k: (ImageNetResNet18(k), (_image(48),))),),
    "googlenet": (Reference("Inception v1 as published (5x5 branches, no BN), 3 x 48 x 48",
                            lambda k: (InceptionV1(k), (_image(48),))),),
    "efficientnet": (
        Reference("standard EfficientNet-B0 (stride 32), 3 x 48 x 48",
                  lambda k: (StandardEfficientNet(k), (_image(48),))),
        Reference("standard EfficientNet-B1 (stride 32), 3 x 48 x 48",
                  lambda k: (StandardEfficientNet(k, depth=1.1), (_image(48),))),
        Reference("standard EfficientNet-B1 with its 1000-class ImageNet head, 3 x 48 x 48",
                  lambda k: (StandardEfficientNet(1000, depth=1.1), (_image(48),))),
    ),
    "htnet": (Reference("the authors' HTNet (dim 256, heads 3, blocks 2-2-10), 3 x 48 x 48 "
                        "in 12 px patches",
                        lambda k: (PublishedHTNet(k), (_image(48),))),),
}
"""Per Table 4 row: the configurations compared with the paper's counts (none for M3ENet,
whose counts ours reproduce, and for SSRLTS-ViT and CNNCapsNet: see :data:`NO_REFERENCE`)."""

NO_REFERENCE: dict[str, str] = {
    "m3enet": "ours is the paper's network: no other configuration needed",
    "ssrlts-vit": "none: the paper does not describe SSRLTS-ViT and its source was not found; "
                  "ours is a small stand-in ViT",
    "cnncapsnet": "none: the paper does not describe CNNCapsNet and its source was not found; "
                  "ours is a stand-in capsule network",
}


def reference_counts(row: str, num_classes: int = 5) -> list[dict[str, object]]:
    """Parameters and thop-rule FLOPs of ``row``'s reference configurations (built on the
    ``meta`` device: no memory, no weights); ``[]`` when the row has none."""
    out: list[dict[str, object]] = []
    for ref in REFERENCES.get(row, ()):
        with torch.device("meta"):
            model, inputs = ref.build(num_classes)
        figs = thop_flops(model, *inputs)
        out.append({"label": ref.label, "params": count_params(model), "flops": figs["flops"],
                    "macs": figs["macs"]})
    return out


EXPLANATIONS: dict[str, str] = {
    "m3enet": "ours is the paper's network at its input (five key-frame streams, 48 px grey): "
              "the parameters agree, and counting FLOPs by thop's rules gives the paper's "
              "42.87 M to the digit.",
    "ssrlts-vit": "the paper neither describes SSRLTS-ViT nor gives a configuration, and its "
                  "source was not found: our network is a small stand-in ViT (4 blocks of "
                  "128 channels), about 75 times smaller than the paper's 66.42 M; no "
                  "configuration reproducing the paper's counts could be identified.",
    "resnet18": "the parameters agree (the stem's kernel aside): ours keeps 48 px through the "
                "first stage (CIFAR-style stride-1 stem, no max pool) and so costs about 13 "
                "times the paper's FLOPs. The ImageNet stem (7 x 7 stride 2 + 3 x 3 max pool, "
                "48 -> 12 px before the first stage) on a 3-channel image reproduces the "
                "paper's 98.44 M.",
    "vgg16": "ours keeps three of VGG's five pools (48 -> 6 px), so its first FC layer reads "
             "512 x 6 x 6 = 18 432 features (75.5 M weights) and its convolutions run on "
             "larger maps, plus batch norm. The standard VGG-16 pools five times (48 -> 1 px: "
             "the first FC layer reads 512 features, 2.1 M weights) and, on a 3-channel 48 px "
             "image, reproduces the paper's counts: exactly with K = 3 or 4 classes "
             "(33.61 M, 723.58 M), 33.62 M / 723.59 M with K = 5.",
    "googlenet": "ours has a small-input stem (3 x 3, 48 -> 12 px before inception 3a instead "
                 "of 48 -> 6 px), torchvision's 3 x 3 in place of the 5 x 5 branches and batch "
                 "norm. Inception v1 as published on a 3-channel 48 px image comes within "
                 "0.2 % (parameters) and 0.8 % (FLOPs) of the paper; none of the variants "
                 "tried (batch norm or biases, 1 or 3 channels, 3 x 3 / 5 x 5 / two 3 x 3 "
                 "branches, ImageNet, CIFAR or our stem, 32 or 48 px) matches exactly.",
    "efficientnet": "ours is B0 with total stride 8 (the last maps 6 x 6 instead of 2 x 2) on "
                    "six stacked channels. No standard EfficientNet gives 7.98 M parameters "
                    "(B0 4.01 M, B1 6.52 M, B2 7.71 M with a 5-class head; B0 5.29 M, B1 "
                    "7.79 M with the ImageNet head), and the paper's 0.16 M FLOPs is below its own "
                    "parameter count, which is impossible (see the inconsistencies).",
    "htnet": "ours is a 1 M re-implementation (widths 64 and 128, 2 + 2 + 2 blocks). The "
             "paper's count is the authors' published configuration: three levels of width "
             "256, 512 and 1024 with 2, 2 and 10 transformer blocks, the ten 1024-wide blocks "
             "holding 125.8 M of its parameters; on a 3-channel 48 px image cut into 12 px "
             "patches (the authors' 4 x 4 patch grid of a 28 px image in 7 px patches) it "
             "counts the paper's 215.45 M FLOPs to the digit and 139.66 M parameters.",
    "cnncapsnet": "the paper neither describes CNNCapsNet nor gives a configuration, and its "
                  "source was not found: our network is a stand-in (VGG front end, primary "
                  "capsules, dynamic routing) of 1.30 M parameters; no configuration "
                  "reproducing the paper's 12.51 M / 477.10 M could be identified.",
}
"""Per Table 4 row: why our counts differ from the paper's (the figures in the report's
tables are computed; the ones quoted here were computed by the same code)."""
