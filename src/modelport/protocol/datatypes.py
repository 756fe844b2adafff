"""The v2 tensor datatypes and how each one is held in numpy.

Every fixed-size datatype maps to the numpy dtype of the same width, so binary tensor data can be
viewed with ``np.frombuffer`` without copying. Two datatypes need a convention:

* ``BYTES`` tensors are numpy ``object`` arrays whose elements are ``bytes``.
* ``BF16``: numpy has no bfloat16, so a BF16 tensor is held as a ``uint16`` array of the raw bits,
  exactly as they travel on the wire (the upper half of an IEEE float32). Use
  :func:`bf16_to_fp32` and :func:`fp32_to_bf16` to compute with the values. Arrays of
  ``ml_dtypes.bfloat16`` (what tritonclient uses) are recognised by :func:`datatype_of` and can be
  turned into bits with ``array.view(np.uint16)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from modelport.core.errors import ValidationError

BYTES = "BYTES"
BF16 = "BF16"

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

# Reverse map for datatype_of; uint16 means UINT16 (BF16 cannot be told apart from its bits).
_DATATYPE_BY_DTYPE: dict[np.dtype, str] = {
    dtype: name for name, dtype in _DTYPES.items() if name not in (BF16, BYTES)
}


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


def datatype_of(array: np.ndarray) -> str:
    """The v2 datatype of a numpy array: object/bytes/str arrays are BYTES, ``uint16`` is UINT16.

    A BF16 tensor held as ``uint16`` bits reads as UINT16 here, which is why every tensor in
    :mod:`modelport.protocol.types` carries its datatype explicitly.
    """
    dtype = array.dtype
    if dtype.kind in "OSU":
        return BYTES
    if dtype.name == "bfloat16":  # ml_dtypes.bfloat16, without importing ml_dtypes
        return BF16
    try:
        return _DATATYPE_BY_DTYPE[dtype.newbyteorder("=")]
    except KeyError:
        raise ValidationError(f"datatype: numpy dtype {dtype} has no v2 datatype") from None


def bf16_to_fp32(bits: ArrayLike) -> np.ndarray:
    """Widen BF16 bits (``uint16``) to float32; exact, since BF16 is a truncated float32."""
    wide = np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)
    return wide.view(np.float32)


def fp32_to_bf16(values: ArrayLike) -> np.ndarray:
    """Round float values to BF16 bits (``uint16``), round-to-nearest-even like hardware does.

    Plain truncation (what the wire format description suggests) biases every value towards
    zero; rounding to nearest even matches torch, ml_dtypes and GPU conversions. NaN stays a
    quiet NaN of the same sign; values beyond the BF16 range round to infinity.
    """
    floats = np.asarray(values, dtype=np.float32)
    is_nan = np.isnan(floats)
    high = floats.view(np.uint32) >> np.uint32(16)
    quiet_nan = (high | np.uint32(0x0040)).astype(np.uint16)
    bits = np.where(is_nan, np.uint32(0), floats.view(np.uint32))  # NaN bits would wrap below
    rounded = ((bits + np.uint32(0x7FFF) + (high & np.uint32(1))) >> np.uint32(16)).astype(
        np.uint16
    )
    return np.where(is_nan, quiet_nan, rounded)
