"""The model registry: ``create_model(name, num_classes, **kw)`` and ``list_models()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mestudio.nets.blocks import MERNet
from mestudio.nets.im3dr_mfer import IM3DRMFER
from mestudio.nets.m3enet import M3ENet
from mestudio.nets.offapexnet import OffApexNet
from mestudio.nets.ststnet import STSTNet
from mestudio.nets.ststnet_fg2019 import STSTNetFG2019

_REGISTRY: dict[str, Callable[..., MERNet]] = {
    "m3enet": M3ENet,
    "im3dr_mfer": IM3DRMFER,
    "ststnet": STSTNet,
    "ststnet_fg2019": STSTNetFG2019,
    "offapexnet": OffApexNet,
}

_DESCRIPTIONS = {
    "m3enet": "five-stream M3ENet (u, v, strain + onset/apex/offset frames), Sensors 2025",
    "im3dr_mfer": "improved 3D ResNet18 on frame clip + flow clip (grouped convs, CASANet)",
    "ststnet": "STSTNet baseline (shallow triple-stream CNN on u, v, strain), FG 2019",
    "ststnet_fg2019": "STSTNet exactly as published (28 px, ReLU before BN; loads the authors' "
                      "MEGC2019 fold weights), FG 2019",
    "offapexnet": "Off-ApexNet baseline (two streams on u, v), SPIC 2019",
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_REGISTRY)


def describe_model(name: str) -> str:
    """One line describing architecture ``name``."""
    return _DESCRIPTIONS[_canonical(name)]


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    return key


def create_model(name: str, num_classes: int, **kw: Any) -> MERNet:
    """Build architecture ``name`` with ``num_classes`` outputs (random weights).

    Keyword arguments go to the model's constructor (e.g. ``in_channels=3`` for colour
    frames, ``input_size=48``); unknown ones raise ``TypeError``. The model exposes
    ``input_kind``, ``input_names``, ``stream_names``, ``forward_with_activations`` and
    ``config()`` (the keyword arguments that rebuild it).
    """
    return _REGISTRY[_canonical(name)](num_classes, **kw)
