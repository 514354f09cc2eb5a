"""The one place that turns aligned face crops into model inputs (ARCHITECTURE.md).

Training (``mestudio data prepare`` / ``train``), ``analyze``, live recognition and review
all call these functions, with the :class:`PreprocessConfig` stored in the model's metadata,
so a model always sees inputs made exactly as during its training.

Input kinds: every network takes one kind of input (``MERNet.input_kind``, the model
metadata's ``mestudio.input_kind``): ``"keyframes"`` (M3ENet, STSTNet, Off-ApexNet) or
``"clip"`` (IM3DR-MFER). The :class:`InputKind` spec of each kind lives here, in
:data:`INPUT_KINDS` (:func:`input_kind` looks one up): its input names and per-sample shapes
(the ONNX contract), the feature arrays training caches, the network arguments implied by
them, which of an event's crops make the inputs (:meth:`InputKind.select`) and how they do
(:meth:`InputKind.make_inputs`: live recognition, review and training feature extraction
all call it). No other module branches on a kind's name: a network with a new kind of
input is a new :class:`InputKind` here (:func:`register_input_kind`) and the network in
:mod:`mestudio.nets` (``@register(..., input_kind=...)``).

Keyframe models (M3ENet, STSTNet, Off-ApexNet) — :func:`keyframe_inputs`,
:func:`keyframe_inputs_batch`:

1. the onset, apex and offset crops (aligned BGR ``uint8``, any square size) are resized to
   ``flow_size`` (area interpolation when shrinking, bilinear when enlarging);
2. Dual TV-L1 flow from onset to apex on the grey ``flow_size`` crops (the algorithm of
   :func:`mestudio.flow.tvl1_flow`, parameters ``tvl1``; batched on ``device``; fixed-step
   settings run as an ONNX graph in ONNX Runtime, :mod:`mestudio.flow.graph`, so making
   inputs needs no torch);
3. optical strain (:func:`mestudio.flow.optical_strain`) of that flow, at ``flow_size``
   (in the same graph);
4. ``u, v`` are area-resized to ``input_size`` and multiplied by ``input_size / flow_size``
   (vectors scale with the image: the values are pixels at ``input_size``), then divided by
   ``flow_scale``; the strain map is area-resized WITHOUT rescaling (strain is a
   dimensionless derivative du/dx, unchanged when flow and image are scaled together; it is
   computed at ``flow_size`` because derivatives of the finer flow are more accurate) and
   divided by ``strain_scale``. The scales are fixed constants (not per sample), so the
   magnitude of a movement stays meaningful across samples;
5. the three frames are area-resized to ``input_size``, grey (``color=False``, 1 channel,
   OpenCV's BGR→grey weights) or colour (3 channels in R, G, B order), scaled to 0..1 and
   normalised ``(x − frame_mean) / frame_std``.

Outputs: ``flow`` ``(3, S, S)`` = (u, v, strain) and ``frames`` ``(3, C, S, S)`` = (onset,
apex, offset), float32 numpy, ``S = input_size`` — the ONNX contract's ``flow`` and
``frames`` without the batch axis.

Clip models (IM3DR-MFER) — :func:`clip_inputs`: ``clip_len`` frames sampled evenly from the
crops, normalised as above (``clip`` ``(T, C, S, S)``), and the TV-L1 flow between
consecutive sampled frames, resized and normalised as above (``flow_seq`` ``(T−1, 2, S, S)``).
With ``evm`` set (IM3DR-MFER's "+EVM"), the sampled frames at ``flow_size`` are magnified first
(Eulerian video magnification, :func:`mestudio.preprocess.evm.magnify_clip_input`, in 0..1) and
both inputs are made from the magnified frames; the temporal band is in Hz, so the caller
gives the frame rate of the crops (``fps``: training and ``mestudio evaluate`` know it from
the release; live recognition, analyze and review from the timestamps of the event's frames).

Named recipes (``recipe``): ``"mestudio"`` (the default, described above) and
``"ststnet-megc2019"``, the input of the published STSTNet weights (FG 2019, MEGC2019
composite; measured: the wrong channel order drops positive recall to 0):
aligned crops at ``flow_size`` 128 -> grey -> TV-L1 onset->apex -> optical strain at 128 px
-> area-resize u, v, strain to ``input_size`` 28 -> ``m = max(|u|, |v|)`` per sample,
``U = 128 + 127 u/m``, ``V = 128 + 127 v/m``, strain min-max to 0..255 -> round, clip to
0..255 -> ``flow`` channels in the order **(strain, V, U)**, values 0..255, no further
scaling (``flow_scale``/``strain_scale`` do not apply). ``frames`` are made as above (the
network ignores them). :func:`ststnet_megc2019_config` returns that configuration.

Defaults: ``flow_size`` 128, ``input_size`` 48, TV-L1 with :data:`mestudio.flow.FAST_PARAMS`
(as accurate as OpenCV's defaults on micro-expression-sized motion, ~20× cheaper; see
``mestudio bench flow``), ``flow_scale`` 0.5 px at ``input_size`` (micro-expressions of
sub-pixel to a few pixels at 128 px give |u|, |v| mostly below 2 after scaling),
``strain_scale`` 0.1, ``frame_mean`` 0.5, ``frame_std`` 0.25.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from mestudio.errors import ConfigError

log = logging.getLogger(__name__)

FORMAT = "mestudio-preprocess/1"
#: Named ways of turning the flow into the ``flow`` input (see the module docstring).
RECIPES = ("mestudio", "ststnet-megc2019")
STSTNET_RECIPE = "ststnet-megc2019"


def _fast_tvl1() -> dict[str, Any]:
    from mestudio.flow.tvl1_params import FAST_PARAMS

    return FAST_PARAMS.to_dict()


@dataclass
class PreprocessConfig:
    """How crops become model inputs; travels in the model metadata (:meth:`to_metadata`).

    Attributes:
        flow_size: side (pixels) of the crops the flow is computed on.
        input_size: side (pixels) of the network inputs.
        color: 3-channel RGB frames instead of 1-channel grey.
        clip_len: frames per clip for clip models (>= 2).
        tvl1: Dual TV-L1 parameters (:class:`mestudio.flow.TVL1Params` fields; missing ones
            take the values of :data:`mestudio.flow.FAST_PARAMS`, the default).
        flow_scale: ``u, v`` in pixels at ``input_size`` are divided by this.
        strain_scale: the optical strain (dimensionless) is divided by this.
        frame_mean, frame_std: frames in 0..1 become ``(x − frame_mean) / frame_std``.
        recipe: how u, v and strain become the ``flow`` input: ``"mestudio"`` (scaled by
            ``flow_scale``/``strain_scale``, channels u, v, strain) or ``"ststnet-megc2019"``
            (per-sample 0..255 encoding, channels strain, V, U; see the module docstring).
        evm: Eulerian video magnification of clip inputs before the flow and the
            normalisation (:class:`mestudio.preprocess.evm.EVMSettings` text form,
            ``"alpha=8,low=0.5,high=8,levels=3"``; ``""`` = off, the default). Any form
            :meth:`~mestudio.preprocess.evm.EVMSettings.parse` reads is accepted (``"on"``, a bare
            alpha) and stored in the canonical text form. Clip inputs only; making them
            needs the frame rate of the crops (:func:`clip_inputs`).
        device: where TV-L1 runs: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"``. A run-time choice: not part of the metadata or hash.
    """

    flow_size: int = 128
    input_size: int = 48
    color: bool = False
    clip_len: int = 8
    tvl1: dict[str, Any] = field(default_factory=_fast_tvl1)
    flow_scale: float = 0.5
    strain_scale: float = 0.1
    frame_mean: float = 0.5
    frame_std: float = 0.25
    recipe: str = "mestudio"
    evm: str = ""
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("flow_size", "input_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 16:
                raise ConfigError(f"PreprocessConfig.{name} must be an integer >= 16, got {v!r}")
        if not isinstance(self.clip_len, int) or self.clip_len < 2:
            raise ConfigError(
                f"PreprocessConfig.clip_len must be an integer >= 2, got {self.clip_len!r}"
            )
        for name in ("flow_scale", "strain_scale", "frame_std"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"PreprocessConfig.{name} must be a number > 0, got {v!r}")
        if not isinstance(self.tvl1, dict):
            raise ConfigError(f"PreprocessConfig.tvl1 must be a mapping, got {self.tvl1!r}")
        try:
            self.tvl1 = self.tvl1_params().to_dict()  # complete and validated
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"PreprocessConfig.tvl1: {exc}") from exc
        if self.recipe not in RECIPES:
            raise ConfigError(f"PreprocessConfig.recipe must be one of {', '.join(RECIPES)}, "
                              f"got {self.recipe!r}")
        if not (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(
                f"PreprocessConfig.device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}"
            )
        self.evm = evm_text(self.evm)

    def evm_settings(self) -> Any:
        """The :class:`mestudio.preprocess.evm.EVMSettings` of :attr:`evm`, or None when off."""
        if not self.evm:
            return None
        from mestudio.preprocess.evm import EVMSettings

        return EVMSettings.parse(self.evm)

    @property
    def channels(self) -> int:
        """Channels per frame: 3 (colour) or 1 (grey)."""
        return 3 if self.color else 1

    def tvl1_params(self) -> Any:
        """The TV-L1 parameters as :class:`mestudio.flow.TVL1Params` (fields missing from
        ``tvl1`` take the values of :data:`mestudio.flow.FAST_PARAMS`)."""
        from mestudio.flow.tvl1_params import FAST_PARAMS

        return FAST_PARAMS.replace(**self.tvl1)

    def to_metadata(self) -> dict[str, Any]:
        """A JSON-able description (the model metadata's ``preprocess`` entry).

        Holds every field except ``device`` plus descriptive keys (``format``,
        ``flow_method``, channel orders, ``normalisation``) that :meth:`from_metadata`
        ignores.
        """
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "device"}
        if self.recipe == "mestudio":  # the default: absent, so existing hashes stay valid
            del d["recipe"]
        if not self.evm:  # off (the default): absent, as ``recipe``
            del d["evm"]
        d["tvl1"] = dict(self.tvl1)
        frames_norm = f"(x/255 - {self.frame_mean}) / {self.frame_std}"
        if self.recipe == STSTNET_RECIPE:
            channels = ["strain", "V", "U"]
            norm = {
                "u, v": "m = max(|u|, |v|) per sample; U = 128 + 127 u/m, V = 128 + 127 v/m, "
                        "rounded, clipped to 0..255",
                "strain": "optical strain at flow_size, area-resized, min-max to 0..255, rounded",
                "frames": frames_norm,
            }
        else:
            channels = ["u", "v", "strain"]
            norm = {
                "u, v": f"pixels at input_size / {self.flow_scale}",
                "strain": f"optical strain at flow_size, area-resized, / {self.strain_scale}",
                "frames": frames_norm,
            }
        d.update(
            {
                "format": FORMAT,
                "flow_method": "tvl1",
                "flow_channels": channels,
                "frames_order": ["onset", "apex", "offset"],
                "frame_channels": ["R", "G", "B"] if self.color else ["gray"],
                "normalisation": norm,
            }
        )
        return d

    @classmethod
    def from_metadata(cls, d: dict[str, Any]) -> PreprocessConfig:
        """The configuration :meth:`to_metadata` described (unknown keys are ignored).

        Raises:
            ConfigError: another format, or invalid values.
        """
        if not isinstance(d, dict):
            raise ConfigError(f"preprocess metadata must be a mapping, got {type(d).__name__}")
        fmt = d.get("format", FORMAT)
        if fmt != FORMAT:
            raise ConfigError(
                f"preprocess metadata of format {fmt!r} is not supported (expected {FORMAT!r}); "
                "re-export the model with this version of mestudio"
            )
        names = {f.name for f in dataclasses.fields(cls)} - {"device"}
        kwargs = {k: v for k, v in d.items() if k in names}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"preprocess metadata: {exc}") from exc


def evm_text(value: Any) -> str:
    """The canonical text form of an EVM setting (``""`` = off): anything
    :meth:`mestudio.preprocess.evm.EVMSettings.parse` reads (``"on"``, ``"off"``, ``"12"``,
    ``"alpha=10,low=0.4,high=3"``, a mapping, None).

    Raises:
        ConfigError: an unknown key or a bad value.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    from mestudio.preprocess.evm import EVMSettings

    try:
        settings = EVMSettings.parse(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"evm={value}: {exc} (e.g. evm=on or evm=alpha=8,low=0.5,high=8,"
                          "levels=3)") from None
    return "" if settings is None or settings.alpha == 0 else settings.to_text()


def config_hash(cfg: PreprocessConfig | dict[str, Any]) -> str:
    """A stable 16-hex-digit hash of the configuration (feature-cache key); the device does
    not count."""
    if isinstance(cfg, dict):
        cfg = PreprocessConfig.from_metadata(cfg)
    payload = json.dumps(cfg.to_metadata(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# helpers


def _check_crop(crop: Any, what: str) -> np.ndarray:
    a = np.asarray(crop)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise ValueError(
            f"{what}: expected an aligned crop (S, S, 3) BGR or (S, S) grey, got {a.shape}"
        )
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"{what}: aligned crops are square, got {a.shape[1]}x{a.shape[0]} pixels")
    if a.shape[0] < 8:
        raise ValueError(f"{what}: crop of {a.shape[0]} px is too small")
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    return a


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[0] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def _gray(img: np.ndarray) -> np.ndarray:
    import cv2

    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _frame(img_flow: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """One frame at ``flow_size`` -> ``(C, S, S)`` normalised float32."""
    import cv2

    small = _resize(img_flow, cfg.input_size)
    if cfg.color:
        rgb = (
            cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)
            if small.ndim == 2
            else cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        )
        x = rgb.transpose(2, 0, 1)
    else:
        x = _gray(small)[None]
    x = x.astype(np.float32) * np.float32(1.0 / 255.0)
    return (x - np.float32(cfg.frame_mean)) / np.float32(cfg.frame_std)


#: "graph": fixed-step TV-L1 runs as the ONNX graph (the runtime's way); "torch": always
#: torch's solver (see :func:`torch_flow_solver`).
_FLOW_SOLVER = "graph"


@contextlib.contextmanager
def torch_flow_solver() -> Iterator[None]:
    """Make model inputs with torch's TV-L1 solver instead of the ONNX graph while inside
    (process-wide; for the benchmark that checks the two give the same recognition)."""
    global _FLOW_SOLVER
    saved, _FLOW_SOLVER = _FLOW_SOLVER, "torch"
    try:
        yield
    finally:
        _FLOW_SOLVER = saved


def _flows(
    prev: list[np.ndarray],
    nxt: list[np.ndarray],
    cfg: PreprocessConfig,
    device: str,
    with_strain: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """TV-L1 between grey ``flow_size`` images, batched -> normalised ``u, v`` ``[N,2,S,S]``
    and strain ``[N,1,S,S]`` (numpy float32).

    Fixed-step settings (every shipped model's) run as an ONNX graph in ONNX Runtime
    (:mod:`mestudio.flow.graph`, no torch); settings that stop on convergence run torch's
    solver."""
    from mestudio.flow import graph

    params = cfg.tvl1_params()
    a, b = np.stack(prev), np.stack(nxt)
    if graph.graphable(params) and _FLOW_SOLVER == "graph":
        flow, strain = graph.tvl1_strain(a, b, params, device)
    else:
        flow, strain = _torch_flows(a, b, params, device)
    uv = graph.resize_maps(flow, cfg.input_size) * np.float32(
        cfg.input_size / cfg.flow_size / cfg.flow_scale)
    if not with_strain:
        return uv, None
    return uv, graph.resize_maps(strain, cfg.input_size) / np.float32(cfg.strain_scale)


def _torch_flows(a: np.ndarray, b: np.ndarray, params: Any, device: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Flow and strain of ``(N, H, W)`` stacks with torch's solver (any TV-L1 setting)."""
    try:
        import torch

        from mestudio.flow.strain import optical_strain
        from mestudio.flow.tvl1 import tvl1_flow
    except ImportError as exc:
        raise ConfigError(f"TV-L1 with epsilon={params.epsilon} (stopping on convergence) "
                          f"needs torch ({exc}); install it with pip install 'mestudio[train]'"
                          ) from exc
    if device in (None, "", "auto"):
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but no CUDA device is available; "
                              "use 'auto'")
    ta = torch.from_numpy(a).to(device=dev, dtype=torch.float32)[:, None]
    tb = torch.from_numpy(b).to(device=dev, dtype=torch.float32)[:, None]
    with torch.no_grad():
        flow = tvl1_flow(ta, tb, params)
        strain = optical_strain(flow)
    return flow.float().cpu().numpy(), strain.float().cpu().numpy()


def ststnet_encode(uv: np.ndarray, strain: np.ndarray) -> np.ndarray:
    """The ``ststnet-megc2019`` encoding of resized flow maps.

    Args:
        uv: ``[N, 2, S, S]`` u, v (any positive scale: the encoding divides it out).
        strain: ``[N, 1, S, S]`` optical strain (any positive scale).

    Returns:
        ``[N, 3, S, S]`` float32 in channel order (strain, V, U), integer values 0..255:
        ``U = 128 + 127 u/m`` with ``m = max(|u|, |v|)`` of the sample (128 where the flow
        is zero), strain min-max scaled to 0..255 (0 where it is constant).
    """
    uv = np.asarray(uv, dtype=np.float64)
    strain = np.asarray(strain, dtype=np.float64)
    m = np.abs(uv).reshape(uv.shape[0], -1).max(axis=1)[:, None, None, None]
    unit = np.divide(uv, m, out=np.zeros_like(uv), where=m > 0)
    uv_enc = 128.0 + 127.0 * unit
    lo = strain.reshape(strain.shape[0], -1).min(axis=1)[:, None, None, None]
    span = strain.reshape(strain.shape[0], -1).max(axis=1)[:, None, None, None] - lo
    s_enc = 255.0 * np.divide(strain - lo, span, out=np.zeros_like(strain), where=span > 0)
    out = np.concatenate([s_enc, uv_enc[:, 1:2], uv_enc[:, 0:1]], axis=1)
    return np.clip(np.rint(out), 0, 255).astype(np.float32)


def ststnet_megc2019_config(**overrides: Any) -> PreprocessConfig:
    """The input recipe of the published STSTNet MEGC2019 weights (see the module
    docstring): 128 px flow crops, FAST TV-L1, 28 px inputs, ``recipe="ststnet-megc2019"``."""
    params: dict[str, Any] = {"flow_size": 128, "input_size": 28, "recipe": STSTNET_RECIPE}
    params.update(overrides)
    return PreprocessConfig(**params)


def face_config(**overrides: Any) -> PreprocessConfig:
    """The input recipe of the expression model (mini-XCEPTION, FER2013): the apex crop in
    grey at 64 px, scaled as ``(x / 255 − 0.5) / 0.5`` (the face_classification scaling)."""
    params: dict[str, Any] = {"input_size": 64, "frame_mean": 0.5, "frame_std": 0.5}
    params.update(overrides)
    return PreprocessConfig(**params)


# --------------------------------------------------------------------------------------------
# public API


def keyframe_inputs_batch(
    triples: Sequence[Sequence[np.ndarray]],
    cfg: PreprocessConfig | None = None,
    device: str | None = None,
) -> dict[str, np.ndarray]:
    """Model inputs of N samples at once; TV-L1 runs batched on ``device``.

    Args:
        triples: N ``(onset, apex, offset)`` aligned crops (BGR ``uint8`` ``(s, s, 3)`` or
            grey ``(s, s)``, any square size ``s``).
        cfg: the configuration (default :class:`PreprocessConfig`).
        device: overrides ``cfg.device`` (``"auto"``, ``"cpu"``, ``"cuda"``).

    Returns:
        ``{"flow": (N, 3, S, S), "frames": (N, 3, C, S, S)}`` float32 numpy arrays
        (see the module docstring; ``S = cfg.input_size``, ``C = cfg.channels``).

    Raises:
        ValueError: a triple without three square crops.
    """
    cfg = cfg or PreprocessConfig()
    if cfg.evm:
        raise ConfigError(f"evm={cfg.evm}: Eulerian magnification is a preprocessing of clip "
                          "inputs (a clip model such as im3dr_mfer), not of key frames")
    dev = device or cfg.device
    onsets, apexes, frames = [], [], []
    for i, triple in enumerate(triples):
        if len(triple) != 3:
            raise ValueError(
                f"keyframe_inputs_batch: sample {i} has {len(triple)} crops, expected 3"
            )
        crops = [
            _resize(_check_crop(c, f"sample {i} crop {k}"), cfg.flow_size)
            for k, c in enumerate(triple)
        ]
        onsets.append(_gray(crops[0]))
        apexes.append(_gray(crops[1]))
        frames.append(np.stack([_frame(c, cfg) for c in crops]))
    s, c = cfg.input_size, cfg.channels
    if not frames:
        return {
            "flow": np.zeros((0, 3, s, s), np.float32),
            "frames": np.zeros((0, 3, c, s, s), np.float32),
        }
    uv, strain = _flows(onsets, apexes, cfg, dev, with_strain=True)
    assert strain is not None
    flow = (ststnet_encode(uv, strain) if cfg.recipe == STSTNET_RECIPE
            else np.concatenate([uv, strain], axis=1))
    return {
        "flow": np.ascontiguousarray(flow, dtype=np.float32),
        "frames": np.ascontiguousarray(np.stack(frames), dtype=np.float32),
    }


def keyframe_inputs(
    onset: np.ndarray, apex: np.ndarray, offset: np.ndarray, cfg: PreprocessConfig | None = None
) -> dict[str, np.ndarray]:
    """Model inputs of one sample (see the module docstring).

    Args:
        onset, apex, offset: aligned crops (BGR ``uint8`` ``(s, s, 3)`` or grey ``(s, s)``,
            any square size).
        cfg: the configuration (default :class:`PreprocessConfig`).

    Returns:
        ``{"flow": (3, S, S) = (u, v, strain), "frames": (3, C, S, S) = (onset, apex,
        offset)}`` float32 numpy arrays, ``S = cfg.input_size``.
    """
    out = keyframe_inputs_batch([(onset, apex, offset)], cfg)
    return {k: v[0] for k, v in out.items()}


def clip_inputs(
    crops: Sequence[np.ndarray], cfg: PreprocessConfig | None = None, device: str | None = None,
    fps: float | None = None,
) -> dict[str, np.ndarray]:
    """Inputs of a clip model from the aligned crops of one sample (onset..offset).

    ``cfg.clip_len`` frames are taken at evenly spaced positions (rounded indices) of
    ``crops``; with ``cfg.evm`` they are magnified (:func:`magnify_frames`); the flows
    between consecutive taken frames run as one TV-L1 batch.

    Args:
        crops: >= 2 aligned crops (BGR ``uint8`` or grey, square, any size), in time order.
        cfg: the configuration (default :class:`PreprocessConfig`).
        device: overrides ``cfg.device``.
        fps: frame rate of ``crops`` (frames per second of the event as these crops sample
            it, :func:`clip_rate`); needed with ``cfg.evm`` only (its band is in Hz).

    Returns:
        ``{"clip": (T, C, S, S), "flow_seq": (T-1, 2, S, S)}`` float32 numpy arrays,
        ``T = cfg.clip_len``, normalised as the keyframe inputs.

    Raises:
        ValueError: fewer than 2 crops, or crops that are not square images.
        ConfigError: ``cfg.evm`` without ``fps``.
    """
    cfg = cfg or PreprocessConfig()
    if cfg.recipe != "mestudio":
        raise ConfigError(f"the {cfg.recipe!r} recipe makes key-frame inputs, not clips")
    if len(crops) < 2:
        raise ValueError(f"clip_inputs: need at least 2 crops, got {len(crops)}")
    idx = np.linspace(0, len(crops) - 1, cfg.clip_len).round().astype(int)
    frames: list[np.ndarray] = [_resize(_check_crop(crops[i], f"crop {i}"), cfg.flow_size)
                                for i in idx]
    if cfg.evm:
        if fps is None or not fps > 0:
            raise ConfigError(
                f"this model's inputs are magnified (evm={cfg.evm}): making them needs the "
                "frame rate of the event's frames, which this caller does not give; "
                "`mestudio train` and `mestudio evaluate` apply it, live recognition, analyze "
                "and review cannot")
        # the taken frames sample the crops every (len - 1) / (T - 1) crops
        rate = float(fps) * (cfg.clip_len - 1) / (len(crops) - 1)
        frames = magnify_frames(frames, rate, cfg)
    grays = [_gray(f) for f in frames]
    uv, _ = _flows(
        grays[:-1], grays[1:], cfg, device or cfg.device, with_strain=False
    )
    clip = np.stack([_frame(f, cfg) for f in frames])
    return {
        "clip": np.ascontiguousarray(clip, dtype=np.float32),
        "flow_seq": np.ascontiguousarray(uv, dtype=np.float32),
    }


def magnify_frames(frames: Sequence[np.ndarray], fps: float,
                   cfg: PreprocessConfig) -> list[np.ndarray]:
    """Eulerian magnification (``cfg.evm``) of a clip's frames.

    Args:
        frames: the clip's frames in time order (BGR ``uint8`` ``(S, S, 3)`` or grey
            ``(S, S)``, one size).
        fps: frames per second of ``frames`` as sampled (:func:`clip_rate`).
        cfg: the configuration (``evm`` set).

    Returns:
        The magnified frames, float32 in 0..255 (not rounded: the amplified changes are
        kept below one grey level), same shapes; the frames unchanged when ``evm`` is off.
    """
    settings = cfg.evm_settings()
    if settings is None:
        return list(frames)
    from mestudio.preprocess.evm import magnify_clip_input

    x = np.stack([np.asarray(f, dtype=np.float32) for f in frames]) * np.float32(1.0 / 255.0)
    grey = x.ndim == 3
    clip = x[:, None] if grey else x.transpose(0, 3, 1, 2)           # [T, C, H, W]
    out = magnify_clip_input(clip, float(fps), settings) * np.float32(255.0)
    out = out[:, 0] if grey else out.transpose(0, 2, 3, 1)
    return [np.ascontiguousarray(f, dtype=np.float32) for f in out]


def clip_rate(frame_numbers: Sequence[float], fps: float) -> float:
    """Frames per second of a clip sampled at ``frame_numbers`` of a recording at ``fps``:
    ``fps`` divided by the mean step between them (``fps`` when they do not advance)."""
    numbers = [float(n) for n in frame_numbers]
    if len(numbers) < 2 or numbers[-1] <= numbers[0]:
        return float(fps)
    return float(fps) * (len(numbers) - 1) / (numbers[-1] - numbers[0])


# --------------------------------------------------------------------------------------------
# input kinds: what a network takes and how an event's crops become it

_T = TypeVar("_T")
Shape = tuple[int, ...]


def pick_keyframes(available: Sequence[tuple[int, _T]], onset: int, apex: int,
                   offset: int) -> list[_T] | None:
    """The items of ``onset``, ``apex`` and ``offset`` from ``available`` (``(frame index,
    item)`` pairs within the event, e.g. aligned crops); a frame that is missing (no face)
    is replaced by the nearest frame that is there (ties: the earlier frame). None when
    ``available`` is empty."""
    if not available:
        return None
    idx = np.array([i for i, _ in available])
    out = []
    for want in (onset, apex, offset):
        k = int(np.argmin(np.abs(idx - want) * 2 + (idx > want)))
        out.append(available[k][1])
    return out


@dataclass(frozen=True)
class InputKind:
    """The spec of one kind of network input (``MERNet.input_kind``, ``mestudio.input_kind``
    in the model metadata): names, shapes, cached features and how crops become inputs.

    The rest of the application asks the spec (:func:`input_kind`) instead of branching on
    the kind's name: the ONNX contract (:mod:`mestudio.inference.contract`) takes the names
    and shapes from :meth:`shapes`, training caches :attr:`feature_names` and builds the
    network with :meth:`model_kwargs`, and live recognition, review and training feature
    extraction all pick an event's crops with :meth:`select` and turn them into inputs with
    :meth:`make_inputs`. A new kind is a subclass implementing those four methods, registered
    with :func:`register_input_kind`.

    Attributes:
        name: the kind's name (registry key).
        input_names: the network's inputs (the ONNX graph's input names), in call order.
        feature_names: the arrays ``mestudio data prepare`` caches per sample for training
            (default: :attr:`input_names`).
        is_clip: the inputs hold a clip of ``clip_len`` frames (:attr:`PreprocessConfig.clip_len`):
            their shapes depend on the clip length, which the model metadata records
            (``mestudio.clip_len``), and a sample is much larger (``mestudio bench train``
            uses its clip batch size).
        description: one line for help texts.
    """

    name: str
    input_names: tuple[str, ...]
    feature_names: tuple[str, ...] = ()
    is_clip: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not self.feature_names:
            object.__setattr__(self, "feature_names", tuple(self.input_names))

    def shapes(self, input_size: int, channels: int,
               clip_len: int | None = None) -> dict[str, Shape]:
        """Input name -> shape of ONE sample (no batch axis), in :attr:`input_names` order.

        Args:
            input_size: side ``S`` of the inputs in pixels.
            channels: channels ``C`` per frame (1 grey, 3 colour).
            clip_len: frames ``T`` per clip (clip kinds; ignored by the others).

        Raises:
            ValueError: a clip kind without ``clip_len``.
        """
        raise NotImplementedError

    def select(self, available: Sequence[tuple[int, _T]], onset: int, apex: int, offset: int,
               cfg: PreprocessConfig | None = None) -> list[_T] | None:
        """The items whose crops make the inputs of the event ``onset``/``apex``/``offset``.

        Args:
            available: ``(frame index, item)`` pairs of the event's frames that can be used,
                in time order: aligned crops (live: the frames with a face), or frame
                indices (review, training: which frames to read and align).
            onset, apex, offset: the event's frame indices.
            cfg: the configuration (default :class:`PreprocessConfig`; clip kinds read
                ``clip_len``).

        Returns:
            The items in the order :meth:`make_inputs` takes them, or None when the event
            has too few frames for this kind.
        """
        raise NotImplementedError

    def make_inputs(self, jobs: Sequence[Sequence[np.ndarray]],
                    cfg: PreprocessConfig | None = None,
                    device: str | None = None,
                    fps: Sequence[float] | None = None) -> dict[str, np.ndarray]:
        """Model inputs of N events at once.

        Args:
            jobs: per event, the aligned crops :meth:`select` chose (BGR ``uint8``
                ``(s, s, 3)`` or grey ``(s, s)``, any square size).
            cfg: the configuration (default :class:`PreprocessConfig`).
            device: where the flow runs; overrides ``cfg.device``.
            fps: per event, the frame rate of its crops as chosen (:func:`clip_rate`);
                only preprocessing that filters in time needs it (``cfg.evm``).

        Returns:
            ``{name: float32 array (N, *shape)}`` for every name of :attr:`input_names`.
        """
        raise NotImplementedError

    def model_kwargs(self, features: Mapping[str, np.ndarray]) -> dict[str, int]:
        """The network constructor arguments (``in_channels``, ``input_size``, ``clip_len``)
        that stacked features ``{name: (N, *shape)}`` of this kind imply."""
        raise NotImplementedError

    def _empty(self, cfg: PreprocessConfig) -> dict[str, np.ndarray]:
        shapes = self.shapes(cfg.input_size, cfg.channels, cfg.clip_len)
        return {k: np.zeros((0, *s), np.float32) for k, s in shapes.items()}


@dataclass(frozen=True)
class KeyframeKind(InputKind):
    """Onset, apex and offset crops -> ``flow`` ``(3, S, S)`` = (u, v, strain) and ``frames``
    ``(3, C, S, S)`` (:func:`keyframe_inputs_batch`). A missing key frame is replaced by the
    nearest available one (:func:`pick_keyframes`)."""

    def shapes(self, input_size: int, channels: int,
               clip_len: int | None = None) -> dict[str, Shape]:
        s = int(input_size)
        return {"flow": (3, s, s), "frames": (3, int(channels), s, s)}

    def select(self, available: Sequence[tuple[int, _T]], onset: int, apex: int, offset: int,
               cfg: PreprocessConfig | None = None) -> list[_T] | None:
        return pick_keyframes(available, onset, apex, offset)

    def make_inputs(self, jobs: Sequence[Sequence[np.ndarray]],
                    cfg: PreprocessConfig | None = None,
                    device: str | None = None,
                    fps: Sequence[float] | None = None) -> dict[str, np.ndarray]:
        return keyframe_inputs_batch([tuple(crops) for crops in jobs], cfg, device=device)

    def model_kwargs(self, features: Mapping[str, np.ndarray]) -> dict[str, int]:
        frames = features["frames"]
        return {"in_channels": int(frames.shape[2]), "input_size": int(frames.shape[-1])}


@dataclass(frozen=True)
class ClipKind(InputKind):
    """``clip_len`` crops evenly spaced from onset to offset -> ``clip`` ``(T, C, S, S)`` and
    ``flow_seq`` ``(T-1, 2, S, S)`` (:func:`clip_inputs`); at least 2 crops."""

    def shapes(self, input_size: int, channels: int,
               clip_len: int | None = None) -> dict[str, Shape]:
        if not clip_len:
            raise ValueError("clip models need a clip length")
        s, t = int(input_size), int(clip_len)
        return {"clip": (t, int(channels), s, s), "flow_seq": (t - 1, 2, s, s)}

    def select(self, available: Sequence[tuple[int, _T]], onset: int, apex: int, offset: int,
               cfg: PreprocessConfig | None = None) -> list[_T] | None:
        # The positions clip_inputs samples; clip_inputs of the result takes every item.
        if len(available) < 2:
            return None
        cfg = cfg or PreprocessConfig()
        idx = np.linspace(0, len(available) - 1, cfg.clip_len).round().astype(int)
        return [available[i][1] for i in idx]

    def make_inputs(self, jobs: Sequence[Sequence[np.ndarray]],
                    cfg: PreprocessConfig | None = None,
                    device: str | None = None,
                    fps: Sequence[float] | None = None) -> dict[str, np.ndarray]:
        cfg = cfg or PreprocessConfig()
        if not jobs:
            return self._empty(cfg)
        rates = list(fps) if fps is not None else [None] * len(jobs)
        if len(rates) != len(jobs):
            raise ValueError(f"make_inputs: {len(rates)} frame rates for {len(jobs)} events")
        parts = [clip_inputs(list(crops), cfg, device=device, fps=rate)
                 for crops, rate in zip(jobs, rates, strict=True)]
        return {k: np.stack([p[k] for p in parts]) for k in self.input_names}

    def model_kwargs(self, features: Mapping[str, np.ndarray]) -> dict[str, int]:
        clip = features["clip"]
        return {"in_channels": int(clip.shape[2]), "input_size": int(clip.shape[-1]),
                "clip_len": int(clip.shape[1])}


@dataclass(frozen=True)
class FaceKind(InputKind):
    """The apex crop alone -> ``face`` ``(C, S, S)`` (grey or colour at ``input_size``,
    normalised with ``frame_mean``/``frame_std``): expression models that read one still
    face (the apex of a macro event). No flow is computed."""

    def shapes(self, input_size: int, channels: int,
               clip_len: int | None = None) -> dict[str, Shape]:
        s = int(input_size)
        return {"face": (int(channels), s, s)}

    def select(self, available: Sequence[tuple[int, _T]], onset: int, apex: int, offset: int,
               cfg: PreprocessConfig | None = None) -> list[_T] | None:
        if not available:
            return None
        return [min(available, key=lambda item: abs(item[0] - apex))[1]]

    def make_inputs(self, jobs: Sequence[Sequence[np.ndarray]],
                    cfg: PreprocessConfig | None = None,
                    device: str | None = None,
                    fps: Sequence[float] | None = None) -> dict[str, np.ndarray]:
        cfg = cfg or PreprocessConfig()
        if not jobs:
            return self._empty(cfg)
        faces = [_frame(_check_crop(crops[0], "face"), cfg) for crops in jobs]
        return {"face": np.stack(faces).astype(np.float32)}

    def model_kwargs(self, features: Mapping[str, np.ndarray]) -> dict[str, int]:
        face = features["face"]
        return {"in_channels": int(face.shape[1]), "input_size": int(face.shape[-1])}


#: The input kinds by name (:func:`register_input_kind` adds one).
INPUT_KINDS: dict[str, InputKind] = {}


def register_input_kind(kind: InputKind) -> InputKind:
    """Add ``kind`` to :data:`INPUT_KINDS` (returned, for use as a module constant).

    Raises:
        ValueError: another kind of that name is registered.
    """
    known = INPUT_KINDS.get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"input kind {kind.name!r} is already registered")
    INPUT_KINDS[kind.name] = kind
    return kind


def unregister_input_kind(name: str) -> None:
    """Remove the kind ``name`` (tests, plug-ins); unknown names are ignored."""
    INPUT_KINDS.pop(name, None)


def input_kind(name: str) -> InputKind:
    """The spec of input kind ``name``.

    Raises:
        ValueError: an unknown kind (the message names the known ones).
    """
    try:
        return INPUT_KINDS[str(name)]
    except KeyError:
        raise ValueError(f"unknown input kind {name!r}; known kinds: "
                         f"{', '.join(sorted(INPUT_KINDS)) or 'none'}") from None


def model_inputs(kind: InputKind, jobs: Sequence[Sequence[np.ndarray]],
                 cfg: PreprocessConfig | None = None, *, device: str | None = None,
                 fps: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """``kind.make_inputs`` as every caller (live, analyze, review, training, bench) must
    call it: ``fps`` is passed only when there is one, so a kind that never needs the
    frame rate may leave it out of its signature (the contract: ``make_inputs(jobs, cfg,
    device=None[, fps=None])``)."""
    if fps is None:
        return kind.make_inputs(jobs, cfg, device=device)
    return kind.make_inputs(jobs, cfg, device=device, fps=fps)


KEYFRAMES = register_input_kind(KeyframeKind(
    "keyframes", ("flow", "frames"),
    description="onset->apex flow (u, v, strain) + onset/apex/offset frames"))
CLIP = register_input_kind(ClipKind(
    "clip", ("clip", "flow_seq"), is_clip=True,
    description="clip_len frames from onset to offset + the flow between consecutive ones"))
FACE = register_input_kind(FaceKind(
    "face", ("face",), description="the apex frame alone (expression models)"))
#: The kind assumed where none is given (engine doubles without ``input_kind``, features).
DEFAULT_INPUT_KIND = KEYFRAMES.name


_trackers = threading.local()


def _tracker(tracker_config: Any) -> Any:
    from mestudio.face.config import TrackerConfig
    from mestudio.face.tracker import FaceTracker

    cfg = tracker_config or TrackerConfig()
    key = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
    cache = getattr(_trackers, "cache", None)
    if cache is None:
        cache = _trackers.cache = {}
    if key not in cache:
        if len(cache) > 4:
            cache.clear()
        cache[key] = FaceTracker(cfg)
    tracker = cache[key]
    tracker.reset()
    return tracker


def align_keyframes(
    images: Sequence[np.ndarray], size: int, tracker_config: Any = None
) -> list[np.ndarray]:
    """Aligned crops of the raw frames of one sample.

    The face (and its landmarks) is found on the FIRST image with
    :class:`mestudio.face.tracker.FaceTracker`; the same alignment transform
    (:func:`mestudio.face.align.align_face`) cuts every image, so the motion between the
    frames stays in the crops (a per-frame alignment would remove part of it).

    Args:
        images: frames of one sample (BGR ``uint8`` ``(H, W, 3)`` or grey), same size.
        size: side of the crops in pixels (usually ``PreprocessConfig.flow_size``).
        tracker_config: :class:`mestudio.face.config.TrackerConfig` (default settings).

    Returns:
        ``len(images)`` crops ``(size, size, 3)`` BGR ``uint8``.

    Raises:
        ValueError: no images.
        mestudio.errors.FaceNotFoundError: no face found on the first image (a
            :class:`~mestudio.errors.MestudioError` and a ``ValueError``).
    """
    import cv2

    from mestudio.errors import FaceNotFoundError
    from mestudio.face.align import align_face
    from mestudio.types import Frame

    if len(images) == 0:
        raise ValueError("align_keyframes: no images")
    bgr = [
        cv2.cvtColor(np.asarray(im), cv2.COLOR_GRAY2BGR)
        if np.asarray(im).ndim == 2
        else np.asarray(im)
        for im in images
    ]
    tracker = _tracker(tracker_config)
    obs = tracker.update(Frame(index=0, timestamp_s=0.0, image=bgr[0]))
    if not obs.face_found:
        h, w = bgr[0].shape[:2]
        raise FaceNotFoundError(
            f"no face found in the first of the {len(bgr)} frames to align ({w}x{h} px): the "
            "frames must show one roughly frontal, unoccluded face; frames that are already "
            "face crops need no alignment (mestudio data prepare --align none)")
    return [align_face(im, obs, int(size), tracker.config)[0] for im in bgr]
