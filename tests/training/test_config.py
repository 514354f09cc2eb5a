"""TrainConfig: the paper's defaults, overridable from the command line."""

from __future__ import annotations

import pytest

from mestudio.errors import ConfigError
from mestudio.training.config import TrainConfig, parse_seeds


def test_paper_defaults():
    c = TrainConfig()
    assert (c.lr, c.weight_decay, c.betas, c.schedule, c.epochs, c.batch_size) == \
        (1e-3, 0.05, (0.9, 0.999), "cosine", 50, 128)
    assert (c.focal_gamma, c.focal_alpha, c.aug_expansion, c.validation) == \
        (2.0, "inverse", 5, "none")
    assert (c.aug_mode, c.aug_stage) == ("online", "maps")   # plain train: see config.py


def test_new_settings_are_plain_set_fields_and_old_names_still_work():
    c = TrainConfig().with_overrides(["focal_alpha=paper", "aug_mode=offline",
                                      "aug_stage=frames", "ablation=permuted-rgb"])
    assert (c.focal_alpha, c.aug_mode, c.aug_stage, c.ablation) == \
        ("paper", "offline", "frames", "permuted-rgb")
    assert TrainConfig().with_overrides(["class_weights=none"]).focal_alpha == "none"
    assert TrainConfig.from_dict({"class_weights": "inverse"}).focal_alpha == "inverse"
    for bad in ("focal_alpha=sqrt", "aug_mode=sometimes", "aug_stage=clips"):
        with pytest.raises(ConfigError):
            TrainConfig().with_overrides([bad])
    with pytest.raises(ConfigError, match="<= 5"):
        TrainConfig(aug_mode="offline", aug_expansion=6)


def test_digest_of_runs_made_before_the_new_settings_is_unchanged():
    # the digest of the defaults as it was when the setting was called class_weights
    import hashlib
    import json

    d = {k: v for k, v in TrainConfig().to_dict().items()
         if k not in ("device", "threads", "workers", "seeds", "final_model",
                      "eval_batch_size", "aug_mode", "aug_stage", "evm")}
    d["class_weights"] = d.pop("focal_alpha")
    old = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
    assert TrainConfig().digest() == old
    assert TrainConfig(focal_alpha="paper").digest() != old
    assert TrainConfig(aug_mode="offline").digest() != old
    assert TrainConfig(evm="on").digest() != old


def test_every_field_can_be_set_with_key_value():
    c = TrainConfig().with_overrides(["lr=5e-4", "betas=0.8,0.99", "augment=false",
                                      "seeds=1,2,3", "model_kwargs={\"dropout\": 0.1}",
                                      "aug-expansion=3", "schedule=step"])
    assert c.lr == 5e-4 and c.betas == (0.8, 0.99) and c.augment is False
    assert c.seeds == (1, 2, 3) and c.model_kwargs == {"dropout": 0.1}
    assert c.aug_expansion == 3 and c.schedule == "step"
    assert TrainConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("bad", ["nope=1", "lr=abc", "epochs=0", "schedule=linear", "lr",
                                 "augment=maybe", "ablation=no-everything"])
def test_bad_overrides_are_user_errors(bad):
    with pytest.raises(ConfigError):
        TrainConfig().with_overrides([bad])


def test_digest_ignores_device_but_not_schedule():
    a = TrainConfig()
    assert a.digest() == a.replace(device="cpu", workers=2).digest()
    assert a.digest() != a.replace(epochs=10).digest()


def test_parse_seeds():
    assert parse_seeds("1,2,3") == (1, 2, 3)
    assert parse_seeds("1-3,7") == (1, 2, 3, 7)
    with pytest.raises(ConfigError):
        parse_seeds("a,b")
