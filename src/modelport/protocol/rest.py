"""The v2 inference request and response over HTTP: JSON plus Triton's binary tensor extension.

Pure functions, no web framework: the HTTP layer hands over the body and the
``Inference-Header-Content-Length`` header value and gets back bytes and the header to send.

Body layout (both directions): a JSON document, then the binary blobs of the tensors that carry
``parameters.binary_data_size``, concatenated in the order the tensors appear in the JSON. The
header gives the JSON's length; without it the whole body is JSON.

Decisions (Triton is the reference where the specification is silent):

* JSON ``data`` may be nested or flat; only the element count must equal ``prod(shape)``.
  FP16 and BF16 are accepted from JSON numbers (Triton refuses them; rounding is unambiguous).
* ``NaN``/``Infinity``/``-Infinity`` literals are read like Triton reads them (rapidjson's
  ``kParseNanAndInfFlag``): tritonclient writes them for non-finite inputs sent as JSON. A finite
  number that overflows a double (``1e999``) is refused, as Triton's parser refuses it and as
  ``1e39`` is refused for FP32. Replies are always valid JSON, which Triton's are not (it writes
  the bare literals, ``kWriteNanAndInfFlag``): a float output holding NaN or ±Infinity is sent in
  the binary extension even if JSON was asked for, as a non-UTF-8 BYTES output is: tritonclient
  reads binary outputs whatever was asked, exactly, while ``null`` (what orjson or
  ``JSON.stringify`` write) would lose the value and bring infinity back as NaN.
* A BYTES output that is not valid UTF-8 is sent binary even if JSON was asked for: JSON can
  only hold text, and base64 would be silently wrong for every v2 client.
* Outputs default to JSON unless the request sets ``binary_data_output`` or the output sets
  ``binary_data`` (the latter wins).
* Transport parameters are consumed here and not passed on in ``parameters``.
* A body with no ``inputs`` whose ``outputs`` carry tensors (a ``datatype`` each) is a v2
  *response* handed on as the next request, as a KServe InferenceGraph ``Sequence`` step with
  ``data: $response`` sends it: its tensors are read as the inputs. Requested outputs never carry
  a datatype, so no request is read differently; everything else without ``inputs`` is refused.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import orjson

from modelport.core.datatypes import DATATYPES
from modelport.core.errors import ValidationError
from modelport.protocol.classification import classify
from modelport.protocol.tensors import (
    array_from_binary,
    array_from_json,
    binary_of,
    flat_values,
    json_of,
)
from modelport.protocol.types import (
    InferenceRequest,
    InferenceResponse,
    InferInput,
    InferOutput,
    Parameters,
    RequestedOutput,
)

__all__ = ["classify", "decode_request", "encode_error", "encode_response"]

HEADER = "Inference-Header-Content-Length"
MAX_RANK = 32  # numpy 1.x's limit on dimensions
_MAX_ELEMENTS = sys.maxsize // 16  # numpy refuses shapes whose byte size could overflow
_MAX_NAME_IN_MESSAGE = 80
_MISSING = object()


def decode_request(body: bytes, header_length: int | str | None = None) -> InferenceRequest:
    """Decode an inference request body into named numpy tensors.

    ``header_length`` is the ``Inference-Header-Content-Length`` value, as an int or as the raw
    header text; None means the whole body is JSON. Every malformed body raises
    :class:`ValidationError` whose message names the offending field.
    """
    if not isinstance(body, bytes):
        body = bytes(body)
    json_end = _json_length(header_length, len(body))
    doc = _load_json(body if json_end == len(body) else body[:json_end])
    if not isinstance(doc, dict):
        raise ValidationError("request: the JSON header must be an object")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ValidationError("id: must be a string")
    parameters = _parameters(doc.get("parameters"), "parameters")
    binary_output = parameters.pop("binary_data_output", None)
    if binary_output is not None and type(binary_output) is not bool:
        raise ValidationError("parameters.binary_data_output: must be true or false")
    blobs = _Blobs(body, json_end, header_given=header_length is not None)
    raw_inputs, requested = doc.get("inputs", _MISSING), doc.get("outputs")
    if raw_inputs is _MISSING and _is_answer(requested):  # a previous step's answer, handed on
        raw_inputs, requested = requested, None
    inputs = _decode_inputs(raw_inputs, blobs)
    blobs.finish()
    return InferenceRequest(
        id=request_id,
        inputs=inputs,
        outputs=_decode_outputs(requested, binary_output),
        parameters=parameters,
        binary_data_output=bool(binary_output),
    )


def encode_response(
    resp: InferenceResponse,
    requested: list[RequestedOutput] | None = None,
    binary_default: bool = False,
) -> tuple[bytes, int | None]:
    """Encode a response; returns ``(body, json_length)``, ``json_length`` None if all-JSON.

    When ``json_length`` is not None the HTTP layer sends it as ``Inference-Header-Content-Length``
    with ``Content-Type: application/octet-stream``; otherwise the body is ``application/json``.
    ``requested`` (the request's outputs) selects and orders the outputs and says which are
    binary; outputs that do not say use ``binary_default`` (the request's
    ``binary_data_output``). Classification is not applied here: replace the output with
    :func:`classify` first, since the labels live in the model's configuration.
    """
    entries: list[dict[str, Any]] = []
    blobs: list[bytes | memoryview] = []
    for output, binary in _select(resp.outputs, requested, binary_default):
        values = flat_values(output.data, output.datatype, tuple(output.shape), output.name)
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(output.shape),
        }
        data = None if binary else json_of(values, output.datatype)
        if data is None:
            blob = binary_of(values, output.datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = data
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": resp.model_name, "model_version": str(resp.model_version)}
    if resp.id:
        doc["id"] = resp.id
    if resp.parameters:
        doc["parameters"] = resp.parameters
    doc["outputs"] = entries
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join((header, *blobs)), len(header)


def encode_error(message: str) -> bytes:
    """The v2 error body, ``{"error": "<message>"}``."""
    return orjson.dumps({"error": message})


class _Blobs:
    """The binary section after the JSON header, handed out in order and fully accounted for."""

    def __init__(self, body: bytes, start: int, header_given: bool) -> None:
        self.body, self.pos, self.header_given = body, start, header_given

    def take(self, size: int, where: str) -> int:
        """Reserve the next ``size`` bytes and return their offset in the body."""
        left = len(self.body) - self.pos
        if size > left:
            hint = "" if self.header_given else f" (no {HEADER} header: the whole body is JSON)"
            raise ValidationError(f"{where}: {size} bytes needed, {left} left in the body{hint}")
        offset, self.pos = self.pos, self.pos + size
        return offset

    def finish(self) -> None:
        left = len(self.body) - self.pos
        if left:
            raise ValidationError(f"request: {left} bytes after the JSON header are claimed by no binary_data_size")


def _json_length(header_length: int | str | None, body_length: int) -> int:
    if header_length is None:
        return body_length
    if isinstance(header_length, str):
        text = header_length.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 19):
            raise ValidationError(f"{HEADER}: {header_length[:40]!r} is not a non-negative integer")
        value = int(text)
    elif type(header_length) is int:
        value = header_length
    else:
        raise ValidationError(f"{HEADER}: {header_length!r} is not an integer")
    if not 0 <= value <= body_length:
        raise ValidationError(f"{HEADER}: {value} is outside the {body_length}-byte body")
    if value == 0:
        raise ValidationError(f"{HEADER}: 0 (a raw binary request) is not supported; send a JSON header")
    return value


def _load_json(raw: bytes) -> Any:
    """orjson, falling back to ``json`` only for the NaN/Infinity literals Triton accepts.

    A finite number too large for a double (``1e999``) is refused, as Triton's parser does and as
    ``1e39`` is for FP32: only the literals mean infinity. orjson refuses nesting over 1024
    levels itself; the fallback's RecursionError is caught, and its result must be re-encodable
    (no lone surrogates, bounded depth) to be accepted.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
    if b"NaN" in raw or b"Infinity" in raw or reason.startswith("number is infinity"):
        try:
            doc = json.loads(raw.decode("utf-8"), parse_float=_finite_float)
            orjson.dumps(doc)
            return doc
        except (ValueError, RecursionError, orjson.JSONEncodeError):
            pass
    raise ValidationError(f"request: the JSON header is not valid JSON: {reason}")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValidationError(
            f"request: the number {text[:40]} is too large for a double; write Infinity or -Infinity for infinity"
        )
    return value


def _is_answer(outputs: Any) -> bool:
    """Whether ``outputs`` holds tensors (a response's), not the names of outputs to return."""
    return isinstance(outputs, list) and bool(outputs) and all(isinstance(o, dict) and "datatype" in o for o in outputs)


def _decode_inputs(raw: Any, blobs: _Blobs) -> list[InferInput]:
    if raw is _MISSING:
        raise ValidationError("inputs: missing; a request needs an 'inputs' array")
    if type(raw) is not list:
        raise ValidationError("inputs: must be an array")
    inputs: list[InferInput] = []
    seen: set[str] = set()
    for i, obj in enumerate(raw):
        tensor = _decode_input(obj, f"inputs[{i}]", blobs)
        if tensor.name in seen:
            raise ValidationError(f"inputs[{i}].name: duplicate input {_quote(tensor.name)}")
        seen.add(tensor.name)
        inputs.append(tensor)
    return inputs


def _decode_input(obj: Any, where: str, blobs: _Blobs) -> InferInput:
    if not isinstance(obj, dict):
        raise ValidationError(f"{where}: must be an object")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{where}.name: must be a non-empty string")
    who = f"(input {_quote(name)})"
    datatype = obj.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise ValidationError(f"{where}.datatype {who}: {_describe(datatype)} is not one of {', '.join(DATATYPES)}")
    shape = _shape(obj.get("shape"), f"{where}.shape {who}")
    parameters = _parameters(obj.get("parameters"), f"{where}.parameters {who}")
    if "shared_memory_region" in parameters:
        raise ValidationError(f"{where}.parameters.shared_memory_region {who}: shared memory is not supported")
    size = parameters.pop("binary_data_size", None)
    if "data" in obj:
        if size is not None:
            raise ValidationError(f"{where} {who}: set either 'data' or parameters.binary_data_size, not both")
        array = array_from_json(obj["data"], datatype, shape, f"{where}.data {who}")
    elif size is not None:
        field = f"{where}.parameters.binary_data_size {who}"
        if type(size) is not int or size < 0:
            raise ValidationError(f"{field}: must be a non-negative integer")
        array = array_from_binary(blobs.body, blobs.take(size, field), size, datatype, shape, field)
    else:
        raise ValidationError(f"{where} {who}: has neither 'data' nor parameters.binary_data_size")
    return InferInput(name=name, datatype=datatype, shape=shape, data=array, parameters=parameters)


def _shape(raw: Any, where: str) -> tuple[int, ...]:
    """Validate a shape: ``[]`` is a scalar (one element); dims are non-negative integers."""
    if type(raw) is not list:
        raise ValidationError(f"{where}: must be an array of non-negative integers")
    if len(raw) > MAX_RANK:
        raise ValidationError(f"{where}: rank {len(raw)} exceeds the maximum of {MAX_RANK}")
    elements = 1
    for dim in raw:
        if type(dim) is not int or dim < 0:
            raise ValidationError(f"{where}: dimensions must be non-negative integers, got {_describe(dim)}")
        elements *= max(dim, 1)
        if elements > _MAX_ELEMENTS:
            raise ValidationError(f"{where}: the product of the dimensions is too large")
    return tuple(raw)


def _parameters(raw: Any, where: str) -> Parameters:
    """A ``$parameters`` object: values must be strings, numbers or booleans (as in OIP, Triton)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError(f"{where}: must be an object")
    for key, value in raw.items():
        if type(value) not in (str, int, float, bool):
            raise ValidationError(f"{where}.{key[:40]}: must be a string, number or boolean")
    return dict(raw)


def _decode_outputs(raw: Any, binary_default: bool | None) -> list[RequestedOutput] | None:
    """Requested outputs; absent or empty means all outputs (as Triton)."""
    if raw is None:
        return None
    if type(raw) is not list:
        raise ValidationError("outputs: must be an array")
    outputs: list[RequestedOutput] = []
    seen: set[str] = set()
    for j, obj in enumerate(raw):
        where = f"outputs[{j}]"
        if not isinstance(obj, dict):
            raise ValidationError(f"{where}: must be an object")
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            raise ValidationError(f"{where}.name: must be a non-empty string")
        if name in seen:
            raise ValidationError(f"{where}.name: duplicate output {_quote(name)}")
        seen.add(name)
        who = f"(output {_quote(name)})"
        parameters = _parameters(obj.get("parameters"), f"{where}.parameters {who}")
        binary = parameters.pop("binary_data", None)
        if binary is not None and type(binary) is not bool:
            raise ValidationError(f"{where}.parameters.binary_data {who}: must be true or false")
        class_count = parameters.pop("classification", 0)
        if type(class_count) is not int or class_count < 0:
            raise ValidationError(f"{where}.parameters.classification {who}: must be a non-negative integer")
        outputs.append(
            RequestedOutput(
                name=name,
                binary=binary_default if binary is None else binary,
                class_count=class_count,
                parameters=parameters,
            )
        )
    return outputs or None


def _select(
    outputs: list[InferOutput], requested: list[RequestedOutput] | None, binary_default: bool
) -> list[tuple[InferOutput, bool]]:
    """The outputs to send, in the requested order, each with whether it goes binary."""
    if requested is None:
        return [(output, binary_default) for output in outputs]
    by_name = {output.name: output for output in outputs}
    chosen = []
    for j, want in enumerate(requested):
        output = by_name.get(want.name)
        if output is None:
            raise ValidationError(f"outputs[{j}].name: the model has no output {_quote(want.name)}")
        chosen.append((output, binary_default if want.binary is None else want.binary))
    return chosen


def _describe(value: Any) -> str:
    """A client value for a message: short scalars verbatim, containers by kind only.

    Never ``repr`` a parsed container: it may be nested 1,000 levels deep.
    """
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, (int, float)):
        return str(value)[:40]
    return {list: "an array", dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _quote(name: str) -> str:
    """A client-chosen name for an error message, cut short so messages stay one short line."""
    if len(name) > _MAX_NAME_IN_MESSAGE:
        name = name[:_MAX_NAME_IN_MESSAGE] + "..."
    return repr(name)
