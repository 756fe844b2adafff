"""Operations on a real scoring server: Prometheus metrics that count exactly, the request log,
and sampled payload collection into readable Parquet and JSONL files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import Server
from prometheus_client.parser import text_string_to_metric_families

from modelport.samples import build_mlp_onnx

COLLECT_BOTH = {"collections": {"model_inputs": {"enabled": "True"}, "model_outputs": {"enabled": "True"}}}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ops")
    build_mlp_onnx(root / "mlp" / "1" / "model.onnx")
    return root


def _body(i: int, rows: int = 1) -> dict:
    x = np.random.default_rng(i).standard_normal((rows, 32)).astype(np.float32)
    return {
        "id": f"req-{i}",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 32], "data": x.ravel().tolist()}],
    }


def _samples(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(url).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted({"model": "mlp", "version": "1", **labels}.items()))), 0.0)


async def _send(url: str, bodies: list[dict], concurrency: int = 16) -> list[int]:
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(body: dict) -> int:
            async with slots, session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=30)) as reply:
                await reply.read()
                return reply.status

        return await asyncio.gather(*(one(body) for body in bodies))


def test_metrics_parse_and_move_by_exactly_the_requests_made(repo: Path, tmp_path: Path) -> None:
    server = Server([str(repo), "--request-log", str(tmp_path / "requests.jsonl")], grpc=False)
    metrics = f"http://127.0.0.1:{server.metrics_port}/metrics"
    try:
        before = _samples(metrics)
        good = [_body(i) for i in range(37)]
        bad = [{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}] * 5
        statuses = asyncio.run(_send(f"{server.url}/v2/models/mlp/infer", good + bad))
        after = _samples(metrics)
        again = _samples(f"{server.url}/metrics")  # the HTTP port serves the same exposition
    finally:
        assert server.stop() == 0
    assert statuses.count(200) == 37 and statuses.count(400) == 5

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    # the parser names counter samples ``<family>_total``; the text itself has Triton's exact names
    assert moved("nv_inference_request_success_total") == 37
    assert moved("nv_inference_request_failure_total", reason="OTHER") == 5
    assert moved("nv_inference_count_total") == 37
    assert moved("modelport_inference_request_duration_seconds_count") == 42
    assert moved("modelport_inference_request_duration_seconds_bucket", le="+Inf") == 42
    assert moved("modelport_inference_batch_size_sum") == 37  # every row executed once
    assert _value(again, "nv_inference_request_success_total") == _value(after, "nv_inference_request_success_total")
    assert ("process_resident_memory_bytes", ()) in after and ("process_cpu_seconds_total", ()) in after
    assert not any(name.startswith("nv_gpu_") for name, _ in after)  # no GPU here: no GPU metrics, no error

    lines = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert len(lines) == 42
    assert sorted(line["status"] for line in lines) == [200] * 37 + [400] * 5
    ok = next(line for line in lines if line["request_id"] == "req-3")
    assert ok["model"] == "mlp" and ok["version"] == "1" and ok["path"] == "/v2/models/mlp/infer"
    assert ok["batch_size"] >= 1 and ok["latency_ms"] > 0 and ok["queue_ms"] >= 0
    assert set(ok) == {
        "time",
        "request_id",
        "endpoint",
        "deployment",
        "model",
        "version",
        "method",
        "path",
        "status",
        "latency_ms",
        "queue_ms",
        "batch_size",
    }


def test_sampled_collection_keeps_a_tenth_readable_and_joinable(repo: Path, tmp_path: Path) -> None:
    collector = {**COLLECT_BOTH, "sampling_rate": 0.1}
    server = Server(
        [
            str(repo),
            "--data-collector",
            json.dumps(collector),
            "--collect-dir",
            str(tmp_path / "c"),
            "--request-log",
            str(tmp_path / "requests.jsonl"),
        ],
        grpc=False,
    )
    try:
        statuses = asyncio.run(_send(f"{server.url}/v2/models/mlp/infer", [_body(i) for i in range(10_000)]))
        counters = _samples(f"http://127.0.0.1:{server.metrics_port}/metrics")
    finally:
        assert server.stop() == 0  # a graceful stop flushes what is buffered
    assert statuses.count(200) == 10_000
    inputs = [pd.read_parquet(path) for path in sorted((tmp_path / "c" / "model_inputs").rglob("*.parquet"))]
    outputs = [pd.read_parquet(path) for path in sorted((tmp_path / "c" / "model_outputs").rglob("*.parquet"))]
    assert not list((tmp_path / "c").rglob("*.tmp"))
    inputs, outputs = pd.concat(inputs), pd.concat(outputs)
    assert 900 <= len(inputs) <= 1100  # binomial(10000, 0.1): 1000 ± 3.3 sigma
    assert counters[("modelport_collection_dropped_total", ())] == 0
    assert 0 < counters[("modelport_collection_records_total", ())] <= len(inputs)  # the rest was still queued
    assert list(inputs.columns[:3]) == ["request_id", "time", "row"]
    assert [f"input_{j}" for j in range(32)] == list(inputs.columns[3:])
    assert inputs["request_id"].is_unique and set(inputs["request_id"]) == set(outputs["request_id"])
    logged = {json.loads(line)["request_id"] for line in (tmp_path / "requests.jsonl").read_text().splitlines()}
    assert set(inputs["request_id"]) <= logged and len(logged) == 10_000
    one = inputs.iloc[0]
    i = int(one["request_id"].removeprefix("req-"))
    expected = np.asarray(_body(i)["inputs"][0]["data"], dtype=np.float32)
    assert np.array_equal(one[[f"input_{j}" for j in range(32)]].to_numpy(dtype=np.float32), expected)


def test_jsonl_collection_follows_azures_layout(repo: Path, tmp_path: Path) -> None:
    collector = {**COLLECT_BOTH, "format": "jsonl", "rolling_rate": "Hour"}
    server = Server(
        [
            str(repo),
            "--data-collector",
            json.dumps(collector),
            "--collect-dir",
            str(tmp_path / "c"),
            "--endpoint-name",
            "fraud",
            "--deployment-name",
            "blue",
        ],
        grpc=False,
    )
    try:
        assert set(asyncio.run(_send(f"{server.url}/v2/models/mlp/infer", [_body(i, 2) for i in range(20)]))) == {200}
    finally:
        assert server.stop() == 0
    files = list((tmp_path / "c" / "model_inputs").rglob("*.jsonl"))
    assert len(files) == 1 and len(files[0].relative_to(tmp_path / "c" / "model_inputs").parts) == 5  # YYYY/MM/DD/HH
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert len(lines) == 20
    line = next(line for line in lines if line["correlationid"] == "req-4")
    assert line["type"] == "azureml.inference.model_inputs" and line["source"] == "/endpoints/fraud/deployments/blue"
    assert line["specversion"] == "1.0" and line["time"].endswith("Z") and line["modelversion"] == "1"
    assert len(line["data"]) == 2 and set(line["data"][0]) == {f"input_{j}" for j in range(32)}
    outputs = [json.loads(x) for f in (tmp_path / "c" / "model_outputs").rglob("*.jsonl") for x in f.open()]
    assert {o["correlationid"] for o in outputs} == {f"req-{i}" for i in range(20)}


@pytest.mark.parametrize(
    ("collector", "message"),
    [
        ('{"sampling_rate": 3}', "--data-collector: sampling_rate: 3 is more than 1"),
        (
            '{"collections": {"request": {"enabled": true}}}',
            "--data-collector: collections.request: unknown collection",
        ),
        ('{"format": "csv"}', "--data-collector: format: 'csv' is not one of parquet, jsonl"),
        ("nowhere.yml", "--data-collector: nowhere.yml is neither a file nor a JSON mapping"),
    ],
)
def test_bad_collector_settings_name_the_field(repo: Path, sqlite_cli, collector: str, message: str) -> None:  # noqa: ANN001
    result = sqlite_cli("serve", str(repo), "--data-collector", collector, "--no-grpc")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: {message}")


COLLECTING_SCORE_PY = """
import json
import pandas as pd
from azureml.ai.monitoring import Collector

def init():
    global inputs_collector, outputs_collector
    inputs_collector = Collector(name="model_inputs")
    outputs_collector = Collector(name="model_outputs")

def run(raw):
    frame = pd.DataFrame(json.loads(raw)["data"])
    context = inputs_collector.collect(frame)
    result = pd.DataFrame({"score": frame["age"] * 2.0})
    outputs_collector.collect(result, context)
    return result["score"].tolist()
"""


def test_scoring_scripts_collect_through_azures_collector_api(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(COLLECTING_SCORE_PY)
    collector = {"collections": {"model_inputs": {"enabled": "True"}, "model_outputs": {"enabled": "True"}}}
    server = Server(
        [
            "--entry-script",
            str(tmp_path / "score.py"),
            "--data-collector",
            json.dumps(collector),
            "--collect-dir",
            str(tmp_path / "c"),
        ],
        grpc=False,
    )
    try:
        for i in range(5):
            reply = httpx.post(
                f"{server.url}/score",
                json={"data": [{"age": i, "city": "Oslo"}, {"age": 10 + i}]},
                headers={"x-request-id": f"call-{i}"},
            )
            assert reply.status_code == 200 and reply.json() == [2.0 * i, 2.0 * (10 + i)]
    finally:
        assert server.stop() == 0
    inputs = pd.concat(pd.read_parquet(p) for p in (tmp_path / "c" / "model_inputs").rglob("*.parquet"))
    outputs = pd.concat(pd.read_parquet(p) for p in (tmp_path / "c" / "model_outputs").rglob("*.parquet"))
    assert len(inputs) == 10 and len(outputs) == 10  # what the script collected, no raw bodies besides
    assert sorted(set(inputs["request_id"])) == [f"call-{i}" for i in range(5)]
    assert list(inputs.columns) == ["request_id", "time", "row", "age", "city"]
    joined = inputs.merge(outputs, on=["request_id", "row"])
    assert (joined["score"] == joined["age"] * 2.0).all()


def test_a_score_request_without_an_id_is_logged_under_the_id_it_is_answered_with(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return {'ok': True}\n")
    server = Server(
        ["--entry-script", str(tmp_path / "score.py"), "--request-log", str(tmp_path / "requests.jsonl")], grpc=False
    )
    try:
        reply = httpx.post(f"{server.url}/score", json={})
    finally:
        assert server.stop() == 0
    (line,) = [json.loads(text) for text in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert reply.status_code == 200 and line["request_id"] == reply.headers["x-request-id"]
    assert line["path"] == "/score" and line["status"] == 200


def test_request_log_on_standard_output_keeps_every_line_whole_across_workers(repo: Path) -> None:
    """``--request-log -`` (what a packaged image runs): two workers share stdout, each line is one write."""
    server = Server([str(repo), "--workers", "2", "--request-log", "-"], grpc=False)
    try:
        statuses = asyncio.run(_send(f"{server.url}/v2/models/mlp/infer", [_body(i) for i in range(60)]))
    finally:
        assert server.stop() == 0
    assert statuses == [200] * 60
    logged = [json.loads(line) for line in server.proc.stdout.read().splitlines() if line.startswith("{")]
    assert sorted(line["request_id"] for line in logged) == sorted(f"req-{i}" for i in range(60))
    assert {line["status"] for line in logged} == {200}
