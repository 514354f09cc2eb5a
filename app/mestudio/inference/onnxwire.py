"""Just enough of the ONNX file format to check a model, without importing ``onnx``.

``import onnx`` costs about half a second (most of it in ``ml_dtypes``), paid by every
``mestudio analyze`` process before its first frame. Loading a model only needs the graph's
inputs and outputs, its metadata and its initializers (for the weights hash), so this module
reads those fields from the protobuf wire format directly (ONNX's ``onnx.proto``: field
numbers below). Everything else is skipped by its wire type. ONNX Runtime then parses the whole
file when it builds the session, so a file this reader accepts but ONNX Runtime does not is
still refused.

Malformed input (a truncated file, a length past the end, an unknown wire type) raises
:class:`ValueError`.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

# onnx.proto field numbers
_MODEL_GRAPH, _MODEL_METADATA = 7, 14
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 5, 11, 12
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR, _TENSOR_TYPE_SHAPE, _SHAPE_DIM = 1, 2, 1
_DIM_VALUE, _DIM_PARAM = 1, 2
_T_DIMS, _T_TYPE, _T_FLOAT, _T_INT32, _T_INT64, _T_NAME, _T_RAW, _T_LOCATION = \
    1, 2, 4, 5, 7, 8, 9, 14
_FLOAT = 1  # TensorProto.FLOAT
#: Element types whose raw bytes are what ``numpy_helper.to_array(t).tobytes()`` gives (not
#: the packed 4-bit or 8-bit float types, which numpy_helper widens).
_PLAIN_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13})
#: Element type -> numpy type of its values when stored in ``int32_data`` (float16 as its
#: bits) or ``int64_data``.
_INT_FIELD_TYPES = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 9: "bool",
                    10: "uint16", 7: "int64"}

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: memoryview) -> list[tuple[int, int, int | memoryview]]:
    """``(field number, wire type, value)`` of every field of one message (LEN values as
    views, without copying)."""
    out: list[tuple[int, int, int | memoryview]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        value: int | memoryview
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LEN:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ValueError("length past the end of the data (truncated file?)")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == _I64:
            if pos + 8 > end:
                raise ValueError("truncated fixed64")
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == _I32:
            if pos + 4 > end:
                raise ValueError("truncated fixed32")
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((num, wire, value))
    return out


def _text(value: int | memoryview) -> str:
    if not isinstance(value, memoryview):
        raise ValueError("a string field holds a number")
    return bytes(value).decode("utf-8")


def _message(value: int | memoryview) -> memoryview:
    if not isinstance(value, memoryview):
        raise ValueError("a message field holds a number")
    return value


@dataclass
class Initializer:
    """One weight tensor: its name, and its bytes as ``numpy_helper.to_array(t).tobytes()``
    gives them (None when stored in a form this reader does not decode)."""

    name: str
    data: bytes | None


@dataclass
class ModelView:
    """What :class:`mestudio.inference.engine.InferenceEngine` needs of an ONNX model."""

    n_nodes: int = 0
    inputs: dict[str, tuple[int | str, ...]] = field(default_factory=dict)
    outputs: dict[str, tuple[int | str, ...]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    initializers: list[Initializer] = field(default_factory=list)

    def weights_sha256(self) -> str | None:
        """:func:`mestudio.inference.contract.weights_sha256` of the model, or None when an
        initializer is stored in a form this reader does not decode (the caller then asks
        ``onnx``)."""
        h = hashlib.sha256()
        for init in sorted(self.initializers, key=lambda t: t.name):
            if init.data is None:
                return None
            h.update(init.name.encode("utf-8"))
            h.update(b"\0")
            h.update(init.data)
        return h.hexdigest()


def _path(buf: memoryview, *numbers: int) -> list[memoryview]:
    """The sub-messages reached from ``buf`` through the field numbers ``numbers`` (every
    occurrence of each repeated field)."""
    level = [buf]
    for num in numbers:
        level = [_message(v) for msg in level for n, _, v in _fields(msg) if n == num]
    return level


def _dim(dim: memoryview) -> int | str:
    """``dim_value`` (signed) or ``dim_param`` of one ``TensorShapeProto.Dimension``."""
    out: int | str = "?"
    for num, _, value in _fields(dim):
        if num == _DIM_VALUE and isinstance(value, int):
            out = value - (1 << 64) if value >= 1 << 63 else value
        elif num == _DIM_PARAM:
            out = _text(value) or "?"
    return out


def _dims(value_info: memoryview) -> tuple[str, tuple[int | str, ...]]:
    """Name and shape of a ``ValueInfoProto`` (``type.tensor_type.shape.dim``)."""
    name = next((_text(v) for n, _, v in _fields(value_info) if n == _VALUE_NAME), "")
    dims = _path(value_info, _VALUE_TYPE, _TYPE_TENSOR, _TENSOR_TYPE_SHAPE, _SHAPE_DIM)
    return name, tuple(_dim(d) for d in dims)


def _varints(value: int | memoryview, wire: int) -> list[int]:
    """Signed values of a repeated integer field (packed or one element)."""
    if wire == _LEN:
        buf, pos, out = _message(value), 0, []
        while pos < len(buf):
            v, pos = _varint(buf, pos)
            out.append(v)
    else:
        out = [int(value)]
    return [v - (1 << 64) if v >= 1 << 63 else v for v in out]


def _initializer(tensor: memoryview) -> Initializer:
    import numpy as np

    name = ""
    raw: bytes | None = None
    floats: list[bytes] = []
    ints: list[int] = []
    dtype = 0
    other = False
    for num, wire, value in _fields(tensor):
        if num == _T_NAME:
            name = _text(value)
        elif num == _T_TYPE and isinstance(value, int):
            dtype = value
        elif num == _T_RAW:
            raw = bytes(_message(value))
        elif num == _T_FLOAT:
            if wire == _LEN:
                floats.append(bytes(_message(value)))
            else:  # unpacked float: one fixed32 per element
                floats.append(struct.pack("<I", int(value)))
        elif num in (_T_INT32, _T_INT64):
            ints.extend(_varints(value, wire))
        elif num == _T_LOCATION:
            other = other or bool(value)  # 1 = external data
        elif num not in (_T_DIMS, 3, 12):  # string/double/uint64 data, external data
            other = True
    if other or dtype not in _PLAIN_TYPES:
        return Initializer(name, None)
    if raw is not None:
        return Initializer(name, raw)
    if dtype == _FLOAT:
        return Initializer(name, b"".join(floats))
    if dtype in _INT_FIELD_TYPES:
        return Initializer(name, np.asarray(ints, np.int64).astype(_INT_FIELD_TYPES[dtype])
                           .tobytes())
    return Initializer(name, b"" if not (floats or ints) else None)


def read_model(data: bytes) -> ModelView:
    """The inputs, outputs, metadata and initializers of a serialised ``ModelProto``.

    Raises:
        ValueError: the data is not a well-formed protobuf message.
    """
    view = ModelView()
    for num, _, value in _fields(memoryview(data)):
        if num == _MODEL_METADATA:
            key = val = ""
            for enum, _, evalue in _fields(_message(value)):
                if enum == _ENTRY_KEY:
                    key = _text(evalue)
                elif enum == _ENTRY_VALUE:
                    val = _text(evalue)
            view.metadata[key] = val
        elif num == _MODEL_GRAPH:
            for gnum, _, gvalue in _fields(_message(value)):
                if gnum == _GRAPH_NODE:
                    view.n_nodes += 1
                elif gnum == _GRAPH_INITIALIZER:
                    view.initializers.append(_initializer(_message(gvalue)))
                elif gnum == _GRAPH_INPUT:
                    name, dims = _dims(_message(gvalue))
                    view.inputs[name] = dims
                elif gnum == _GRAPH_OUTPUT:
                    name, dims = _dims(_message(gvalue))
                    view.outputs[name] = dims
    return view
