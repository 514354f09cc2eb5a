"""LAENet: a lightweight CNN whose stages are followed by *local attention enhancement*
modules, a baseline of the M3ENet paper's Table 2.

**What it is based on.** The M3ENet paper (Sensors 2025) lists "LAENet" among the methods of
its Table 2 without describing it, and we could not find the cited paper's text or code. In
the micro-expression literature the name stands for a local-attention enhanced network on the
optical flow (and apex frame): a light CNN in which attention emphasises the few facial
regions that move (brows/eyes, mouth corners) instead of the whole face. This module is our
own network written from that description (no code of any author was used); everything below
that is not in that one sentence is **our choice**, and its numbers are not the paper's.

Input (kind ``keyframes``, like every baseline of :mod:`mestudio.nets.baselines`):
``flow [N, 3, S, S]`` = u, v, strain between onset and apex, and
``frames [N, 3, C, S, S]`` = onset, apex, offset (C = 1 grey or 3 colour). By default both are
stacked as channels (``inputs="flow+frames"``: 6 channels grey, 12 colour, everything M3ENet
sees); ``inputs="flow"`` reads u, v, strain only and ignores ``frames`` (our choice of
default: the baselines whose paper inputs are unknown take M3ENet's inputs).

Layers (S = 48 or 64; a multiple of ``8 * regions``):

1. **Stem**: 3x3 conv ``widths[0]`` (BN, ReLU) at S.
2. **Three stages** at S/2, S/4, S/8: 3x3 conv stride 2 then 3x3 conv (BN, ReLU each) to
   ``widths`` = (32, 64, 128), each followed by a **local attention enhancement (LAE)**
   module:

   * *channel attention*: squeeze-and-excitation (spatial mean -> 1x1 conv to C/4, ReLU ->
     1x1 conv -> sigmoid) re-weights the channels;
   * *local spatial attention*: the channel mean and maximum -> 7x7 conv -> one logit per
     position; the map is cut into ``regions x regions`` local windows (2 x 2 by default:
     left/right brow-eye, left/right mouth corner on an aligned face, as HTNet's regions) and
     a softmax is taken **inside each window** (scaled so the mean weight is 1). Each facial
     region thus keeps its own most active spots: a faint movement of the mouth corner is
     not suppressed by a strong one at the brows, as a global softmax would do;
   * *enhancement*: ``y = x * ca``, ``out = y * (1 + a)`` — the attention adds to the signal
     instead of gating it (the features are kept where the attention is low).
3. **Head**: global average pooling, dropout, linear (affine: analytic Grad-CAM).

Grad-CAM stream ``face`` = the last LAE output ``[N, widths[-1], S/8, S/8]``.
About 0.31 M parameters (K = 5, 48 px, grey, ``flow+frames``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mestudio.nets.baselines import KeyframeStackNet, init_weights
from mestudio.nets.blocks import GlobalAvgPool
from mestudio.nets.registry import register


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True)]


class LocalAttentionEnhancement(nn.Module):
    """Channel attention, then spatial attention normalised inside local windows, added to
    the signal: ``y = x * ca(x)``, ``out = y * (1 + a(y))``.

    Args:
        channels: C of the input ``[N, C, h, w]``.
        regions: windows per side (h and w must be multiples of it).
        reduction: channel reduction of the squeeze-and-excitation.
        kernel: size of the spatial attention's convolution.
    """

    def __init__(self, channels: int, regions: int = 2, reduction: int = 4,
                 kernel: int = 7) -> None:
        super().__init__()
        self.regions = int(regions)
        hidden = max(channels // reduction, 4)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def local_softmax(self, logits: Tensor) -> Tensor:
        """``[N, 1, h, w]`` logits -> weights, softmax inside each of the ``regions^2``
        windows, times the window's area (mean weight 1)."""
        g = self.regions
        _, _, h, w = logits.shape
        rh, rw = h // g, w // g
        windows = logits.reshape(-1, g, rh, g, rw).permute(0, 1, 3, 2, 4).reshape(-1, g, g,
                                                                                 rh * rw)
        weights = torch.softmax(windows, dim=-1) * float(rh * rw)
        return weights.reshape(-1, g, g, rh, rw).permute(0, 1, 3, 2, 4).reshape(-1, 1, h, w)

    def forward(self, x: Tensor) -> Tensor:
        ca = torch.sigmoid(self.excite(F.relu(self.squeeze(x.mean(dim=(2, 3), keepdim=True)))))
        y = x * ca
        pooled = torch.cat([y.mean(dim=1, keepdim=True), y.amax(dim=1, keepdim=True)], dim=1)
        a = self.local_softmax(self.spatial(pooled))
        return y * (1.0 + a)


@register("laenet", input_kind="keyframes",
          description="LAENet baseline: light CNN with local attention enhancement (softmax "
                      "inside facial regions) on u, v, strain + key frames (our re-implementation)")
class LAENet(KeyframeStackNet):
    """Light CNN with local attention enhancement after each stage (see the module docstring).

    Args:
        num_classes: K.
        in_channels: 1 (grey) or 3 (colour) frames.
        input_size: side S (a multiple of ``8 * regions``; 48 or 64).
        inputs: ``"flow+frames"`` or ``"flow"`` (see :class:`KeyframeStackNet`).
        widths: channels of the three stages (the stem has ``widths[0]``).
        regions: local windows per side of the spatial attention.
        dropout: dropout before the classifier during training.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 inputs: str = "flow+frames", widths: tuple[int, int, int] = (32, 64, 128),
                 regions: int = 2, dropout: float = 0.3) -> None:
        super().__init__(num_classes, in_channels, input_size, inputs)
        self.widths = tuple(int(w) for w in widths)
        self.regions = int(regions)
        self.head_dropout = float(dropout)
        if len(self.widths) != 3:
            raise ValueError(f"widths takes 3 values, got {widths}")
        if self.regions < 1 or input_size % (8 * self.regions):
            raise ValueError(f"input_size must be a multiple of 8 * regions = "
                             f"{8 * self.regions}, got {input_size}")
        self.stem = nn.Sequential(*_conv_bn_relu(self.stacked_channels, self.widths[0]))
        stages: list[nn.Module] = []
        ch = self.widths[0]
        for out in self.widths:
            stages += [nn.Sequential(*_conv_bn_relu(ch, out, 2), *_conv_bn_relu(out, out)),
                       LocalAttentionEnhancement(out, self.regions)]
            ch = out
        self.stages = nn.Sequential(*stages)
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(ch, num_classes)
        init_weights(self)

    def trunk(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


    def config(self) -> dict:
        return {**super().config(), "widths": list(self.widths), "regions": self.regions,
                "dropout": self.head_dropout}
