"""Parameter and multiply-accumulate (MAC) counts.

MACs are counted with forward hooks on convolutions (1D/2D/3D) and linear layers only:
a convolution costs ``out.numel() * in_channels / groups * prod(kernel)`` and a linear layer
``out.numel() * in_features``. Batch norm, activations, pooling, additions and attention
products are not counted (papers' "FLOPs" tables usually report this same figure).

:func:`count_flops` adds the element-wise work common FLOP counters add on top: bias
additions of convolutions and linear layers (one per output element), normalisation layers
(batch/layer/group norm in inference form: a scale and a shift, two per element),
activations (ReLU, SiLU, GELU, sigmoid, ...: one per element) and tensor additions (residual
shortcuts: one per element). Its ``paper_flops`` = MACs + biases + normalisation +
activations: for M3ENet (K = 5, 48 px, grey) 41.97 M MACs + 0.23 M biases + 0.45 M BN +
0.16 M ReLU = 42.81 M; with the residual additions (0.08 M) it is 42.89 M (``flops``).
Neither is the M3ENet paper's count: its Table 4 ("42.87 M FLOPs") follows the rules of the
thop counter (MACs without biases, four per batch-norm element, nothing for activations),
which :func:`mestudio.reproduce.complexity.thop_flops` applies and ``mestudio reproduce``
reports.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BN running statistics are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def run_hooked(model: nn.Module, inputs: tuple[torch.Tensor, ...], hook: Any,
               modules: Iterable[nn.Module], context: Any = None) -> int:
    """Run ``model(*inputs)`` once in eval mode without gradients, with the forward
    ``hook`` on each of ``modules`` (and inside ``context``, a context manager, when given);
    the hooks are removed and the previous train/eval mode restored whatever happens.
    Returns the batch size (the counts per sample are the totals divided by it)."""
    handles = [m.register_forward_hook(hook) for m in modules]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), (context if context is not None else contextlib.nullcontext()):
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return inputs[0].shape[0] if inputs else 1


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

    n = run_hooked(model, inputs, hook,
                   [m for m in model.modules() if isinstance(m, (*_CONV, nn.Linear))])
    return total // n


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
          nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_ACTIVATIONS = frozenset({"relu", "relu_", "silu", "silu_", "gelu", "sigmoid", "sigmoid_",
                          "tanh", "tanh_", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_",
                          "elu", "elu_", "relu6", "hardswish", "hardsigmoid", "mish"})
_ADDS = frozenset({"add", "add_", "__add__", "__radd__", "__iadd__"})


def count_flops(model: nn.Module, *inputs: torch.Tensor) -> dict[str, int]:
    """FLOP breakdown **per sample** of one forward pass on ``inputs`` (eval, no gradients).

    Returns:
        ``macs`` (as :func:`count_macs`), ``bias`` (bias additions of convolutions and
        linear layers), ``norm`` (2 x the elements out of normalisation layers),
        ``activation`` (elements out of activation functions, functional or modules),
        ``add`` (elements out of tensor additions), ``paper_flops`` = macs + bias + norm +
        activation (the M3ENet paper's convention, see the module docstring) and ``flops``
        = ``paper_flops`` + add.
    """
    from torch.overrides import TorchFunctionMode

    counts = {"macs": 0, "bias": 0, "norm": 0, "activation": 0, "add": 0}

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        if isinstance(module, _CONV):
            k = math.prod(module.kernel_size)
            counts["macs"] += out.numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            counts["macs"] += out.numel() * module.in_features
        elif isinstance(module, _NORMS):
            counts["norm"] += 2 * out.numel()
        if isinstance(module, (*_CONV, nn.Linear)) and module.bias is not None:
            counts["bias"] += out.numel()

    class _Elementwise(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            out = func(*args, **(kwargs or {}))
            name = getattr(func, "__name__", "")
            if isinstance(out, torch.Tensor):
                if name in _ACTIVATIONS:
                    counts["activation"] += out.numel()
                elif name in _ADDS:
                    counts["add"] += out.numel()
            return out

    n = run_hooked(model, inputs, hook,
                   [m for m in model.modules() if isinstance(m, (*_CONV, nn.Linear, *_NORMS))],
                   _Elementwise())
    out = {k: v // n for k, v in counts.items()}
    out["paper_flops"] = out["macs"] + out["bias"] + out["norm"] + out["activation"]
    out["flops"] = out["paper_flops"] + out["add"]
    return out


def complexity(model: nn.Module) -> dict[str, int]:
    """``{"params": ..., "macs": ...}`` of a :class:`~mestudio.nets.blocks.MERNet` at its
    configured input size (one random sample)."""
    example = model.example_inputs(1)  # type: ignore[operator]
    return {"params": count_params(model), "macs": count_macs(model, *example)}


def paper_complexity(model: nn.Module) -> dict[str, int]:
    """:func:`complexity` plus :func:`count_flops`'s breakdown (``paper_flops``, ``flops``,
    ``bias``, ``norm``, ``activation``, ``add``) at the model's input size."""
    example = model.example_inputs(1)  # type: ignore[operator]
    return {"params": count_params(model), **count_flops(model, *example)}
