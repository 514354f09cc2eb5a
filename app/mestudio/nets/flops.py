"""Parameter and multiply-accumulate (MAC) counts.

MACs are counted with forward hooks on convolutions (1D/2D/3D) and linear layers only:
a convolution costs ``out.numel() * in_channels / groups * prod(kernel)`` and a linear layer
``out.numel() * in_features``. Batch norm, activations, pooling, additions and attention
products are not counted (papers' "FLOPs" tables usually report this same figure).
"""

from __future__ import annotations

import math

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BN running statistics are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates **per sample** of one forward pass on ``inputs``.

    ``inputs`` is a batch of any size ``N`` (the count is divided by ``N``); the model is run
    in eval mode without gradients and restored to its previous mode.
    """
    total = 0

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, _CONV):
            k = math.prod(module.kernel_size)
            total += out.numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            total += out.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (*_CONV, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    n = inputs[0].shape[0] if inputs else 1
    return total // n


def complexity(model: nn.Module) -> dict[str, int]:
    """``{"params": ..., "macs": ...}`` of a :class:`~mestudio.nets.blocks.MERNet` at its
    configured input size (one random sample)."""
    example = model.example_inputs(1)  # type: ignore[operator]
    return {"params": count_params(model), "macs": count_macs(model, *example)}
