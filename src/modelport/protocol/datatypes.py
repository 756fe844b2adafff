"""BF16 arithmetic for the protocol, and the v2 datatype helpers its callers import from here.

The datatype table itself (names, numpy dtypes, sizes) lives in :mod:`modelport.core.datatypes`,
shared with the runtime and the registry. Its helpers are re-exported here, where they used to
live, because the gRPC and Azure ML codecs still import them from this module.

A BF16 tensor is held as ``uint16`` bits, exactly as it travels on the wire (the upper half of
an IEEE float32); :func:`bf16_to_fp32` and :func:`fp32_to_bf16` convert to and from values that
can be computed with. Arrays of ``ml_dtypes.bfloat16`` (what tritonclient uses) become bits with
``array.view(np.uint16)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from modelport.core.datatypes import BF16, BYTES, DATATYPES, datatype_of, dtype_of, element_size

__all__ = [
    "BF16",
    "BYTES",
    "DATATYPES",
    "bf16_to_fp32",
    "datatype_of",
    "dtype_of",
    "element_size",
    "fp32_to_bf16",
]


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
    rounded = ((bits + np.uint32(0x7FFF) + (high & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    return np.where(is_nan, quiet_nan, rounded)
