"""Focal loss with class weights (alpha_t) from the class counts of a training set.

For a sample of class ``y`` with softmax probability ``p_y`` and class weight ``w_y``::

    FL = - w_y * (1 - p_y) ** gamma * log(p_y)

Class weights (:func:`class_weights`, ``TrainConfig.focal_alpha``), with ``n_t`` samples of
class ``t`` among ``N`` training samples of ``K`` classes:

* ``paper``: ``alpha_t = 1 - n_t / N`` (the M3ENet paper, with gamma 2);
* ``inverse``: ``alpha_t = N / (K n_t)`` (inverse class frequency; mestudio's default);
* ``none``: ``alpha_t = 1``.

and the batch loss is the plain mean of ``FL`` over the samples (the weights scale each
sample's term; they are not renormalised). ``gamma = 0`` and unit weights give the
cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def inverse_frequency_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """Class weights ``w_c = N / (K * n_c)`` from the label counts of a training set.

    With these weights every class contributes the same total weight (``N / K``); a
    balanced set gets all ones. Classes absent from ``labels`` get weight 0 (they cannot
    occur in the loss of that training set anyway).

    Args:
        labels: ``(N,)`` integer class indices in ``[0, num_classes)``.
        num_classes: K.

    Returns:
        ``(K,)`` float32 weights.
    """
    y = np.asarray(labels, dtype=np.int64).ravel()
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {y.min()}..{y.max()}")
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = counts > 0
    k = max(int(present.sum()), 1)
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = y.size / (k * counts[present])
    return weights.astype(np.float32)


def paper_alpha_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """The M3ENet paper's ``alpha_t = 1 - n_t / N``; classes absent from ``labels`` get 0
    (they cannot occur in the loss of that training set).

    Returns:
        ``(K,)`` float32 weights.
    """
    y = np.asarray(labels, dtype=np.int64).ravel()
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {y.min()}..{y.max()}")
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, 1.0 - counts / max(y.size, 1), 0.0)
    return weights.astype(np.float32)


def class_weights(labels: Sequence[int] | np.ndarray, num_classes: int,
                  mode: str = "inverse") -> np.ndarray | None:
    """Focal-loss class weights of a training set: ``paper``, ``inverse`` or ``none``
    (None: every weight 1).

    Raises:
        ValueError: an unknown mode.
    """
    if mode == "paper":
        return paper_alpha_weights(labels, num_classes)
    if mode == "inverse":
        return inverse_frequency_weights(labels, num_classes)
    if mode == "none":
        return None
    raise ValueError(f"focal alpha must be paper, inverse or none, got {mode!r}")


def focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0,
               weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """Multi-class focal loss.

    Args:
        logits: ``[N, K]`` raw scores.
        target: ``[N]`` int64 class indices.
        gamma: focusing parameter (0 = weighted cross-entropy).
        weight: ``[K]`` class weights or None (all ones).
        reduction: ``mean`` (mean over samples), ``sum`` or ``none`` (``[N]``).

    Returns:
        A scalar (or ``[N]`` with ``reduction="none"``).
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape [N, K], got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must have shape [{logits.shape[0]}], got {tuple(target.shape)}")
    log_p = F.log_softmax(logits.float(), dim=1)
    log_py = log_p.gather(1, target.view(-1, 1)).squeeze(1)
    p_y = log_py.exp()
    loss = -((1.0 - p_y).clamp(min=0.0) ** gamma) * log_py
    if weight is not None:
        loss = loss * weight.to(loss.device, loss.dtype)[target]
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be mean, sum or none, got {reduction!r}")


class FocalLoss(nn.Module):
    """:func:`focal_loss` as a module (weights stored as a buffer)."""

    def __init__(self, gamma: float = 2.0, weight: Tensor | np.ndarray | None = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.reduction = reduction
        w = None if weight is None else torch.as_tensor(np.asarray(weight), dtype=torch.float32)
        self.register_buffer("weight", w)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:  # noqa: D102
        weight = self.weight if isinstance(self.weight, Tensor) else None
        return focal_loss(logits, target, self.gamma, weight, self.reduction)
