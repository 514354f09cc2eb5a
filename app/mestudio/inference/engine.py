"""The ONNX Runtime inference engine: validated model, CUDA -> CPU providers, batched predict.

>>> engine = InferenceEngine("models/m3enet_synthetic.onnx")          # doctest: +SKIP
>>> engine.predict(keyframe_inputs_batch(triples, cfg))               # doctest: +SKIP
[Prediction(probs=array([...]), label='happiness', confidence=0.91, cams=(K, S, h, w), ...)]

The engine refuses a file that does not follow the ONNX contract
(:mod:`mestudio.inference.contract`) with a :class:`~mestudio.errors.ModelFileError` that
says what is wrong: a missing, empty, corrupt or truncated file, an ONNX model of another
program (no ``mestudio.*`` metadata), missing metadata, inputs/outputs of the wrong names or
shapes, weights that do not match their recorded hash, or a file that does not match its
``NAME.onnx.sha256`` companion.

This module does not import torch (start-up stays fast); ``torch.cuda`` is consulted only
when torch is already loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mestudio.errors import MestudioError, ModelFileError
from mestudio.inference import contract
from mestudio.inference.fer_import import EXPRESSION_MODEL_NAME as EXPRESSION_MODEL_NAME
from mestudio.inference.onnxwire import ModelView, read_model
from mestudio.inference.providers import (
    CPU,
    CUDA,
    choose_providers,
    quiet_onnxruntime,
    session_options,
)
from mestudio.types import Prediction

log = logging.getLogger(__name__)

#: Largest batch sent to ONNX Runtime in one run (bigger inputs are split).
MAX_BATCH = 64
#: File name of the model shipped in models/ (trained on synthetic data).
DEFAULT_MODEL_NAME = "m3enet_synthetic.onnx"
#: File name of the real-data model built by ``mestudio models fetch ststnet-megc2019``.
REAL_MODEL_NAME = "ststnet_megc2019.onnx"
#: Models used when none is named, in order of preference: real data first.
DEFAULT_MODEL_NAMES = (REAL_MODEL_NAME, DEFAULT_MODEL_NAME)


def normalise_cams(cam: np.ndarray) -> np.ndarray:
    """Scale each map of ``cam [..., h, w]`` to ``[0, 1]`` by dividing by its maximum.

    Grad-CAM maps are non-negative (ReLU); a map without positive evidence stays all zero.
    Returns float32.
    """
    cam = np.maximum(np.asarray(cam, dtype=np.float32), 0.0)
    peak = cam.max(axis=(-2, -1), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


#: Model files whose hashes this process has verified: (path, inode, size, mtime) of the
#: file and the mtime of its checksum file.
_VERIFIED: set[tuple[object, ...]] = set()


def _file_key(path: Path) -> tuple[object, ...] | None:
    """What identifies this version of a model file (and of its ``.sha256`` file), or None
    when it cannot be read."""
    try:
        st = path.stat()
        sidecar = path.with_name(path.name + ".sha256")
        side = sidecar.stat().st_mtime_ns if sidecar.is_file() else None
        return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, side)
    except OSError:
        return None


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class InferenceEngine:
    """Runs an exported mestudio model with ONNX Runtime.

    Args:
        path: the ``.onnx`` file (made by ``mestudio export``).
        device: ``"auto"`` (CUDA when usable, else CPU), ``"cuda"`` (falls back to CPU with
            the reason logged) or ``"cpu"``.
        threads: ONNX Runtime intra-op threads (0 = ONNX Runtime's default: all cores).
        verify_hash: check the weights against ``mestudio.weights_sha256`` and the file
            against ``NAME.onnx.sha256`` when present.
        min_agreement: ensembles only: a prediction whose ``agreement`` is below this is
            marked ``uncertain`` (no emotion shown); default
            :data:`~mestudio.inference.config.DEFAULT_MIN_AGREEMENT`.

    Attributes:
        path, name (display name), classes, input_kind, input_names, streams, has_cam,
        preprocess_config (the ``PreprocessConfig.to_metadata()`` dict the model was trained
        with), synthetic, provider (``"CUDAExecutionProvider"`` or ``"CPUExecutionProvider"``),
        provider_reason (why), metadata (all ``mestudio.*`` values, decoded).

    Raises:
        ModelFileError: when the file is missing or does not follow the contract.

    ``predict`` is thread-safe (one run at a time per engine).
    """

    def __init__(self, path: str | os.PathLike[str], device: str = "auto", threads: int = 1,
                 verify_hash: bool = True, min_agreement: float | None = None) -> None:
        from mestudio.inference.config import DEFAULT_MIN_AGREEMENT

        self.path = Path(path)
        self.min_agreement = DEFAULT_MIN_AGREEMENT if min_agreement is None else \
            float(min_agreement)
        key = _file_key(self.path)
        # The hashes (weights, checksum file) are checked once per process and file version:
        # a batch worker loads the same model for every input.
        verify = verify_hash and (key is None or key not in _VERIFIED)
        data = self._read(self.path)
        proto = self._parse(data)
        self.metadata = self._validate(proto, verify, data)
        if verify:
            self._check_sidecar(data)
            if key is not None:
                _VERIFIED.add(key)
        self._inputs: dict[str, tuple[int | str, ...]] = dict(proto.inputs)
        del proto
        self._session: Any
        self._session, self.provider, self.provider_reason = self._open(data, device, threads)
        self._output_names = [o.name for o in self._session.get_outputs()]
        self._lock = threading.Lock()

    # -- properties -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or self.path.name.removesuffix(".onnx"))

    @property
    def architecture(self) -> str:
        return str(self.metadata["architecture"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.metadata["classes"])

    @property
    def input_kind(self) -> str:
        return str(self.metadata["input_kind"])

    @property
    def input_names(self) -> tuple[str, ...]:
        return contract.INPUT_NAMES[self.input_kind]

    @property
    def input_shapes(self) -> dict[str, tuple[int | str, ...]]:
        """Input name -> shape with ``"N"`` for the batch axis."""
        return {n: self._inputs[n] for n in self.input_names}

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(self.metadata["streams"])

    @property
    def has_cam(self) -> bool:
        return "cam" in self._output_names

    @property
    def has_agreement(self) -> bool:
        """True for ensembles with the ``agreement`` output (share of members agreeing)."""
        return "agreement" in self._output_names

    @property
    def description(self) -> str:
        """One line saying what the model is (from its metadata; plain text)."""
        return str(self.metadata.get("description") or self.describe())

    @property
    def preprocess_config(self) -> dict[str, Any]:
        return dict(self.metadata.get("preprocess") or {})

    @property
    def synthetic(self) -> bool:
        return bool(self.metadata.get("synthetic"))

    def describe(self) -> str:
        """One line for logs and ``mestudio doctor``."""
        training = self.metadata.get("training")
        dataset = training.get("dataset") if isinstance(training, Mapping) else None
        kind = "SYNTHETIC-data model (recognises synthetic AU patterns, not emotions)" \
            if self.synthetic else \
            f"trained on {self.metadata.get('training_data', '?')} data" + \
            (f" ({dataset})" if dataset else "")
        return (f"{self.name}: {self.architecture}, {len(self.classes)} classes "
                f"({', '.join(self.classes)}), {kind}, on {self.provider}")

    # -- loading ----------------------------------------------------------------------------
    @staticmethod
    def _read(path: Path) -> bytes:
        if not path.exists():
            raise ModelFileError(f"model file not found: {path} (export one with "
                                 "`mestudio export CHECKPOINT -o models/NAME.onnx`)")
        if not path.is_file():
            raise ModelFileError(f"model path is not a file: {path}")
        data = path.read_bytes()
        if not data:
            raise ModelFileError(f"model file {path} is empty")
        return data

    def _parse(self, data: bytes) -> ModelView:
        try:
            view = read_model(data)
        except ValueError as exc:
            raise ModelFileError(f"{self.path} is not a valid ONNX file (corrupt or truncated: "
                                 f"{exc}); download or export it again") from exc
        if not view.n_nodes:
            raise ModelFileError(f"{self.path} holds no ONNX graph (corrupt, truncated or not "
                                 "an ONNX file); download or export it again")
        return view

    def _validate(self, proto: ModelView, verify_hash: bool, data: bytes) -> dict[str, Any]:
        props = proto.metadata
        ours = {k: v for k, v in props.items() if k.startswith(contract.PREFIX)}
        if not ours:
            raise ModelFileError(
                f"{self.path} is an ONNX model but not a mestudio model (no mestudio.* "
                "metadata); export a trained checkpoint with `mestudio export`")
        try:
            meta = contract.decode_metadata(ours)
        except ValueError as exc:
            raise ModelFileError(f"{self.path}: {exc}") from exc
        missing = [k for k in contract.REQUIRED_KEYS if k not in meta]
        if missing:
            raise ModelFileError(
                f"{self.path} lacks required metadata "
                f"{', '.join(contract.PREFIX + k for k in missing)}; re-export it with "
                "`mestudio export`")
        if str(meta["schema_version"]).split(".")[0] != contract.SCHEMA_VERSION:
            raise ModelFileError(
                f"{self.path} uses model schema {meta['schema_version']}, this mestudio reads "
                f"schema {contract.SCHEMA_VERSION}; update mestudio or re-export the model")
        kind = meta["input_kind"]
        if kind not in contract.INPUT_NAMES:
            raise ModelFileError(f"{self.path}: unknown input kind {kind!r}")
        classes = contract.check_classes(self.path, meta["classes"])
        streams = meta["streams"]
        if not isinstance(streams, list) or not streams:
            raise ModelFileError(f"{self.path}: mestudio.streams must be a non-empty list")
        channels = 3 if meta["color"] else 1
        try:
            expected = contract.expected_inputs(kind, int(meta["input_size"]), channels,
                                                meta.get("clip_len"))
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"{self.path}: inconsistent metadata: {exc}") from exc
        self._check_io(proto, expected, len(classes), len(streams))
        if verify_hash:
            actual = proto.weights_sha256()
            if actual is None:  # weights stored in a form onnxwire does not decode
                import onnx

                actual = contract.weights_sha256(onnx.load_model_from_string(data))
            if actual != meta["weights_sha256"]:
                raise ModelFileError(
                    f"the weights in {self.path} do not match their recorded sha256 (the file "
                    "was modified or damaged); download or export it again")
        return meta

    def _check_io(self, proto: ModelView, expected: Mapping[str, tuple[int | str, ...]],
                  n_classes: int, n_streams: int) -> None:
        inputs = proto.inputs
        for name, shape in expected.items():
            if name not in inputs:
                raise ModelFileError(
                    f"{self.path} has inputs {sorted(inputs)}, expected {list(expected)} "
                    "for its input kind")
            got = inputs[name]
            if len(got) != len(shape) or any(
                    isinstance(e, int) and g != e for g, e in zip(got, shape, strict=False)):
                raise ModelFileError(
                    f"{self.path}: input {name!r} has shape {list(got)}, the contract "
                    f"requires {list(shape)} (from its metadata)")
            if isinstance(got[0], int):
                raise ModelFileError(f"{self.path}: input {name!r} has a fixed batch size "
                                     f"{got[0]}; re-export with a dynamic batch axis")
        outputs = proto.outputs
        for name in ("logits", "probs"):
            if name not in outputs:
                raise ModelFileError(f"{self.path} lacks output {name!r} (has "
                                     f"{sorted(outputs)})")
            shape = outputs[name]
            if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != n_classes):
                raise ModelFileError(f"{self.path}: output {name!r} has shape {list(shape)}, "
                                     f"expected [N, {n_classes}]")
        if "agreement" in outputs:
            shape = outputs["agreement"]
            if len(shape) != 1:
                raise ModelFileError(f"{self.path}: output 'agreement' has shape "
                                     f"{list(shape)}, expected [N]")
        if "cam" in outputs:
            shape = outputs["cam"]
            if len(shape) != 5 or any(isinstance(g, int) and g != e for g, e in
                                      zip(shape[1:3], (n_classes, n_streams), strict=True)):
                raise ModelFileError(f"{self.path}: output 'cam' has shape {list(shape)}, "
                                     f"expected [N, {n_classes}, {n_streams}, h, w]")

    def _check_sidecar(self, data: bytes) -> None:
        sidecar = self.path.with_name(self.path.name + ".sha256")
        if not sidecar.is_file():
            return
        recorded = sidecar.read_text(encoding="utf-8").split()
        if recorded and recorded[0].lower() != _sha256_bytes(data):
            raise ModelFileError(
                f"{self.path} does not match its checksum file {sidecar.name} (the model was "
                "modified or damaged); download or export it again")

    def _open(self, data: bytes, device: str, threads: int) -> tuple[Any, str, str]:
        import onnxruntime as ort

        quiet_onnxruntime()
        providers, reason = choose_providers(device)
        opts = session_options(threads)
        start_failed = False
        try:
            session = ort.InferenceSession(data, opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises several types
            if providers[0] == CUDA:
                start_failed = True
                reason = f"CUDA provider failed to start ({str(exc).splitlines()[0]})"
                try:
                    session = ort.InferenceSession(data, session_options(threads),
                                                   providers=[CPU])
                except Exception as exc2:  # noqa: BLE001
                    raise ModelFileError(f"ONNX Runtime cannot load {self.path}: {exc2}") from exc2
            else:
                raise ModelFileError(f"ONNX Runtime cannot load {self.path}: "
                                     f"{str(exc).splitlines()[0]}") from exc
        provider = session.get_providers()[0]
        if providers[0] == CUDA and provider != CUDA and not start_failed:
            reason = "ONNX Runtime did not enable the CUDA provider"
        threads_txt = f"{threads} thread(s)" if threads else "default threads"
        level = logging.WARNING if device in ("cuda", "gpu") and provider != CUDA else logging.INFO
        log.log(level, "model %s runs on %s (%s; %s)", self.path.name,
                 "CUDA" if provider == CUDA else "CPU", reason, threads_txt)
        return session, provider, reason

    # -- inference --------------------------------------------------------------------------
    def _prepare(self, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
        names = self.input_names
        missing = [n for n in names if n not in inputs]
        if missing:
            raise ValueError(f"predict() needs inputs {list(names)}, missing {missing}")
        feed: dict[str, np.ndarray] = {}
        batch = None
        for name in names:
            arr = np.asarray(inputs[name], dtype=np.float32)
            expected = self._inputs[name]
            if arr.ndim == len(expected) - 1:
                arr = arr[None]
            if arr.ndim != len(expected) or any(
                    isinstance(e, int) and a != e for a, e in zip(arr.shape, expected, strict=False)):
                raise ValueError(f"input {name!r} has shape {arr.shape}, the model expects "
                                 f"{list(expected)} (or without the batch axis)")
            if batch is None:
                batch = arr.shape[0]
            elif arr.shape[0] != batch:
                raise ValueError(f"inputs have different batch sizes ({batch} and {arr.shape[0]})")
            feed[name] = np.ascontiguousarray(arr)
        return feed, int(batch or 0)

    def run(self, inputs: Mapping[str, np.ndarray], cam: bool = True) -> dict[str, np.ndarray]:
        """Raw outputs ``{"logits", "probs"[, "cam"]}`` for a batch (CAMs not normalised).

        Inputs may omit the batch axis (one sample). Batches larger than
        :data:`MAX_BATCH` are split.
        """
        if self._session is None:
            raise RuntimeError("this InferenceEngine was closed")
        feed, n = self._prepare(inputs)
        wanted = [o for o in self._output_names if cam or o != "cam"]
        parts: dict[str, list[np.ndarray]] = {o: [] for o in wanted}
        if n == 0:
            raise ValueError("predict() got an empty batch")
        with self._lock:
            for start in range(0, n, MAX_BATCH):
                chunk = {k: v[start:start + MAX_BATCH] for k, v in feed.items()}
                for name, value in zip(wanted, self._session.run(wanted, chunk), strict=True):
                    parts[name].append(value)
        return {k: np.concatenate(v, axis=0) for k, v in parts.items()}

    def predict(self, inputs: Mapping[str, np.ndarray], cam: bool = True) -> list[Prediction]:
        """Predictions for a batch of samples.

        Args:
            inputs: ``{"flow": [N,3,S,S], "frames": [N,3,C,S,S]}`` (keyframe models) or
                ``{"clip": [N,T,C,S,S], "flow_seq": [N,T-1,2,S,S]}`` (clip models), float32,
                as made by :mod:`mestudio.preprocess` with :attr:`preprocess_config`; the batch
                axis may be omitted for one sample.
            cam: also return Grad-CAM maps (``Prediction.cams`` ``[K, S, h, w]``, each map
                scaled to ``[0, 1]``).

        Returns:
            One :class:`~mestudio.types.Prediction` per sample.

        Raises:
            ValueError: inputs of the wrong names or shapes.
        """
        out = self.run(inputs, cam=cam and self.has_cam)
        probs = out["probs"].astype(np.float32)
        agreement = out.get("agreement")
        cams = normalise_cams(out["cam"]) if "cam" in out else None
        classes = self.classes
        no_emotion, min_conf = self.no_emotion_rule
        preds = []
        for i in range(probs.shape[0]):
            k = int(np.argmax(probs[i]))
            unsure = (agreement is not None and float(agreement[i]) < self.min_agreement) or \
                classes[k] in no_emotion or float(probs[i, k]) < min_conf
            preds.append(Prediction(
                probs=probs[i], label=classes[k], confidence=float(probs[i, k]), classes=classes,
                cams=None if cams is None else cams[i], streams=self.streams,
                model_name=self.name, synthetic=self.synthetic,
                agreement=None if agreement is None else float(agreement[i]),
                uncertain=unsure, source=self.source))
        return preds

    @property
    def source(self) -> str:
        """``"expression"`` for a model of still faces that names macro expressions (input
        kind ``face``, or ``event_kinds`` = macro only), else ``"micro"``."""
        kinds = self.metadata.get("event_kinds")
        if self.input_kind == "face" or kinds == ["macro"]:
            return "expression"
        return "micro"

    @property
    def no_emotion_rule(self) -> tuple[frozenset[str], float]:
        """``(classes that name no expression, least top-1 probability)`` from the model's
        metadata (``no_emotion_classes``, ``min_confidence``; the expression model: neutral,
        0.4): a prediction of such a class, or less sure than that, is ``uncertain``."""
        names = self.metadata.get("no_emotion_classes") or []
        classes = frozenset(str(n) for n in names if isinstance(n, str)) \
            if isinstance(names, list) else frozenset()
        conf = self.metadata.get("min_confidence", 0.0)
        ok = isinstance(conf, (int, float)) and not isinstance(conf, bool) and 0 <= conf <= 1
        return classes, float(conf) if ok else 0.0

    def close(self) -> None:
        """Release the ONNX Runtime session."""
        self._session = None

    def __repr__(self) -> str:
        return f"InferenceEngine({str(self.path)!r}, provider={getattr(self, 'provider', None)!r})"


def default_model_path() -> Path | None:
    """The model used when none is named: the real-data STSTNet ensemble
    (``ststnet_megc2019.onnx``, made by ``mestudio models fetch ststnet-megc2019``) when
    present, else the shipped synthetic ``m3enet_synthetic.onnx`` (each looked up like every
    model file: ``$MESTUDIO_MODELS_DIR``, ``models/``, user cache); None when neither is."""
    from mestudio.modelfiles import find_model

    for name in DEFAULT_MODEL_NAMES:
        path = find_model(name)
        if path is not None:
            return path
    return None


def engine_from_config(config: Any = None) -> InferenceEngine:
    """An engine for a :class:`~mestudio.inference.config.RecognitionConfig`.

    ``config.model`` names the ONNX file ("" = :func:`default_model_path`: the real-data
    ensemble when fetched, else the shipped synthetic model); ``device``, ``threads`` and
    ``min_agreement`` are passed on. This is how live recognition, analyze and review load
    their model.

    Raises:
        ModelFileError: when the file is missing (saying how to get one) or invalid.
    """
    from mestudio.inference.config import RecognitionConfig
    from mestudio.modelfiles import find_model

    cfg = config or RecognitionConfig()
    path = find_model(DEFAULT_MODEL_NAME, cfg.model) if cfg.model else default_model_path()
    if path is None:
        raise ModelFileError(
            f"no recognition model found ({' or '.join(DEFAULT_MODEL_NAMES)} is not in "
            "$MESTUDIO_MODELS_DIR, "
            "models/ or the user cache); train and export one with `mestudio train` and "
            "`mestudio export`, or pass a model file")
    return InferenceEngine(path, device=cfg.device, threads=cfg.threads,
                           min_agreement=cfg.min_agreement)



def expression_model_path(config: Any = None) -> Path | None:
    """The expression model file of a :class:`~mestudio.inference.config.RecognitionConfig`
    (``macro_model``): None when it is ``"off"``, when macro recognition is off, or when
    the default one has not been fetched.

    Raises:
        ModelFileError: a named file that is missing.
    """
    from mestudio.inference.config import RecognitionConfig
    from mestudio.modelfiles import find_model

    cfg = config or RecognitionConfig()
    choice = str(cfg.macro_model or "").strip()
    if not cfg.macro or choice.lower() == "off":
        return None
    return find_model(EXPRESSION_MODEL_NAME, choice or None)


def expression_engine_from_config(config: Any = None) -> InferenceEngine | None:
    """The engine of :func:`expression_model_path`, or None.

    Raises:
        ModelFileError: a named file that is missing or invalid, or the default one damaged.
    """
    from mestudio.inference.config import RecognitionConfig

    cfg = config or RecognitionConfig()
    path = expression_model_path(cfg)
    return None if path is None else InferenceEngine(path, device=cfg.device,
                                                     threads=cfg.threads)


def load_engine(config: Any) -> tuple[InferenceEngine | None, list[str]]:
    """The recognition engine of ``config.recognition`` (an
    :class:`~mestudio.config.AppConfig`), or None when recognition is off or no model can be
    loaded, and human notes on why it is missing (for panels that show a model, such as the
    review window's Grad-CAM; a :class:`~mestudio.engine.pipeline.Pipeline` loads its own model)."""
    if not config.recognition.enabled:
        return None, ["recognition is off in the settings"]
    try:
        return engine_from_config(config.recognition), []
    except ImportError as exc:  # pragma: no cover - partial installations (no onnxruntime)
        return None, [f"no recognition engine in this installation ({exc})"]
    except MestudioError as exc:
        log.warning("no recognition: %s", exc)
        return None, [f"no recognition: {exc}"]
