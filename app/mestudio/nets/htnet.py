"""HTNet: a hierarchical transformer on facial regions of the optical flow, after "HTNet for
micro-expression recognition" (Wang, Zheng, Hu, Li, Zhao; Neurocomputing 2024).

Re-implemented from the paper's description (no code of the authors was used); the sizes
are our choice for 48-64 px inputs, so the parameter count is not the paper's.

The paper's idea: micro-expressions move a few facial regions (the two eyes/brows and the
two mouth corners), so the flow image is cut into four regions and each is read by local
transformer layers; aggregation layers then merge the tokens hierarchically, from small
patches inside a region to the whole face, so fine motion is modelled before the relations
between regions.

Here (input ``flow [N, 3, S, S]`` = u, v, strain; ``frames`` ignored — the paper uses the
flow only):

1. **Regions.** Our inputs are aligned face crops with the eyes in the upper half and the
   mouth in the lower half, so the four regions are the four ``S/2`` quadrants: left
   eye/brow, right eye/brow, left and right mouth corner (the paper crops them around
   landmarks; landmarks are not part of the key-frame inputs).
2. **Level 1 (inside each region).** Patch embedding (``p x p`` conv, stride ``p``, p = 4:
   a 24 px region -> 6x6 tokens of ``dims[0]`` channels), a learned position embedding per
   region, ``depths[0]`` pre-norm transformer blocks (multi-head self-attention + MLP) on the
   region's tokens. The weights are shared by the four regions (they run as one batch).
3. **Aggregation.** 3x3 conv to ``dims[1]``, layer norm, 3x3 max pool with stride 2
   (6x6 -> 3x3 tokens per region) — the paper's "aggregation block".
4. **Level 2 (inside each region).** ``depths[1]`` transformer blocks on the 3x3 tokens.
5. **Level 3 (whole face).** The four region maps are put back in their places (2x2 ->
   a 6x6 map), a face position embedding is added and ``depths[2]`` transformer blocks
   attend across all regions; layer norm.
6. **Head.** Global average pooling and a linear layer (affine: analytic Grad-CAM).

Grad-CAM stream: ``flow`` = the face map of level 3 ``[N, dims[1], S/8, S/8]``.
Defaults (dims 64, 128; depths 2, 2, 2; 4 heads): about 1.0 M parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mestudio.nets.blocks import GlobalAvgPool, MERNet, check_input
from mestudio.nets.registry import register


class Attention(nn.Module):
    """Multi-head self-attention on ``[B, L, D]`` tokens (plain matmuls: exports to ONNX)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, L, d_h]
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + MHSA(LN(x))``, then ``x + MLP(LN(x))`` (GELU,
    hidden ``mlp_ratio * dim``)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_ratio * dim, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _tokens(x: Tensor) -> Tensor:
    """``[B, C, h, w] -> [B, h*w, C]``."""
    return x.flatten(2).transpose(1, 2)


def _maps(t: Tensor, h: int, w: int) -> Tensor:
    """``[B, h*w, C] -> [B, C, h, w]``."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)


class ChannelNorm(nn.Module):
    """Layer norm over the channels of ``[B, C, h, w]`` maps."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@register("htnet", input_kind="keyframes",
          description="HTNet baseline: hierarchical transformer on four facial regions of "
                      "u, v, strain (Neurocomputing 2024, re-implemented)")
class HTNet(MERNet):
    """Hierarchical transformer on the four facial regions of the flow maps.

    Args:
        num_classes: K.
        in_channels: colour of the (ignored) frames, kept for the common interface.
        input_size: side S of the inputs (a multiple of 8; 48 or 64).
        dims: token channels of level 1 and of levels 2-3.
        depths: transformer blocks of levels 1, 2 and 3.
        heads: attention heads.
        patch: patch size of the embedding (S/2 must be a multiple of it).
        dropout: dropout in the MLPs and before the classifier during training.
    """

    stream_names = ("flow",)

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 dims: tuple[int, int] = (64, 128), depths: tuple[int, int, int] = (2, 2, 2),
                 heads: int = 4, patch: int = 4, dropout: float = 0.1) -> None:
        super().__init__(num_classes, in_channels, input_size)
        self.dims = tuple(int(d) for d in dims)
        self.depths = tuple(int(d) for d in depths)
        self.heads = int(heads)
        self.patch = int(patch)
        self.head_dropout = float(dropout)
        if len(self.dims) != 2 or len(self.depths) != 3:
            raise ValueError("dims takes 2 values and depths 3")
        region = input_size // 2
        if input_size % 2 or region % self.patch:
            raise ValueError(f"input_size/2 must be a multiple of patch={patch}, got {input_size}")
        self.grid = region // self.patch  # tokens per side of a region at level 1
        self.grid2 = (self.grid - 1) // 2 + 1  # after the 3x3 stride-2 max pool (padding 1)
        d1, d2 = self.dims
        self.embed = nn.Conv2d(3, d1, self.patch, self.patch)
        self.pos1 = nn.Parameter(torch.zeros(4, self.grid * self.grid, d1))
        self.level1 = nn.Sequential(*[TransformerBlock(d1, heads, dropout=dropout)
                                      for _ in range(self.depths[0])])
        self.aggregate = nn.Sequential(nn.Conv2d(d1, d2, 3, 1, 1), ChannelNorm(d2),
                                       nn.MaxPool2d(3, 2, 1))
        self.level2 = nn.Sequential(*[TransformerBlock(d2, heads, dropout=dropout)
                                      for _ in range(self.depths[1])])
        self.pos3 = nn.Parameter(torch.zeros(1, 4 * self.grid2 * self.grid2, d2))
        self.level3 = nn.Sequential(*[TransformerBlock(d2, heads, dropout=dropout)
                                      for _ in range(self.depths[2])])
        self.norm = nn.LayerNorm(d2)
        nn.init.trunc_normal_(self.pos1, std=0.02)
        nn.init.trunc_normal_(self.pos3, std=0.02)
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(d2, num_classes)

    def features(self, flow: Tensor, frames: Tensor | None = None) -> list[Tensor]:  # type: ignore[override]
        """The face map ``[N, dims[1], S/8, S/8]`` from ``flow [N, 3, S, S]``."""
        check_input(flow, "flow", "[N, 3, H, W] (u, v, strain)", 4)
        r = self.input_size // 2
        # regions: [N, 4, 3, r, r] in the order upper-left, upper-right, lower-left, lower-right
        regions = flow.reshape(-1, 3, 2, r, 2, r).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, r, r)
        g, g2 = self.grid, self.grid2
        t = _tokens(self.embed(regions))  # [4N, g*g, d1]
        t = (t.reshape(-1, 4, g * g, self.dims[0]) + self.pos1).reshape(-1, g * g, self.dims[0])
        t = self.level1(t)
        m = self.aggregate(_maps(t, g, g))  # [4N, d2, g2, g2]
        t = self.level2(_tokens(m))
        d2 = self.dims[1]
        # put the regions back in their places: [N, 2, 2, g2, g2, d2] -> [N, 2*g2, 2*g2, d2]
        face = t.reshape(-1, 2, 2, g2, g2, d2).permute(0, 1, 3, 2, 4, 5)
        face = face.reshape(-1, 4 * g2 * g2, d2)
        face = self.norm(self.level3(face + self.pos3))
        return [_maps(face, 2 * g2, 2 * g2)]


    def config(self) -> dict:
        return {**super().config(), "dims": list(self.dims), "depths": list(self.depths),
                "heads": self.heads, "patch": self.patch, "dropout": self.head_dropout}
