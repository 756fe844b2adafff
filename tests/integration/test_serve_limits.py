"""Server limits with a deliberately slow model: per-request timeout and graceful shutdown."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import Server

from modelport.samples import build_mlp_onnx

ROWS = 2048


@pytest.fixture(scope="module")
def slow_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The "medium" MLP taking whole [N, 256] tensors (no batching): ~0.1–1 s for 2,048 rows."""
    root = tmp_path_factory.mktemp("slow")
    build_mlp_onnx(root / "slow" / "1" / "model.onnx", sizes=(256, 1024, 1024, 1024, 16))
    (root / "slow" / "config.yaml").write_text(
        "max_batch_size: 0\n"
        "input: [{name: input, data_type: TYPE_FP32, dims: [-1, 256]}]\n"
        "output: [{name: output, data_type: TYPE_FP32, dims: [-1, 16]}]\n"
    )
    return root


def _body() -> bytes:
    x = np.random.default_rng(0).standard_normal((ROWS, 256)).astype(np.float32)
    header = (
        b'{"inputs":[{"name":"input","datatype":"FP32","shape":[%d,256],"parameters":{"binary_data_size":%d}}],'
        b'"outputs":[{"name":"output","parameters":{"binary_data":true}}]}' % (ROWS, x.nbytes)
    )
    return header + x.tobytes(), len(header)


def test_request_timeout_is_503_and_server_recovers(slow_repo: Path) -> None:
    server = Server([str(slow_repo), "--request-timeout-ms", "20"], grpc=False)
    try:
        body, header = _body()
        response = httpx.post(
            f"{server.url}/v2/models/slow/infer",
            content=body,
            headers={"Inference-Header-Content-Length": str(header)},
            timeout=60,
        )
        assert response.status_code == 503 and "timeout" in response.json()["error"]
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    finally:
        assert server.stop() == 0


def _wait_pending(server: Server, at_least: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text
        line = next(row for row in metrics.splitlines() if row.startswith("nv_inference_pending_request_count{"))
        if float(line.rsplit(" ", 1)[1]) >= at_least:
            return
        time.sleep(0.01)
    raise AssertionError("requests never queued up")


def test_graceful_shutdown_finishes_in_flight_requests(slow_repo: Path) -> None:
    server = Server([str(slow_repo)], grpc=False)
    body, header = _body()
    results: list[tuple[int, float]] = []

    def call() -> None:
        response = httpx.post(
            f"{server.url}/v2/models/slow/infer",
            content=body,
            headers={"Inference-Header-Content-Length": str(header)},
            timeout=60,
        )
        results.append((response.status_code, time.monotonic()))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    _wait_pending(server, at_least=4)  # six ~0.1 s runs queue on one instance
    stopping = time.monotonic()
    assert server.stop() == 0
    for thread in threads:
        thread.join(timeout=60)
    assert [status for status, _ in results] == [200] * 6
    assert max(done for _, done in results) > stopping  # some finished after SIGTERM, not refused


def test_overloaded_server_refuses_at_once_then_serves(slow_repo: Path) -> None:
    """A 20 MB JSON body keeps the event loop busy decoding for a good tenth of a second: requests
    that arrive meanwhile are answered 503 by the HTTP protocol (``--max-lag-ms``), counted as
    failures, and the server answers normally right after."""
    server = Server([str(slow_repo), "--max-lag-ms", "20"], grpc=False)
    try:
        big = np.random.default_rng(0).standard_normal((2 * ROWS, 256)).astype(np.float32)
        heavy = {
            "inputs": [{"name": "input", "datatype": "FP32", "shape": list(big.shape), "data": big.ravel().tolist()}]
        }
        light = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 256], "data": [0.5] * 256}]}
        url = f"{server.url}/v2/models/slow/infer"
        statuses: list[tuple[int, str]] = []

        def post_heavy() -> None:
            reply = httpx.post(url, json=heavy, timeout=60)
            statuses.append((reply.status_code, reply.text))

        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # tries: a light request must land while the body is decoded
                thread = threading.Thread(target=post_heavy)
                thread.start()
                while thread.is_alive():
                    reply = client.post(url, json=light)
                    statuses.append((reply.status_code, reply.text))
                thread.join()
                if any("overloaded" in text for _, text in statuses):
                    break
            refused = [text for status, text in statuses if status == 503]
            assert refused and all("overloaded" in text for text in refused)
            assert {status for status, _ in statuses} <= {200, 503}
            after = [client.post(url, json=light) for _ in range(3)]
        assert 200 in [reply.status_code for reply in after]
        refused += [reply.text for reply in after if reply.status_code == 503]
        stats = httpx.get(f"{server.url}/v2/models/slow/stats").json()["model_stats"][0]
        assert stats["inference_stats"]["fail"]["count"] == len(refused)
    finally:
        assert server.stop() == 0
