"""A torch module traced to an ONNX model (the TorchScript exporter, dynamic batch axis), for
every exporter of the project: networks (:mod:`mestudio.inference.export`), imported
published weights and the TV-L1 graph (:mod:`mestudio.flow.tvl1_graph`). Imports torch and
onnx when called."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any


def trace_onnx(module: Any, example: tuple[Any, ...], input_names: list[str],
               output_names: list[str], opset: int) -> Any:
    """``module`` traced to an ``onnx.ModelProto`` (TorchScript exporter, dynamic batch axis
    ``N`` on every input and output, constants folded, the exporter's chatter silenced)."""
    import onnx
    import torch

    with tempfile.TemporaryDirectory(prefix="mestudio-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        torch_logger = logging.getLogger("torch.onnx")
        level = torch_logger.level
        torch_logger.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module, example, os.fspath(raw), dynamo=False,
                    input_names=input_names, output_names=output_names,
                    dynamic_axes={n: {0: "N"} for n in input_names + output_names},
                    opset_version=opset, do_constant_folding=True,
                )
        finally:
            torch_logger.setLevel(level)
        return onnx.load(os.fspath(raw))
