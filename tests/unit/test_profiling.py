"""The profiler's pure parts: option parsing, the batching grid, the recommendation on synthetic
trials, the document's shape, the sample, and the load generator against a tiny local server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelport.cli.profile import parse_duration, parse_ints
from modelport.core.errors import ModelportError, ValidationError
from modelport.profiling.grid import Settings, batching_grid, settings_of
from modelport.profiling.load import FAILED, TIMED_OUT, LoadResult, LoadTarget, check_loopback, run_open, run_rounds
from modelport.profiling.recommend import (
    ChoiceState,
    choose,
    profile_document,
    with_headroom,
)
from modelport.profiling.results import Round, TrialResult, relative_qps, spread, summarise
from modelport.profiling.sample import Sample
from modelport.runtime.config import config_from_dict

pytestmark = pytest.mark.serial  # timing assertions: run alone, after the parallel part (scripts/test.sh)

AZURE_KEYS = {
    "name",
    "state",
    "recommendedCpu",
    "recommendedMemoryInGB",
    "recommendationLatencyInMs",
    "maxUtilizedMemoryInGB",
    "maxUtilizedCpu",
    "averageLatencyInMs",
    "latencyPercentile50InMs",
    "latencyPercentile90InMs",
    "latencyPercentile95InMs",
    "latencyPercentile99InMs",
    "latencyPercentile999InMs",
    "measuredQueriesPerSecond",
    "totalQueries",
    "successQueries",
    "successRate",
    "requestedCpu",
    "requestedMemoryInGB",
    "error",
    "errorLogsUri",
}


# -- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("500ms", 0.5), ("1m", 60.0), ("2.5", 2.5), (" 3 s ", 3.0), ("1min", 60.0), (".5s", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0", "0s", "-1s", "ten", "10x", "", "1 2"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(ValidationError, match="^--duration: "):
        parse_duration(text)


def test_integer_lists() -> None:
    assert parse_ints("4,1,4, 2", "--concurrency") == (1, 2, 4)
    assert parse_ints("0,1000", "--queue-delays-us", minimum=0) == (0, 1000)
    for bad in ("0", "a", "1,,2", "-1"):
        with pytest.raises(ValidationError, match="^--concurrency: "):
            parse_ints(bad, "--concurrency")


# -- grid and settings -------------------------------------------------------------------------


def test_grid_is_pruned_to_what_can_differ() -> None:
    base = Settings(1, 4, 0)  # a config-less ONNX model: Triton's default batching
    grid = batching_grid(base, concurrency=8, rows=1, sizes=(1, 8, 32), delays=(0, 1000), counts=(1, 2))
    # 32 > 8 requests in flight behaves as 8; size 1 has no queue delay to vary
    assert grid == [
        Settings(1, 1, None),
        Settings(2, 1, None),
        Settings(1, 8, 0),
        Settings(1, 8, 1000),
        Settings(2, 8, 0),
        Settings(2, 8, 1000),
    ]
    assert base not in batching_grid(base, 8, 1, (4,), (0,), (1, 2))


def test_grid_respects_request_rows_and_models_without_batching() -> None:
    grid = batching_grid(Settings(1, 8, 0), concurrency=2, rows=4, sizes=(1, 8, 32), delays=(0,), counts=(1,))
    assert grid == [Settings(1, 4, None)]  # a batch of 4 rows holds one request; 2 × 4 rows = 8 is the base
    assert batching_grid(Settings(1, 0, None), 8, 1, (1, 8), (0,), (1, 2, 3)) == [
        Settings(2, 0, None),
        Settings(3, 0, None),
    ]


def test_settings_render_as_model_config_overrides() -> None:
    assert Settings(2, 16, 500).model_config() == {
        "max_batch_size": 16,
        "dynamic_batching": {"max_queue_delay_microseconds": 500},
        "instance_group": [{"count": 2}],
    }
    assert Settings(1, 1, None).model_config() == {"max_batch_size": 1, "instance_group": [{"count": 1}]}
    assert Settings(3, 0, None).model_config() == {"instance_group": [{"count": 3}]}
    batching_base = config_from_dict(
        {
            "name": "m",
            "max_batch_size": 8,
            "instance_group": [{"kind": "KIND_GPU"}],
            "dynamic_batching": {"preferred_batch_size": [4, 8]},
        }
    )
    # the base's preferred sizes would be invalid above a smaller max_batch_size; its GPU kind is kept
    assert Settings(1, 1, None).model_config(batching_base) == {
        "max_batch_size": 1,
        "dynamic_batching": {"max_queue_delay_microseconds": 0, "preferred_batch_size": []},
        "instance_group": [{"count": 1, "kind": "KIND_GPU"}],
    }


def test_settings_are_read_from_the_served_config() -> None:
    served = {
        "max_batch_size": 4,
        "dynamic_batching": {"max_queue_delay_microseconds": 100},
        "instance_group": [{"count": 2, "kind": "KIND_CPU"}, {"count": 1}],
    }
    assert settings_of(served) == Settings(3, 4, 100)
    assert settings_of({"max_batch_size": 0, "instance_group": [{"count": 1}]}) == Settings(1, 0, None)
    assert settings_of({"max_batch_size": 8}) == Settings(1, 8, None)


# -- results and the choice --------------------------------------------------------------------


def trial(
    index: int,
    settings: Settings | None,
    qps: float,
    p99: float,
    *,
    errors: int = 0,
    concurrency: int = 8,
    rounds: tuple[float, ...] | None = None,
    cpu: float = 0.5,
    peak: int = 300 * 2**20,
) -> TrialResult:
    latency = {"mean": p99 / 3, "p50": p99 / 4, "p90": p99 / 2, "p95": p99 / 1.5, "p99": p99, "p999": p99 * 1.5}
    return TrialResult(
        index,
        "grid",
        settings,
        concurrency,
        qps,
        latency,
        total=1000 + errors,
        succeeded=1000,
        cpu_cores=cpu,
        peak_bytes=peak,
        rounds=rounds or (qps,) * 4,
        first_error="503: queue full" if errors else None,
    )


def test_the_fastest_trial_within_budget_wins() -> None:
    trials = [
        trial(1, Settings(1, 1, None), 1000, 5),
        trial(2, Settings(1, 8, 0), 2000, 9),
        trial(3, Settings(1, 32, 1000), 3000, 150),
        trial(4, Settings(2, 8, 0), 2500, 8, errors=3),
    ]
    choice = choose(trials, budget_ms=100)
    assert choice.trial.index == 2 and choice.best is choice.trial and choice.state == ChoiceState.SUCCEEDED
    assert not choice.warnings  # trial 3 is faster but over budget, trial 4 lost requests


def test_cheaper_settings_within_tolerance_are_preferred() -> None:
    trials = [
        trial(1, Settings(2, 32, 1000), 2000, 9),
        trial(2, Settings(1, 8, 0), 1950, 9),
        trial(3, Settings(1, 1, None), 1000, 9),
    ]
    assert choose(trials, 100, tolerance=0.05).trial.index == 2
    assert choose(trials, 100, tolerance=0.0).trial.index == 1
    assert choose(trials, 100, tolerance=0.6).trial.index == 3


def test_the_tolerance_compares_trials_round_by_round() -> None:
    # the machine was busy in rounds 3-4: paired by round, the cheap trial keeps up; by medians it does not
    best = trial(1, Settings(1, 8, 0), 2000, 9, rounds=(2000, 2000, 1000, 1000))
    cheap = trial(2, Settings(1, 1, None), 1500, 9, rounds=(1980, 1990, 990, 1000))
    assert relative_qps(cheap, best) == pytest.approx(0.99, abs=0.01)
    assert choose([best, cheap], 100, tolerance=0.05).trial.index == 2
    unpaired = trial(3, Settings(1, 1, None), 1500, 9, rounds=(1500,) * 3)
    assert relative_qps(unpaired, best) == pytest.approx(1500 / 2000)


def test_no_trial_within_budget_recommends_the_lowest_p99() -> None:
    trials = [
        trial(1, Settings(1, 1, None), 1000, 250),
        trial(2, Settings(1, 8, 0), 2000, 180),
        trial(3, Settings(1, 32, 0), 2500, 120, errors=1),
    ]
    choice = choose(trials, budget_ms=100)
    assert choice.trial.index == 2 and choice.best is None and choice.state == ChoiceState.BUDGET_NOT_MET
    assert "100 ms" in choice.warnings[0]


def test_no_answer_at_all_is_an_error() -> None:
    failed = TrialResult(
        1,
        "grid",
        None,
        4,
        0.0,
        {"mean": None, "p50": None, "p90": None, "p95": None, "p99": None, "p999": None},
        10,
        0,
        None,
        None,
        (0.0,),
        "400: bad input",
    )
    with pytest.raises(ModelportError, match="no trial answered a request .400: bad input"):
        choose([failed], 100)


def test_headroom_rounds_up_to_a_tenth() -> None:
    assert with_headroom(0.5, 1.2) == 0.6
    assert with_headroom(0.51, 1.2) == 0.7
    assert with_headroom(1.0, 1.2) == 1.2
    assert with_headroom(0.0, 1.2) == 0.1
    assert with_headroom(0.3 * 2**30 / 2**30, 1.2) == 0.4


def test_summary_takes_medians_over_rounds() -> None:
    def load(qps: float, latencies: list[float], errors: int = 0) -> LoadResult:
        return LoadResult(8, 1.0, np.array(latencies), int(qps) + errors, errors, "503: x" if errors else None)

    rounds = [
        Round(load(1000, [1.0] * 100), 0.4, 100),
        Round(load(3000, [3.0] * 100), 0.6, 300),
        Round(load(2000, [2.0] * 100, errors=5), 0.5, 200),
    ]
    result = summarise(7, "grid", Settings(1, 8, 0), 8, rounds)
    assert result.qps == 2000 and result.p99 == pytest.approx(2.0) and result.cpu_cores == 0.5
    assert result.peak_bytes == 300 and result.total == 6005 and result.errors == 5
    assert result.rounds == (1000, 3000, 2000) and result.first_error == "503: x"
    assert not result.meets(100)  # lost requests never meet the budget


def test_document_has_azure_fields_model_config_and_trials() -> None:
    trials = [trial(1, Settings(1, 4, 0), 1500, 9, cpu=0.74, peak=200 * 2**20), trial(2, Settings(1, 1, None), 1000, 5)]
    choice = choose(trials, 100)
    document = profile_document(
        "light:1",
        trials,
        choice,
        budget_ms=100,
        base=None,
        requested_cpu=2.0,
        requested_memory_gb=23.5,
        logs=None,
        verified=trial(0, Settings(1, 4, 0), 1490, 9),
        best_again=trial(0, Settings(1, 4, 0), 1500, 9),
    )
    assert AZURE_KEYS <= set(document)
    assert document["state"] == ChoiceState.SUCCEEDED and document["name"] == "light:1"
    assert document["recommendedCpu"] == 0.9 and document["recommendedMemoryInGB"] == 0.3  # 0.74 × 1.2, 0.23 × 1.2
    assert document["modelConfig"] == {
        "max_batch_size": 4,
        "dynamic_batching": {"max_queue_delay_microseconds": 0},
        "instance_group": [{"count": 1}],
    }
    assert document["measuredQueriesPerSecond"] == 1500 and document["latencyPercentile99InMs"] == 9
    assert document["successRate"] == 1.0 and document["requestedCpu"] == 2.0
    assert document["verifiedRatio"] == pytest.approx(0.993, abs=0.001)
    assert [t["index"] for t in document["trials"]] == [1, 2]
    assert {
        "queriesPerSecond",
        "latencyPercentile99InMs",
        "cpu",
        "peakMemoryInMB",
        "modelConfig",
        "maxBatchSize",
        "instanceCount",
        "maxQueueDelayMicroseconds",
    } <= set(document["trials"][0])
    assert json.loads(json.dumps(document)) == document


def test_a_busy_machine_is_reported() -> None:
    quiet = trial(1, Settings(1, 4, 0), 2000, 9, rounds=(1900, 2000, 2100, 2000, 1950, 2050))
    busy = trial(2, Settings(1, 1, None), 1500, 9, rounds=(700, 2000, 1500, 2600, 900, 1500))
    assert spread(quiet) == pytest.approx(0.05, abs=0.03) and spread(busy) > 0.5
    assert spread(trial(3, None, 10, 9, rounds=(10, 10))) is None  # too few rounds to tell
    calm = profile_document(
        "m",
        [quiet],
        choose([quiet], 100),
        budget_ms=100,
        base=None,
        requested_cpu=None,
        requested_memory_gb=None,
        logs=None,
    )
    assert calm["roundSpread"] < 0.25 and not calm["warnings"]
    noisy = profile_document(
        "m",
        [quiet, busy],
        choose([quiet, busy], 100),
        budget_ms=100,
        base=None,
        requested_cpu=None,
        requested_memory_gb=None,
        logs=None,
        verified=busy,
        best_again=busy,
    )
    assert noisy["roundSpread"] > 0.25 and "the machine was busy" in noisy["warnings"][0]


# -- sample --------------------------------------------------------------------------------------


def test_samples(tmp_path: Path) -> None:
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 2], "data": [0] * 6}]}))
    sample = Sample.read(v2)
    assert sample.v2 and sample.rows == 3 and sample.path("m") == "/v2/models/m/infer"
    score = tmp_path / "score.json"
    score.write_text('{"data": [[1, 2]]}')
    assert not Sample.read(score).v2 and Sample.read(score).path(None) == "/score"
    with pytest.raises(ValidationError, match="^--input: cannot read .*missing.json"):
        Sample.read(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"inputs": 3}')
    with pytest.raises(ValidationError, match="^--input: .*inputs must be"):
        Sample.read(tmp_path / "bad.json")


# -- load generator ------------------------------------------------------------------------------


@pytest.fixture
def tiny_server() -> Iterator[str]:
    """An HTTP/1.1 server on loopback: ``/ok`` answers 200 (chunked every other time), ``/bad`` 400,
    ``/busy`` 503, ``/slow`` 200 after a second, ``/close`` 200 and closes the connection."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    where: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                return
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            await reader.readexactly(length)
            path = head.split(b" ")[1]
            served += 1
            if path == b"/slow":
                await asyncio.sleep(1)
            if path == b"/bad":
                writer.write(b'HTTP/1.1 400 Bad Request\r\nContent-Length: 13\r\n\r\n{"error":"x"}')
            elif path == b"/busy":
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            elif path == b"/ok" and served % 2:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
            else:
                close = path == b"/close"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                    + (b"Connection: close\r\n" if close else b"")
                    + b"\r\nok"
                )
                if close:
                    await writer.drain()
                    writer.close()
                    return
            await writer.drain()

    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: handle(r, w), "127.0.0.1", 0)
        where.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        ready.set()
        async with server:
            try:
                await server.serve_forever()
            except asyncio.CancelledError:
                pass

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    ready.wait(5)
    yield where[0]
    loop.call_soon_threadsafe(lambda: [task.cancel() for task in asyncio.all_tasks(loop)])
    thread.join(5)


def test_load_counts_answers_and_errors_within_its_windows(tiny_server: str) -> None:
    targets = [
        LoadTarget(f"{tiny_server}/ok", 2),
        LoadTarget(f"{tiny_server}/bad", 1),
        LoadTarget(f"{tiny_server}/close", 2),
    ]
    ok, bad, close = run_rounds(targets, b"{}", rounds=2, seconds=0.2, first_warmup=0.05, next_warmup=0.01)
    assert len(ok) == len(bad) == len(close) == 2
    assert all(r.total > 10 and r.errors == 0 and r.qps > 0 for r in ok + close)
    assert all(r.errors == r.total > 0 for r in bad), bad
    assert bad[0].first_error == '400: {"error":"x"}'
    assert ok[0].latency_ms()["p99"] is not None and bad[0].latency_ms()["p99"] is None


def test_load_survives_a_refusing_server_and_stays_bounded_in_time() -> None:
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens once it is closed
    began = time.monotonic()
    (results,) = run_rounds(
        [LoadTarget(f"http://127.0.0.1:{port}/x", 4)], b"{}", rounds=1, seconds=0.3, first_warmup=0.0
    )
    assert time.monotonic() - began < 3
    assert results[0].succeeded == 0 and results[0].errors > 0 and "Connect" in (results[0].first_error or "")


def test_open_loop_keeps_its_schedule_and_counts_answers_by_status(tiny_server: str) -> None:
    ok = run_open(f"{tiny_server}/ok", b"{}", rate=200, seconds=0.5, connections=50)
    assert ok.scheduled == ok.sent == ok.ok == 100 and ok.not_sent == ok.other == ok.timeouts == 0
    assert 100 < ok.send_rate <= 200 and ok.latency_ms()["max"] is not None and ok.lag_ms()["p50"] is not None
    busy = run_open(f"{tiny_server}/busy", b"{}", rate=100, seconds=0.2, connections=20)
    assert busy.rejected == busy.sent == 20 and busy.ok == 0 and busy.first_error is None
    bad = run_open(f"{tiny_server}/bad", b"{}", rate=100, seconds=0.2, connections=20)
    assert bad.other == bad.statuses[400] == 20 and bad.first_error == '400: {"error":"x"}'


def test_open_loop_times_out_and_does_not_delay_what_finds_no_connection(tiny_server: str) -> None:
    import time

    began = time.monotonic()
    slow = run_open(f"{tiny_server}/slow", b"{}", rate=100, seconds=0.3, connections=2, request_timeout=0.1)
    assert time.monotonic() - began < 1.0  # the server answers after 1 s: nobody waited for it
    assert slow.scheduled == 30 and slow.ok == 0 and slow.timeouts == slow.statuses[TIMED_OUT] == slow.sent
    assert slow.not_sent > 10 and slow.latency_ms()["p99"] is None


def test_open_loop_against_a_refusing_server_is_bounded_and_counted() -> None:
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens once it is closed
    began = time.monotonic()
    result = run_open(f"http://127.0.0.1:{port}/x", b"{}", rate=100, seconds=0.2, connections=20)
    assert time.monotonic() - began < 2
    assert result.sent > 0 and result.statuses[FAILED] == result.other == result.sent - result.timeouts
    assert "Connect" in (result.first_error or "")


def test_only_loopback_is_loaded() -> None:
    check_loopback("http://127.0.0.1:8000/v2")
    check_loopback("http://localhost:1/")
    with pytest.raises(ValidationError, match="not a loopback address"):
        check_loopback("http://10.0.0.1:8000/")
    with pytest.raises(ValidationError, match="not a loopback address"):
        run_rounds([LoadTarget("http://example.com/", 1)], b"", rounds=1, seconds=0.1)
    with pytest.raises(ValidationError, match="not a loopback address"):
        run_open("http://example.com/", b"", rate=1, seconds=0.1, connections=1)
