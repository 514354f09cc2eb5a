"""Grad-CAM for every class and stream, computed analytically (no autograd at run time).

For a stream map ``A_s [N, C, h, w]`` Grad-CAM of class ``k`` is::

    w_{k,c} = mean_{h,w} d logit_k / d A_s[c, h, w]
    cam_{k,s} = ReLU(sum_c w_{k,c} A_s[c])                        -> [h, w]

Every network of :mod:`mestudio.nets` ends in an *analytic head* (see
:class:`mestudio.nets.blocks.CamHead`): an affine embedding ``e_s = E_s(A_s)`` per stream,
``z = concat(e_s)`` and an MLP ``logits = W_L relu(... relu(W_1 z + b_1) ...) + b_L``.
Its Jacobian is, per sample,

    d logits / d z = W_L diag(m_{L-1}) W_{L-1} ... diag(m_1) W_1        (m_i = ReLU masks)

and since ``E_s`` is affine, the spatial mean of ``d logits / d A_s`` is that product times
the constant matrix ``Ebar_s [D_s, C]`` (the spatial mean of ``E_s``'s Jacobian). The product
``W_1 blockdiag(Ebar_s)`` is precomputed once, so the run-time cost is a few batched matrix
products (for M3ENet with K = 5: about 6.9 M MACs per sample, 16 % of the network), all of
which export to ONNX. When the head is a single linear layer the channel weights are
constant and the CAM costs one small matrix product per stream.

:func:`gradcam_autograd` computes the same maps with torch autograd; tests and the export
check compare the two.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mestudio.nets.blocks import MERNet


def spatial_mean_jacobian(embed: nn.Module, shape: tuple[int, int, int]) -> Tensor:
    """``Ebar [D, C]``: spatial mean of the Jacobian of the affine map ``embed``.

    Args:
        embed: affine module ``[N, C, h, w] -> [N, D]``.
        shape: ``(C, h, w)`` of its input.

    Returns:
        float64 tensor ``[D, C]`` with ``Ebar[d, c] = mean_{y,x} d e_d / d A[c, y, x]``.
    """
    c, h, w = shape
    emb = copy.deepcopy(embed).double().eval()
    basis = torch.zeros(c + 1, c, h, w, dtype=torch.float64)
    idx = torch.arange(c)
    basis[idx + 1, idx] = 1.0 / (h * w)
    with torch.no_grad():
        out = emb(basis)  # [C + 1, D]
    return (out[1:] - out[0]).T.contiguous()


def _resize(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``[N, K, h, w]`` maps to ``size`` (no-op when equal)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


class AnalyticGradCAM(nn.Module):
    """Wraps a :class:`MERNet` into ``(logits, probs[, cam])`` for export.

    ``forward(*inputs)`` returns ``logits [N, K]``, ``probs [N, K]`` (softmax) and, when
    ``with_cam``, ``cam [N, K, S, h, w]``: raw (unnormalised) Grad-CAM of every class ``k``
    for every stream ``s``; maps of streams with a smaller size are resized bilinearly to
    the largest stream's ``(h, w)`` (:attr:`cam_size`).

    The wrapped model must be in eval mode (BN statistics frozen); the wrapper puts it there.
    """

    def __init__(self, model: MERNet, with_cam: bool = True) -> None:
        super().__init__()
        model.eval()
        self.model = model
        self.with_cam = with_cam
        spec = model.cam_head()
        with torch.no_grad():
            acts = model.features(*model.example_inputs(1))
        self.shapes: list[tuple[int, int, int]] = [
            (int(a.shape[1]), int(a.shape[2]), int(a.shape[3])) for a in acts]
        self.channels = [s[0] for s in self.shapes]
        self.cam_size = (max(s[1] for s in self.shapes), max(s[2] for s in self.shapes))
        self.uniform = len(set(self.shapes)) == 1
        self.num_classes = int(model.num_classes)
        ebar = torch.block_diag(*[spatial_mean_jacobian(e, s)
                                  for e, s in zip(spec.embeds, self.shapes, strict=True)])
        first = spec.layers[0].weight.detach().double() @ ebar  # [D_1, sum C]
        self.single_layer = len(spec.layers) == 1
        # With one linear layer the channel weights do not depend on the input.
        self.first_proj: Tensor
        self.register_buffer("first_proj", first.float(), persistent=False)

    @property
    def num_streams(self) -> int:
        return len(self.shapes)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        acts = self.model.features(*inputs)
        spec = self.model.cam_head()
        h = torch.cat([embed(a) for embed, a in zip(spec.embeds, acts, strict=True)], dim=1)
        masks = []
        for layer in spec.layers[:-1]:
            h = F.relu(layer(h))
            masks.append((h > 0).to(h.dtype))
        logits = spec.layers[-1](h)
        probs = F.softmax(logits, dim=1)
        if not self.with_cam:
            return logits, probs
        if self.single_layer:
            weights = self.first_proj.unsqueeze(0)  # [1, K, sum C]
        else:
            g = spec.layers[-1].weight.unsqueeze(0) * masks[-1].unsqueeze(1)  # [N, K, D]
            for i in range(len(spec.layers) - 2, 0, -1):
                g = torch.matmul(g, spec.layers[i].weight) * masks[i - 1].unsqueeze(1)
            weights = torch.matmul(g, self.first_proj)  # [N, K, sum C]
        n_streams, k = len(self.shapes), self.num_classes
        if self.uniform:
            # One batched product for all streams: [N,S,K,C] @ [N,S,C,hw] -> [N,S,K,hw].
            c, hh, ww = self.shapes[0]
            maps = torch.cat(acts, dim=1).reshape(-1, n_streams, c, hh * ww)
            w = weights.reshape(-1, k, n_streams, c).transpose(1, 2)
            cam = F.relu(torch.matmul(w, maps)).transpose(1, 2)
            return logits, probs, cam.reshape(-1, k, n_streams, hh, ww)
        cams = []
        start = 0
        for a, (c, hh, ww) in zip(acts, self.shapes, strict=True):
            w_s = weights[:, :, start:start + c]
            start += c
            m = F.relu(torch.matmul(w_s, a.reshape(-1, c, hh * ww)))  # [N, K, h*w]
            cams.append(_resize(m.reshape(-1, k, hh, ww), self.cam_size))
        return logits, probs, torch.stack(cams, dim=2)


def gradcam_autograd(model: MERNet, *inputs: Tensor) -> Tensor:
    """Reference Grad-CAM with torch autograd: ``[N, K, S, h, w]`` float32 (raw maps).

    Same definition and resizing as :class:`AnalyticGradCAM`; the model is used in eval mode.
    """
    model.eval()
    with torch.no_grad():
        feats = model.features(*inputs)
    acts = [a.detach().clone().requires_grad_(True) for a in feats]
    size = (max(a.shape[2] for a in acts), max(a.shape[3] for a in acts))
    with torch.enable_grad():
        logits = model.head(acts)
        per_class = []
        for k in range(logits.shape[1]):
            grads = torch.autograd.grad(logits[:, k].sum(), acts, retain_graph=True)
            maps = []
            for g, a in zip(grads, acts, strict=True):
                w = g.mean(dim=(2, 3), keepdim=True)
                m = F.relu((w * a).sum(dim=1, keepdim=True))  # [N, 1, h, w]
                maps.append(_resize(m, size)[:, 0])
            per_class.append(torch.stack(maps, dim=1))  # [N, S, h, w]
    return torch.stack(per_class, dim=1).detach()
