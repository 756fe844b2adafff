"""Custom metrics from scoring scripts: a real ``modelport serve --entry-script score.py`` whose
``run()`` counts and sets metrics through ``modelport.metrics``, scraped on ``/metrics``, alone
and with ``--workers 2`` (the workers' series add up); bad definitions stop the server at start."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from conftest import Server, free_port
from prometheus_client.parser import text_string_to_metric_families

from modelport.core.errors import ValidationError
from modelport.serving import script_metrics

SCRIPT = """
import json
import os

from modelport.metrics import counter, gauge, histogram

REQUESTS = counter("requests", "Requests scored", labels=["outcome"])
ROWS = counter("rows_total", "Rows scored")
LAST = gauge("last_rows", "Rows in the last request")
HERE = gauge("calls", "Calls this process answered")
VERSION = gauge("model_version", "Version of the loaded model", combine="max")
SIZES = histogram("request_rows", "Rows per request", buckets=[1, 2, 5])


def init():
    VERSION.set(3)


def run(raw):
    rows = json.loads(raw)["data"]
    REQUESTS.labels(outcome="empty" if not rows else "ok").inc()
    ROWS.inc(len(rows))
    LAST.set(len(rows))
    HERE.inc()
    SIZES.observe(len(rows))
    return {"rows": len(rows), "pid": os.getpid()}
"""


def _script(folder: Path, text: str = SCRIPT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "score.py"
    path.write_text(textwrap.dedent(text))
    return path


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``modelport_script_*`` samples by name and labels; parsing also checks the exposition format."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("modelport_script_")
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_script_metrics_appear_on_metrics_labelled_by_model_endpoint_and_deployment(tmp_path: Path) -> None:
    server = Server(
        ["--entry-script", str(_script(tmp_path / "app")), "--endpoint-name", "web", "--deployment-name", "blue"],
        grpc=False,
    )
    sizes = [1, 2, 3, 0, 6, 2, 1]
    try:
        with httpx.Client(timeout=30) as client:
            before = _samples(client.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text)
            for size in sizes:
                answer = client.post(f"{server.url}/score", json={"data": [[0.5]] * size})
                assert answer.status_code == 200 and answer.json()["rows"] == size
            metrics = client.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text
            on_http_port = client.get(f"{server.url}/metrics").text
    finally:
        assert server.stop() == 0
    server_labels = {"model": "score", "endpoint": "web", "deployment": "blue"}
    assert _value(before, "modelport_script_model_version", **server_labels) == 3  # set by init()
    samples = _samples(metrics)
    assert samples == _samples(on_http_port)
    assert _value(samples, "modelport_script_requests_total", outcome="ok", **server_labels) == 6
    assert _value(samples, "modelport_script_requests_total", outcome="empty", **server_labels) == 1
    assert _value(samples, "modelport_script_rows_total", **server_labels) == sum(sizes)
    assert _value(samples, "modelport_script_last_rows", **server_labels) == 1
    assert _value(samples, "modelport_script_calls", **server_labels) == len(sizes)
    buckets = {
        le: _value(samples, "modelport_script_request_rows_bucket", le=le, **server_labels)
        for le in ("1.0", "2.0", "5.0", "+Inf")
    }
    assert buckets == {"1.0": 3, "2.0": 5, "5.0": 6, "+Inf": 7}
    assert _value(samples, "modelport_script_request_rows_sum", **server_labels) == sum(sizes)
    assert _value(samples, "modelport_script_request_rows_count", **server_labels) == len(sizes)
    assert "# TYPE modelport_script_requests_total counter" in metrics
    assert "# HELP modelport_script_requests_total Requests scored" in metrics


def test_script_metrics_add_up_across_workers(tmp_path: Path) -> None:
    server = Server(["--entry-script", str(_script(tmp_path / "app")), "--workers", "2"], grpc=False)
    try:
        pids = set()
        for _ in range(40):  # a new connection each time: the kernel spreads them over the workers
            with httpx.Client(timeout=30) as client:
                pids.add(client.post(f"{server.url}/score", json={"data": [[1], [2]]}).json()["pid"])
        scrapes = [
            httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text,
            *(httpx.get(f"{server.url}/metrics").text for _ in range(4)),
        ]  # whichever worker answers
    finally:
        assert server.stop() == 0
    assert len(pids) == 2, "both workers should have answered"
    for text in scrapes:
        samples = _samples(text)
        assert _value(samples, "modelport_script_requests_total", model="score", outcome="ok") == 40
        assert _value(samples, "modelport_script_rows_total", model="score") == 80
        assert _value(samples, "modelport_script_calls", model="score") == 40  # gauges sum by default
        assert _value(samples, "modelport_script_model_version", model="score") == 3  # combine="max"
        assert _value(samples, "modelport_script_last_rows", model="score") == 4  # 2 + 2
        assert _value(samples, "modelport_script_request_rows_bucket", model="score", le="2.0") == 40


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('counter("bad-name")', "metric 'bad-name': a name is letters, digits and underscores"),
        ('counter("ok", labels=["model"])', "label 'model' is the server's"),
        ('counter("ok"); gauge("ok_total")', "metric modelport_script_ok_total: already defined differently"),
        ('histogram("latency_count")', "may not end in _bucket, _sum, _count"),
        ('histogram("latency", buckets=[1, 1])', "buckets must be one or more increasing finite numbers"),
        ('gauge("g", combine="avg")', "combine must be one of sum, max, min"),
    ],
)
def test_bad_metric_definitions_stop_the_server_with_one_line(tmp_path: Path, line: str, needle: str) -> None:
    script = _script(
        tmp_path,
        f"from modelport.metrics import counter, gauge, histogram\n{line}\n"
        "def init():\n    pass\n\ndef run(raw):\n    return raw\n",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelport",
            "serve",
            "--entry-script",
            str(script),
            "--no-grpc",
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    errors = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], result.stderr


def test_series_updates_are_checked_and_capped() -> None:
    requests = script_metrics.counter("checked_requests", labels=["route"])
    with pytest.raises(ValidationError, match="choose a series with .labels"):
        requests.inc()
    with pytest.raises(ValidationError, match="only goes up"):
        requests.labels("a").inc(-1)
    with pytest.raises(ValidationError, match="not a finite number"):
        script_metrics.gauge("checked_level").set(float("nan"))
    with pytest.raises(ValidationError, match=r"labels are \(route\)"):
        requests.labels(path="a")
    for index in range(script_metrics.MAX_SERIES):
        requests.labels(route=str(index)).inc()
    with pytest.raises(ValidationError, match="over 1000 label combinations"):
        requests.labels(route="one more").inc()
    assert script_metrics.counter("checked_requests", labels=["route"]).labels("7")._family is requests._family
