"""Checkpoints: plain-typed, weights_only-loadable, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mestudio.errors import ModelFileError
from mestudio.nets import create_model
from mestudio.nets.checkpoint import load_checkpoint, save_checkpoint

torch.set_num_threads(1)


def _save(path, model, **kw):
    args = dict(arch=model.arch, classes=["a", "b", "c"],
                preprocess={"input_size": 48, "color": False, "flow_size": np.int64(128)},
                training={"dataset": "synthetic", "protocol": "loso", "seeds": (1, 2)},
                metrics={"uf1": np.float32(0.5)}, synthetic=True)
    args.update(kw)
    return save_checkpoint(path, model, **args)


def test_round_trip_restores_weights_and_info(tmp_path):
    model = create_model("ststnet", 3, dropout=0.2)
    path = _save(tmp_path / "sub" / "m.pt", model)
    raw = torch.load(path, weights_only=True)  # plain types only: safe loading works
    assert raw["training"]["seeds"] == [1, 2] and isinstance(raw["metrics"]["uf1"], float)
    loaded, info = load_checkpoint(path)
    assert not loaded.training
    assert info["classes"] == ["a", "b", "c"] and info["synthetic"] is True
    assert info["model_kwargs"]["dropout"] == 0.2 and "state_dict" not in info
    x = model.example_inputs(2)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(*x), model(*x))


def test_objects_without_a_plain_form_are_refused(tmp_path):
    with pytest.raises(TypeError, match="training"):
        _save(tmp_path / "m.pt", create_model("ststnet", 3), training={"fn": object()})


def test_bad_files_raise_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="not a readable"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": 1}, foreign)
    with pytest.raises(ModelFileError, match="not a mestudio checkpoint"):
        load_checkpoint(foreign)
    wrong = tmp_path / "wrong.pt"
    _save(wrong, create_model("ststnet", 3), arch="offapexnet", model_kwargs={})
    with pytest.raises(ModelFileError, match="do not fit"):
        load_checkpoint(wrong)
    _save(wrong, create_model("ststnet", 3), arch="offapexnet")  # ststnet's kwargs
    with pytest.raises(ModelFileError, match="cannot build"):
        load_checkpoint(wrong)
