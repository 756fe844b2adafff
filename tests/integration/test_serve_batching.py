"""Dynamic batching through the real server: concurrent batch-1 requests are executed together
(Triton checklist: execution_count < inference_count), answers stay per request, and a full
queue answers 503 at once."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from conftest import Server

from modelport.samples import build_mlp_onnx


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("batching")
    build_mlp_onnx(root / "mlp" / "1" / "model.onnx")
    (root / "mlp" / "config.pbtxt").write_text(
        "max_batch_size: 16\ndynamic_batching { max_queue_delay_microseconds: 5000 }\n"
    )
    build_mlp_onnx(root / "tiny_queue" / "1" / "model.onnx", sizes=(256, 1024, 1024, 1024, 16))
    (root / "tiny_queue" / "config.pbtxt").write_text(
        "max_batch_size: 1\ndynamic_batching { default_queue_policy { max_queue_size: 1 } }\n"
    )
    srv = Server([str(root)], grpc=False)
    srv.root = root
    yield srv
    assert srv.stop() == 0


async def _infer_many(url: str, rows: np.ndarray) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        bodies = [
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, rows.shape[1]], "data": row.tolist()}]}
            for row in rows
        ]
        return await asyncio.gather(*(client.post(url, json=body) for body in bodies))


def test_concurrent_requests_are_batched_and_answers_stay_per_request(server: Server) -> None:
    x = np.random.default_rng(5).standard_normal((64, 32)).astype(np.float32)
    replies = asyncio.run(_infer_many(f"{server.url}/v2/models/mlp/infer", x))
    assert all(r.status_code == 200 for r in replies)
    got = np.array([r.json()["outputs"][0]["data"] for r in replies], dtype=np.float32)
    expected = ort.InferenceSession(str(server.root / "mlp" / "1" / "model.onnx")).run(None, {"input": x})[0]
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-6)  # batched GEMMs may round differently
    stats = httpx.get(f"{server.url}/v2/models/mlp/stats").json()["model_stats"][0]
    assert stats["inference_count"] == 64
    assert stats["execution_count"] < 64
    assert max(b["batch_size"] for b in stats["batch_stats"]) <= 16


def test_full_queue_answers_503(server: Server) -> None:
    x = np.zeros((24, 256), dtype=np.float32)
    replies = asyncio.run(_infer_many(f"{server.url}/v2/models/tiny_queue/infer", x))
    codes = [r.status_code for r in replies]
    assert set(codes) <= {200, 503} and 503 in codes and 200 in codes
    assert all("queue" in r.json()["error"] for r in replies if r.status_code == 503)
    stats = httpx.get(f"{server.url}/v2/models/tiny_queue/stats").json()["model_stats"][0]["inference_stats"]
    assert stats["fail"]["count"] == codes.count(503)  # refused in the HTTP protocol or the queue: counted alike


def test_model_config_option_tunes_batching_and_instances(server: Server, tmp_path) -> None:  # noqa: ANN001
    overrides = (
        '{"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 2000}, '
        '"instance_group": [{"count": 2}]}'
    )
    tuned = Server([str(server.root / "mlp"), "--model-config", overrides], grpc=False)
    try:
        config = httpx.get(f"{tuned.url}/v2/models/mlp/config").json()
        x = np.random.default_rng(6).standard_normal((32, 32)).astype(np.float32)
        replies = asyncio.run(_infer_many(f"{tuned.url}/v2/models/mlp/infer", x))
        stats = httpx.get(f"{tuned.url}/v2/models/mlp/stats").json()["model_stats"][0]
    finally:
        assert tuned.stop() == 0
    assert config["max_batch_size"] == 8
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert config["dynamic_batching"]["preserve_ordering"] is False  # the model's own fields stay
    assert config["instance_group"][0]["count"] == 2
    assert all(r.status_code == 200 for r in replies)
    assert max(b["batch_size"] for b in stats["batch_stats"]) <= 8


def test_bad_model_config_option_names_the_field(server: Server, sqlite_cli) -> None:  # noqa: ANN001
    result = sqlite_cli("serve", str(server.root / "mlp"), "--model-config", '{"max_batch_size": -2}', "--no-grpc")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --model-config: max_batch_size: input should be greater than or equal to 0"
    result = sqlite_cli("serve", str(server.root), "--model-config", '{"max_batch_size": 2}', "--no-grpc")
    assert "--model-config: applies to exactly one served model, not 2" in result.stderr
