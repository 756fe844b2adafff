"""The gRPC front end against tritonclient.grpc, the client users and perf_analyzer rely on.

The server runs in-process on its own event loop thread, so this also proves our private
descriptor pool and tritonclient's default-pool stubs coexist in one process.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException, deserialize_bytes_tensor

import modelport
from modelport.registry.sources import sources_from_repository
from modelport.samples import build_dtypes_onnx, build_mlp_onnx
from modelport.serving.grpc import start_grpc_server
from modelport.serving.grpc.stubs import pb2
from modelport.serving.repository import ModelRepository

EXTENSIONS = ["classification", "model_repository", "model_configuration", "binary_tensor_data", "statistics"]
MAX_MESSAGE_BYTES = 4 << 20


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    build_mlp_onnx(root / "mlp" / "1" / "model.onnx", sizes=(32, 64, 64, 4), seed=0)
    build_dtypes_onnx(root / "dtypes" / "1" / "model.onnx")
    return root


@contextmanager
def _serving(root: Path, grace: float | None = None) -> Iterator[str]:
    """A started server for the models under ``root`` on a free port, its event loop in a
    background thread; stopped with ``grace`` on the way out."""
    repository = ModelRepository(sources_from_repository(root))
    repository.load_all()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-server", daemon=True)
    thread.start()
    started = start_grpc_server(repository, "127.0.0.1", 0, EXTENSIONS, MAX_MESSAGE_BYTES)
    server = asyncio.run_coroutine_threadsafe(started, loop).result(timeout=30)
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(grace), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        repository.close()


@pytest.fixture(scope="module")
def url(repo_dir: Path) -> Iterator[str]:
    with _serving(repo_dir) as address:
        yield address


@pytest.fixture
def client(url: str) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(url) as triton:
        yield triton


@pytest.fixture
def stub(url: str) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    """tritonclient's generated stub, for messages its high-level client never builds."""
    with grpc.insecure_channel(url) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _mlp_input(batch: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 32)).astype(np.float32)


def _fp32_input(array: np.ndarray, name: str = "input") -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return tensor


def _expected_mlp(repo_dir: Path, array: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(repo_dir / "mlp" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": array})[0]


def _assert_valid_infer_works(client: grpcclient.InferenceServerClient, repo_dir: Path) -> None:
    array = _mlp_input(batch=1, seed=7)
    result = client.infer("mlp", [_fp32_input(array)])
    np.testing.assert_array_equal(result.as_numpy("output"), _expected_mlp(repo_dir, array))


def _failure(call) -> InferenceServerException:  # noqa: ANN001 - any zero-argument client call
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


# --------------------------------------------------------------------------- wire compatibility


def _fields(message: object) -> dict[str, tuple]:
    """What decides a message's wire form, per field: number, type, repetition, nested type name."""
    return {
        f.name: (f.number, f.type, f.is_repeated, (f.message_type or f.enum_type or f).full_name)
        for f in message.fields
    }


def test_protos_match_tritonclients_on_the_wire() -> None:
    """Every message, enum and RPC we define exists in Triton's protos with the same numbering."""
    from tritonclient.grpc import model_config_pb2

    ours = pb2.ModelInferRequest.DESCRIPTOR.file
    service = ours.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    theirs = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in service.methods:
        triton = theirs.methods_by_name[method.name]
        assert (method.input_type.full_name, method.output_type.full_name) == (
            triton.input_type.full_name,
            triton.output_type.full_name,
        )
        assert (method.client_streaming, method.server_streaming) == (triton.client_streaming, triton.server_streaming)

    triton_files = (service_pb2.DESCRIPTOR, model_config_pb2.DESCRIPTOR)
    pending = [m for file in (ours, *ours.dependencies) for m in file.message_types_by_name.values()]
    checked = 0
    while pending:
        message = pending.pop()
        pending.extend(message.nested_types)
        triton = next(
            f.pool.FindMessageTypeByName(message.full_name)
            for f in triton_files
            if message.full_name.split(".")[1] in f.message_types_by_name
        )
        triton_fields = _fields(triton)
        for name, spec in _fields(message).items():
            assert triton_fields[name] == spec, f"{message.full_name}.{name}"
        for enum in message.enum_types:
            _assert_enum_subset(enum, triton.enum_types_by_name[enum.name])
        checked += 1
    assert checked > 40
    for enum in ours.dependencies[0].enum_types_by_name.values():
        _assert_enum_subset(enum, model_config_pb2.DESCRIPTOR.enum_types_by_name[enum.name])


def _assert_enum_subset(ours: object, triton: object) -> None:
    assert {v.name: v.number for v in ours.values}.items() <= {v.name: v.number for v in triton.values}.items()


# --------------------------------------------------------------------------- health and metadata


def test_health(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    assert client.is_model_ready("mlp", "1")
    assert not client.is_model_ready("mlp", "2")
    assert not client.is_model_ready("no-such-model")


def test_server_metadata(client: grpcclient.InferenceServerClient) -> None:
    metadata = client.get_server_metadata(as_json=True)
    assert metadata == {"name": "modelport", "version": modelport.__version__, "extensions": EXTENSIONS}


def test_model_metadata(client: grpcclient.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("mlp")
    assert metadata.name == "mlp"
    assert list(metadata.versions) == ["1"]
    assert metadata.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("input", "FP32", [-1, 32])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [("output", "FP32", [-1, 4])]


def test_model_config(client: grpcclient.InferenceServerClient) -> None:
    config = client.get_model_config("mlp", as_json=True)["config"]
    assert config["name"] == "mlp"
    assert config["platform"] == "onnxruntime_onnx"
    assert config["backend"] == "onnxruntime"
    assert config["max_batch_size"] == 4
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": ["32"]}]
    assert config["output"] == [{"name": "output", "data_type": "TYPE_FP32", "dims": ["4"]}]
    assert "dynamic_batching" in config
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    assert config["version_policy"] == {"latest": {"num_versions": 1}}
    typed = client.get_model_config("dtypes").config
    assert [(t.name, t.data_type) for t in typed.input] == [("ints", 9), ("flags", 1), ("words", 13)]


# --------------------------------------------------------------------------- inference


def test_infer_fp32_is_bit_exact(client: grpcclient.InferenceServerClient, repo_dir: Path) -> None:
    array = _mlp_input()
    result = client.infer("mlp", [_fp32_input(array)], request_id="req-1")
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("mlp", "1", "req-1")
    output = result.as_numpy("output")
    assert output.dtype == np.float32 and output.shape == (3, 4)
    np.testing.assert_array_equal(output, _expected_mlp(repo_dir, array))


def test_infer_int64_bool_bytes(client: grpcclient.InferenceServerClient) -> None:
    ints = np.array([[1, -2, 2**40], [0, 5, -(2**62)]], dtype=np.int64)
    flags = np.array([[True, False, True], [False, False, True]])
    words = np.array([[b"hello", b""], ["wörld".encode(), b"a b\tc"]], dtype=object)
    inputs = []
    for name, array, datatype in (("ints", ints, "INT64"), ("flags", flags, "BOOL"), ("words", words, "BYTES")):
        tensor = grpcclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer("dtypes", inputs)
    np.testing.assert_array_equal(result.as_numpy("ints_out"), ints)
    np.testing.assert_array_equal(result.as_numpy("flags_out"), ~flags)
    assert result.as_numpy("words_out").tolist() == words.tolist()


def test_typed_contents(stub: service_pb2_grpc.GRPCInferenceServiceStub, repo_dir: Path) -> None:
    """Inputs in ``contents`` rather than raw bytes (what non-Python clients often send)."""
    request = service_pb2.ModelInferRequest(model_name="dtypes", id="typed")
    request.inputs.add(name="ints", datatype="INT64", shape=[1, 3]).contents.int64_contents.extend([7, -8, 9])
    request.inputs.add(name="flags", datatype="BOOL", shape=[1, 3]).contents.bool_contents.extend([True, True, False])
    request.inputs.add(name="words", datatype="BYTES", shape=[1, 2]).contents.bytes_contents.extend([b"a", b"bc"])
    response = stub.ModelInfer(request)
    assert response.id == "typed"
    raw = dict(zip((o.name for o in response.outputs), response.raw_output_contents, strict=True))
    assert np.frombuffer(raw["ints_out"], dtype="<i8").tolist() == [7, -8, 9]
    assert np.frombuffer(raw["flags_out"], dtype=np.bool_).tolist() == [False, False, True]
    assert deserialize_bytes_tensor(raw["words_out"]).tolist() == [b"a", b"bc"]

    array = _mlp_input(batch=2)
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=[2, 32]).contents.fp32_contents.extend(array.ravel())
    response = stub.ModelInfer(request)
    output = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 4)
    np.testing.assert_array_equal(output, _expected_mlp(repo_dir, array))


def test_classification(client: grpcclient.InferenceServerClient, repo_dir: Path) -> None:
    array = _mlp_input(batch=2, seed=3)
    result = client.infer(
        "mlp", [_fp32_input(array)], outputs=[grpcclient.InferRequestedOutput("output", class_count=2)]
    )
    scores = _expected_mlp(repo_dir, array)
    expected = [[f"{row[i]:f}:{i}".encode() for i in np.argsort(-row, kind="stable")[:2]] for row in scores]
    assert result.get_output("output").datatype == "BYTES"
    assert result.as_numpy("output").tolist() == expected


def test_stream_infer(client: grpcclient.InferenceServerClient, repo_dir: Path) -> None:
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    good = _mlp_input(batch=2, seed=5)
    client.async_stream_infer("mlp", [_fp32_input(good)], request_id="s-1")
    client.async_stream_infer("mlp", [_fp32_input(_mlp_input()[:, :16])], request_id="s-2")
    client.async_stream_infer("mlp", [_fp32_input(good)], request_id="s-3")
    received = [answers.get(timeout=30) for _ in range(3)]
    client.stop_stream()
    results = {result.get_response().id: result for result, error in received if error is None}
    errors = [error for _, error in received if error is not None]
    assert sorted(results) == ["s-1", "s-3"]
    for result in results.values():
        np.testing.assert_array_equal(result.as_numpy("output"), _expected_mlp(repo_dir, good))
    assert len(errors) == 1 and "'input'" in errors[0].message()


# --------------------------------------------------------------------------- statistics and repository


def test_statistics(client: grpcclient.InferenceServerClient) -> None:
    def stats() -> dict:
        (entry,) = client.get_inference_statistics("mlp", as_json=True)["model_stats"]
        return entry

    before = stats()
    for _ in range(2):
        client.infer("mlp", [_fp32_input(_mlp_input(batch=3))])
    after = stats()
    assert (after["name"], after["version"]) == ("mlp", "1")
    counts = {
        key: int(after["inference_stats"][key].get("count", 0)) - int(before["inference_stats"][key].get("count", 0))
        for key in ("success", "queue", "compute_input", "compute_infer", "compute_output")
    }
    assert counts == dict.fromkeys(counts, 2)
    assert int(after["inference_count"]) - int(before.get("inference_count", 0)) == 6
    assert int(after["execution_count"]) - int(before.get("execution_count", 0)) == 2
    assert int(after["inference_stats"]["compute_infer"]["ns"]) > 0
    assert int(after["last_inference"]) > 0
    assert {s["batch_size"] for s in after["batch_stats"]} >= {"3"}
    everything = client.get_inference_statistics(as_json=True)["model_stats"]
    assert [s["name"] for s in everything] == ["dtypes", "mlp"]


def test_repository_index(client: grpcclient.InferenceServerClient) -> None:
    index = client.get_model_repository_index(as_json=True)["models"]
    assert [(m["name"], m["version"], m["state"]) for m in index] == [("dtypes", "1", "READY"), ("mlp", "1", "READY")]


def test_unload_then_load(client: grpcclient.InferenceServerClient) -> None:
    client.unload_model("dtypes")
    try:
        assert not client.is_model_ready("dtypes")
        assert not client.is_server_ready()
        states = {m.name: m.state for m in client.get_model_repository_index().models}
        assert states == {"dtypes": "UNAVAILABLE", "mlp": "READY"}
        ints = grpcclient.InferInput("ints", [1, 3], "INT64")
        ints.set_data_from_numpy(np.zeros((1, 3), dtype=np.int64))
        error = _failure(lambda: client.infer("dtypes", [ints]))
        assert error.status() == "StatusCode.INVALID_ARGUMENT" and "not ready" in error.message()
    finally:
        client.load_model("dtypes")
    assert client.is_model_ready("dtypes")
    assert client.is_server_ready()


# --------------------------------------------------------------------------- errors


def test_unknown_model_is_not_found(client: grpcclient.InferenceServerClient, repo_dir: Path) -> None:
    error = _failure(lambda: client.infer("no-such-model", [_fp32_input(_mlp_input())]))
    assert error.status() == "StatusCode.NOT_FOUND" and "no-such-model" in error.message()
    _assert_valid_infer_works(client, repo_dir)
    for call in (lambda: client.get_model_metadata("no-such-model"), lambda: client.get_model_config("nope")):
        assert _failure(call).status() == "StatusCode.NOT_FOUND"
    assert _failure(lambda: client.unload_model("no-such-model")).status() == "StatusCode.NOT_FOUND"


def test_wrong_shape_is_invalid_argument(client: grpcclient.InferenceServerClient, repo_dir: Path) -> None:
    error = _failure(lambda: client.infer("mlp", [_fp32_input(_mlp_input()[:, :31])]))
    assert error.status() == "StatusCode.INVALID_ARGUMENT" and "'input'" in error.message()
    _assert_valid_infer_works(client, repo_dir)


def test_wrong_datatype_is_invalid_argument(client: grpcclient.InferenceServerClient, repo_dir: Path) -> None:
    tensor = grpcclient.InferInput("input", [1, 32], "INT32")
    tensor.set_data_from_numpy(np.zeros((1, 32), dtype=np.int32))
    error = _failure(lambda: client.infer("mlp", [tensor]))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "'input'" in error.message() and "INT32" in error.message()
    _assert_valid_infer_works(client, repo_dir)


def test_raw_size_mismatch_is_invalid_argument(client: grpcclient.InferenceServerClient, repo_dir: Path) -> None:
    tensor = _fp32_input(_mlp_input(batch=1))
    tensor.set_shape([1, 31])  # declares 124 bytes, carries 128
    error = _failure(lambda: client.infer("mlp", [tensor]))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "'input'" in error.message() and "128 bytes" in error.message()
    _assert_valid_infer_works(client, repo_dir)


def test_malformed_contents_are_invalid_argument(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    cases = []
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP16", shape=[1, 2]).contents.fp32_contents.extend([1, 2])
    cases.append((request, "raw_input_contents"))
    request = service_pb2.ModelInferRequest(model_name="mlp", raw_input_contents=[b"", b""])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 0])
    cases.append((request, "2 entries for 1 inputs"))
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 32]).contents.fp32_contents.extend([1.0] * 31)
    cases.append((request, "31 elements"))
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP8", shape=[1])
    cases.append((request, "'FP8'"))
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=[1, -32])
    cases.append((request, "negative"))
    for request, needle in cases:
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, needle
        assert needle in caught.value.details()


def test_oversized_request_is_resource_exhausted(client: grpcclient.InferenceServerClient, repo_dir: Path) -> None:
    big = np.zeros((MAX_MESSAGE_BYTES // 128 + 1, 32), dtype=np.float32)
    error = _failure(lambda: client.infer("mlp", [_fp32_input(big)]))
    assert error.status() == "StatusCode.RESOURCE_EXHAUSTED"
    _assert_valid_infer_works(client, repo_dir)


def test_bug_is_internal_and_server_keeps_serving(
    client: grpcclient.InferenceServerClient, repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(model: object, request: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("modelport.serving.grpc.service.infer", broken)
    error = _failure(lambda: client.infer("mlp", [_fp32_input(_mlp_input())], request_id="r-bug"))
    assert error.status() == "StatusCode.INTERNAL"
    assert "'mlp'" in error.message() and "r-bug" in error.message() and "boom" in error.message()
    monkeypatch.undo()
    _assert_valid_infer_works(client, repo_dir)


# --------------------------------------------------------------------------- transport


def test_undecodable_request_is_invalid_argument(
    url: str, client: grpcclient.InferenceServerClient, repo_dir: Path
) -> None:
    with grpc.insecure_channel(url) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as caught:
            call(b"\x0a\xff\xff", timeout=30)  # a length prefix running past the end
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "ModelInfer: the request is not a valid protobuf message"
    _assert_valid_infer_works(client, repo_dir)


def test_unknown_method_is_unimplemented(url: str) -> None:
    with grpc.insecure_channel(url) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary("/inference.GRPCInferenceService/Nope")(b"", timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_cancelled_stream_leaves_the_server_serving(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, client: grpcclient.InferenceServerClient, repo_dir: Path
) -> None:
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 32])
    request.raw_input_contents.append(_mlp_input(batch=1).tobytes())
    never_ends: queue.Queue = queue.Queue()
    never_ends.put(request)
    responses = stub.ModelStreamInfer(iter(never_ends.get, None), timeout=30)
    first = next(responses)
    assert not first.error_message and first.infer_response.model_name == "mlp"
    responses.cancel()
    never_ends.put(None)  # lets the channel's request-sending thread finish
    with pytest.raises(grpc.RpcError) as caught:
        next(responses)
    assert caught.value.code() == grpc.StatusCode.CANCELLED
    _assert_valid_infer_works(client, repo_dir)


@pytest.fixture(scope="module")
def batched_url(tmp_path_factory: pytest.TempPathFactory, repo_dir: Path) -> Iterator[str]:
    """The mlp behind dynamic batching: concurrent calls share model runs."""
    root = tmp_path_factory.mktemp("batched")
    (root / "mlp" / "1").mkdir(parents=True)
    (root / "mlp" / "1" / "model.onnx").write_bytes((repo_dir / "mlp" / "1" / "model.onnx").read_bytes())
    (root / "mlp" / "config.pbtxt").write_text("max_batch_size: 16\ndynamic_batching { }\n")
    with _serving(root) as address:
        yield address


def test_concurrent_calls_get_their_own_answers_through_the_batcher(batched_url: str, repo_dir: Path) -> None:
    """Many calls in flight at once are batched together; each still gets the rows it sent."""
    rows = _mlp_input(batch=256, seed=11)
    expected = _expected_mlp(repo_dir, rows)

    def one_client(start: int) -> list[np.ndarray]:
        with grpcclient.InferenceServerClient(batched_url) as triton:
            return [
                triton.infer("mlp", [_fp32_input(rows[i : i + 1])], request_id=str(i)).as_numpy("output")
                for i in range(start, 256, 16)
            ]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one_client, range(16)))
    for start, outputs in enumerate(answers):
        np.testing.assert_allclose(np.concatenate(outputs), expected[start::16], rtol=1e-5, atol=1e-6)
    with grpcclient.InferenceServerClient(batched_url) as triton:
        (stats,) = triton.get_inference_statistics("mlp", as_json=True)["model_stats"]
    assert int(stats["inference_stats"]["success"]["count"]) == 256
    assert int(stats["inference_count"]) == 256 and int(stats["execution_count"]) < 256


def test_stop_with_grace_returns_once_idle_and_frees_the_port(repo_dir: Path) -> None:
    with _serving(repo_dir, grace=20) as address:
        with grpcclient.InferenceServerClient(address) as triton:
            assert triton.is_server_live()
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 10  # nothing in flight: no need to wait out the grace
    with grpcclient.InferenceServerClient(address) as triton:
        with pytest.raises(InferenceServerException):
            triton.is_server_live(client_timeout=5)
