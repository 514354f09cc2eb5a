"""The ONNX contract between ``mestudio export`` and the inference engine.

Inputs (all float32, dynamic batch ``N``): the names and per-sample shapes of the model's
input kind (``mestudio.input_kind``), from its :class:`mestudio.preprocess.InputKind` spec
(:func:`expected_inputs`), e.g.

* ``keyframes``: ``flow [N, 3, S, S]`` = (u, v, strain) and ``frames [N, 3, C, S, S]`` =
  (onset, apex, offset), ``C`` = 1 (grey) or 3 (colour);
* ``clip``: ``clip [N, T, C, S, S]`` and ``flow_seq [N, T-1, 2, S, S]``.

Outputs: ``logits [N, K]``, ``probs [N, K]`` (softmax) and, unless exported without it,
``cam [N, K, S_streams, h, w]``: raw Grad-CAM of every class for every stream.

Metadata (``metadata_props``, keys prefixed ``mestudio.``): plain strings for
:data:`STRING_KEYS`, JSON text for every other key. :data:`REQUIRED_KEYS` must be present.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from mestudio.errors import ModelFileError
from mestudio.preprocess import INPUT_KINDS
from mestudio.preprocess import input_kind as kind_spec

SCHEMA_VERSION = "1"
PREFIX = "mestudio."


class _InputNames(Mapping[str, tuple[str, ...]]):
    """Input kind -> its input names: a read-only view of
    :data:`mestudio.preprocess.INPUT_KINDS` (kinds registered later are in it)."""

    def __getitem__(self, kind: str) -> tuple[str, ...]:
        return INPUT_KINDS[kind].input_names

    def __iter__(self) -> Iterator[str]:
        return iter(INPUT_KINDS)

    def __len__(self) -> int:
        return len(INPUT_KINDS)


#: Input kind -> ONNX input names (from the kinds' specs in :mod:`mestudio.preprocess`).
INPUT_NAMES: Mapping[str, tuple[str, ...]] = _InputNames()
OUTPUT_NAMES = ("logits", "probs", "cam")

STRING_KEYS = frozenset({
    "schema_version", "architecture", "input_kind", "name", "flow_method", "weights_sha256",
    "precision", "created", "mestudio_version", "training_data", "protocol", "description",
})
REQUIRED_KEYS = (
    "schema_version", "architecture", "input_kind", "classes", "input_size", "color",
    "synthetic", "streams", "weights_sha256", "preprocess",
)


#: Longest class name a model may declare (characters): names become CSV columns
#: (``prob_<class>``), table cells and plot labels.
MAX_CLASS_NAME = 64


def _bad_character(name: str) -> str | None:
    """The first control, format (bidi, zero-width), surrogate, private-use or line/paragraph
    separator character of ``name`` as ``U+XXXX``, or None."""
    for ch in name:
        cat = unicodedata.category(ch)
        if cat[0] == "C" or cat in ("Zl", "Zp"):
            return f"U+{ord(ch):04X}"
    return None


def check_classes(path: str | os.PathLike[str], classes: Any) -> list[str]:
    """Validate the ``mestudio.classes`` metadata of the model at ``path``.

    Class names travel into events.csv headers (``prob_<class>``), spreadsheets, tables and
    plot labels, so each must be a non-empty string of at most :data:`MAX_CLASS_NAME`
    characters without control or bidirectional characters (NUL, newline, U+202E...) and
    without surrounding spaces; names must be unique (ignoring case); at least 2 classes.

    Returns:
        the class names.

    Raises:
        ModelFileError: one line naming the first bad class and what is wrong with it.
    """
    if not isinstance(classes, list) or len(classes) < 2 or \
            not all(isinstance(c, str) for c in classes):
        raise ModelFileError(f"{path}: mestudio.classes must be a list of >= 2 names")
    seen: dict[str, int] = {}
    for i, name in enumerate(classes):
        shown = repr(name if len(name) <= 40 else name[:40] + "…")
        problem = None
        if not name.strip():
            problem = "is empty"
        elif len(name) > MAX_CLASS_NAME:
            problem = f"is {len(name)} characters long (at most {MAX_CLASS_NAME})"
        elif (bad := _bad_character(name)) is not None:
            problem = f"contains the control or bidirectional character {bad}"
        elif name != name.strip():
            problem = "starts or ends with spaces"
        elif name.casefold() in seen:
            problem = f"repeats class #{seen[name.casefold()]}"
        if problem is not None:
            raise ModelFileError(f"{path}: class #{i} {shown} in mestudio.classes {problem}; "
                                 "re-export the model with plain, unique class names")
        seen[name.casefold()] = i
    return list(classes)


#: Longest metadata text kept (characters); the rest is cut with an ellipsis.
MAX_META_TEXT = 4000


def plain_text(text: str, limit: int = MAX_META_TEXT) -> str:
    """``text`` from a model file made safe to print, store and show: line breaks and tabs
    become spaces; control, format (bidirectional, zero-width), surrogate and private-use
    characters are removed (an ANSI escape cannot clear a terminal, a newline cannot forge a
    log line); at most ``limit`` characters."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\t\n\r\v\f" or cat in ("Zl", "Zp"):
            out.append(" ")
        elif cat[0] != "C":
            out.append(ch)
    clean = "".join(out)
    return clean if len(clean) <= limit else clean[:limit - 1] + "…"


def _plain_values(value: Any) -> Any:
    """:func:`plain_text` on every string inside a decoded metadata value."""
    if isinstance(value, str):
        return plain_text(value)
    if isinstance(value, list):
        return [_plain_values(v) for v in value]
    if isinstance(value, dict):
        return {plain_text(str(k), 200): _plain_values(v) for k, v in value.items()}
    return value


def encode_metadata(meta: Mapping[str, Any]) -> dict[str, str]:
    """``{key: value}`` -> ``{"mestudio.key": text}`` (JSON for everything but string keys)."""
    out = {}
    for key, value in meta.items():
        if key in STRING_KEYS:
            out[PREFIX + key] = str(value)
        else:
            out[PREFIX + key] = json.dumps(value, sort_keys=True, allow_nan=True)
    return out


def decode_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    """Inverse of :func:`encode_metadata`; keys without the prefix are ignored. Every text
    but the class names (validated by :func:`check_classes`, which refuses bad ones) goes
    through :func:`plain_text`: a model file's name, description or dataset text is data.

    Raises:
        ValueError: when a JSON value cannot be parsed (naming the key).
    """
    out: dict[str, Any] = {}
    for full_key, text in props.items():
        if not full_key.startswith(PREFIX):
            continue
        key = full_key[len(PREFIX):]
        if key in STRING_KEYS:
            out[key] = plain_text(text)
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"metadata {full_key} is not valid JSON: {exc}") from exc
        out[key] = value if key == "classes" else _plain_values(value)
    return out


def expected_inputs(input_kind: str, input_size: int, channels: int,
                    clip_len: int | None = None) -> dict[str, tuple[int | str, ...]]:
    """Input name -> shape with ``"N"`` for the batch axis, for a model of input kind
    ``input_kind`` (:meth:`mestudio.preprocess.InputKind.shapes`; ``clip_len`` only matters for
    clip kinds).

    Raises:
        ValueError: an unknown kind, or a clip kind without ``clip_len``.
    """
    shapes = kind_spec(input_kind).shapes(int(input_size), int(channels), clip_len)
    return {name: ("N", *shape) for name, shape in shapes.items()}


def weights_sha256(model: Any) -> str:
    """sha256 over the graph's initializers (name and raw bytes, sorted by name).

    ``model`` is an ``onnx.ModelProto``. Recorded as ``mestudio.weights_sha256`` at export
    and recomputed by the engine: a changed weight changes the hash.
    """
    from onnx import numpy_helper

    h = hashlib.sha256()
    for init in sorted(model.graph.initializer, key=lambda t: t.name):
        h.update(init.name.encode("utf-8"))
        h.update(b"\0")
        h.update(numpy_helper.to_array(init).tobytes())
    return h.hexdigest()


def flow_description(preprocess: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(flow method, its parameters)`` from a ``PreprocessConfig.to_metadata()`` dict.

    Accepts ``flow_method``/``method`` keys and either a nested ``tvl1`` dict or flat
    ``tvl1_*`` keys; falls back to ``("tvl1", {})``.
    """
    method = str(preprocess.get("flow_method", preprocess.get("method", "tvl1")))
    params: dict[str, Any] = {}
    nested = preprocess.get(method) or preprocess.get("flow_params") or preprocess.get("tvl1")
    if isinstance(nested, Mapping):
        params.update(nested)
    for key, value in preprocess.items():
        if key.startswith(("tvl1_", f"{method}_")):
            params[key] = value
    for key in ("flow_size",):
        if key in preprocess:
            params[key] = preprocess[key]
    return method, params


def normalisation_description(preprocess: Mapping[str, Any]) -> Any:
    """The normalisation part of a preprocessing dict (keys containing ``norm``), or {}."""
    for key in ("normalisation", "normalization", "norm"):
        if key in preprocess:
            return preprocess[key]
    return {k: v for k, v in preprocess.items() if "norm" in k.lower() or "scale" in k.lower()}
