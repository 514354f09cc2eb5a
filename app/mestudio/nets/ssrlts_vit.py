"""SSRLTS-ViT: a small vision transformer whose blocks model short-range relations (a
depthwise convolution between neighbouring tokens) and long-range relations (self-attention
over the whole face), a baseline of the M3ENet paper's Table 2.

**What it is based on.** The M3ENet paper (Sensors 2025) lists "SSRLTS-ViT" in its Table 2
without describing it, and we could not find the cited paper's text or code, nor a sure
expansion of the acronym. What is known: it is a ViT-style model for micro-expression
recognition. The closest published design we found is the short- and long-range relation
based spatio-temporal transformer of Zhang, Hong, Arandjelović and Zhao (IEEE TAFFC 2022,
"SLSTT"): a transformer encoder on optical-flow patches whose layers capture both short- and
long-range relations between facial patches. This module is **our own** small ViT written from
those descriptions (no code of any author was used); the sizes, the way short-range relations
are modelled, the inputs and the head are our choices, and the parameter count is not the
paper's. Self-supervised pre-training, if the original used any, is not reproduced: like
every network of :mod:`mestudio.nets` it is trained from scratch.

Input (kind ``keyframes``, like every baseline of :mod:`mestudio.nets.baselines`):
``flow [N, 3, S, S]`` = u, v, strain between onset and apex, and
``frames [N, 3, C, S, S]`` = onset, apex, offset (C = 1 grey or 3 colour). By default both are
stacked as channels (``inputs="flow+frames"``: 6 channels grey, 12 colour); ``inputs="flow"``
reads u, v, strain only and ignores ``frames``. The key frames form a short "temporal" axis
(onset -> apex -> offset) that the patch embedding reads together with the motion.

Layers (S = 48 or 64, a multiple of ``patch``):

1. **Patch embedding**: a ``p x p`` convolution with stride p (p = 8: a 48 px input gives
   6 x 6 = 36 tokens of ``dim`` = 128 channels; 64 px gives 8 x 8), plus a learned position
   embedding (truncated normal, std 0.02).
2. **``depth`` = 4 blocks**, pre-norm:
   ``x + MHSA(LN(x))`` (long range: ``heads`` = 4 heads over all tokens), then
   ``x + Linear(GELU(DWConv3x3(GELU(Linear(LN(x))))))`` (short range: the hidden tokens,
   ``mlp_ratio * dim`` channels, are put back on their grid and mixed with their 8
   neighbours by a depthwise 3x3 convolution before the second linear layer).
3. **Layer norm**, the tokens back on their grid ``[N, dim, S/p, S/p]``.
4. **Head**: global average pooling over the tokens (instead of a class token, so that the
   head stays affine), dropout, linear.

Grad-CAM stream ``face`` = the normalised token map ``[N, dim, S/8, S/8]``.
About 0.87 M parameters (K = 5, 48 px, grey, ``flow+frames``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mestudio.nets.baselines import KeyframeStackNet
from mestudio.nets.blocks import GlobalAvgPool
from mestudio.nets.htnet import Attention
from mestudio.nets.registry import register


class ShortRangeMLP(nn.Module):
    """Token MLP with a depthwise 3x3 convolution on the token grid between its two linear
    layers: ``Linear -> GELU -> DWConv3x3 -> GELU -> Linear`` on ``[B, h*w, D]`` tokens."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.local = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        t = F.gelu(self.fc1(x))  # [B, L, H]
        b, n, c = t.shape
        m = self.local(t.transpose(1, 2).reshape(b, c, h, w))
        t = F.gelu(m.flatten(2).transpose(1, 2))
        return self.drop(self.fc2(self.drop(t)))


class RelationBlock(nn.Module):
    """Pre-norm block: long-range self-attention, then the short-range token MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ShortRangeMLP(dim, mlp_ratio * dim, dropout)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x), h, w)


def _init_vit(model: nn.Module) -> None:
    """ViT initialisation: linear layers truncated normal (std 0.02) with zero bias, layer
    norms 1 / 0; convolutions keep PyTorch's default."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register("ssrlts_vit", input_kind="keyframes",
          description="SSRLTS-ViT baseline: small ViT with short-range (depthwise conv) and "
                      "long-range (attention) token relations on u, v, strain + key frames "
                      "(our re-implementation)")
class SSRLTSViT(KeyframeStackNet):
    """Small ViT with short- and long-range token relations (see the module docstring).

    Args:
        num_classes: K.
        in_channels: 1 (grey) or 3 (colour) frames.
        input_size: side S (a multiple of ``patch``; 48 or 64).
        inputs: ``"flow+frames"`` or ``"flow"`` (see :class:`KeyframeStackNet`).
        dim: token channels.
        depth: transformer blocks.
        heads: attention heads (``dim`` must be a multiple of it).
        mlp_ratio: hidden channels of the token MLP, in multiples of ``dim``.
        patch: patch size of the embedding.
        dropout: dropout in the MLPs and before the classifier during training.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 inputs: str = "flow+frames", dim: int = 128, depth: int = 4, heads: int = 4,
                 mlp_ratio: int = 4, patch: int = 8, dropout: float = 0.1) -> None:
        super().__init__(num_classes, in_channels, input_size, inputs)
        self.dim = int(dim)
        self.depth = int(depth)
        self.heads = int(heads)
        self.mlp_ratio = int(mlp_ratio)
        self.patch = int(patch)
        self.head_dropout = float(dropout)
        if self.patch < 1 or input_size % self.patch:
            raise ValueError(f"input_size must be a multiple of patch={patch}, got {input_size}")
        self.grid = input_size // self.patch
        self.embed = nn.Conv2d(self.stacked_channels, self.dim, self.patch, self.patch)
        self.pos = nn.Parameter(torch.zeros(1, self.grid * self.grid, self.dim))
        self.blocks = nn.ModuleList([RelationBlock(self.dim, self.heads, self.mlp_ratio, dropout)
                                     for _ in range(self.depth)])
        self.norm = nn.LayerNorm(self.dim)
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(self.dim, num_classes)
        _init_vit(self)
        nn.init.trunc_normal_(self.pos, std=0.02)

    def trunk(self, x: Tensor) -> Tensor:
        g = self.grid
        t = self.embed(x).flatten(2).transpose(1, 2) + self.pos  # [N, g*g, dim]
        for block in self.blocks:
            t = block(t, g, g)
        t = self.norm(t)
        return t.transpose(1, 2).reshape(-1, self.dim, g, g)


    def config(self) -> dict:
        return {**super().config(), "dim": self.dim, "depth": self.depth, "heads": self.heads,
                "mlp_ratio": self.mlp_ratio, "patch": self.patch, "dropout": self.head_dropout}
