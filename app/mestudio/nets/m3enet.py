"""M3ENet: the five-stream multi-modal network of "M3ENet: A Multi-Modal Fusion Network for
Efficient Micro-Expression Recognition" (Sensors 2025), as its authors published it.

Streams (48x48 inputs):

* ``u``, ``v``, ``strain``: each flow map has its own stack of three residual blocks
  (channels 1 -> 8 -> 32 -> 64, each stride 2: 48 -> 24 -> 12 -> 6 px), flatten
  (64 x 6 x 6 = 2304) and a linear layer to 256;
* the three key frames (onset, apex, offset) share one stack (C -> 8 -> 32 -> 32, stride 2,
  48 -> 6 px); ``onset_apex`` = concat(onset, apex) and ``offset_apex`` = concat(offset, apex)
  (64 channels at 6x6) each go through three more residual blocks at 64 channels **with
  stride 1** (they stay at 6x6), flatten (2304) and a linear layer to 256;
* the five 256-vectors are concatenated (1280) -> 1024 -> ReLU -> 1024 -> ReLU -> K.

Why stride 1 at 6x6 for the pair blocks: it is the only reading of the paper that gives its
Table 4. With conv biases (the authors' code keeps PyTorch's default ``bias=True``) and
K = 5 classes (CASME II 5-class) the network has 6,006,213 parameters (paper: 6.01 M) and
41.97 M multiply-accumulates per sample at 48x48 grey inputs (convolutions and linear layers;
paper: "42.87 M FLOPs", the rest being BN/ReLU/additions, which our MAC counter does not
count). K = 3 gives 6,004,163 parameters. Colour frames (C = 3) add 160 parameters and
0.28 M MACs. Any other reading (pair blocks with stride 2, no biases, a single hidden layer)
moves the count by far more than 1 %: e.g. 1280 -> 1024 -> K gives 4.95 M.

Grad-CAM streams: the five 64x6x6 maps before the flatten (``u``, ``v``, ``strain``,
``onset_apex``, ``offset_apex``); the head from them (linear per stream, concat, MLP with
ReLU) is what :mod:`mestudio.nets.gradcam` differentiates analytically.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mestudio.nets.blocks import (
    CamHead,
    FlattenLinear,
    MERNet,
    ResidualBlock,
    check_input,
    downsampled,
    linear_layers,
    residual_stack,
)


class M3ENet(MERNet):
    """Five-stream M3ENet.

    Args:
        num_classes: K.
        in_channels: 1 (grey frames, the paper) or 3 (colour frames).
        input_size: side of the inputs in pixels (48 in the paper).
        embed_dim: size of each stream's vector (256).
        hidden: width of the two hidden layers of the head (1024).
        dropout: dropout before each head layer during training (0: the published model).

    Inputs: ``flow [N, 3, S, S]`` = (u, v, strain), ``frames [N, 3, C, S, S]`` = (onset,
    apex, offset). Output: logits ``[N, K]``.
    """

    arch = "m3enet"
    input_kind = "keyframes"
    input_names = ("flow", "frames")
    stream_names = ("u", "v", "strain", "onset_apex", "offset_apex")

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 embed_dim: int = 256, hidden: int = 1024, dropout: float = 0.0) -> None:
        super().__init__(num_classes, in_channels, input_size)
        self.embed_dim = int(embed_dim)
        self.hidden = int(hidden)
        self.head_dropout = float(dropout)
        self.flow_u = residual_stack(1, (8, 32, 64))
        self.flow_v = residual_stack(1, (8, 32, 64))
        self.flow_strain = residual_stack(1, (8, 32, 64))
        self.frame_stack = residual_stack(in_channels, (8, 32, 32))
        self.pair_onset_apex = nn.Sequential(*[ResidualBlock(64, 64, 1) for _ in range(3)])
        self.pair_offset_apex = nn.Sequential(*[ResidualBlock(64, 64, 1) for _ in range(3)])
        side = self.side = downsampled(input_size, 3)
        flat = 64 * side * side
        self.embed = nn.ModuleList([FlattenLinear(flat, embed_dim) for _ in range(5)])
        self.fc = nn.ModuleList([
            nn.Linear(5 * embed_dim, hidden),
            nn.Linear(hidden, hidden),
            nn.Linear(hidden, num_classes),
        ])

    def features(self, flow: Tensor, frames: Tensor) -> list[Tensor]:  # type: ignore[override]
        """Stream maps ``[N, 64, 6, 6]`` x 5 from ``flow [N,3,S,S]`` and ``frames [N,3,C,S,S]``."""
        check_input(flow, "flow", "[N, 3, H, W] (u, v, strain)", 4)
        check_input(frames, "frames", "[N, 3, C, H, W] (onset, apex, offset)", 5)
        u = self.flow_u(flow[:, 0:1])
        v = self.flow_v(flow[:, 1:2])
        strain = self.flow_strain(flow[:, 2:3])
        # The three key frames share one stack: run them as one batch of 3N images, then put
        # them side by side as channels [onset | apex | offset] (static shapes export to ONNX
        # without shape arithmetic).
        c, s = self.in_channels, self.input_size
        f = self.frame_stack(frames.reshape(-1, c, s, s))
        f = f.reshape(-1, 3 * 32, self.side, self.side)
        onset_apex = self.pair_onset_apex(f[:, :64])
        offset_apex = self.pair_offset_apex(torch.cat([f[:, 64:], f[:, 32:64]], dim=1))
        return [u, v, strain, onset_apex, offset_apex]

    def cam_head(self) -> CamHead:
        return CamHead(embeds=list(self.embed), layers=linear_layers(self.fc))

    def config(self) -> dict:
        return {**super().config(), "embed_dim": self.embed_dim, "hidden": self.hidden,
                "dropout": self.head_dropout}
