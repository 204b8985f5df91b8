"""A minimal reader of TensorFlow frozen graphs (``GraphDef`` protobuf), without TensorFlow.

Only what is needed to list a graph's nodes and read its ``Const`` tensors: a protobuf
wire-format decoder for ``GraphDef`` / ``NodeDef`` / ``AttrValue`` / ``TensorProto``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celebface.errors import CelebfaceError

#: TensorFlow ``DataType`` enum values -> numpy dtypes (the ones frozen graphs use).
TF_DTYPES: dict[int, Any] = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8,
                             6: np.int8, 9: np.int64, 10: np.bool_, 19: np.float16}
#: ``TensorProto`` value-list fields -> (name, element format when fixed-size).
_VALUE_FIELDS = {5: "<f4", 6: "<f8", 7: "varint", 10: "varint", 11: "varint", 13: "varint"}


class GraphFormatError(CelebfaceError, ValueError):
    """The file is not a TensorFlow GraphDef this reader understands."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise GraphFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise GraphFormatError("varint too long")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of a message; length-delimited values are
    memoryviews (no copy), fixed-size ones raw bytes, varints ints."""
    pos, end = 0, len(buf)
    value: Any
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise GraphFormatError(f"unsupported wire type {wire}")
        if pos > end:
            raise GraphFormatError("truncated message")
        yield num, wire, value


def _varints(buf: memoryview) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(v)
    return out


def _shape(buf: memoryview) -> tuple[int, ...]:
    dims = []
    for num, _, value in _fields(buf):
        if num == 2:  # Dim {int64 size = 1; string name = 2}
            size = 0
            for n, _, v in _fields(value):
                if n == 1:
                    size = v - (1 << 64) if v >= 1 << 63 else v
            dims.append(size)
    return tuple(dims)


def parse_tensor(buf: memoryview) -> np.ndarray:
    """A ``TensorProto`` as a numpy array (``tensor_content`` or the typed value lists)."""
    dtype_code, content = 0, None
    shape: tuple[int, ...] = ()
    values: list[tuple[str, int, Any]] = []
    for num, wire, value in _fields(buf):
        if num == 1:
            dtype_code = value
        elif num == 2:
            shape = _shape(value)
        elif num == 4:
            content = value
        elif num in _VALUE_FIELDS:
            values.append((_VALUE_FIELDS[num], wire, value))
    if dtype_code not in TF_DTYPES:
        raise GraphFormatError(f"unsupported tensor dtype code {dtype_code}")
    dtype = np.dtype(TF_DTYPES[dtype_code]).newbyteorder("<")
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        arr = np.frombuffer(content, dtype=dtype).copy()
    else:
        arr = _typed_values(dtype, values)
        if arr.size == 1 and count != 1:  # a single value fills the tensor
            arr = np.full(count, arr[0], dtype=dtype)
        if arr.size == 0:
            arr = np.zeros(count, dtype=dtype)
    if arr.size != count:
        raise GraphFormatError(f"tensor has {arr.size} values for shape {shape}")
    return arr.astype(dtype.newbyteorder("="), copy=False).reshape(shape)


def _typed_values(dtype: np.dtype, values: list[tuple[str, int, Any]]) -> np.ndarray:
    parts: list[np.ndarray] = []
    for fmt, wire, value in values:
        if fmt != "varint":  # packed (wire 2) or one fixed-size value: raw little-endian bytes
            parts.append(np.frombuffer(bytes(value), fmt))
        else:  # int32/int64 varints are two's complement on 64 bits
            ints = _varints(value) if wire == 2 else [value]
            parts.append(np.asarray(ints, dtype=np.uint64).view(np.int64))
    if not parts:
        return np.zeros(0, dtype)
    return np.concatenate(parts).astype(dtype)


@dataclass
class Node:
    """A graph node: name, op, inputs and its attributes (tensors and shapes decoded)."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


def _attr(buf: memoryview) -> Any:
    for num, _, value in _fields(buf):
        if num == 2:
            return bytes(value).decode("utf-8", "replace")
        if num == 3:
            return value - (1 << 64) if value >= 1 << 63 else value
        if num == 4:
            return float(np.frombuffer(bytes(value), "<f4")[0])
        if num == 5:
            return bool(value)
        if num == 6:
            return value
        if num == 7:
            return _shape(value)
        if num == 8:
            return parse_tensor(value)
        if num == 1:
            return _attr_list(value)
    return None


def _attr_list(buf: memoryview) -> list:
    out: list = []
    for num, wire, value in _fields(buf):
        if num == 2:
            out.append(bytes(value).decode("utf-8", "replace"))
        elif num == 3:
            out.extend(_varints(value) if wire == 2 else [value])
        elif num == 4:
            out.extend(np.frombuffer(bytes(value), "<f4").tolist())
    return out


def _node(buf: memoryview) -> Node:
    node = Node("", "")
    for num, _, value in _fields(buf):
        if num == 1:
            node.name = bytes(value).decode()
        elif num == 2:
            node.op = bytes(value).decode()
        elif num == 3:
            node.inputs.append(bytes(value).decode())
        elif num == 5:
            key, attr = "", None
            for n, _, v in _fields(value):
                if n == 1:
                    key = bytes(v).decode()
                elif n == 2:
                    attr = _attr(v)
            node.attrs[key] = attr
    return node


def read_graph(path: str | Path) -> dict[str, Node]:
    """The nodes of a frozen ``GraphDef`` file, by name (in file order)."""
    path = Path(path)
    data = memoryview(path.read_bytes())
    nodes: dict[str, Node] = {}
    try:
        for num, wire, value in _fields(data):
            if num == 1 and wire == 2:
                node = _node(value)
                nodes[node.name] = node
    except GraphFormatError as exc:
        raise GraphFormatError(f"{path}: not a readable TensorFlow graph ({exc})") from None
    if not nodes:
        raise GraphFormatError(f"{path}: no graph nodes found (not a TensorFlow GraphDef)")
    return nodes


def constants(nodes: dict[str, Node]) -> dict[str, np.ndarray]:
    """Every ``Const`` node's value, by node name."""
    return {n.name: n.attrs["value"] for n in nodes.values()
            if n.op == "Const" and isinstance(n.attrs.get("value"), np.ndarray)}
