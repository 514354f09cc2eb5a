"""The three remaining baselines of the M3ENet paper's Table 2: LAENet, SSRLTS-ViT and
CNNCapsNet (shapes, sizes, training, Grad-CAM, ONNX export under the contract)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from mestudio.nets import create_model, describe_model, list_models, model_input_kind
from mestudio.nets.cnncapsnet import dynamic_routing, squash
from mestudio.nets.flops import count_params
from mestudio.nets.gradcam import AnalyticGradCAM, gradcam_autograd
from mestudio.nets.laenet import LocalAttentionEnhancement

torch.set_num_threads(1)

#: name -> parameter range at K = 5, 48 px, grey frames, default inputs (flow + key frames)
PARAMS = {"laenet": (0.25e6, 0.40e6), "ssrlts_vit": (0.75e6, 1.0e6),
          "cnncapsnet": (1.1e6, 1.5e6)}
NAMES = sorted(PARAMS)


def seeded(name: str, k: int = 5, **kw):
    """``create_model`` with a fixed draw (an unseeded net makes the checks flaky)."""
    torch.manual_seed(0)
    return create_model(name, k, **kw)


def calibrated(model):
    """``model`` in eval mode with batch-norm statistics of a few random batches."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for seed in range(2):
            model(*model.example_inputs(8, seed=seed))
    return model.eval()


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_keyframe_inputs_and_sized_modestly(name):
    assert name in list_models() and model_input_kind(name) == "keyframes"
    assert "re-implementation" in describe_model(name)
    model = seeded(name).eval()
    lo, hi = PARAMS[name]
    n = count_params(model)
    print(f"{name}: {n:,} parameters")
    assert lo < n < hi, n
    inputs = model.example_inputs(2)
    assert [tuple(x.shape) for x in inputs] == [(2, 3, 48, 48), (2, 3, 1, 48, 48)]
    with torch.no_grad():
        logits, acts = model.forward_with_activations(*inputs)
        torch.testing.assert_close(model(*inputs), logits)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    assert model.stream_names == ("face",) and len(acts) == 1
    assert tuple(acts[0].shape[2:]) == (6, 6)  # S / 8, like the other baselines
    rebuilt = create_model(name, 5, **model.config())
    assert count_params(rebuilt) == n and rebuilt.config() == model.config()


@pytest.mark.parametrize("name", NAMES)
def test_colour_64px_and_flow_only_inputs(name):
    model = seeded(name, 3, in_channels=3, input_size=64).eval()
    flow, frames = model.example_inputs(2)
    assert tuple(frames.shape) == (2, 3, 3, 64, 64)
    with torch.no_grad():
        logits, acts = model.forward_with_activations(flow, frames)
        assert not torch.allclose(model(flow, frames + 0.5), logits)  # the frames are read
    assert logits.shape == (2, 3) and tuple(acts[0].shape[2:]) == (8, 8)
    flow_only = seeded(name, 3, inputs="flow").eval()
    flow, frames = flow_only.example_inputs(2)
    with torch.no_grad():
        torch.testing.assert_close(flow_only(flow, frames), flow_only(flow, frames * 0))
    with pytest.raises(ValueError):
        create_model(name, 3, input_size=44)


@pytest.mark.parametrize("name", NAMES)
def test_a_few_training_steps_reduce_the_loss(name):
    model = seeded(name, 3, dropout=0.0).train()
    inputs = model.example_inputs(8, seed=5)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(model(*inputs), labels)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("name", NAMES)
def test_analytic_gradcam_is_finite_and_matches_autograd(name):
    model = calibrated(seeded(name, 3))
    with torch.no_grad():
        model.cam_head().layers[-1].weight.mul_(20.0)
    inputs = model.example_inputs(2, seed=3)
    with torch.no_grad():
        logits, _, cam = AnalyticGradCAM(model)(*inputs)
    ref = gradcam_autograd(model, *inputs)
    assert cam.shape == ref.shape == (2, 3, 1, 6, 6)
    assert torch.isfinite(cam).all() and float(cam.max()) > 0
    torch.testing.assert_close(cam, ref, atol=1e-4, rtol=1e-3)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(*inputs))


@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_passes_the_contract_and_matches_torch(name, tmp_path):
    from mestudio.inference.engine import InferenceEngine
    from mestudio.inference.export import export_onnx

    model = calibrated(seeded(name, 3))
    with torch.no_grad():
        model.cam_head().layers[-1].weight.mul_(20.0)  # CAMs of order 1
    info = {"classes": ["a", "b", "c"], "synthetic": True,
            "preprocess": {"input_size": 48, "color": False},
            "training": {"dataset": "synthetic", "protocol": "loso"}}
    path = export_onnx((model, info), tmp_path / f"{name}.onnx", card=False)  # verifies
    engine = InferenceEngine(path)  # the contract: metadata, inputs, outputs, hash
    assert engine.architecture == name and engine.streams == ("face",)
    engine.close()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = model.example_inputs(5, seed=11)  # another batch size than at export
    out = dict(zip([o.name for o in sess.get_outputs()],
                   sess.run(None, {n: x.numpy() for n, x in
                                   zip(model.input_names, inputs, strict=True)}), strict=True))
    with torch.no_grad():
        logits = model(*inputs).numpy()
    np.testing.assert_allclose(out["logits"], logits, atol=1e-4, rtol=1e-4)
    ref = gradcam_autograd(model, *inputs).numpy()
    assert out["cam"].shape == ref.shape == (5, 3, 1, 6, 6) and np.isfinite(out["cam"]).all()
    np.testing.assert_allclose(out["cam"], ref, atol=1e-4, rtol=1e-3)


def test_squash_and_routing_by_agreement():
    torch.manual_seed(0)
    s = torch.randn(4, 7, 16) * torch.tensor([0.01, 0.1, 1.0, 10.0]).reshape(4, 1, 1)
    v = squash(s)
    n_s, n_v = s.norm(dim=-1), v.norm(dim=-1)
    torch.testing.assert_close(n_v, n_s ** 2 / (1 + n_s ** 2), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(F.normalize(v, dim=-1), F.normalize(s, dim=-1))
    assert (n_v < 1).all()
    # 6 lower capsules: 4 agree on upper capsule 0, 2 are noise; routing moves their
    # couplings to capsule 0 and the agreeing predictions dominate v_0
    u_hat = torch.randn(1, 6, 2, 8) * 0.05
    u_hat[0, :4, 0] = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0])
    c1, v1 = dynamic_routing(u_hat, 1)
    c3, v3 = dynamic_routing(u_hat, 3)
    torch.testing.assert_close(c1, torch.full_like(c1, 0.5))
    torch.testing.assert_close(c3.sum(dim=2), torch.ones(1, 6, 1))
    assert (c3[0, :4, 0, 0] > 0.6).all()
    assert v3[0, 0].norm() > v1[0, 0].norm() and v3[0, 0].norm() > v3[0, 1].norm()


def test_local_attention_is_normalised_inside_each_region():
    torch.manual_seed(0)
    lae = LocalAttentionEnhancement(8, regions=2)
    logits = torch.randn(3, 1, 6, 6)
    a = lae.local_softmax(logits)
    assert a.shape == logits.shape and (a > 0).all()
    for r in range(2):
        for c in range(2):  # mean weight 1 inside each 3x3 region
            torch.testing.assert_close(a[:, :, 3 * r:3 * r + 3, 3 * c:3 * c + 3].mean(dim=(1, 2, 3)),
                                       torch.ones(3))
    bumped = logits.clone()
    bumped[:, :, 0, 0] += 5.0  # a change in one region leaves the others alone
    b = lae.local_softmax(bumped)
    torch.testing.assert_close(b[:, :, 3:, :], a[:, :, 3:, :])
    torch.testing.assert_close(b[:, :, :3, 3:], a[:, :, :3, 3:])
    assert lae(torch.randn(2, 8, 6, 6)).shape == (2, 8, 6, 6)
