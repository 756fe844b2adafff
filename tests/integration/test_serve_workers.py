"""``serve --workers N``: one port, several processes, statistics that count them all, workers
started again when they die, a clean stop, and one error line when the model cannot load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from conftest import Server, free_port
from prometheus_client.parser import text_string_to_metric_families

from modelport.samples import build_mlp_onnx

BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [0.25] * 32}]}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workers")
    build_mlp_onnx(root / "mlp" / "1" / "model.onnx")
    return root


def _workers(server: Server) -> list[int]:
    return [
        int(pid)
        for pid in subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    ]


def _all_serving(server: Server, count: int) -> list[int]:
    """The worker pids once ``count`` of them serve (the first is ready before the others start)."""
    deadline = time.monotonic() + 60
    while True:
        text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text
        if text.count("modelport_worker_resident_memory_bytes{") == count and len(_workers(server)) == count:
            return _workers(server)
        assert time.monotonic() < deadline, text
        time.sleep(0.1)


def _success(text: str) -> float:
    return next(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "nv_inference_request_success_total"
    )


def test_workers_share_the_port_and_count_together(repo: Path, tmp_path: Path) -> None:
    server = Server([str(repo), "--workers", "2", "--request-log", str(tmp_path / "requests.jsonl")])
    try:
        _all_serving(server, 2)
        for _ in range(40):  # a new connection each time: the kernel spreads them over the workers
            with httpx.Client() as client:
                assert client.post(f"{server.url}/v2/models/mlp/infer", json=BODY).status_code == 200
        grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        batch = grpcclient.InferInput("input", [1, 32], "FP32")
        batch.set_data_from_numpy(np.full((1, 32), 0.25, dtype=np.float32))
        grpc.infer("mlp", [batch])
        metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text
        from_worker = httpx.get(f"{server.url}/metrics").text
        stats = httpx.get(f"{server.url}/v2/models/mlp/stats").json()["model_stats"][0]
        config = httpx.get(f"{server.url}/v2/models/mlp/config").json()
    finally:
        assert server.stop() == 0
    cores = len(os.sched_getaffinity(0))
    assert config["parameters"]["intra_op_thread_count"] == {"string_value": str(max(1, cores // 2))}
    assert config["parameters"]["share_weights"] == {"string_value": "true"}
    assert _success(metrics) == 41 and _success(from_worker) == 41
    assert stats["inference_stats"]["success"]["count"] == 41
    assert 'modelport_worker_resident_memory_bytes{worker="1"}' in metrics
    logs = sorted(tmp_path.glob("requests.w*.jsonl"))
    assert [p.name for p in logs] == ["requests.w0.jsonl", "requests.w1.jsonl"]
    lines = [json.loads(line) for p in logs for line in p.read_text().splitlines()]
    assert sum(line["path"] == "/v2/models/mlp/infer" for line in lines) == 40
    assert all(p.read_text() for p in logs), "both workers took connections"


def test_a_dead_worker_is_replaced_and_a_stop_stops_all(repo: Path) -> None:
    server = Server([str(repo), "--workers", "2", "--no-share-weights"], grpc=False)
    try:
        first = _all_serving(server, 2)
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while set(_workers(server)) & set(first) != {first[1]} or len(_workers(server)) != 2:
            assert time.monotonic() < deadline, _workers(server)
            time.sleep(0.1)
        _all_serving(server, 2)
        for _ in range(10):
            with httpx.Client() as client:
                assert client.post(f"{server.url}/v2/models/mlp/infer", json=BODY).status_code == 200
        everyone = _workers(server)
    finally:
        assert server.stop() == 0
    assert not [pid for pid in everyone if Path(f"/proc/{pid}").exists()]
    assert "exited (-9); starting it again" in server.proc.stderr.read()


def test_a_model_that_cannot_load_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad" / "1").mkdir(parents=True)
    (tmp_path / "bad" / "1" / "model.onnx").write_bytes(b"not an onnx model")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelport",
            "serve",
            str(tmp_path),
            "--workers",
            "3",
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--no-grpc",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "model.onnx" in lines[0]


def test_a_busy_port_is_one_error_line(repo: Path) -> None:
    server = Server([str(repo)], grpc=False)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelport",
                "serve",
                str(repo),
                "--workers",
                "2",
                "--http-port",
                str(server.http_port),
                "--no-grpc",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.stop()
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: --http-port: cannot listen on 127.0.0.1:{server.http_port} (Address already in use)"
    )
