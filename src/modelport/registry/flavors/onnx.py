"""ONNX model files: the graph's protobuf, read for its signature, producer and opsets."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelport.core.errors import ValidationError
from modelport.runtime.flavor_info import FlavorInfo, Signature, TensorSpec, version_text

# ONNX TensorProto element type names to v2 datatypes; the others (complex, float8...) have none.
_ONNX_DATATYPES = {
    "BOOL": "BOOL",
    "UINT8": "UINT8",
    "UINT16": "UINT16",
    "UINT32": "UINT32",
    "UINT64": "UINT64",
    "INT8": "INT8",
    "INT16": "INT16",
    "INT32": "INT32",
    "INT64": "INT64",
    "FLOAT16": "FP16",
    "FLOAT": "FP32",
    "DOUBLE": "FP64",
    "BFLOAT16": "BF16",
    "STRING": "BYTES",
}


def onnx_file(path: Path, head: bytes) -> FlavorInfo | None:
    """A ``*.onnx`` file, parsed; ONNX has no magic number, so any other name is not looked at."""
    return onnx_model(path) if path.suffix.lower() == ".onnx" else None


def onnx_model(path: Path) -> FlavorInfo:
    """Parse the graph's protobuf (weights stored outside the file are not read).

    ``framework_version`` is the producer's version (e.g. the PyTorch or skl2onnx release that
    exported it), the framework that made the file; IR version and opsets, which decide the
    runtime that can run it, are in ``details``.
    """
    import onnx  # protobuf bindings are slow to import; only ONNX files need them
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(path, load_external_data=False)
    except (DecodeError, ValueError) as exc:
        raise ValidationError(f"{path}: not a valid ONNX model ({exc})") from exc
    if not model.ir_version or not model.HasField("graph"):
        raise ValidationError(f"{path}: not a valid ONNX model (no IR version or no graph)")
    graph = model.graph
    elem_names = {number: name for name, number in onnx.TensorProto.DataType.items()}
    initialized = {tensor.name for tensor in graph.initializer}
    unsupported: dict[str, str] = {}
    graph_inputs = (v for v in graph.input if v.name not in initialized)  # IR < 4 lists weights
    inputs = _onnx_specs(graph_inputs, elem_names, unsupported)
    outputs = _onnx_specs(graph.output, elem_names, unsupported)
    details: dict = {
        "format": "onnx",
        "ir_version": model.ir_version,
        "opset": {imp.domain or "ai.onnx": imp.version for imp in model.opset_import},
        "producer_name": model.producer_name or None,
        "producer_version": model.producer_version or None,
        "external_data": any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer),
    }
    if unsupported:
        details["unsupported_io"] = unsupported
    version = version_text(model.producer_version)
    return FlavorInfo("onnx", version, Signature(inputs, outputs), details)


def _onnx_specs(
    values: Iterable[Any], elem_names: dict[int, str], unsupported: dict[str, str]
) -> tuple[TensorSpec, ...]:
    """Tensors with a v2 datatype and a known rank; the rest (maps, sequences...) are noted."""
    specs = []
    for value in values:
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            unsupported[value.name] = str(kind).removesuffix("_type")  # sequence, map, optional
            continue
        tensor = value.type.tensor_type
        elem = elem_names.get(tensor.elem_type, "UNDEFINED")
        datatype = _ONNX_DATATYPES.get(elem)
        if datatype is None or not tensor.HasField("shape"):
            rank = "" if tensor.HasField("shape") else " of unknown rank"
            unsupported[value.name] = f"tensor({elem.lower()}){rank}"
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        specs.append(TensorSpec(value.name, datatype, shape))
    return tuple(specs)
