"""The KServe/Triton Open Inference Protocol v2 on the wire, as pure functions.

Codecs turn request bodies into :class:`InferenceRequest` objects of named numpy tensors and
model outputs back into response bodies, so the scheduler and models never see JSON, length
prefixes or binary offsets: :mod:`modelport.core.datatypes` maps v2 datatypes to numpy (BF16
as ``uint16`` bits, BYTES as object arrays of ``bytes``) and :mod:`.datatypes` converts BF16
bits to and from floats, :mod:`.types` holds the request and response,
:mod:`.tensors` converts tensor contents, :mod:`.rest` speaks HTTP/JSON with Triton's binary
tensor extension, and :mod:`.classification` implements the classification extension.
"""

from modelport.core.datatypes import DATATYPES, datatype_of, dtype_of, element_size
from modelport.protocol.classification import classify
from modelport.protocol.datatypes import bf16_to_fp32, fp32_to_bf16
from modelport.protocol.rest import decode_request, encode_error, encode_response
from modelport.protocol.types import (
    InferenceRequest,
    InferenceResponse,
    InferInput,
    InferOutput,
    RequestedOutput,
)

__all__ = [
    "DATATYPES",
    "InferInput",
    "InferOutput",
    "InferenceRequest",
    "InferenceResponse",
    "RequestedOutput",
    "bf16_to_fp32",
    "classify",
    "datatype_of",
    "decode_request",
    "dtype_of",
    "element_size",
    "encode_error",
    "encode_response",
    "fp32_to_bf16",
]
