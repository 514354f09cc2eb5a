"""Configuration of recognition at run time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RecognitionConfig:
    """Recogniser settings.

    Attributes:
        enabled: run the recogniser on micro events.
        model: path of an exported ONNX model ("" = the shipped default model).
        device: "auto" (CUDA when available), "cuda" or "cpu".
        threads: ONNX Runtime intra-op threads (0 = ONNX Runtime's default).
    """

    enabled: bool = True
    model: str = ""
    device: str = "auto"
    threads: int = 1
