"""IM3DR-MFER: "Multimodal Micro-Expression Recognition Based on Improved 3D ResNet18".

A 3D ResNet18 (four stages of two basic blocks) with

* grouped 3x3x3 convolutions followed by a channel shuffle in every basic block;
* two modalities — the frame clip ``[N, T, C, H, W]`` and the optical-flow clip
  ``[N, T-1, 2, H, W]`` — each with its own stem and stages 1-2, fused after stage 2 by L2
  normalisation (over channels, per voxel) and concatenation;
* a multi-scale context-aware fusion module (parallel dilated 3D convolutions and a global
  context branch, ASPP-like) between stages 3 and 4;
* CASANet attention (channel-time attention without dimensionality reduction, then
  spatial-time attention from channel max + mean -> 3D conv -> sigmoid) in the last residual
  block;
* global average pooling and a linear classifier.

Eulerian video magnification is an optional preprocessing step of the clip's frames (before
the frame and flow inputs are made): :func:`mestudio.preprocess.evm.magnify_clip_input` (settings
:class:`mestudio.preprocess.evm.EVMSettings`, e.g. ``"alpha=10,low=0.4,high=3"``; ``mestudio train
--set evm=...``, ``PreprocessConfig.evm``); it is not part of the network.

Switches (constructor arguments, in :meth:`config`, so they travel in checkpoints):

* ``width``: channels of stage 1 (stages w, 2w, 4w, 8w). **64 is the paper's** (ResNet18's
  64-128-256-512) and the default of ``im3dr_mfer``; ``im3dr_mfer_light`` is width 16
  (0.72 M parameters, fast on a CPU);
* ``groups``: groups of the 3x3x3 convolutions (1: plain convolutions, no shuffle);
* ``mscaf``: the multi-scale context-aware fusion module between stages 3 and 4;
* ``casa``: CASANet attention in the last residual block;
* ``modalities``: ``"frames+flow"`` (the paper), ``"flow"`` (flow clip only) or
  ``"frames"`` (frame clip only); the unused input is still taken (same ONNX signature)
  and ignored.

``im3dr_mfer_baseline`` is the plain two-modality 3D ResNet18 (groups 1, no MSCAF, no
CASANet), the start of the paper's ablations (``mestudio reproduce im3dr-mfer``).

Sizes at 48 px, T = 8: stem stride (1, 2, 2) -> 24 px; stage 2 stride 2 -> 12 px, T 4;
stage 3 stride 2 -> 6 px, T 2; stage 4 stride (2, 1, 1) -> 6 px, T 1 with 8w channels.
The flow clip has one frame fewer than the frame clip; it is padded at the start with a
zero-motion frame (flow of frame t = motion from t-1 to t).

Grad-CAM stream: ``clip`` = the last stage's maps averaged over time ``[N, 8w, 6, 6]``
(the head is a global average pool and a linear layer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mestudio.nets.blocks import (
    GlobalAvgPool,
    GroupedBasicBlock3d,
    MERNet,
    MultiScaleContext3d,
    check_input,
)
from mestudio.nets.registry import register


def _stem(in_ch: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_ch, width, (3, 5, 5), (1, 2, 2), (1, 2, 2), bias=False),
        nn.BatchNorm3d(width), nn.ReLU(inplace=True))


MODALITIES = ("frames+flow", "flow", "frames")


def _stage(in_ch: int, out_ch: int, stride: tuple[int, int, int], groups: int,
           attention_last: bool = False) -> nn.Sequential:
    return nn.Sequential(
        GroupedBasicBlock3d(in_ch, out_ch, stride, groups),
        GroupedBasicBlock3d(out_ch, out_ch, (1, 1, 1), groups, attention=attention_last))


@register("im3dr_mfer", input_kind="clip",
          description="improved 3D ResNet18 on frame clip + flow clip (grouped convs, MSCAF, "
                      "CASANet; width 64 as the paper)")
class IM3DRMFER(MERNet):
    """Improved 3D ResNet18 for multimodal (frames + flow) micro-expression recognition.

    Args:
        num_classes: K.
        in_channels: 1 (grey) or 3 (colour) frames.
        input_size: side of the frames in pixels.
        clip_len: T, frames per clip (the flow clip has T - 1).
        width: channels of stage 1 (stages have w, 2w, 4w, 8w); 64 = the paper.
        groups: groups of the 3x3x3 convolutions (1 = no grouped convolutions).
        dilations: spatial dilations of the multi-scale context module.
        dropout: dropout before the classifier during training.
        mscaf: use the multi-scale context-aware fusion module.
        casa: use CASANet attention in the last residual block.
        modalities: ``"frames+flow"``, ``"flow"`` or ``"frames"``.

    Inputs: ``clip [N, T, C, S, S]`` (0..1 or normalised), ``flow_seq [N, T-1, 2, S, S]``.
    Output: logits ``[N, K]``.
    """

    stream_names = ("clip",)
    default_width = 64

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 clip_len: int = 8, width: int | None = None, groups: int = 4,
                 dilations: tuple[int, ...] = (1, 2, 3), dropout: float = 0.3,
                 mscaf: bool = True, casa: bool = True,
                 modalities: str = "frames+flow") -> None:
        super().__init__(num_classes, in_channels, input_size, clip_len)
        if clip_len < 2:
            raise ValueError(f"clip_len must be >= 2, got {clip_len}")
        if modalities not in MODALITIES:
            raise ValueError(f"modalities must be one of {', '.join(MODALITIES)}, "
                             f"got {modalities!r}")
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.width = int(width if width is not None else self.default_width)
        self.groups = int(groups)
        self.dilations = tuple(int(d) for d in dilations)
        self.head_dropout = float(dropout)
        self.mscaf = bool(mscaf)
        self.casa = bool(casa)
        self.modalities = modalities
        w = self.width
        self.use_frames = modalities in ("frames+flow", "frames")
        self.use_flow = modalities in ("frames+flow", "flow")
        if self.use_frames:
            self.frame_stem = _stem(in_channels, w)
            self.frame_stages = nn.Sequential(_stage(w, w, (1, 1, 1), groups),
                                              _stage(w, 2 * w, (2, 2, 2), groups))
        if self.use_flow:
            self.flow_stem = _stem(2, w)
            self.flow_stages = nn.Sequential(_stage(w, w, (1, 1, 1), groups),
                                             _stage(w, 2 * w, (2, 2, 2), groups))
        fused = 2 * w * (int(self.use_frames) + int(self.use_flow))
        self.stage3 = _stage(fused, 4 * w, (2, 2, 2), groups)
        self.context: nn.Module = (MultiScaleContext3d(4 * w, self.dilations) if self.mscaf
                                   else nn.Identity())
        self.stage4 = _stage(4 * w, 8 * w, (2, 1, 1), groups, attention_last=self.casa)
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(8 * w, num_classes)

    def features(self, clip: Tensor, flow_seq: Tensor) -> list[Tensor]:  # type: ignore[override]
        """Time-averaged last-stage maps ``[N, 8w, h, w]`` from the two clips."""
        check_input(clip, "clip", "[N, T, C, H, W]", 5)
        check_input(flow_seq, "flow_seq", "[N, T-1, 2, H, W]", 5)
        parts = []
        if self.use_frames:
            frames = clip.transpose(1, 2)  # [N, C, T, H, W]
            parts.append(F.normalize(self.frame_stages(self.frame_stem(frames)), dim=1))
        if self.use_flow:
            flow = flow_seq.transpose(1, 2)  # [N, 2, T-1, H, W]
            flow = F.pad(flow, (0, 0, 0, 0, 1, 0))  # zero motion before the first frame
            parts.append(F.normalize(self.flow_stages(self.flow_stem(flow)), dim=1))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        x = self.stage4(self.context(self.stage3(x)))
        return [x.mean(dim=2)]


    def config(self) -> dict:
        return {**super().config(), "clip_len": self.clip_len, "width": self.width,
                "groups": self.groups, "dilations": list(self.dilations),
                "dropout": self.head_dropout, "mscaf": self.mscaf, "casa": self.casa,
                "modalities": self.modalities}


@register("im3dr_mfer_light", input_kind="clip",
          description="IM3DR-MFER, light variant (width 16 instead of the paper's 64)")
class IM3DRMFERLight(IM3DRMFER):
    """:class:`IM3DRMFER` with width 16 by default (0.72 M parameters at K = 5)."""

    default_width = 16


@register("im3dr_mfer_baseline", input_kind="clip",
          description="plain two-modality 3D ResNet18 (IM3DR-MFER without grouped convs, "
                      "MSCAF, CASANet): the ablations' baseline")
class IM3DRMFERBaseline(IM3DRMFER):
    """:class:`IM3DRMFER` with ``groups=1, mscaf=False, casa=False`` by default."""

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 48,
                 clip_len: int = 8, width: int | None = None, groups: int = 1,
                 dilations: tuple[int, ...] = (1, 2, 3), dropout: float = 0.3,
                 mscaf: bool = False, casa: bool = False,
                 modalities: str = "frames+flow") -> None:
        super().__init__(num_classes, in_channels, input_size, clip_len, width, groups,
                         dilations, dropout, mscaf, casa, modalities)
