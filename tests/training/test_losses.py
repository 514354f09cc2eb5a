"""Focal loss and inverse-frequency class weights against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mestudio.training.losses import FocalLoss, focal_loss, inverse_frequency_weights


def test_focal_loss_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    target = torch.tensor([0, 2])
    # sample 0: p0 = e^2 / (e^2 + 1 + e^-1)
    p0 = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
    # sample 1: p2 = 1 / (e^.5 + e^.5 + 1)
    p1 = 1 / (2 * math.exp(0.5) + 1)
    fl0 = -((1 - p0) ** 2) * math.log(p0)
    fl1 = -((1 - p1) ** 2) * math.log(p1)
    got = focal_loss(logits, target, gamma=2.0, reduction="none")
    assert got.tolist() == pytest.approx([fl0, fl1], rel=1e-6)
    assert float(focal_loss(logits, target, gamma=2.0)) == pytest.approx((fl0 + fl1) / 2, rel=1e-6)
    # class weights scale each sample's term
    w = torch.tensor([0.5, 1.0, 3.0])
    assert float(FocalLoss(2.0, w)(logits, target)) == pytest.approx((0.5 * fl0 + 3 * fl1) / 2,
                                                                      rel=1e-6)


def test_gamma_zero_is_cross_entropy_and_focal_downweights_easy_samples():
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    target = torch.arange(8) % 5
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert float(focal_loss(logits, target, gamma=0.0)) == pytest.approx(float(ce), rel=1e-6)
    assert float(focal_loss(logits, target, gamma=2.0)) < float(ce)


def test_inverse_frequency_weights():
    labels = [0] * 6 + [1] * 3 + [2] * 1          # N = 10, 3 classes present of 4
    w = inverse_frequency_weights(labels, 4)
    assert w.tolist() == pytest.approx([10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1), 0.0])
    # every present class contributes the same total weight N / K
    counts = np.bincount(labels, minlength=4)
    assert (w * counts)[:3] == pytest.approx([10 / 3] * 3)
    assert inverse_frequency_weights([0, 1, 2, 0, 1, 2], 3).tolist() == pytest.approx([1, 1, 1])
    with pytest.raises(ValueError):
        inverse_frequency_weights([0, 3], 3)


def test_focal_alpha_modes_against_hand_computed_weights():
    from mestudio.training.losses import class_weights

    labels = [0, 0, 0, 1, 1, 3]                  # N = 6; class 2 absent; K = 4
    paper = class_weights(labels, 4, "paper")    # alpha_t = 1 - n_t / N
    np.testing.assert_allclose(paper, [1 - 3 / 6, 1 - 2 / 6, 0.0, 1 - 1 / 6], rtol=1e-6)
    inverse = class_weights(labels, 4, "inverse")  # N / (K_present n_t), K_present = 3
    np.testing.assert_allclose(inverse, [6 / 9, 6 / 6, 0.0, 6 / 3], rtol=1e-6)
    assert class_weights(labels, 4, "none") is None
    with pytest.raises(ValueError):
        class_weights(labels, 4, "sqrt")
    # the loss scales each sample's term by its class's alpha
    logits = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    target = torch.tensor([0, 1])
    plain = focal_loss(logits, target, 2.0, reduction="none")
    weighted = FocalLoss(2.0, paper, reduction="none")(logits, target)
    torch.testing.assert_close(weighted, plain * torch.tensor([0.5, 1 - 2 / 6]))
