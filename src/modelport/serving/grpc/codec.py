"""ModelInferRequest/ModelInferResponse ↔ :mod:`modelport.protocol.types`, and nothing else.

Inputs come either as ``raw_input_contents`` (one entry per input, in order, in the same raw
layout as the HTTP binary extension, so :mod:`modelport.protocol.tensors` parses them) or as
typed ``contents``. Outputs always go back as ``raw_output_contents``: that is what Triton sends
and the only form tritonclient's ``InferResult.as_numpy`` reads for non-BYTES tensors.

Transport parameters are consumed here: ``classification`` becomes
``RequestedOutput.class_count``; ``binary_data_output``/``binary_data`` mean nothing over gRPC
(everything is binary) and are dropped; shared memory is refused by name.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from modelport.core.errors import ValidationError
from modelport.protocol.datatypes import dtype_of
from modelport.protocol.tensors import array_from_binary, binary_of, flat_values
from modelport.protocol.types import (
    InferenceRequest,
    InferenceResponse,
    InferInput,
    Parameters,
    RequestedOutput,
)
from modelport.serving.grpc.stubs import pb2

MAX_RANK = 32  # numpy 1.x's limit on dimensions
_MAX_ELEMENTS = sys.maxsize // 16  # numpy refuses shapes whose byte size could overflow

# The typed ``contents`` field of each datatype; the narrow integer types share a 32-bit field.
# FP16 and BF16 have none: they must be sent raw.
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_FIELD_DTYPES = {
    "bool_contents": np.dtype(np.bool_),
    "int_contents": np.dtype(np.int32),
    "int64_contents": np.dtype(np.int64),
    "uint_contents": np.dtype(np.uint32),
    "uint64_contents": np.dtype(np.uint64),
    "fp32_contents": np.dtype(np.float32),
    "fp64_contents": np.dtype(np.float64),
}
_INT64_MAX = 2**63 - 1
# The little-endian dtype of each fixed-size datatype numpy holds as is (BF16 travels as uint16 bits).
_WIRE = {datatype: dtype_of(datatype).newbyteorder("<") for datatype in _CONTENTS if datatype != "BYTES"} | {
    "FP16": np.dtype("<f2")
}


def decode_request(message: Any) -> InferenceRequest:
    """Turn a ``ModelInferRequest`` into named numpy tensors; client mistakes raise ValidationError."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise ValidationError(
            f"raw_input_contents: {len(raw)} entries for {len(message.inputs)} inputs; "
            "send one per input, in the order of the inputs"
        )
    inputs: list[InferInput] = []
    seen: set[str] = set()
    for index, tensor in enumerate(message.inputs):
        if not tensor.name:
            raise ValidationError(f"inputs[{index}].name: must not be empty")
        if tensor.name in seen:
            raise ValidationError(f"input {tensor.name!r}: appears twice")
        seen.add(tensor.name)
        inputs.append(_decode_input(tensor, raw[index] if raw else None))
    request_parameters = parameters_of(message.parameters, "parameters")
    request_parameters.pop("binary_data_output", None)
    return InferenceRequest(
        id=message.id or None,
        inputs=inputs,
        outputs=_decode_outputs(message.outputs),
        parameters=request_parameters,
    )


def encode_response(response: InferenceResponse) -> Any:
    """A ``ModelInferResponse`` carrying every output in ``raw_output_contents``, in order."""
    message = pb2.ModelInferResponse(
        model_name=response.model_name,
        model_version=str(response.model_version),
        id=response.id or "",
    )
    set_parameters(message.parameters, response.parameters)
    for output in response.outputs:
        shape = tuple(output.shape)
        message.outputs.add(name=output.name, datatype=output.datatype, shape=shape)
        message.raw_output_contents.append(_raw_output(output.data, output.datatype, shape, output.name))
    return message


def _raw_output(data: Any, datatype: str, shape: tuple[int, ...], name: str) -> bytes:
    """An output's raw bytes; an array already in its wire dtype is copied once, straight out."""
    if isinstance(data, np.ndarray) and data.dtype == _WIRE.get(datatype) and data.size == math.prod(shape):
        return data.tobytes()
    return bytes(binary_of(flat_values(data, datatype, shape, name), datatype))


def parameters_of(entries: Any, where: str) -> Parameters:
    """A ``map<string, InferParameter>`` as plain values; an entry without a value is an error."""
    parameters: Parameters = {}
    if not entries:  # the usual case, and the map's items() costs more than asking
        return parameters
    for key, parameter in entries.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is None:
            raise ValidationError(f"{where}[{key[:40]!r}]: has no value")
        parameters[key] = getattr(parameter, choice)
    return parameters


def set_parameters(entries: Any, parameters: Parameters) -> None:
    """Fill a ``map<string, InferParameter>``; ints beyond int64 use the uint64 choice."""
    for key, value in parameters.items():
        entry = entries[key]
        if isinstance(value, bool):
            entry.bool_param = value
        elif isinstance(value, int):
            if value > _INT64_MAX:
                entry.uint64_param = value
            else:
                entry.int64_param = value
        elif isinstance(value, float):
            entry.double_param = value
        else:
            entry.string_param = str(value)


def _decode_input(tensor: Any, raw: bytes | None) -> InferInput:
    where = f"input {tensor.name!r}"
    try:
        dtype_of(tensor.datatype)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None
    shape = _shape(tensor.shape, where)
    parameters = parameters_of(tensor.parameters, f"{where} parameters")
    if "shared_memory_region" in parameters:
        raise ValidationError(f"{where}: shared memory is not supported; send the data in the request")
    if raw is not None:
        if tensor.HasField("contents"):
            raise ValidationError(f"{where}: set either contents or raw_input_contents, not both")
        array = array_from_binary(raw, 0, len(raw), tensor.datatype, shape, f"{where} raw_input_contents")
    else:
        array = _from_contents(tensor.contents, tensor.datatype, shape, where)
    return InferInput(tensor.name, tensor.datatype, shape, array, parameters)


def _shape(dims: Any, where: str) -> tuple[int, ...]:
    shape = tuple(dims)
    if len(shape) > MAX_RANK:
        raise ValidationError(f"{where}: rank {len(shape)} exceeds the maximum of {MAX_RANK}")
    elements = 1
    for dim in shape:
        if dim < 0:
            raise ValidationError(f"{where}: shape {list(shape)} has a negative dimension")
        elements *= max(dim, 1)
        if elements > _MAX_ELEMENTS:
            raise ValidationError(f"{where}: shape {list(shape)} is too large")
    return shape


def _from_contents(contents: Any, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    field = _CONTENTS.get(datatype)
    if field is None:
        raise ValidationError(f"{where}: {datatype} tensors must be sent in raw_input_contents")
    stray = [f.name for f, _ in contents.ListFields() if f.name != field]
    if stray:
        raise ValidationError(f"{where}: {datatype} elements belong in contents.{field}, not {stray[0]}")
    values = getattr(contents, field)
    count = int(np.prod(shape, dtype=np.int64))
    if len(values) != count:
        raise ValidationError(
            f"{where}: contents.{field} has {len(values)} elements, but shape {list(shape)} takes {count}"
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    wide = np.fromiter(values, dtype=_FIELD_DTYPES[field], count=count)
    array = wide.astype(dtype_of(datatype))
    if array.dtype != wide.dtype and not np.array_equal(array, wide):
        bad = wide[np.argmax(array != wide)]
        raise ValidationError(f"{where}: {bad} in contents.{field} is out of range for {datatype}")
    return array.reshape(shape)


def _decode_outputs(requested: Any) -> list[RequestedOutput] | None:
    """Requested outputs; none means all of them, as in Triton."""
    outputs: list[RequestedOutput] = []
    seen: set[str] = set()
    for index, tensor in enumerate(requested):
        if not tensor.name:
            raise ValidationError(f"outputs[{index}].name: must not be empty")
        where = f"output {tensor.name!r}"
        if tensor.name in seen:
            raise ValidationError(f"{where}: requested twice")
        seen.add(tensor.name)
        parameters = parameters_of(tensor.parameters, f"{where} parameters")
        if "shared_memory_region" in parameters:
            raise ValidationError(f"{where}: shared memory is not supported")
        parameters.pop("binary_data", None)
        class_count = parameters.pop("classification", 0)
        if type(class_count) is not int or class_count < 0:
            raise ValidationError(f"{where}: classification must be a non-negative integer")
        outputs.append(RequestedOutput(tensor.name, binary=True, class_count=class_count, parameters=parameters))
    return outputs or None
