"""Configuration of recognition at run time."""

from __future__ import annotations

from dataclasses import dataclass

#: Default agreement threshold of ensembles (see RecognitionConfig.min_agreement).
DEFAULT_MIN_AGREEMENT = 0.7


@dataclass
class RecognitionConfig:
    """Recogniser settings.

    Attributes:
        enabled: run the recogniser on spotted events.
        macro: recognise macro events too, when the model allows it (key-frame and clip
            models do unless their metadata restricts ``event_kinds``). The models are
            trained on micro-expressions: a macro event's prediction is what a
            micro-expression model makes of it and is shown as such
            (:mod:`mestudio.engine.recognition`).
        model: path of an exported ONNX model ("" = the shipped default model).
        macro_model: the expression model that names macro events (trained on real faces:
            FER2013): "" = ``fer2013_mini_xception.onnx`` when ``mestudio models fetch``
            has built it (else macro events go to ``model``), a path, or "off" (macro
            events go to ``model``, as a micro-expression model reads them).
        device: "auto" (CUDA when available), "cuda" or "cpu".
        threads: ONNX Runtime intra-op threads (0 = ONNX Runtime's default).
        min_agreement: for ensembles (models with an ``agreement`` output): below this share
            of members agreeing with the top class, an event shows as "micro-expression
            (uncertain)" with no emotion. Default chosen from measurements of planted events
            vs no-event frame pairs (README, ``mestudio bench model --planted``).
    """

    enabled: bool = True
    macro: bool = True
    model: str = ""
    macro_model: str = ""
    device: str = "auto"
    threads: int = 1
    min_agreement: float = DEFAULT_MIN_AGREEMENT

    def __post_init__(self) -> None:
        if not isinstance(self.min_agreement, (int, float)) or not 0.0 <= self.min_agreement <= 1.0:
            from mestudio.errors import ConfigError

            raise ConfigError(f"recognition.min_agreement must be a number in 0..1, got "
                              f"{self.min_agreement!r}")
