"""The published STSTNet (FG 2019): the authors' files load as they are and compute exactly
what the authors' network computes; the fast ensemble equals the folds run one by one."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from mestudio.errors import ModelFileError
from mestudio.nets import create_model
from mestudio.nets.flops import count_params
from mestudio.nets.ststnet_fg2019 import (
    STSTNetEnsemble,
    ensemble_reference,
    load_published_weights,
)

torch.set_num_threads(1)


def _authors_forward(state: dict, x: torch.Tensor) -> torch.Tensor:
    """The authors' main.py STSTNet.forward in eval mode, written out from their layer list:
    conv (3x3, padding 2) -> ReLU -> BatchNorm -> MaxPool(3, 3, padding 1) per stream, concat,
    AvgPool(2), flatten, Linear."""
    streams = []
    for i in (1, 2, 3):
        y = F.conv2d(x, state[f"conv{i}.weight"], state[f"conv{i}.bias"], padding=2)
        y = F.relu(y)
        y = F.batch_norm(y, state[f"bn{i}.running_mean"], state[f"bn{i}.running_var"],
                         state[f"bn{i}.weight"], state[f"bn{i}.bias"], training=False, eps=1e-5)
        streams.append(F.max_pool2d(y, kernel_size=3, stride=3, padding=1))
    y = F.avg_pool2d(torch.cat(streams, 1), kernel_size=2, stride=2)
    return F.linear(y.reshape(y.shape[0], -1), state["fc.weight"], state["fc.bias"])


def test_the_network_has_the_published_layers_and_size():
    model = create_model("ststnet_fg2019", 3)
    # per stream: 3x3x3 filters + bias, BN scale + shift; classifier 400 -> 3
    assert count_params(model) == (3 + 5 + 8) * (27 + 1) + 2 * 16 + 400 * 3 + 3 == 1683
    assert [model.conv1.out_channels, model.conv2.out_channels, model.conv3.out_channels] == \
        [3, 5, 8]
    assert all(c.padding == (2, 2) and c.kernel_size == (3, 3)
               for c in (model.conv1, model.conv2, model.conv3))
    assert model.fc.in_features == 400
    logits, acts = model.eval().forward_with_activations(*model.example_inputs(2))
    assert logits.shape == (2, 3) and acts[0].shape == (2, 16, 10, 10)


def test_the_authors_files_load_with_their_own_keys_and_match_their_forward(ststnet_dir):
    path = ststnet_dir / "sub01.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = load_published_weights(path)
    x = torch.randint(0, 256, (5, 3, 28, 28)).float()
    with torch.no_grad():
        ours = model(x, torch.zeros(5, 3, 1, 28, 28))
    torch.testing.assert_close(ours, _authors_forward(state, x), rtol=0, atol=1e-4)
    # ReLU before batch norm matters: the other order gives other answers on these weights.
    swapped = []
    for i in (1, 2, 3):
        y = F.conv2d(x, state[f"conv{i}.weight"], state[f"conv{i}.bias"], padding=2)
        y = F.relu(F.batch_norm(y, state[f"bn{i}.running_mean"], state[f"bn{i}.running_var"],
                                state[f"bn{i}.weight"], state[f"bn{i}.bias"], training=False))
        swapped.append(F.max_pool2d(y, 3, 3, 1))
    y = F.avg_pool2d(torch.cat(swapped, 1), 2)
    other = F.linear(y.flatten(1), state["fc.weight"], state["fc.bias"])
    assert (other - ours).abs().max() > 1e-2


def test_files_of_other_networks_are_refused_with_one_clear_message(tmp_path, ststnet_dir):
    bad = tmp_path / "other.pth"
    state = torch.load(ststnet_dir / "s01.pth", map_location="cpu", weights_only=True)
    state["fc.weight"] = torch.zeros(5, 400)
    torch.save(state, bad)
    with pytest.raises(ModelFileError, match="wrong shape"):
        load_published_weights(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(ModelFileError, match="not a readable PyTorch weight file"):
        load_published_weights(junk)
    trunc = tmp_path / "trunc.pth"
    shutil.copy(ststnet_dir / "s01.pth", trunc)
    trunc.write_bytes(trunc.read_bytes()[:3000])
    with pytest.raises(ModelFileError):
        load_published_weights(trunc)


def test_the_one_pass_ensemble_equals_the_folds_one_by_one(ststnet_dir):
    folds = [load_published_weights(p) for p in sorted(ststnet_dir.glob("*.pth"))[:12]]
    ens = STSTNetEnsemble(folds).eval()
    x = torch.randint(0, 256, (3, 3, 28, 28)).float()
    with torch.no_grad():
        logits, probs, cam, agreement = ens(x)
    ref = ensemble_reference(folds, x)
    torch.testing.assert_close(probs, ref["probs"], rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.softmax(logits, 1), probs, rtol=0, atol=1e-6)
    torch.testing.assert_close(cam, ref["cam"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(agreement, ref["agreement"])
    assert cam.shape == (3, 3, 1, 10, 10) and cam.max() > 0
    assert set((agreement * 12).round().tolist()) <= set(range(13))
