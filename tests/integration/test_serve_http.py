"""``modelport serve`` over HTTP, driven by the clients people use: tritonclient, raw httpx,
perf_analyzer. The server is a real subprocess on loopback."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from conftest import Server

from modelport.samples import build_dtypes_onnx, build_mlp_onnx

tritonhttp = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    build_mlp_onnx(root / "mlp" / "1" / "model.onnx", seed=1)
    build_mlp_onnx(root / "mlp" / "2" / "model.onnx", seed=2)
    (root / "mlp" / "config.pbtxt").write_text(
        'name: "mlp"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
        "version_policy: { all { } }\n"
        'output [ { name: "output" data_type: TYPE_FP32 dims: [ 4 ] label_filename: "labels.txt" } ]\n'
    )
    (root / "mlp" / "labels.txt").write_text("cat\ndog\nbird\nfish\n")
    build_dtypes_onnx(root / "dtypes" / "1" / "model.onnx")
    return root


@pytest.fixture(scope="module")
def server(repo: Path):  # noqa: ANN201
    srv = Server([str(repo)])
    yield srv
    assert srv.stop() == 0


@pytest.fixture
def client(server: Server):  # noqa: ANN201
    return tritonhttp.InferenceServerClient(f"127.0.0.1:{server.http_port}")


def _reference(repo: Path, model: str, version: int, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(repo / model / str(version) / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_server_and_model_metadata(client, server: Server) -> None:  # noqa: ANN001
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "modelport" and "binary_tensor_data" in meta["extensions"]
    model = client.get_model_metadata("mlp")
    assert model["versions"] == ["2"]  # highest loaded version by default
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 32]}]
    assert client.get_model_metadata("mlp", "1")["versions"] == ["1"]
    config = client.get_model_config("mlp")
    assert config["max_batch_size"] == 8 and config["input"][0]["data_type"] == "TYPE_FP32"
    assert client.is_model_ready("mlp", "1") and not client.is_model_ready("nope")


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("version", ["1", "2"])
def test_fp32_bit_exact(client, repo: Path, binary: bool, version: str) -> None:  # noqa: ANN001
    x = np.random.default_rng(7).standard_normal((5, 32)).astype(np.float32)
    tensor = tritonhttp.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    out = tritonhttp.InferRequestedOutput("output", binary_data=binary)
    result = client.infer("mlp", [tensor], model_version=version, outputs=[out], request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    [expected] = _reference(repo, "mlp", int(version), {"input": x})
    assert np.array_equal(result.as_numpy("output"), expected)


@pytest.mark.parametrize("binary", [True, False])
def test_int64_bool_bytes(client, binary: bool) -> None:  # noqa: ANN001
    ints = np.array([[1, -2, 2**40], [0, 5, -(2**50)]], dtype=np.int64)
    flags = np.array([[True, False, True], [False, False, True]])
    words = np.array([[b"hello", b""], ["naïve".encode(), b"a\x00b"]], dtype=object)
    inputs = []
    for name, array, datatype in (("ints", ints, "INT64"), ("flags", flags, "BOOL"), ("words", words, "BYTES")):
        tensor = tritonhttp.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    result = client.infer("dtypes", inputs)  # no outputs listed: all of them, binary by default
    assert np.array_equal(result.as_numpy("ints_out"), ints)
    assert np.array_equal(result.as_numpy("flags_out"), ~flags)
    assert result.as_numpy("words_out").tolist() == words.tolist()


def test_classification_with_labels(client, repo: Path) -> None:  # noqa: ANN001
    x = np.random.default_rng(3).standard_normal((2, 32)).astype(np.float32)
    tensor = tritonhttp.InferInput("input", [2, 32], "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("mlp", [tensor], outputs=[tritonhttp.InferRequestedOutput("output", class_count=2)])
    [scores] = _reference(repo, "mlp", 2, {"input": x})
    top = result.as_numpy("output")
    assert top.shape == (2, 2)
    labels = ["cat", "dog", "bird", "fish"]
    for row, ranked in zip(scores, top):
        best = int(np.argmax(row))
        assert ranked[0].decode() == f"{row[best]:f}:{best}:{labels[best]}"


def test_batch_above_max_and_errors_are_400(client) -> None:  # noqa: ANN001
    x = np.zeros((9, 32), dtype=np.float32)
    tensor = tritonhttp.InferInput("input", [9, 32], "FP32")
    tensor.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="batch-size must be <= 8"):
        client.infer("mlp", [tensor])
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope", [tensor])


def test_gzip_request_and_response(server: Server) -> None:
    body = b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,32],"data":[' + b",".join([b"0.5"] * 32) + b"]}]}"
    response = httpx.post(
        f"{server.url}/v2/models/mlp/infer",
        content=gzip.compress(body),
        headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip"},
    )
    assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
    assert response.json()["outputs"][0]["shape"] == [1, 4]  # httpx decompressed it
    bad = httpx.post(f"{server.url}/v2/models/mlp/infer", content=body, headers={"Content-Encoding": "br"})
    assert bad.status_code == 501


GOOD = b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,32],"data":[' + b",".join([b"1"] * 32) + b"]}]}"


def _binary_request(count_bytes: int, declared: int) -> tuple[bytes, dict[str, str]]:
    header = (
        b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,32],"parameters":{"binary_data_size":'
        + str(declared).encode()
        + b"}}]}"
    )
    return header + b"\0" * count_bytes, {"Inference-Header-Content-Length": str(len(header))}


MALFORMED = {
    "truncated binary": _binary_request(64, 128),
    "wrong byte count": _binary_request(128, 100),
    "header beyond body": (GOOD, {"Inference-Header-Content-Length": "100000"}),
    "negative header": (GOOD, {"Inference-Header-Content-Length": "-5"}),
    "wrong shape": (GOOD.replace(b"[1,32]", b"[2,32]"), {}),
    "wrong rank": (GOOD.replace(b"[1,32]", b"[32]"), {}),
    "unknown datatype": (GOOD.replace(b"FP32", b"FP33"), {}),
    "wrong datatype": (GOOD.replace(b"FP32", b"INT32"), {}),
    "deep nesting": (
        b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1],"data":' + b"[" * 1000 + b"]" * 1000 + b"}]}",
        {},
    ),
    "invalid utf-8": (b'{"inputs":[{"name":"\xff\xfe","datatype":"FP32","shape":[1],"data":[1]}]}', {}),
    "not json": (b"{{{", {}),
    "missing inputs": (b"{}", {}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_are_4xx_and_server_keeps_serving(server: Server, case: str) -> None:
    body, headers = MALFORMED[case]
    response = httpx.post(f"{server.url}/v2/models/mlp/infer", content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]
    assert httpx.post(f"{server.url}/v2/models/mlp/infer", content=GOOD).status_code == 200


def test_unknown_models_versions_and_paths(server: Server) -> None:
    for path, status in [
        ("/v2/models/nope", 404),
        ("/v2/models/mlp/versions/7", 404),
        ("/v2/models/nope/ready", 404),
        ("/v2/models/mlp/versions/7/ready", 404),
        ("/v2/nothing", 404),
    ]:
        response = httpx.get(server.url + path)
        assert response.status_code == status and response.json()["error"], path
    assert httpx.post(f"{server.url}/v2/models/nope/infer", content=GOOD).status_code == 404
    assert httpx.post(f"{server.url}/v2/health/live").status_code == 405


def test_huge_content_length_is_413(server: Server) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n{")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:100]
    assert httpx.post(f"{server.url}/v2/models/mlp/infer", content=GOOD).status_code == 200


def test_repository_index_unload_load(client) -> None:  # noqa: ANN001
    index = client.get_model_repository_index()
    assert {(m["name"], m["version"], m["state"]) for m in index} >= {("mlp", "1", "READY"), ("dtypes", "1", "READY")}
    client.unload_model("dtypes")
    assert not client.is_model_ready("dtypes")
    assert not client.is_server_ready()
    client.load_model("dtypes")
    assert client.is_model_ready("dtypes") and client.is_server_ready()


def test_grpc_port_of_the_same_server(server: Server, repo: Path) -> None:
    import tritonclient.grpc as tritongrpc

    client = tritongrpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    x = np.random.default_rng(11).standard_normal((2, 32)).astype(np.float32)
    tensor = tritongrpc.InferInput("input", [2, 32], "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("mlp", [tensor], model_version="1")
    [expected] = _reference(repo, "mlp", 1, {"input": x})
    assert np.array_equal(result.as_numpy("output"), expected)


def test_stats_and_metrics_grow_with_traffic(client, server: Server) -> None:  # noqa: ANN001
    before = client.get_inference_statistics("mlp", "2")["model_stats"][0]
    assert httpx.post(f"{server.url}/v2/models/mlp/versions/2/infer", content=GOOD).status_code == 200
    after = client.get_inference_statistics("mlp", "2")["model_stats"][0]
    assert int(after["inference_count"]) == int(before["inference_count"]) + 1
    assert int(after["execution_count"]) == int(before["execution_count"]) + 1
    for key in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
        assert int(after["inference_stats"][key]["count"]) == int(before["inference_stats"][key]["count"]) + 1
    metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text
    assert 'nv_inference_request_success{model="mlp",version="2"}' in metrics
    assert "nv_inference_compute_infer_duration_us" in metrics and "process_cpu_seconds_total" in metrics


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer(server: Server, perf_analyzer: str, protocol: str) -> None:
    port = server.http_port if protocol == "http" else server.grpc_port
    result = subprocess.run(
        [
            perf_analyzer,
            "-m",
            "mlp",
            "-u",
            f"127.0.0.1:{port}",
            "-i",
            protocol,
            "--concurrency-range",
            "1:4",
            "--measurement-mode",
            "count_windows",
            "--measurement-request-count",
            "300",
            "--max-trials",
            "10",
            "--stability-percentage",
            "999",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    text = result.stdout + result.stderr
    assert "Client:" in text and "Server:" in text, text[-3000:]
    throughputs = [
        float(line.split("throughput:")[1].split()[0]) for line in text.splitlines() if "throughput:" in line
    ]
    assert len(throughputs) == 4 and min(throughputs) > 0, text[-3000:]
