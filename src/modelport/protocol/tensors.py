"""Tensor contents ↔ numpy: JSON ``data`` arrays and the raw little-endian binary layout.

Shared by every v2 transport: the HTTP binary extension and gRPC ``raw_*_contents`` use the same
raw layout (row-major, little-endian, BOOL one byte, BYTES elements as a uint32 length + bytes).
Numeric data never goes through a per-element Python loop: types are checked with C-level
``set(map(type, ...))``, values converted by numpy, binary data viewed with ``np.frombuffer``.
Every function that reads client data raises :class:`ValidationError` prefixed with ``where``.
"""

from __future__ import annotations

import struct
from itertools import chain
from typing import Any

import numpy as np

from modelport.core.datatypes import BF16, BYTES, INTEGER_DATATYPES, dtype_of, element_size
from modelport.core.errors import ValidationError
from modelport.protocol.datatypes import bf16_to_fp32, fp32_to_bf16

_LENGTH = struct.Struct("<I")
_INT_RANGES = {
    name: (int(np.iinfo(dtype_of(name)).min), int(np.iinfo(dtype_of(name)).max)) for name in INTEGER_DATATYPES
}
_FLOATS = frozenset({"FP16", "FP32", "FP64", BF16})
# Smallest magnitude that rounds to infinity (max finite + half an ulp, a tie that goes to inf).
_OVERFLOW_AT = {"FP16": 65520.0, "FP32": float(2**128 - 2**103)}
_JSON_KIND = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    type(None): "null",
    dict: "object",
}


def array_from_json(data: Any, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Convert a parsed JSON ``data`` value into an array of ``shape``.

    ``data`` may be flat or nested up to the rank of ``shape``; like Triton, only the total
    element count must match. Nesting is unrolled one level at a time (never recursively) and
    rejected as soon as it goes deeper than the rank, so hostile depth costs nothing.
    """
    if type(data) is not list:
        raise ValidationError(f"{where}: must be a JSON array")
    flat, kinds = data, set(map(type, data))
    depth, max_depth = 1, max(len(shape), 1)
    while list in kinds:
        if len(kinds) > 1:
            raise ValidationError(f"{where}: mixes nested arrays and values at depth {depth}")
        depth += 1
        if depth > max_depth:
            raise ValidationError(f"{where}: nested deeper than the rank {len(shape)} of shape {list(shape)}")
        flat = list(chain.from_iterable(flat))
        kinds = set(map(type, flat))
    count = _count(shape)
    if len(flat) != count:
        raise ValidationError(f"{where}: expected {count} elements for shape {list(shape)}, got {len(flat)}")
    return _values(flat, kinds, datatype, where).reshape(shape)


def array_from_binary(
    buffer: bytes, offset: int, size: int, datatype: str, shape: tuple[int, ...], where: str
) -> np.ndarray:
    """View ``buffer[offset:offset+size]`` as a tensor of ``shape``; fixed types are not copied.

    The size must be exact: ``element_size * count`` for fixed types, and for BYTES the length
    prefixes must consume it exactly while yielding ``count`` elements.
    """
    count = _count(shape)
    if datatype == BYTES:
        return _split_bytes(buffer, offset, size, count, where).reshape(shape)
    itemsize = element_size(datatype)
    assert itemsize is not None  # every type but BYTES has one
    if size != count * itemsize:
        raise ValidationError(f"{where}: {size} bytes, but shape {list(shape)} of {datatype} takes {count * itemsize}")
    wire = dtype_of(datatype).newbyteorder("<")
    if count == 0:
        return np.empty(shape, dtype=wire)
    if datatype == "BOOL":
        raw = np.frombuffer(buffer, dtype=np.uint8, count=count, offset=offset)
        if raw.max() > 1:
            raise ValidationError(f"{where}: BOOL bytes must be 0 or 1")
        return raw.view(np.bool_).reshape(shape)
    return np.frombuffer(buffer, dtype=wire, count=count, offset=offset).reshape(shape)


def flat_values(data: np.ndarray, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A model's output as a flat C-order array of the wire dtype (``uint16`` bits for BF16).

    BYTES outputs come back as an object array of ``bytes`` (str is UTF-8 encoded, anything
    else goes through ``str()``, as tritonclient does). A size that does not fill ``shape`` is a
    server bug, hence ValueError rather than a client error.
    """
    data = np.asarray(data)
    if data.size != _count(shape):
        raise ValueError(f"output {name!r}: {data.size} elements do not fill shape {list(shape)}")
    if datatype == BYTES:
        items = data.reshape(-1).tolist()
        if not set(map(type, items)) <= {bytes}:
            items = list(map(_as_bytes, items))
        values = np.empty(len(items), dtype=object)
        values[:] = items
        return values
    if datatype == BF16:
        return _bf16_bits(data).reshape(-1)
    return np.ascontiguousarray(data, dtype=dtype_of(datatype)).reshape(-1)


def binary_of(values: np.ndarray, datatype: str) -> bytes | memoryview:
    """The raw binary layout of ``flat_values(...)`` output (a view when no copy is needed)."""
    if datatype == BYTES:
        items = values.tolist()
        return b"".join(chain.from_iterable(zip(map(_LENGTH.pack, map(len, items)), items, strict=True)))
    wire = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    return memoryview(wire).cast("B")  # type: ignore[arg-type]  # ndarray has the buffer protocol


def json_of(values: np.ndarray, datatype: str) -> Any:
    """Something orjson (with ``OPT_SERIALIZE_NUMPY``) writes as the JSON ``data`` array, or None.

    None means "send this output binary", for what JSON cannot carry: a BYTES tensor that is not
    valid UTF-8 (JSON holds text only), and floats with NaN or ±Infinity (JSON has no such
    numbers; Triton writes the bare literals, which strict parsers refuse, and orjson would write
    ``null``, losing the value). The binary layout carries both exactly.
    """
    if datatype == BYTES:
        try:
            return list(map(bytes.decode, values.tolist()))
        except UnicodeDecodeError:
            return None
    if datatype == BF16:
        values = bf16_to_fp32(values)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return None
    return values


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _values(flat: list, kinds: set[type], datatype: str, where: str) -> np.ndarray:
    """Convert flat JSON scalars; ``kinds`` is the set of their Python types."""
    if not flat:
        return np.empty(0, dtype=dtype_of(datatype))
    if datatype == "BOOL":
        _require(kinds, {bool}, "booleans", datatype, where)
        return np.array(flat, dtype=np.bool_)
    if datatype == BYTES:
        _require(kinds, {str}, "strings", datatype, where)
        try:
            encoded = list(map(str.encode, flat))
        except UnicodeEncodeError:
            raise ValidationError(f"{where}: string is not valid UTF-8 (lone surrogate)") from None
        items = np.empty(len(encoded), dtype=object)
        items[:] = encoded
        return items
    if datatype in _FLOATS:
        _require(kinds, {int, float}, "numbers", datatype, where)
        return _floats(flat, datatype, where)
    _require(kinds, {int}, "integers", datatype, where)
    low, high = min(flat), max(flat)
    lowest, highest = _INT_RANGES[datatype]
    if low < lowest or high > highest:
        bad = low if low < lowest else high
        raise ValidationError(f"{where}: {str(bad)[:40]} is out of range for {datatype} [{lowest}, {highest}]")
    return np.array(flat, dtype=dtype_of(datatype))


def _floats(flat: list, datatype: str, where: str) -> np.ndarray:
    """Floats via float64, rejecting finite values that overflow the target width to infinity.

    The common case costs one ``abs().max()``: below the width's rounding threshold nothing can
    overflow. Otherwise (large values, infinities, NaN, or BF16) the exact check runs.
    """
    try:
        wide = np.array(flat, dtype=np.float64)
    except OverflowError:
        raise ValidationError(f"{where}: integer too large for {datatype}") from None
    if datatype == "FP64":
        return wide
    if datatype in _OVERFLOW_AT and np.abs(wide).max() < _OVERFLOW_AT[datatype]:
        return wide.astype(dtype_of(datatype))
    with np.errstate(over="ignore"):
        narrow = wide.astype(np.float32 if datatype == BF16 else dtype_of(datatype))
    if datatype == BF16:
        narrow = fp32_to_bf16(narrow)
        overflowed = np.isinf(bf16_to_fp32(narrow)) & np.isfinite(wide)
    else:
        overflowed = np.isinf(narrow) & np.isfinite(wide)
    if overflowed.any():
        value = wide[np.argmax(overflowed)]
        raise ValidationError(f"{where}: {value!r} is out of range for {datatype}")
    return narrow


def _require(kinds: set[type], allowed: set[type], noun: str, datatype: str, where: str) -> None:
    extra = kinds - allowed
    if extra:
        got = ", ".join(sorted(_JSON_KIND.get(kind, kind.__name__) for kind in extra))
        raise ValidationError(f"{where}: {datatype} elements must be {noun}, got {got}")


def _split_bytes(buffer: bytes, offset: int, size: int, count: int, where: str) -> np.ndarray:
    """Parse ``count`` length-prefixed elements that must fill ``size`` bytes exactly.

    The loop runs at most ``count`` times and checks every prefix against the end of the
    tensor: a lying prefix fails, it never over-reads or runs on.
    """
    items: list[bytes] = []
    append, unpack = items.append, _LENGTH.unpack_from
    pos, end = offset, offset + size
    for index in range(count):
        if pos + 4 > end:
            if pos == end:
                raise ValidationError(f"{where}: expected {count} BYTES elements, got {index}")
            raise ValidationError(f"{where}: truncated length prefix of BYTES element {index}")
        (length,) = unpack(buffer, pos)
        pos += 4 + length
        if pos > end:
            raise ValidationError(f"{where}: BYTES element {index} claims {length} bytes, {end - pos + length} remain")
        append(buffer[pos - length : pos])
    if pos != end:
        raise ValidationError(f"{where}: {end - pos} bytes left after the {count} BYTES elements of the shape")
    array = np.empty(count, dtype=object)
    array[:] = items
    return array


def _as_bytes(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return str(item).encode()


def _bf16_bits(data: np.ndarray) -> np.ndarray:
    """BF16 output data as bits: uint16 bits as-is, ml_dtypes.bfloat16 viewed, floats rounded."""
    if data.dtype == np.uint16:
        return np.ascontiguousarray(data)
    if data.dtype.name == "bfloat16":
        return np.ascontiguousarray(data).view(np.uint16)
    return fp32_to_bf16(data)
