"""Torch architectures for micro-expression recognition and their analytic Grad-CAM heads.

``create_model(name, num_classes, **kw)`` builds one of :func:`list_models`:
``m3enet`` (five-stream M3ENet), ``im3dr_mfer`` (improved 3D ResNet18, clip inputs),
``ststnet``, ``ststnet_fg2019`` and ``offapexnet`` (baselines). Each network module
registers its class with :func:`mestudio.nets.registry.register` (name, input kind,
description); the input kinds themselves are specified in :mod:`mestudio.preprocess`.
No Qt, no onnxruntime here.
"""

from __future__ import annotations

from mestudio.nets.blocks import MERNet
from mestudio.nets.registry import (
    create_model,
    describe_model,
    list_models,
    model_input_kind,
    register,
)

__all__ = ["MERNet", "create_model", "describe_model", "list_models", "model_input_kind",
           "register"]
