"""Off-ApexNet: "OFF-ApexNet on micro-expression recognition system" (Gan, Liong, Yau,
Huang, Tan; Signal Processing: Image Communication 2019).

Two streams, one on the horizontal (u) and one on the vertical (v) optical flow between
onset and apex. Each: 5x5 conv (6 filters) + ReLU + 2x2 max pool, 5x5 conv (16 filters) +
ReLU + 2x2 max pool. The flattened streams are concatenated and classified by two fully
connected layers of 1024 units (ReLU, dropout) and an output layer. At the published 28x28
inputs this is 2.66 M parameters; on our 48x48 inputs the streams end at 16x12x12 and the
network has 5.8 M parameters (the first FC layer grows).

It takes the key-frame signature ``model(flow, frames)`` and ignores the strain channel and
``frames``. Grad-CAM streams: ``u`` and ``v`` (the 16x12x12 maps before the flatten).
"""

from __future__ import annotations

from torch import Tensor, nn

from mestudio.nets.blocks import CamHead, Flatten, MERNet, check_input, linear_layers
from mestudio.nets.registry import register


def _stream() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    )


@register("offapexnet", input_kind="keyframes",
          description="Off-ApexNet baseline (two streams on u, v), SPIC 2019")
class OffApexNet(MERNet):
    """Two-stream Off-ApexNet on (u, v).

    Args:
        num_classes: K.
        in_channels: colour of the (ignored) frames, kept for the common interface.
        input_size: side of the inputs in pixels.
        hidden: width of the two fully connected layers (1024).
        dropout: dropout before each FC layer during training (0.5).
    """

    stream_names = ("u", "v")

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 hidden: int = 1024, dropout: float = 0.5) -> None:
        super().__init__(num_classes, in_channels, input_size)
        self.hidden = int(hidden)
        self.head_dropout = float(dropout)
        self.stream_u = _stream()
        self.stream_v = _stream()
        side = input_size // 4
        flat = 16 * side * side
        self.embed = nn.ModuleList([Flatten(), Flatten()])
        self.fc = nn.ModuleList([nn.Linear(2 * flat, hidden), nn.Linear(hidden, hidden),
                                 nn.Linear(hidden, num_classes)])

    def features(self, flow: Tensor, frames: Tensor | None = None) -> list[Tensor]:  # type: ignore[override]
        """Maps ``[N, 16, 12, 12]`` for u and v from ``flow [N, 3, 48, 48]``."""
        check_input(flow, "flow", "[N, 3, H, W] (u, v, strain)", 4)
        return [self.stream_u(flow[:, 0:1]), self.stream_v(flow[:, 1:2])]

    def cam_head(self) -> CamHead:
        return CamHead(embeds=list(self.embed), layers=linear_layers(self.fc))

    def config(self) -> dict:
        return {**super().config(), "hidden": self.hidden, "dropout": self.head_dropout}
