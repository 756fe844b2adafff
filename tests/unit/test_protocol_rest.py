"""The v2 HTTP codecs: round trips for every datatype, the binary extension, malformed bodies,
fuzzing, and compatibility with the real tritonclient when it is installed."""

from __future__ import annotations

import contextlib
import json
import math
import struct

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelport.core.errors import ValidationError
from modelport.protocol import (
    DATATYPES,
    InferenceResponse,
    InferOutput,
    RequestedOutput,
    bf16_to_fp32,
    classify,
    datatype_of,
    decode_request,
    dtype_of,
    element_size,
    encode_error,
    encode_response,
    fp32_to_bf16,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INTS = ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")
FLOATS = {"FP16": 16, "FP32": 32, "FP64": 64}


# ---------------------------------------------------------------- helpers (the wire, by hand)


def length_prefixed(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def json_data(array: np.ndarray, datatype: str, nested: bool) -> list:
    """What a client writes in ``data``: BYTES as text, BF16 as the floats it stands for."""
    if datatype == "BYTES":
        values = np.array([item.decode() for item in array.reshape(-1)], dtype=object)
        values = values.reshape(array.shape)
    elif datatype == "BF16":
        values = bf16_to_fp32(array)
    else:
        values = array
    return values.tolist() if nested and values.ndim else values.reshape(-1).tolist()


def raw_bytes(array: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        return length_prefixed(list(array.reshape(-1)))
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def build_request(tensors, *, nested=True, outputs=None, parameters=None, request_id=None):
    """``tensors``: (name, datatype, array, binary). Written with ``json.dumps`` as tritonclient
    does, so NaN/Infinity appear as literals."""
    doc: dict = {}
    if request_id is not None:
        doc["id"] = request_id
    if parameters:
        doc["parameters"] = parameters
    doc["inputs"] = []
    blobs = []
    for name, datatype, array, binary in tensors:
        entry = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            blob = raw_bytes(array, datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = json_data(array, datatype, nested)
        doc["inputs"].append(entry)
    if outputs is not None:
        doc["outputs"] = outputs
    header = json.dumps(doc).encode()
    return header + b"".join(blobs), (len(header) if blobs else None)


def parse_response(body: bytes, header_length: int | None) -> dict[str, tuple[str, np.ndarray]]:
    """An independent reader of response bodies: name → (datatype, array in wire representation)."""
    header = body if header_length is None else body[:header_length]
    doc = json.loads(header)
    pos = len(header)
    result = {}
    for out in doc["outputs"]:
        datatype, shape = out["datatype"], out["shape"]
        size = out.get("parameters", {}).get("binary_data_size")
        if size is not None:
            blob = body[pos : pos + size]
            pos += size
            if datatype == "BYTES":
                items, at = [], 0
                while at < len(blob):
                    (n,) = struct.unpack_from("<I", blob, at)
                    items.append(blob[at + 4 : at + 4 + n])
                    at += 4 + n
                array = np.empty(len(items), dtype=object)
                array[:] = items
            else:
                array = np.frombuffer(blob, dtype=dtype_of(datatype).newbyteorder("<"))
        elif datatype == "BYTES":
            array = np.empty(len(out["data"]), dtype=object)
            array[:] = [text.encode() for text in out["data"]]
        elif datatype == "BF16":
            array = fp32_to_bf16(np.array(out["data"], dtype=np.float32))
        else:
            assert isinstance(out["data"], list) and all(not isinstance(v, list) for v in out["data"])
            array = np.array(out["data"], dtype=dtype_of(datatype))
        result[out["name"]] = (datatype, array.reshape(shape))
    assert pos == len(body)
    return result


def assert_same(got: np.ndarray, want: np.ndarray, datatype: str, exact_bits: bool) -> None:
    assert got.shape == want.shape
    if datatype == "BYTES":
        assert got.dtype == object
        assert got.reshape(-1).tolist() == want.reshape(-1).tolist()
        return
    assert got.dtype == dtype_of(datatype)
    if exact_bits or datatype not in ("FP16", "FP32", "FP64", "BF16"):
        assert got.tobytes() == np.ascontiguousarray(want, dtype=got.dtype).tobytes()
    elif datatype == "BF16":  # NaN payloads are not kept through JSON floats
        np.testing.assert_array_equal(bf16_to_fp32(got), bf16_to_fp32(want))
    else:
        np.testing.assert_array_equal(got, want)  # NaN-aware


@st.composite
def tensors(draw, datatypes=DATATYPES, text_only=False, max_dims=3):
    """(datatype, array) with any shape (scalars and zero-size included) and any values."""
    datatype = draw(st.sampled_from(datatypes))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=4))
    count = math.prod(shape)
    if datatype == "BYTES":
        item = st.text(max_size=8).map(str.encode) if text_only else st.binary(max_size=8)
        array = np.empty(count, dtype=object)
        array[:] = draw(st.lists(item, min_size=count, max_size=count))
        return datatype, array.reshape(shape)
    if datatype == "BF16":
        elements = st.integers(0, 0xFFFF)
    elif datatype == "BOOL":
        elements = st.booleans()
    elif datatype in FLOATS:
        elements = st.floats(width=FLOATS[datatype])
    else:
        info = np.iinfo(dtype_of(datatype))
        elements = st.integers(int(info.min), int(info.max))
    return datatype, draw(hnp.arrays(dtype_of(datatype), shape, elements=elements))


# ---------------------------------------------------------------- datatypes


def test_datatype_table_covers_the_protocol():
    assert DATATYPES == (
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
        "FP16", "FP32", "FP64", "BF16", "BYTES",
    )  # fmt: skip
    sizes = {name: element_size(name) for name in DATATYPES}
    assert sizes["BOOL"] == 1 and sizes["UINT64"] == 8 and sizes["FP16"] == 2
    assert sizes["BF16"] == 2 and sizes["BYTES"] is None
    assert dtype_of("BF16") == np.uint16 and dtype_of("BYTES") == np.dtype(object)
    for name in DATATYPES:
        if name not in ("BF16", "BYTES"):
            assert datatype_of(np.zeros(2, dtype=dtype_of(name))) == name


def test_datatype_of_strings_and_unknowns():
    assert datatype_of(np.array([b"a"], dtype=object)) == "BYTES"
    assert datatype_of(np.array([b"a"])) == "BYTES"
    assert datatype_of(np.array(["a"])) == "BYTES"
    with pytest.raises(ValidationError, match="complex128"):
        datatype_of(np.zeros(1, dtype=np.complex128))
    with pytest.raises(ValidationError, match="'FLOAT32'"):
        dtype_of("FLOAT32")
    with pytest.raises(ValidationError, match="'fp32'"):
        dtype_of("fp32")


def test_bf16_round_trips_every_bit_pattern():
    bits = np.arange(0x10000, dtype=np.uint32).astype(np.uint16)
    back = fp32_to_bf16(bf16_to_fp32(bits))
    nan = np.isnan(bf16_to_fp32(bits))
    assert np.array_equal(back[~nan], bits[~nan])
    assert np.isnan(bf16_to_fp32(back[nan])).all()


def test_fp32_to_bf16_rounds_to_nearest_even():
    values = np.array(
        [1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 3 * 2**-8), 3.4e38, np.inf, -0.0],
        dtype=np.float32,
    )
    assert fp32_to_bf16(values).tolist() == [
        0x3F80,
        0x3F80,
        0x3F82,
        0x3F81,
        0xBF82,
        0x7F80,
        0x7F80,
        0x8000,
    ]
    assert np.isnan(bf16_to_fp32(fp32_to_bf16(np.float32("nan"))))
    assert fp32_to_bf16(np.float32(1.0)).shape == ()


@FAST
@given(st.integers(0, 2**32 - 1))
def test_fp32_to_bf16_matches_exact_rounding(pattern):
    value = np.array([pattern], dtype=np.uint32).view(np.float32)
    if np.isnan(value[0]):
        return
    got = bf16_to_fp32(fp32_to_bf16(value))[0]
    candidates = bf16_to_fp32(np.array([pattern >> 16, (pattern >> 16) + 1], dtype=np.uint32).astype(np.uint16))
    distances = [abs(float(c) - float(value[0])) if np.isfinite(c) else math.inf for c in candidates]
    if not np.isfinite(value[0]):
        assert got == value[0]
    elif distances[0] != distances[1]:
        assert got == candidates[int(np.argmin(distances))] or (np.isinf(got) and np.isinf(candidates[1]))
    else:
        assert (np.array([got], np.float32).view(np.uint32)[0] >> 16) % 2 == 0


def test_fp32_to_bf16_agrees_with_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**32, size=100_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = values[~np.isnan(values)]
    assert np.array_equal(fp32_to_bf16(values), values.astype(ml_dtypes.bfloat16).view(np.uint16))


# ---------------------------------------------------------------- request round trips


@FAST
@given(tensors(text_only=True), st.booleans())
def test_json_round_trip_every_datatype(tensor, nested):
    datatype, array = tensor
    body, header = build_request([("x", datatype, array, False)], nested=nested)
    assert header is None
    request = decode_request(body, header)
    (got,) = request.inputs
    assert (got.name, got.datatype, got.shape) == ("x", datatype, array.shape)
    assert_same(got.data, array, datatype, exact_bits=False)


@FAST
@given(tensors())
def test_binary_round_trip_every_datatype(tensor):
    datatype, array = tensor
    body, header = build_request([("x", datatype, array, True)])
    request = decode_request(body, header)
    (got,) = request.inputs
    assert got.shape == array.shape and got.parameters == {}
    assert_same(got.data, array, datatype, exact_bits=True)


@FAST
@given(st.lists(st.tuples(tensors(text_only=True), st.booleans()), min_size=1, max_size=4))
def test_mixed_json_and_binary_inputs_keep_their_order(specs):
    inputs = [(f"in{i}", dt, arr, binary) for i, ((dt, arr), binary) in enumerate(specs)]
    body, header = build_request(inputs)
    request = decode_request(body, None if header is None else str(header))
    assert [t.name for t in request.inputs] == [name for name, *_ in inputs]
    for got, (_, datatype, array, binary) in zip(request.inputs, inputs, strict=True):
        assert_same(got.data, array, datatype, exact_bits=binary)


def test_nested_and_flat_data_decode_identically():
    nested = b'{"inputs":[{"name":"x","datatype":"INT32","shape":[2,2],"data":[[1,2],[3,4]]}]}'
    flat = b'{"inputs":[{"name":"x","datatype":"INT32","shape":[2,2],"data":[1,2,3,4]}]}'
    a, b = decode_request(nested).inputs[0].data, decode_request(flat).inputs[0].data
    assert a.dtype == b.dtype == np.int32
    assert a.tolist() == b.tolist() == [[1, 2], [3, 4]]
    partial = b'{"inputs":[{"name":"x","datatype":"INT32","shape":[2,1,2],"data":[[1,2],[3,4]]}]}'
    assert decode_request(partial).inputs[0].data.tolist() == [[[1, 2]], [[3, 4]]]


def test_scalar_shape_holds_one_element():
    body = b'{"inputs":[{"name":"s","datatype":"FP64","shape":[],"data":[2.5]}]}'
    got = decode_request(body).inputs[0]
    assert got.shape == () and got.data.shape == () and float(got.data) == 2.5


def test_bytes_with_nuls_and_empty_strings():
    items = [b"", b"\x00", b"a\x00b", b"\x00\x00", b"tail\x00"]
    array = np.empty(5, dtype=object)
    array[:] = items
    body, header = build_request([("b", "BYTES", array, True), ("j", "BYTES", array, False)])
    request = decode_request(body, header)
    assert request.inputs[0].data.tolist() == items
    assert request.inputs[1].data.tolist() == items
    assert all(type(item) is bytes for item in request.inputs[0].data)


def test_json_conversions_follow_the_datatype():
    body = orjson.dumps(
        {
            "inputs": [
                {"name": "b", "datatype": "BOOL", "shape": [2], "data": [True, False]},
                {"name": "h", "datatype": "FP16", "shape": [2], "data": [1, 0.5]},
                {"name": "bf", "datatype": "BF16", "shape": [2], "data": [1.0, 1 + 3 * 2**-8]},
                {"name": "u", "datatype": "UINT64", "shape": [1], "data": [2**64 - 1]},
                {"name": "f", "datatype": "FP32", "shape": [2], "data": [1, 2]},
                {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["héllo"]},
            ]
        }
    )
    b, h, bf, u, f, s = (t.data for t in decode_request(body).inputs)
    assert b.dtype == np.bool_ and b.tolist() == [True, False]
    assert h.dtype == np.float16 and h.tolist() == [1.0, 0.5]
    assert bf.dtype == np.uint16 and bf.tolist() == [0x3F80, 0x3F82]
    assert u.dtype == np.uint64 and int(u[0]) == 2**64 - 1
    assert f.dtype == np.float32 and f.tolist() == [1.0, 2.0]
    assert s.tolist() == ["héllo".encode()]


def test_nan_and_infinity_literals_are_accepted_like_triton():
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[3],"data":[NaN, Infinity, -Infinity]}]}'
    data = decode_request(body).inputs[0].data
    assert np.isnan(data[0]) and data[1] == np.inf and data[2] == -np.inf


def test_binary_arrays_are_views_into_the_body():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    body, header = build_request([("x", "FP32", array, True)])
    data = decode_request(body, header).inputs[0].data
    assert not data.flags.writeable and np.shares_memory(data, np.frombuffer(body, np.uint8))


def test_header_length_equal_to_the_body_is_all_json():
    body, _ = build_request([("x", "INT64", np.arange(3), False)])
    assert decode_request(body, len(body)).inputs[0].data.tolist() == [0, 1, 2]
    assert decode_request(bytearray(body), f" {len(body)} ").inputs[0].data.tolist() == [0, 1, 2]


def test_request_fields_outputs_and_parameters():
    body = orjson.dumps(
        {
            "id": "req-1",
            "parameters": {"binary_data_output": True, "priority": 2, "note": "x"},
            "inputs": [
                {
                    "name": "x",
                    "datatype": "INT8",
                    "shape": [1],
                    "data": [1],
                    "parameters": {"k": 1.5},
                }
            ],
            "outputs": [
                {"name": "a"},
                {"name": "b", "parameters": {"binary_data": False, "classification": 3}},
                {"name": "c", "parameters": {"binary_data": True, "custom": "v"}},
            ],
        }
    )
    request = decode_request(body)
    assert request.id == "req-1"
    assert request.parameters == {"priority": 2, "note": "x"}
    assert request.binary_data_output is True
    assert request.inputs[0].parameters == {"k": 1.5}
    assert request.outputs == [
        RequestedOutput("a", binary=True),
        RequestedOutput("b", binary=False, class_count=3),
        RequestedOutput("c", binary=True, parameters={"custom": "v"}),
    ]


def test_outputs_without_binary_flags_default_to_none_and_empty_means_all():
    base = {"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}
    request = decode_request(orjson.dumps({**base, "outputs": [{"name": "a"}]}))
    assert request.outputs == [RequestedOutput("a", binary=None)]
    assert request.binary_data_output is False and request.id is None
    assert decode_request(orjson.dumps({**base, "outputs": []})).outputs is None
    assert decode_request(orjson.dumps(base)).outputs is None


def test_zero_size_binary_tensors():
    body, header = build_request(
        [
            ("e", "FP32", np.zeros((0, 3), np.float32), True),
            ("z", "BYTES", np.empty(0, object), True),
        ]
    )
    request = decode_request(body, header)
    assert request.inputs[0].data.shape == (0, 3) and request.inputs[1].data.shape == (0,)


# ---------------------------------------------------------------- malformed requests


def one_input(**fields) -> bytes:
    tensor = {"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0], **fields}
    return json.dumps({"inputs": [tensor]}).encode()


def binary_input(datatype: str, shape: list, blob: bytes, size: int | None = None, extra: bytes = b""):
    size = len(blob) if size is None else size
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": datatype,
                    "shape": shape,
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    ).encode()
    return header + blob + extra, len(header)


MALFORMED_INPUTS = {
    "count too small": (
        one_input(shape=[3]),
        r"inputs\[0\]\.data \(input 'x'\): expected 3 elements .*got 2",
    ),
    "count too large": (one_input(shape=[1]), "expected 1 elements for shape \\[1\\], got 2"),
    "scalar needs one": (one_input(shape=[]), "expected 1 elements"),
    "scalar nested": (one_input(shape=[], data=[[1.0]]), "nested deeper than the rank 0"),
    "nested too deep": (one_input(data=[[1.0], [2.0]]), "nested deeper than the rank 1"),
    "mixed nesting": (one_input(shape=[2, 1], data=[1.0, [2.0]]), "mixes nested arrays and values"),
    "data not array": (one_input(data=1.5), "data \\(input 'x'\\): must be a JSON array"),
    "string in float": (one_input(data=[1.0, "a"]), "FP32 elements must be numbers, got string"),
    "null in float": (one_input(data=[1.0, None]), "got null"),
    "bool in float": (one_input(data=[1.0, True]), "got boolean"),
    "float in int": (
        one_input(datatype="INT32", data=[1, 2.5]),
        "INT32 elements must be integers, got float",
    ),
    "int8 overflow": (
        one_input(datatype="INT8", data=[1, 300]),
        r"300 is out of range for INT8 \[-128, 127\]",
    ),
    "uint negative": (one_input(datatype="UINT8", data=[-1, 0]), "-1 is out of range for UINT8"),
    "uint64 overflow": (
        one_input(datatype="UINT64", data=[0, 2**64]),
        "must be integers, got float",
    ),
    "int64 overflow": (one_input(datatype="INT64", data=[0, 2**63]), "out of range for INT64"),
    "bool from int": (
        one_input(datatype="BOOL", data=[1, 0]),
        "BOOL elements must be booleans, got integer",
    ),
    "bytes from int": (
        one_input(datatype="BYTES", data=["a", 1]),
        "BYTES elements must be strings",
    ),
    "fp16 overflow": (one_input(datatype="FP16", data=[1.0, 1e6]), "out of range for FP16"),
    "fp32 overflow": (one_input(datatype="FP32", data=[1.0, 1e300]), "out of range for FP32"),
    "bf16 overflow": (one_input(datatype="BF16", data=[1.0, 3.4e38]), "out of range for BF16"),
    "unknown datatype": (
        one_input(datatype="FLOAT"),
        r"inputs\[0\]\.datatype \(input 'x'\): 'FLOAT' is not one of",
    ),
    "lowercase datatype": (one_input(datatype="fp32"), "'fp32' is not one of"),
    "datatype missing": (one_input(datatype=None), "datatype"),
    "negative dim": (
        one_input(shape=[-2]),
        r"inputs\[0\]\.shape \(input 'x'\): dimensions must be non-negative",
    ),
    "float dim": (one_input(shape=[2.0]), "shape .*non-negative integers"),
    "bool dim": (one_input(shape=[True, 2]), "shape .*non-negative integers"),
    "shape not list": (one_input(shape=2), "shape .*must be an array"),
    "rank too high": (one_input(shape=[1] * 33), "rank 33 exceeds"),
    "huge dims": (one_input(shape=[0, 2**62, 2**62], data=[]), "too large"),
    "no data": (
        json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}).encode(),
        "neither",
    ),
    "both": (
        one_input(parameters={"binary_data_size": 8}),
        "either 'data' or parameters.binary_data_size",
    ),
    "shm": (one_input(parameters={"shared_memory_region": "r"}), "shared memory is not supported"),
    "params not object": (
        one_input(parameters=[1]),
        r"inputs\[0\]\.parameters \(input 'x'\): must be an object",
    ),
    "param value nested": (
        one_input(parameters={"a": {"b": 1}}),
        "parameters.*a: must be a string, number or boolean",
    ),
    "binary size negative": (one_input(data=None, parameters={"binary_data_size": -1}), "either"),
}


@pytest.mark.parametrize("body, pattern", MALFORMED_INPUTS.values(), ids=MALFORMED_INPUTS.keys())
def test_malformed_inputs_name_the_input(body, pattern):
    with pytest.raises(ValidationError, match=pattern) as info:
        decode_request(body)
    assert "inputs[0]" in str(info.value) and "\n" not in str(info.value)


def test_binary_size_parameter_must_be_a_non_negative_integer():
    for size in (-1, True, "8", 1.5):
        tensor = {
            "name": "x",
            "datatype": "FP32",
            "shape": [2],
            "parameters": {"binary_data_size": size},
        }
        body = json.dumps({"inputs": [tensor]}).encode()
        with pytest.raises(ValidationError, match=r"binary_data_size \(input 'x'\): must be a non-negative"):
            decode_request(body, len(body))


MALFORMED_BINARY = {
    "fixed size short": (
        binary_input("FP32", [3], b"\0" * 8),
        "8 bytes, but shape \\[3\\] of FP32 takes 12",
    ),
    "fixed size long": (
        binary_input("INT16", [1], b"\0" * 4),
        "4 bytes, but shape \\[1\\] of INT16 takes 2",
    ),
    "size beyond body": (binary_input("FP64", [2], b"\0" * 8, size=16), "16 bytes needed, 8 left"),
    "leftover bytes": (
        binary_input("UINT8", [2], b"\1\2", extra=b"\0"),
        "1 bytes after the JSON header",
    ),
    "bool not 0/1": (binary_input("BOOL", [2], b"\x01\x02"), "BOOL bytes must be 0 or 1"),
    "prefix overshoot": (
        binary_input("BYTES", [1], struct.pack("<I", 9) + b"abc"),
        "claims 9 bytes, 3 remain",
    ),
    "prefix truncated": (
        binary_input("BYTES", [2], length_prefixed([b"a"]) + b"\1\0"),
        "truncated length prefix",
    ),
    "bytes extra": (
        binary_input("BYTES", [1], length_prefixed([b"a", b"b"])),
        "left after the 1 BYTES elements",
    ),
    "bytes too few": (
        binary_input("BYTES", [3], length_prefixed([b"a", b"b"])),
        "expected 3 BYTES elements, got 2",
    ),
}


@pytest.mark.parametrize("request_, pattern", MALFORMED_BINARY.values(), ids=MALFORMED_BINARY.keys())
def test_malformed_binary_tensors(request_, pattern):
    body, header = request_
    with pytest.raises(ValidationError, match=pattern) as info:
        decode_request(body, header)
    assert "leftover" in pattern or "1 bytes after" in pattern or "(input 'x')" in str(info.value)


def test_binary_data_without_the_header_is_missing():
    body, _ = binary_input("FP32", [1], b"", size=4)
    with pytest.raises(ValidationError, match=r"4 bytes needed, 0 left .*no Inference-Header-Content-Length"):
        decode_request(body, None)
    body, _ = binary_input("FP32", [1], b"\0" * 4)
    with pytest.raises(ValidationError, match="not valid JSON"):
        decode_request(body, None)


@pytest.mark.parametrize("header", [-1, 10_000, "abc", "-3", "1e3", "", 1.5, True, 0, "0", "9" * 40])
def test_bad_header_lengths(header):
    body, _ = build_request([("x", "INT8", np.arange(2, dtype=np.int8), True)])
    with pytest.raises(ValidationError, match="Inference-Header-Content-Length"):
        decode_request(body, header)


def test_header_length_that_cuts_the_json_is_invalid_json():
    body, header = build_request([("x", "INT8", np.arange(2, dtype=np.int8), True)])
    with pytest.raises(ValidationError, match="not valid JSON"):
        decode_request(body, header - 1)


@pytest.mark.parametrize("depth", [65, 1_000, 1_100, 100_000])
def test_deep_nesting_is_rejected_without_recursion(depth):
    data = "[" * depth + "1" + "]" * depth
    body = ('{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":' + data + "}]}").encode()
    with pytest.raises(ValidationError, match=r"nested deeper|not valid JSON"):
        decode_request(body)
    deep_param = ('{"inputs":[],"parameters":{"p":' + data + "}}").encode()
    with pytest.raises(ValidationError):
        decode_request(deep_param)


@pytest.mark.parametrize("field", ["name", "datatype", "shape", "id", "outputs", "parameters"])
def test_deep_values_in_any_field_are_not_echoed(field):
    deep = "[" * 1_000 + "]" * 1_000
    tensor = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}
    if field in ("name", "datatype"):
        text = json.dumps({"inputs": [tensor]}).replace(f'"{field}": "{tensor[field]}"', f'"{field}": {deep}')
    elif field == "shape":
        text = json.dumps({"inputs": [tensor]}).replace('"shape": [1]', f'"shape": [{deep}]')
    else:
        text = json.dumps({"inputs": [tensor], field: "@"}).replace('"@"', deep)
    with pytest.raises(ValidationError) as info:
        decode_request(text.encode())
    assert len(str(info.value)) < 300


def test_deep_nesting_with_nan_literal_takes_no_recursion_error():
    data = "[" * 5_000 + "NaN" + "]" * 5_000
    with pytest.raises(ValidationError, match="not valid JSON"):
        decode_request(('{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":' + data + "}]}").encode())


MALFORMED_REQUESTS = {
    "invalid utf-8": (
        b'{"inputs":[{"name":"\xff","datatype":"FP32","shape":[1],"data":[1]}]}',
        "not valid JSON",
    ),
    "lone surrogate": (
        b'{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["\\ud800"]}]}',
        "not valid",
    ),
    "lone surrogate with NaN": (
        b'{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["\\ud800"]}],"n":NaN}',
        "not valid JSON",
    ),
    "not json": (b"hello", "not valid JSON"),
    "empty body": (b"", "not valid JSON"),
    "top level array": (b"[]", "must be an object"),
    "missing inputs": (b'{"outputs":[]}', "inputs: missing"),
    "inputs not array": (b'{"inputs":{}}', "inputs: must be an array"),
    "input not object": (b'{"inputs":[1]}', r"inputs\[0\]: must be an object"),
    "input without name": (
        b'{"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]}',
        r"inputs\[0\]\.name",
    ),
    "empty name": (
        b'{"inputs":[{"name":"","datatype":"FP32","shape":[1],"data":[1]}]}',
        r"inputs\[0\]\.name",
    ),
    "duplicate inputs": (
        b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},'
        b'{"name":"x","datatype":"FP32","shape":[1],"data":[2]}]}',
        r"inputs\[1\]\.name: duplicate input 'x'",
    ),
    "id not string": (b'{"id":5,"inputs":[]}', "id: must be a string"),
    "parameters not object": (b'{"parameters":[],"inputs":[]}', "parameters: must be an object"),
    "binary_data_output not bool": (
        b'{"parameters":{"binary_data_output":1},"inputs":[]}',
        "binary_data_output",
    ),
    "outputs not array": (b'{"inputs":[],"outputs":{}}', "outputs: must be an array"),
    "output not object": (b'{"inputs":[],"outputs":["y"]}', r"outputs\[0\]: must be an object"),
    "output no name": (b'{"inputs":[],"outputs":[{}]}', r"outputs\[0\]\.name"),
    "duplicate outputs": (
        b'{"inputs":[],"outputs":[{"name":"y"},{"name":"y"}]}',
        "duplicate output 'y'",
    ),
    "binary_data not bool": (
        b'{"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":"yes"}}]}',
        r"outputs\[0\]\.parameters\.binary_data \(output 'y'\)",
    ),
    "classification negative": (
        b'{"inputs":[],"outputs":[{"name":"y","parameters":{"classification":-1}}]}',
        "classification .*non-negative integer",
    ),
    "classification float": (
        b'{"inputs":[],"outputs":[{"name":"y","parameters":{"classification":2.0}}]}',
        "classification",
    ),
}


@pytest.mark.parametrize("body, pattern", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
def test_malformed_requests(body, pattern):
    with pytest.raises(ValidationError, match=pattern):
        decode_request(body)


def test_long_names_are_cut_in_messages():
    body = one_input(name="n" * 10_000, shape=[3])
    with pytest.raises(ValidationError) as info:
        decode_request(body)
    assert len(str(info.value)) < 300


# ---------------------------------------------------------------- fuzzing


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(-5, 250), st.text(max_size=5)))
def test_random_bytes_only_raise_validation_errors(body, header):
    with contextlib.suppress(ValidationError):
        decode_request(body, header)


@st.composite
def mutated_requests(draw):
    """A valid mixed JSON/binary request, then damaged: cut, a byte changed, or a header moved."""
    specs = draw(st.lists(st.tuples(tensors(text_only=True, max_dims=2), st.booleans()), max_size=3))
    inputs = [(f"in{i}", dt, arr, binary) for i, ((dt, arr), binary) in enumerate(specs)]
    body, header = build_request(inputs)
    header = len(body) if header is None else header
    how = draw(st.sampled_from(["cut", "byte", "header"]))
    if how == "cut" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif how == "byte" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    else:
        header += draw(st.integers(-8, 8))
    return body, header


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_requests())
def test_damaged_requests_only_raise_validation_errors(damaged):
    body, header = damaged
    try:
        request = decode_request(body, header)
    except ValidationError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for tensor in request.inputs:
        assert tensor.data.shape == tensor.shape


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)
fuzz_inputs = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.just("x"), json_values),
        "datatype": st.one_of(st.sampled_from(DATATYPES), json_values),
        "shape": st.one_of(st.lists(st.integers(-1, 3), max_size=3), json_values),
        "data": json_values,
        "parameters": st.one_of(
            st.fixed_dictionaries({"binary_data_size": st.one_of(st.integers(-2, 40), json_values)}),
            json_values,
        ),
    },
)
fuzz_requests = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "inputs": st.one_of(st.lists(st.one_of(fuzz_inputs, json_values), max_size=3), json_values),
        "outputs": st.one_of(
            st.lists(st.fixed_dictionaries({"name": json_values, "parameters": json_values}), max_size=2),
            json_values,
        ),
        "parameters": json_values,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzz_requests, st.binary(max_size=40), st.booleans())
def test_random_json_requests_only_raise_validation_errors(doc, tail, with_header):
    header = json.dumps(doc).encode()
    try:
        request = decode_request(header + tail if with_header else header, len(header) if with_header else None)
    except ValidationError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for tensor in request.inputs:
        assert tensor.data.shape == tensor.shape


# ---------------------------------------------------------------- responses


def response(*outputs: InferOutput, **fields) -> InferenceResponse:
    return InferenceResponse(
        model_name=fields.get("model_name", "m"),
        model_version=fields.get("model_version", "1"),
        id=fields.get("id"),
        outputs=list(outputs),
        parameters=fields.get("parameters", {}),
    )


@FAST
@given(st.lists(st.tuples(tensors(), st.booleans()), min_size=1, max_size=4))
def test_response_round_trip_every_datatype(specs):
    outputs = [InferOutput(f"out{i}", dt, arr.shape, arr) for i, ((dt, arr), _) in enumerate(specs)]
    requested = [RequestedOutput(o.name, binary=binary) for o, (_, binary) in zip(outputs, specs, strict=True)]
    body, header = encode_response(response(*outputs), requested)
    parsed = parse_response(body, header)
    for output, (_, binary) in zip(outputs, specs, strict=True):
        datatype, array = parsed[output.name]
        assert datatype == output.datatype
        want = output.data
        if datatype in ("FP16", "FP32", "FP64"):
            np.testing.assert_array_equal(array, want)
        else:
            assert_same(array, want, datatype, exact_bits=binary or datatype != "BF16")
    assert (header is None) == all(not binary and _json_able(o) for o, (_, binary) in zip(outputs, specs, strict=True))


def _json_able(output: InferOutput) -> bool:
    """What JSON carries exactly: BYTES that are UTF-8 text, numbers that are finite."""
    values = output.data.reshape(-1)
    if output.datatype == "BYTES":
        return all(_utf8(b) for b in values)
    if output.datatype == "BF16":
        values = bf16_to_fp32(values)
    return values.dtype.kind != "f" or bool(np.isfinite(values).all())


def _utf8(item: bytes) -> bool:
    try:
        item.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_json_response_is_flat_and_complete():
    body, header = encode_response(
        response(
            InferOutput("y", "INT32", (2, 2), np.array([[1, 2], [3, 4]], np.int32)),
            InferOutput("b", "BOOL", [2], np.array([True, False])),
            id="r-1",
            model_version=3,
            parameters={"sequence_id": 1},
        )
    )
    assert header is None
    doc = orjson.loads(body)
    assert doc == {
        "model_name": "m",
        "model_version": "3",
        "id": "r-1",
        "parameters": {"sequence_id": 1},
        "outputs": [
            {"name": "y", "datatype": "INT32", "shape": [2, 2], "data": [1, 2, 3, 4]},
            {"name": "b", "datatype": "BOOL", "shape": [2], "data": [True, False]},
        ],
    }


def test_empty_id_is_omitted():
    body, _ = encode_response(response(InferOutput("y", "INT8", [1], np.ones(1, np.int8)), id=""))
    assert "id" not in orjson.loads(body)


def test_binary_outputs_follow_the_json_in_output_order():
    y = np.arange(6, dtype=np.float32).reshape(2, 3)
    s = np.array([b"a", b"", b"\x00z"], dtype=object)
    body, header = encode_response(
        response(InferOutput("y", "FP32", (2, 3), y), InferOutput("s", "BYTES", (3,), s)),
        None,
        True,
    )
    doc = orjson.loads(body[:header])
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 24}
    assert doc["outputs"][1]["parameters"] == {"binary_data_size": len(length_prefixed(list(s)))}
    assert body[header:] == y.tobytes() + length_prefixed(list(s))


def test_requested_outputs_select_order_and_override_the_default():
    a = InferOutput("a", "INT64", [2], np.array([1, 2]))
    b = InferOutput("b", "FP64", [1], np.array([0.5]))
    c = InferOutput("c", "UINT8", [1], np.array([7], np.uint8))
    requested = [RequestedOutput("c", binary=None), RequestedOutput("a", binary=False)]
    body, header = encode_response(response(a, b, c), requested, True)
    doc = orjson.loads(body[:header])
    assert [o["name"] for o in doc["outputs"]] == ["c", "a"]
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 1} and doc["outputs"][1]["data"] == [1, 2]
    with pytest.raises(ValidationError, match=r"outputs\[0\]\.name: the model has no output 'zz'"):
        encode_response(response(a), [RequestedOutput("zz")])


def _strict_json(text: bytes):
    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64", "BF16"])
def test_non_finite_floats_go_binary_so_the_json_stays_valid(datatype):
    data = np.array([1.5, np.nan, np.inf, -np.inf, 0.25], dtype=np.float32)
    if datatype == "BF16":
        data = fp32_to_bf16(data)
    else:
        data = data.astype(dtype_of(datatype))
    body, header = encode_response(response(InferOutput("y", datatype, [5], data)), [RequestedOutput("y", False)])
    assert header is not None  # JSON was asked for, but JSON cannot carry these values
    doc = _strict_json(body[:header])
    assert doc["outputs"][0]["parameters"]["binary_data_size"] == data.nbytes
    ((_, got),) = parse_response(body, header).values()
    assert got.tobytes() == data.tobytes()  # exact, NaN and infinities included
    finite = np.array([1.5, 0.25], dtype=data.dtype)
    body, header = encode_response(response(InferOutput("y", datatype, [2], finite)))
    assert header is None and "data" in _strict_json(body)["outputs"][0]


def test_infinite_literals_are_accepted_but_overflowing_numbers_are_refused():
    body = b'{"inputs":[{"name":"x","datatype":"FP64","shape":[2],"data":[-Infinity, 2.5]}],"p":NaN}'
    assert decode_request(body).inputs[0].data.tolist() == [-np.inf, 2.5]
    for data in (b"[1e999, 1]", b"[-1E+400, NaN]"):
        body = b'{"inputs":[{"name":"x","datatype":"FP64","shape":[2],"data":' + data + b"}]}"
        with pytest.raises(ValidationError, match=r"too large for a double; write Infinity or -Infinity") as info:
            decode_request(body)
        assert "\n" not in str(info.value)


def test_bytes_output_that_is_not_utf8_goes_binary():
    data = np.array([b"ok", b"\xff\xfe"], dtype=object)
    body, header = encode_response(response(InferOutput("s", "BYTES", [2], data)), [RequestedOutput("s", False)])
    assert header is not None
    assert parse_response(body, header)["s"][1].tolist() == [b"ok", b"\xff\xfe"]
    text = np.array(["héllo", "wörld"])  # numpy str array from a model
    body, header = encode_response(response(InferOutput("t", "BYTES", [2], text)))
    assert header is None and orjson.loads(body)["outputs"][0]["data"] == ["héllo", "wörld"]


def test_bf16_outputs_accept_bits_floats_and_json_writes_floats():
    bits = fp32_to_bf16(np.array([1.0, -2.5, 1 + 2**-7], np.float32))
    from_floats = InferOutput("f", "BF16", [3], bf16_to_fp32(bits))
    body, _ = encode_response(response(InferOutput("b", "BF16", [3], bits), from_floats), None, False)
    doc = orjson.loads(body)
    assert doc["outputs"][0]["data"] == [1.0, -2.5, 1 + 2**-7] == doc["outputs"][1]["data"]


def test_output_that_does_not_fill_its_shape_is_a_server_bug():
    with pytest.raises(ValueError, match="do not fill shape"):
        encode_response(response(InferOutput("y", "FP32", [3], np.zeros(2, np.float32))))


def test_encode_error():
    assert orjson.loads(encode_error("inputs[0].shape: bad")) == {"error": "inputs[0].shape: bad"}


# ---------------------------------------------------------------- classification


def test_classify_batched_top_k_with_labels():
    scores = np.array([[0.1, 3.3, 2.0], [5.0, 1.0, 5.0]], dtype=np.float32)
    result = classify(scores, 2, ["cat", "dog"])
    assert result.dtype == object and result.shape == (2, 2)
    assert result.tolist() == [
        [b"3.300000:1:dog", b"2.000000:2"],
        [b"5.000000:0:cat", b"5.000000:2"],
    ]


def test_classify_unbatched_ints_and_k_beyond_classes():
    result = classify(np.array([[3, 9], [1, 4]], dtype=np.int32), 10, batched=False)
    assert result.shape == (4,)
    assert result.tolist() == [b"9:1", b"4:3", b"3:0", b"1:2"]
    assert classify(np.zeros((0, 5), np.float32), 3).shape == (0, 3)


def test_classify_rejects_unsupported_types_and_counts():
    with pytest.raises(ValidationError, match="not available for BOOL"):
        classify(np.array([[True]]), 1)
    with pytest.raises(ValidationError, match="positive integer"):
        classify(np.zeros((1, 2)), 0)


def test_classified_output_encodes_as_bytes():
    labels = classify(np.array([[0.2, 0.8]], np.float32), 1)
    body, _ = encode_response(response(InferOutput("y", "BYTES", labels.shape, labels)))
    assert orjson.loads(body)["outputs"][0] == {
        "name": "y", "datatype": "BYTES", "shape": [1, 1], "data": ["0.800000:1"]
    }  # fmt: skip


# ---------------------------------------------------------------- the real tritonclient


@pytest.fixture(scope="module")
def triton():
    return pytest.importorskip("tritonclient.http")


def client_input(http, name, array, datatype, binary):
    tensor = http.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def test_tritonclient_requests_decode(triton):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(1)
    strings = np.array([b"a\x00b", b"", "é".encode()], dtype=object)
    cases = [
        ("fp32_bin", rng.standard_normal((2, 3)).astype(np.float32), "FP32", True),
        ("fp32_json", rng.standard_normal((2, 3)).astype(np.float32), "FP32", False),
        ("fp16_bin", rng.standard_normal(4).astype(np.float16), "FP16", True),
        ("fp16_json", rng.standard_normal(4).astype(np.float16), "FP16", False),
        ("i8", np.array([[-128, 127]], np.int8), "INT8", False),
        ("u64", np.array([2**64 - 1, 0], np.uint64), "UINT64", True),
        ("u64_json", np.array([2**64 - 1, 0], np.uint64), "UINT64", False),
        ("bool_bin", np.array([True, False, True]), "BOOL", True),
        ("bool_json", np.array([[True], [False]]), "BOOL", False),
        ("bytes_bin", strings, "BYTES", True),
        ("bytes_json", strings, "BYTES", False),
        ("bf16", np.array([1.0, -3.5, 0.1], dtype=ml_dtypes.bfloat16), "BF16", True),
        ("nan_json", np.array([np.nan, np.inf, 1.0], np.float64), "FP64", False),
    ]
    inputs = [client_input(triton, name, array, datatype, binary) for name, array, datatype, binary in cases]
    outputs = [
        triton.InferRequestedOutput("y", binary_data=False, class_count=3),
        triton.InferRequestedOutput("z"),
    ]
    body, header = triton.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, request_id="r1", priority=2, parameters={"custom": "v"}
    )
    request = decode_request(body, header)
    assert request.id == "r1" and request.parameters == {"priority": 2, "custom": "v"}
    assert request.outputs == [
        RequestedOutput("y", binary=False, class_count=3),
        RequestedOutput("z", binary=True),
    ]
    for got, (name, array, datatype, _) in zip(request.inputs, cases, strict=True):
        assert got.name == name and got.datatype == datatype
        if datatype == "BF16":
            assert got.data.tolist() == array.view(np.uint16).tolist()
        elif datatype == "BYTES":
            assert got.data.tolist() == array.tolist()
        else:
            np.testing.assert_array_equal(got.data, array)
            assert got.data.dtype == array.dtype


def test_tritonclient_default_request_asks_for_binary_outputs(triton):
    inputs = [client_input(triton, "x", np.ones((1, 2), np.float32), "FP32", True)]
    body, header = triton.InferenceServerClient.generate_request_body(inputs)
    request = decode_request(body, header)
    assert request.outputs is None and request.binary_data_output is True
    json_only, none = triton.InferenceServerClient.generate_request_body(
        [client_input(triton, "x", np.ones(2, np.int32), "INT32", False)]
    )
    assert none is None and decode_request(json_only, none).inputs[0].data.tolist() == [1, 1]


def test_tritonclient_reads_responses(triton):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(2)
    bits = fp32_to_bf16(rng.standard_normal(5).astype(np.float32))
    outputs = [
        InferOutput("fp32", "FP32", (2, 3), rng.standard_normal((2, 3)).astype(np.float32)),
        InferOutput("fp16", "FP16", (4,), rng.standard_normal(4).astype(np.float16)),
        InferOutput("i64", "INT64", (2, 2), np.array([[-(2**63), 2**63 - 1], [0, 1]])),
        InferOutput("bool", "BOOL", (3,), np.array([True, False, True])),
        InferOutput("bytes", "BYTES", (3,), np.array([b"a\x00", b"", b"x"], dtype=object)),
        InferOutput("nonutf8", "BYTES", (1,), np.array([b"\xff"], dtype=object)),
        InferOutput("bf16", "BF16", (5,), bits),
        InferOutput("nan", "FP64", (3,), np.array([np.nan, -np.inf, 2.0])),
        InferOutput("scalar", "INT32", (), np.array(7, np.int32)),
    ]
    for binary in (True, False):
        body, header = encode_response(response(*outputs, id="r"), None, binary)
        result = triton.InferResult.from_response_body(body, header_length=header)
        assert result.get_response()["id"] == "r"
        for output in outputs:
            got = result.as_numpy(output.name)
            assert got.shape == tuple(output.shape)
            if output.datatype == "BF16":
                assert got.dtype == ml_dtypes.bfloat16 and got.view(np.uint16).tolist() == bits.tolist()
            elif output.datatype == "BYTES":
                want = output.data.tolist()
                if not binary and output.name == "bytes":  # JSON: tritonclient returns str
                    want = [item.decode() for item in want]
                assert got.tolist() == want
            else:
                np.testing.assert_array_equal(got, output.data)


@pytest.mark.parametrize("binary", [False, True])
def test_an_answer_handed_on_is_read_as_the_request_of_its_tensors(binary):
    """A KServe InferenceGraph Sequence step (``data: $response``) posts the previous step's
    answer as it came: its output tensors become the inputs, JSON or binary alike."""
    h = np.arange(8, dtype=np.float32).reshape(2, 4)
    label = np.array([b"a", b"bc"], dtype=object)
    answer = InferenceResponse(
        "scale", "1", "r1", [InferOutput("h", "FP32", [2, 4], h), InferOutput("l", "BYTES", [2], label)]
    )
    body, header = encode_response(answer, binary_default=binary)
    request = decode_request(body, header)
    assert [(t.name, t.datatype, t.shape) for t in request.inputs] == [("h", "FP32", (2, 4)), ("l", "BYTES", (2,))]
    np.testing.assert_array_equal(request.inputs[0].data, h)
    assert list(request.inputs[1].data) == [b"a", b"bc"]
    assert request.outputs is None and request.id == "r1"


def test_requested_outputs_without_inputs_are_still_refused():
    for body in (b'{"outputs":[{"name":"y"}]}', b'{"outputs":[{"name":"y","parameters":{"binary_data":true}}]}'):
        with pytest.raises(ValidationError, match="inputs: missing"):
            decode_request(body)
