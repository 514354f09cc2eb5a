"""CNNCapsNet: a convolutional front end followed by a capsule network with dynamic routing
(routing-by-agreement), a baseline of the M3ENet paper's Table 2.

**What it is based on.** The M3ENet paper (Sensors 2025) lists "CNNCapsNet" in its Table 2
without describing it; we could not find the cited paper's text or code. Two public
descriptions fix the idea: capsules with dynamic routing (Sabour, Frosst and Hinton,
"Dynamic routing between capsules", NIPS 2017: convolution -> primary capsules -> class
capsules, ``squash`` non-linearity, routing-by-agreement) and their use for micro-expressions
(Van Quang, Chun and Tokuyama, "CapsuleNet for micro-expression recognition", FG 2019: the
first convolutional blocks of VGG16 in front of the primary capsules, on apex frames). This
module is **our own** implementation from those descriptions (squash and routing written here
in plain torch, no code of any author used); sizes, inputs and the read-out are our choices,
and its parameter count is not the paper's.

Input (kind ``keyframes``, like every baseline of :mod:`mestudio.nets.baselines`):
``flow [N, 3, S, S]`` = u, v, strain between onset and apex, and
``frames [N, 3, C, S, S]`` = onset, apex, offset (C = 1 grey or 3 colour). By default both are
stacked as channels (``inputs="flow+frames"``: 6 channels grey, 12 colour, which includes the
apex frame the FG 2019 CapsuleNet reads); ``inputs="flow"`` reads u, v, strain only.

Layers (S = 48 or 64, a multiple of 8):

1. **CNN** (VGG16's first two blocks, with batch norm): 3x3 conv 64, 3x3 conv 64, 2x2 max
   pool (S/2); 3x3 conv 128, 3x3 conv 128, 2x2 max pool (S/4). BN + ReLU after each conv.
2. **Primary capsules**: 3x3 conv stride 2 to ``types x prim_dim`` = 32 x 8 channels (S/8:
   6 x 6 at 48 px), read as ``P = types * (S/8)^2`` capsules of 8 dimensions (1152 at 48 px,
   as many as in Sabour et al.), each squashed:
   ``squash(s) = |s|^2 / (1 + |s|^2) * s / |s|``.
3. **Class capsules**: every primary capsule ``u_i`` predicts every class capsule,
   ``u_hat[j|i] = W_ij u_i`` (one ``caps_dim x prim_dim`` = 16 x 8 matrix per pair, not
   shared, as in Sabour et al.); **routing-by-agreement** for ``routing`` = 3 iterations:
   coupling ``c_ij = softmax_j(b_ij)`` (``b = 0`` at first), ``s_j = sum_i c_ij u_hat[j|i]``,
   ``v_j = squash(s_j)``, ``b_ij += u_hat[j|i] . v_j``.
4. **Read-out (our choice).** Sabour et al. take the lengths ``|v_j|`` as class scores and
   train with a margin loss. The project's networks end in an affine head (Grad-CAM is
   computed analytically inside the ONNX graph, :mod:`mestudio.nets.gradcam`) and train with
   the project's losses on logits, so here the routed votes are kept **in place**: the map
   ``A[j, :, y, x] = sum over the capsule types at (y, x) of c_ij u_hat[j|i]``
   ``[N, K * caps_dim, S/8, S/8]`` sums over the positions to the class capsules' inputs
   ``s_j``, and the logits are a linear layer on their spatial mean (global average pooling).
   The routing and the squash still decide how much each position votes for each class.

Grad-CAM stream ``face`` = the routed-vote map ``A`` ``[N, K * caps_dim, S/8, S/8]``: where
the votes that the routing kept for each class come from.
About 1.30 M parameters (K = 5, 48 px, grey, ``flow+frames``; the prediction matrices
grow with S: 1.87 M at 64 px).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mestudio.nets.baselines import KeyframeStackNet, init_weights
from mestudio.nets.blocks import GlobalAvgPool
from mestudio.nets.registry import register


def squash(s: Tensor, dim: int = -1, eps: float = 1e-8) -> Tensor:
    """Capsule non-linearity ``|s|^2 / (1 + |s|^2) * s / |s|`` along ``dim`` (short vectors
    shrink towards 0, long ones to length just under 1; the direction is kept)."""
    n2 = (s * s).sum(dim=dim, keepdim=True)
    return s * (n2 / (1.0 + n2)) / torch.sqrt(n2 + eps)


def dynamic_routing(u_hat: Tensor, iterations: int = 3) -> tuple[Tensor, Tensor]:
    """Routing-by-agreement (Sabour et al. 2017, procedure 1).

    Args:
        u_hat: predictions ``[N, P, J, D]`` of the P lower capsules for the J upper ones.
        iterations: routing iterations r (>= 1).

    Returns:
        ``(c [N, P, J, 1], v [N, J, D])``: the final coupling coefficients (softmax over the
        upper capsules) and the upper capsules ``v_j = squash(sum_i c_ij u_hat[j|i])``.
    """
    if iterations < 1:
        raise ValueError(f"routing needs at least one iteration, got {iterations}")
    j = u_hat.shape[2]
    # b = 0 at first: uniform couplings 1/J
    v = squash(u_hat.sum(dim=1) / j)  # [N, J, D]
    if iterations == 1:
        return torch.ones_like(u_hat[..., :1]) / j, v
    b = (u_hat * v.unsqueeze(1)).sum(dim=-1, keepdim=True)  # agreement [N, P, J, 1]
    for i in range(iterations - 1):
        if i > 0:
            b = b + (u_hat * v.unsqueeze(1)).sum(dim=-1, keepdim=True)
        c = torch.softmax(b, dim=2)
        v = squash((c * u_hat).sum(dim=1))
    return c, v


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True)]


@register("cnncapsnet", input_kind="keyframes",
          description="CNNCapsNet baseline: VGG-style CNN + primary/class capsules with "
                      "dynamic routing on u, v, strain + key frames (our re-implementation)")
class CNNCapsNet(KeyframeStackNet):
    """CNN front end, primary capsules and class capsules with routing-by-agreement (see the
    module docstring).

    Args:
        num_classes: K (one class capsule each).
        in_channels: 1 (grey) or 3 (colour) frames.
        input_size: side S (a multiple of 8; 48 or 64).
        inputs: ``"flow+frames"`` or ``"flow"`` (see :class:`KeyframeStackNet`).
        types: primary capsule types (channels of the primary capsule conv / ``prim_dim``).
        prim_dim: dimensions of a primary capsule.
        caps_dim: dimensions of a class capsule.
        routing: routing iterations.
        dropout: dropout before the read-out during training.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 inputs: str = "flow+frames", types: int = 32, prim_dim: int = 8,
                 caps_dim: int = 16, routing: int = 3, dropout: float = 0.0) -> None:
        super().__init__(num_classes, in_channels, input_size, inputs)
        self.types = int(types)
        self.prim_dim = int(prim_dim)
        self.caps_dim = int(caps_dim)
        self.routing = int(routing)
        self.head_dropout = float(dropout)
        if input_size % 8:
            raise ValueError(f"input_size must be a multiple of 8, got {input_size}")
        if self.routing < 1:
            raise ValueError(f"routing needs at least one iteration, got {routing}")
        self.grid = input_size // 8
        self.cnn = nn.Sequential(
            *_conv_bn_relu(self.stacked_channels, 64), *_conv_bn_relu(64, 64), nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128), *_conv_bn_relu(128, 128), nn.MaxPool2d(2))
        self.primary = nn.Conv2d(128, self.types * self.prim_dim, 3, 2, 1)
        n_primary = self.types * self.grid * self.grid
        # W[i] : [K * caps_dim, prim_dim] for primary capsule i (all classes at once)
        self.weight = nn.Parameter(torch.empty(n_primary, num_classes * self.caps_dim,
                                               self.prim_dim))
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(num_classes * self.caps_dim, num_classes)
        init_weights(self)
        nn.init.normal_(self.weight, std=0.5 / self.prim_dim ** 0.5)

    def primary_capsules(self, x: Tensor) -> Tensor:
        """``[N, P, prim_dim]`` squashed primary capsules, P ordered (type, y, x)."""
        g = self.grid
        p = self.primary(self.cnn(x)).reshape(-1, self.types, self.prim_dim, g, g)
        return squash(p.permute(0, 1, 3, 4, 2).reshape(-1, self.types * g * g, self.prim_dim))

    def trunk(self, x: Tensor) -> Tensor:
        """The routed-vote map ``[N, K * caps_dim, S/8, S/8]``."""
        g, k, d = self.grid, self.num_classes, self.caps_dim
        u = self.primary_capsules(x)  # [N, P, p]
        # u_hat[n, i] = W_i u[n, i]: one batched matmul over the P capsules
        u_hat = torch.matmul(self.weight.unsqueeze(0), u.unsqueeze(-1))  # [N, P, K*d, 1]
        u_hat = u_hat.reshape(-1, self.types * g * g, k, d)
        c, _ = dynamic_routing(u_hat, self.routing)
        votes = (c * u_hat).reshape(-1, self.types, g, g, k * d).sum(dim=1)  # [N, g, g, K*d]
        return votes.permute(0, 3, 1, 2)

    def class_capsules(self, flow: Tensor, frames: Tensor | None = None) -> Tensor:
        """The class capsules ``v [N, K, caps_dim]`` (their lengths: Sabour et al.'s class
        scores; not used by the logits, see the module docstring)."""
        a = self.trunk(self.stack(flow, frames))
        return squash(a.sum(dim=(2, 3)).reshape(-1, self.num_classes, self.caps_dim))


    def config(self) -> dict:
        return {**super().config(), "types": self.types, "prim_dim": self.prim_dim,
                "caps_dim": self.caps_dim, "routing": self.routing,
                "dropout": self.head_dropout}
