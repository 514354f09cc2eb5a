"""STSTNet: "Shallow Triple Stream Three-dimensional CNN (STSTNet) for Micro-expression
Recognition" (Liong, Gan, See, Khor, Huang; FG 2019).

The published network reads a 28x28x3 input (u, v, optical strain stacked as channels) with
three parallel 3x3 convolution streams of 3, 5 and 8 filters (same padding, BN, ReLU,
3x3 max pooling with stride 3), concatenates them (16 channels), average-pools 2x2 and ends
in one fully connected layer. Here the same network runs on our 48x48 inputs:
48 -> max-pool /3 -> 16x16 -> avg-pool /2 -> 8x8x16 = 1024 features -> K.

It takes the key-frame signature ``model(flow, frames)`` and ignores ``frames``.
Grad-CAM stream: ``flow`` = the 16 concatenated 16x16 maps before the average pooling.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mestudio.nets.blocks import AvgPoolFlatten, CamHead, MERNet, check_input
from mestudio.nets.registry import register


@register("ststnet", input_kind="keyframes",
          description="STSTNet baseline (shallow triple-stream CNN on u, v, strain), FG 2019")
class STSTNet(MERNet):
    """Shallow triple-stream CNN on (u, v, strain).

    Args:
        num_classes: K.
        in_channels: colour of the (ignored) frames, kept for the common interface.
        input_size: side of the inputs in pixels (a multiple of 6 keeps every pixel).
        filters: filters of the three streams (3, 5, 8 in the paper).
        dropout: dropout before the classifier during training.
    """

    stream_names = ("flow",)

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 filters: tuple[int, ...] = (3, 5, 8), dropout: float = 0.0) -> None:
        super().__init__(num_classes, in_channels, input_size)
        self.filters = tuple(int(f) for f in filters)
        self.head_dropout = float(dropout)
        self.streams = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, f, 3, padding=1), nn.BatchNorm2d(f), nn.ReLU(inplace=True),
                          nn.MaxPool2d(3, 3, ceil_mode=True))
            for f in self.filters
        ])
        pooled = -(-input_size // 3)  # ceil
        side = pooled // 2
        self.embed = AvgPoolFlatten(2)
        self.fc = nn.Linear(sum(self.filters) * side * side, num_classes)

    def features(self, flow: Tensor, frames: Tensor | None = None) -> list[Tensor]:  # type: ignore[override]
        """One map ``[N, 16, 16, 16]`` from ``flow [N, 3, 48, 48]``; ``frames`` is ignored."""
        check_input(flow, "flow", "[N, 3, H, W] (u, v, strain)", 4)
        return [torch.cat([stream(flow) for stream in self.streams], dim=1)]

    def cam_head(self) -> CamHead:
        return CamHead(embeds=[self.embed], layers=[self.fc])

    def config(self) -> dict:
        return {**super().config(), "filters": list(self.filters), "dropout": self.head_dropout}
