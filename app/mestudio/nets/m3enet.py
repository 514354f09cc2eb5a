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

Why stride 1 at 6x6 for the pair blocks: it is the reading that gives the paper's Table 4
(and what the authors' published code does). With conv biases (PyTorch's default, kept by
the authors) and K = 5 classes (CASME II 5-class) the network has 6,006,213 parameters
(paper: 6.01 M) and 41.97 M multiply-accumulates per sample at 48x48 grey inputs
(convolutions and linear layers; paper: "42.87 M FLOPs", the rest being BN/ReLU/additions,
which our MAC counter does not count). K = 3 gives 6,004,163; without conv biases K = 5 gives
6,004,293 (also within 1 %). Other readings miss: pair blocks with stride 2 (3x3 maps, 576-d
flatten) give 5.13 M parameters and 29.2 M MACs, a single hidden layer
(1280 -> 1024 -> K) 4.95 M. Colour frames (C = 3) add 160 parameters and 0.28 M MACs.
As published there is no ReLU between the per-stream linear layers and the head.

Ablations (``without``): ``("flow",)`` builds the network without the three flow streams
(it takes ``frames`` only; head input 2 x 256), ``("rgb",)`` without the key-frame stack
and the two pair streams (it takes ``flow`` only; head input 3 x 256). At K = 5 and 48x48
grey inputs: full 6,006,213 parameters, without flow 3,237,405, without rgb 3,824,557
(:data:`M3ENet.stream_groups`).

Grad-CAM streams: the five 64x6x6 maps before the flatten (``u``, ``v``, ``strain``,
``onset_apex``, ``offset_apex``); the head from them (linear per stream, concat, MLP with
ReLU) is what :mod:`mestudio.nets.gradcam` differentiates analytically.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

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
from mestudio.nets.registry import register


@register("m3enet", input_kind="keyframes",
          description="five-stream M3ENet (u, v, strain + onset/apex/offset frames), Sensors 2025")
class M3ENet(MERNet):
    """Five-stream M3ENet.

    Args:
        num_classes: K.
        in_channels: 1 (grey frames, the paper) or 3 (colour frames).
        input_size: side of the inputs in pixels (48 in the paper).
        embed_dim: size of each stream's vector (256).
        hidden: width of the two hidden layers of the head (1024).
        dropout: dropout before each head layer during training (0: the published model).
        without: stream groups to leave out (ablations): ``"flow"`` (u, v, strain) or
            ``"rgb"`` (onset_apex, offset_apex); their input is then not taken at all.

    Inputs: ``flow [N, 3, S, S]`` = (u, v, strain), ``frames [N, 3, C, S, S]`` = (onset,
    apex, offset) (only those of the streams built: :attr:`input_names`). Output: logits
    ``[N, K]``.
    """

    stream_names: tuple[str, ...] = ("u", "v", "strain", "onset_apex", "offset_apex")
    #: stream group -> (its streams, the input it takes)
    stream_groups: dict[str, tuple[tuple[str, ...], str]] = {
        "flow": (("u", "v", "strain"), "flow"),
        "rgb": (("onset_apex", "offset_apex"), "frames"),
    }

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 embed_dim: int = 256, hidden: int = 1024, dropout: float = 0.0,
                 without: Sequence[str] = ()) -> None:
        super().__init__(num_classes, in_channels, input_size)
        removed = tuple(g for g in self.stream_groups if g in set(without))
        unknown = sorted(set(without) - set(self.stream_groups))
        if unknown:
            raise ValueError(f"M3ENet has no stream group {', '.join(unknown)} (groups: "
                             f"{', '.join(self.stream_groups)})")
        if len(removed) == len(self.stream_groups):
            raise ValueError("M3ENet without every stream group has nothing left")
        self.removed_streams = removed
        self.use_flow = "flow" not in removed
        self.use_rgb = "rgb" not in removed
        self.stream_names = tuple(n for g, (names, _) in self.stream_groups.items()
                                  if g not in removed for n in names)
        self.input_names = tuple(inp for g, (_, inp) in self.stream_groups.items()
                                 if g not in removed)
        self.embed_dim = int(embed_dim)
        self.hidden = int(hidden)
        self.head_dropout = float(dropout)
        if self.use_flow:
            self.flow_u = residual_stack(1, (8, 32, 64))
            self.flow_v = residual_stack(1, (8, 32, 64))
            self.flow_strain = residual_stack(1, (8, 32, 64))
        if self.use_rgb:
            self.frame_stack = residual_stack(in_channels, (8, 32, 32))
            self.pair_onset_apex = nn.Sequential(*[ResidualBlock(64, 64, 1) for _ in range(3)])
            self.pair_offset_apex = nn.Sequential(*[ResidualBlock(64, 64, 1)
                                                    for _ in range(3)])
        side = self.side = downsampled(input_size, 3)
        flat = 64 * side * side
        n = len(self.stream_names)
        self.embed = nn.ModuleList([FlattenLinear(flat, embed_dim) for _ in range(n)])
        self.fc = nn.ModuleList([
            nn.Linear(n * embed_dim, hidden),
            nn.Linear(hidden, hidden),
            nn.Linear(hidden, num_classes),
        ])

    def features(self, *inputs: Tensor) -> list[Tensor]:
        """Stream maps ``[N, 64, 6, 6]`` (five, or those of the streams built) from
        ``flow [N,3,S,S]`` and ``frames [N,3,C,S,S]`` (the inputs of :attr:`input_names`)."""
        if len(inputs) != len(self.input_names):
            raise ValueError(f"M3ENet{self._ablation_text()} takes "
                             f"{len(self.input_names)} input(s) ({', '.join(self.input_names)}),"
                             f" got {len(inputs)}")
        x = dict(zip(self.input_names, inputs, strict=True))
        out: list[Tensor] = []
        if self.use_flow:
            flow = x["flow"]
            check_input(flow, "flow", "[N, 3, H, W] (u, v, strain)", 4)
            out += [self.flow_u(flow[:, 0:1]), self.flow_v(flow[:, 1:2]),
                    self.flow_strain(flow[:, 2:3])]
        if self.use_rgb:
            frames = x["frames"]
            check_input(frames, "frames", "[N, 3, C, H, W] (onset, apex, offset)", 5)
            # The three key frames share one stack: run them as one batch of 3N images, then
            # put them side by side as channels [onset | apex | offset] (static shapes export
            # to ONNX without shape arithmetic).
            c, s = self.in_channels, self.input_size
            f = self.frame_stack(frames.reshape(-1, c, s, s))
            f = f.reshape(-1, 3 * 32, self.side, self.side)
            out += [self.pair_onset_apex(f[:, :64]),
                    self.pair_offset_apex(torch.cat([f[:, 64:], f[:, 32:64]], dim=1))]
        return out

    def input_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """Shapes of the inputs this network takes (those of the streams built)."""
        shapes = super().input_shapes(batch)
        return {k: v for k, v in shapes.items() if k in self.input_names}

    def _ablation_text(self) -> str:
        return f" without {', '.join(self.removed_streams)}" if self.removed_streams else ""

    def cam_head(self) -> CamHead:
        return CamHead(embeds=list(self.embed), layers=linear_layers(self.fc))

    def config(self) -> dict:
        cfg = {**super().config(), "embed_dim": self.embed_dim, "hidden": self.hidden,
               "dropout": self.head_dropout}
        if self.removed_streams:
            cfg["without"] = list(self.removed_streams)
        return cfg

    def inference_variant(self) -> MERNet:
        """An equivalent network for export (same outputs, same Grad-CAM streams): batch norm
        folded and the parallel streams run side by side as grouped convolutions (the three
        flow stacks as one stack with 3 groups, the two pair stacks with 2 groups), which
        halves the number of convolution nodes in the ONNX graph. An ablation network
        (``without``) is its own inference form."""
        if self.removed_streams:
            return self
        return M3ENetInference(self)


def _folded(conv: nn.Module, bn: nn.Module) -> nn.Conv2d:
    assert isinstance(conv, nn.Conv2d)
    return fuse_conv_bn_eval(conv, bn) if isinstance(bn, nn.BatchNorm2d) else conv


def _side_by_side(convs: list[nn.Conv2d]) -> nn.Conv2d:
    """One grouped convolution computing ``convs`` (same shapes) on stacked inputs/outputs."""
    c0 = convs[0]
    k, stride, pad = (int(c0.kernel_size[0]), int(c0.stride[0]), c0.padding)
    merged = nn.Conv2d(c0.in_channels * len(convs), c0.out_channels * len(convs), k, stride,
                       pad if isinstance(pad, str) else int(pad[0]),
                       groups=len(convs) * c0.groups)
    with torch.no_grad():
        merged.weight.copy_(torch.cat([c.weight for c in convs], dim=0))
        bias = [c.bias if c.bias is not None else torch.zeros(c.out_channels) for c in convs]
        assert merged.bias is not None
        merged.bias.copy_(torch.cat(bias, dim=0))
    return merged


class _SideBySideBlock(nn.Module):
    """``len(blocks)`` residual blocks (any BN folded) run as one block of grouped convs.

    Input ``[N, g * in_ch, H, W]`` (stream ``i`` in channels ``i*in_ch ...``), output
    ``[N, g * out_ch, H', W']``.
    """

    def __init__(self, blocks: list[ResidualBlock]) -> None:
        super().__init__()
        self.conv1 = _side_by_side([_folded(b.conv1, b.bn1) for b in blocks])
        self.conv2 = _side_by_side([_folded(b.conv2, b.bn2) for b in blocks])
        self.shortcut: nn.Module = nn.Identity()
        if isinstance(blocks[0].shortcut, nn.Sequential):
            pairs = [list(b.shortcut.children()) for b in blocks]
            self.shortcut = _side_by_side([_folded(conv, bn) for conv, bn in pairs])

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class M3ENetInference(MERNet):
    """Inference form of :class:`M3ENet` (see :meth:`M3ENet.inference_variant`); eval only."""

    arch = M3ENet.arch
    input_kind = M3ENet.input_kind
    input_names = M3ENet.input_names
    stream_names = M3ENet.stream_names

    def __init__(self, net: M3ENet) -> None:
        super().__init__(net.num_classes, net.in_channels, net.input_size)
        net = net.eval()
        self.side = net.side
        self.source_config = net.config()

        def stacked(*stacks: nn.Sequential) -> nn.Sequential:
            return nn.Sequential(*[_SideBySideBlock(list(blocks))  # type: ignore[arg-type]
                                   for blocks in zip(*stacks, strict=True)])

        self.flow = stacked(net.flow_u, net.flow_v, net.flow_strain)
        self.frame_stack = stacked(net.frame_stack)
        self.pairs = stacked(net.pair_onset_apex, net.pair_offset_apex)
        self.embed = copy.deepcopy(net.embed)
        self.fc = copy.deepcopy(net.fc)
        self.eval()

    def features(self, flow: Tensor, frames: Tensor) -> list[Tensor]:  # type: ignore[override]
        check_input(flow, "flow", "[N, 3, H, W] (u, v, strain)", 4)
        check_input(frames, "frames", "[N, 3, C, H, W] (onset, apex, offset)", 5)
        c, s = self.in_channels, self.input_size
        f = self.flow(flow)  # [N, 3*64, side, side] = u | v | strain
        k = self.frame_stack(frames.reshape(-1, c, s, s)).reshape(-1, 3 * 32, self.side, self.side)
        # [onset | apex | offset | apex] -> [onset_apex | offset_apex]
        p = self.pairs(torch.cat([k, k[:, 32:64]], dim=1))
        return [f[:, :64], f[:, 64:128], f[:, 128:], p[:, :64], p[:, 64:]]

    def cam_head(self) -> CamHead:
        return CamHead(embeds=list(self.embed), layers=linear_layers(self.fc))

    def config(self) -> dict:
        return dict(self.source_config)
