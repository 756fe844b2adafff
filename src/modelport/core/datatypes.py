"""The Open Inference Protocol (KServe v2 / Triton) tensor datatypes: the one table of them.

Every layer names tensor types the v2 way (``FP32``, ``BYTES``...): the wire protocol, model
configs, the runtime's predictors and the registry's signatures. This module says, once, which
names exist, which numpy dtype holds each and what Triton's ``config.pbtxt`` calls it.

Every fixed-size datatype maps to the numpy dtype of the same width, so binary tensor data can be
viewed with ``np.frombuffer`` without copying. Two datatypes need a convention:

* ``BYTES`` tensors are numpy ``object`` arrays whose elements are ``bytes``; arrays of fixed-width
  ``bytes`` or ``str`` also count as BYTES.
* ``BF16``: numpy has no bfloat16, so a BF16 tensor is held as a ``uint16`` array of the raw bits,
  exactly as they travel on the wire (the upper half of an IEEE float32). Arrays of
  ``ml_dtypes.bfloat16`` (what tritonclient uses) are recognised by :func:`datatype_of`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import DTypeLike

from modelport.core.errors import ValidationError

BYTES = "BYTES"
BF16 = "BF16"

# Each datatype and the numpy dtype that holds it, in the order of the specification's table.
_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    BF16: np.dtype(np.uint16),
    BYTES: np.dtype(object),
}

#: Every datatype name of the protocol, in the order of the specification's table.
DATATYPES: tuple[str, ...] = tuple(_DTYPES)

#: The signed and unsigned integer datatypes (BF16 is held in ``uint16`` but is not one).
INTEGER_DATATYPES: tuple[str, ...] = tuple(
    name for name, dtype in _DTYPES.items() if dtype.kind in "ui" and name != BF16
)

# Triton's config enum names are TYPE_ and the v2 name, except that BYTES is TYPE_STRING.
_TRITON_NAMES: dict[str, str] = {name: "TYPE_STRING" if name == BYTES else f"TYPE_{name}" for name in _DTYPES}

#: Triton's ``data_type`` enum names (``TYPE_FP32``), each to its v2 name.
TRITON_DATATYPES: Mapping[str, str] = {triton: name for name, triton in _TRITON_NAMES.items()}

#: numpy dtype kinds whose arrays hold BYTES elements: object, bytes and str.
BYTES_KINDS = frozenset("OSU")

# Reverse map for datatype_of; uint16 means UINT16 (BF16 cannot be told apart from its bits).
_DATATYPE_BY_DTYPE: dict[np.dtype, str] = {dtype: name for name, dtype in _DTYPES.items() if name not in (BF16, BYTES)}


def dtype_of(datatype: str) -> np.dtype:
    """The native numpy dtype that holds a tensor of ``datatype`` (``uint16`` bits for BF16)."""
    try:
        return _DTYPES[datatype]
    except (KeyError, TypeError):
        raise ValidationError(
            f"datatype: {datatype!r} is not a v2 datatype; expected one of {', '.join(DATATYPES)}"
        ) from None


def element_size(datatype: str) -> int | None:
    """Bytes per element on the wire, or None for BYTES, whose elements vary in length."""
    if datatype == BYTES:
        return None
    return dtype_of(datatype).itemsize


def datatype_of(value: np.ndarray | DTypeLike) -> str:
    """The v2 datatype of a numpy array or dtype: object/bytes/str are BYTES, ``uint16`` is UINT16.

    A BF16 tensor held as ``uint16`` bits reads as UINT16 here, which is why tensors travel with
    their datatype rather than have it inferred. Byte order does not matter: ``>f4`` is FP32.
    """
    # Arrays, numpy scalars and array-likes carry a dtype; dtypes, scalar types and names are one.
    dtype = np.dtype(value) if isinstance(value, (np.dtype, type, str)) else value.dtype  # type: ignore[union-attr]
    known = _DATATYPE_BY_DTYPE.get(dtype)  # the common case, once per output of every request:
    if known is not None:  # ~0.1 µs, where reading dtype.name alone takes microseconds
        return known
    if dtype.kind in BYTES_KINDS:
        return BYTES
    if dtype.name == "bfloat16":  # ml_dtypes.bfloat16, without importing ml_dtypes
        return BF16
    try:
        return _DATATYPE_BY_DTYPE[dtype.newbyteorder("=")]
    except KeyError:
        raise ValidationError(f"datatype: numpy dtype {dtype} has no v2 datatype") from None


def triton_name(datatype: str) -> str:
    """Triton's config enum name for a v2 datatype (``TYPE_FP32``; BYTES is ``TYPE_STRING``)."""
    try:
        return _TRITON_NAMES[datatype]
    except KeyError:
        raise ValidationError(f"datatype: {datatype!r} is not a v2 datatype") from None
