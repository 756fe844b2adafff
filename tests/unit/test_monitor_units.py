"""Request log, payload columns, collector files, the background writer and the GPU collector."""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from modelport.monitor.collector import Collected, CollectorSettings, PayloadCollector
from modelport.monitor.gpu import GpuCollector
from modelport.monitor.payloads import json_columns, tensor_columns
from modelport.monitor.request_log import RequestLog
from modelport.monitor.writer import BackgroundWriter
from modelport.serving.stats import Histogram


def test_tensors_become_feature_columns() -> None:
    columns = tensor_columns(
        {
            "x": np.arange(6, dtype=np.float32).reshape(3, 2),
            "flag": np.array([[1], [0], [1]]),
            "name": np.array([b"a", b"b", b"c"], dtype=object),
        }
    )
    assert list(columns) == ["x_0", "x_1", "flag", "name"]
    assert columns["x_1"].tolist() == [1.0, 3.0, 5.0] and columns["flag"].tolist() == [1, 0, 1]
    assert columns["name"].tolist() == ["a", "b", "c"]
    wide = tensor_columns({"image": np.zeros((2, 40, 40))})
    assert list(wide) == ["image"] and len(wide["image"]) == 2 and wide["image"][0].shape == (1600,)
    unbatched = tensor_columns({"a": np.zeros(3), "b": np.zeros(2)})
    assert unbatched == {"a": [[0.0, 0.0, 0.0]], "b": [[0.0, 0.0]]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"data": [{"age": 30, "city": "Oslo"}, {"age": 41}]}', {"age": [30, 41], "city": ["Oslo", None]}),
        (b'{"input_data": {"age": [1, 2], "city": ["a", "b"]}}', {"age": [1, 2], "city": ["a", "b"]}),
        (b"[[1, 2], [3, 4]]", {"input_0": [1, 3], "input_1": [2, 4]}),
        (b"[0.5, 0.25]", {"input": [0.5, 0.25]}),
        (b'"just text"', {"payload": ['"just text"']}),
        (b"not json", {"payload": ["not json"]}),
    ],
)
def test_score_bodies_become_columns(body: bytes, expected: dict) -> None:
    columns = json_columns(body, "input")
    assert {
        key: list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)
        for key, value in columns.items()
    } == expected


def test_request_log_rotates_by_size(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "requests.jsonl", max_bytes=8000, backups=2)
    for i in range(100):
        log.submit((time.time(), f"r{i}", None, None, "m", "1", "POST", "/" + "x" * 40, 200, 10**6, 0, 1))
        if i % 10 == 9:
            time.sleep(0.25)  # let the writer take batches, as it does under real traffic
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["requests.jsonl", "requests.jsonl.1", "requests.jsonl.2"]
    assert all(p.stat().st_size <= 8000 for p in tmp_path.iterdir())
    newest = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert newest[-1]["request_id"] == "r99"  # the latest lines are kept, the oldest rotated away


def test_writer_drops_and_counts_beyond_its_capacity() -> None:
    gate = threading.Event()
    written: list[int] = []

    def slow(batch: list[int]) -> None:
        gate.wait()
        written.extend(batch)

    writer = BackgroundWriter("test", slow, capacity=10, interval_s=0.01)
    time.sleep(0.05)  # the thread is idle, waiting for items
    accepted = [writer.submit(i) for i in range(25)]
    assert accepted.count(True) >= 10 and writer.dropped == accepted.count(False) > 0
    gate.set()
    writer.close()
    assert sorted(written) == [i for i, ok in enumerate(accepted) if ok]


def test_collector_writes_whole_parquet_files_per_window(tmp_path: Path) -> None:
    settings = CollectorSettings(tmp_path, frozenset({"model_inputs"}), rolling_rate="minute", flush_s=3600)
    collector = PayloadCollector(settings, "test", instance="i1")
    noon = 1_790_000_000.0  # two requests in one minute, one in the next: two files
    for i, moment in enumerate((noon, noon + 1, noon + 61)):
        collector.submit(Collected(f"r{i}", moment, "1", inputs={"x": np.full((2, 2), i, dtype=np.float32)}))
    collector.close()
    files = sorted(tmp_path.rglob("*.parquet"))
    assert len(files) == 2 and not list(tmp_path.rglob("*.tmp"))
    first = pd.read_parquet(files[0])
    assert first["request_id"].tolist() == ["r0", "r0", "r1", "r1"] and first["row"].tolist() == [0, 1, 0, 1]
    assert list(first.columns) == ["request_id", "time", "row", "x_0", "x_1"]
    assert files[0].relative_to(tmp_path).parts[:1] == ("model_inputs",)


def test_collector_sampling_rate_is_a_fraction() -> None:
    collector = PayloadCollector(CollectorSettings(Path("/nonexistent"), sampling_rate=0.25), "test")
    try:
        hits = sum(collector.sample() for _ in range(20_000))
    finally:
        collector.close()
    assert 4700 <= hits <= 5300


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram((1, 2, 4))
    for value in (1, 1, 3, 9):
        histogram.observe(value)
    assert histogram.cumulative() == [("1.0", 2), ("2.0", 2), ("4.0", 3), ("+Inf", 4)]
    assert histogram.total == 14


def test_gpu_metrics_come_from_nvml_and_vanish_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUUID=lambda h: b"GPU-1234",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=80 << 30, used=3 << 30),
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=42),
        nvmlDeviceGetPowerUsage=lambda h: 120_500,
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    registry = CollectorRegistry()
    registry.register(GpuCollector())
    text = generate_latest(registry).decode()
    assert 'nv_gpu_utilization{gpu_uuid="GPU-1234"} 0.42' in text
    assert 'nv_gpu_memory_used_bytes{gpu_uuid="GPU-1234"} 3.221225472e+09' in text
    assert 'nv_gpu_power_usage{gpu_uuid="GPU-1234"} 120.5' in text

    def no_driver() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", types.SimpleNamespace(nvmlInit=no_driver))
    registry = CollectorRegistry()
    registry.register(GpuCollector())
    assert "nv_gpu" not in generate_latest(registry).decode()


def test_collector_keeps_score_bodies_and_mixed_layouts(tmp_path: Path) -> None:
    collector = PayloadCollector(CollectorSettings(tmp_path, flush_s=3600), "test", instance="i1")
    now = time.time()
    collector.submit(Collected("a", now, request_body=b'{"data": [{"age": 3}, {"age": 5}]}', response_body=b"[1, 0]"))
    collector.submit(Collected("b", now, inputs={"x": np.ones((1, 2))}, outputs={"y": np.zeros(1)}))
    collector.submit(Collected("c", now, inputs={"x": np.ones((2, 2))}, outputs={"y": np.zeros(2)}))
    collector.close()
    inputs = pd.concat(pd.read_parquet(p) for p in (tmp_path / "model_inputs").rglob("*.parquet"))
    outputs = pd.concat(pd.read_parquet(p) for p in (tmp_path / "model_outputs").rglob("*.parquet"))
    assert inputs["request_id"].tolist() == ["a", "a", "b", "c", "c"] and inputs["row"].tolist() == [0, 1, 0, 0, 1]
    assert inputs["age"].tolist()[:2] == [3, 5] and inputs["x_1"].tolist()[2:] == [1.0, 1.0, 1.0]
    assert outputs["prediction"].tolist()[:2] == [1, 0] and outputs["y"].tolist()[2:] == [0.0, 0.0, 0.0]
