"""Batchable scoring scripts: a script that sets MODELPORT_MAX_BATCH_SIZE gets lists of request
bodies, answers each with its own element, and is held to its declaration."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from conftest import Server
from starlette.applications import Starlette

from modelport.serving.http.azureml import azureml_routes
from modelport.serving.scoring_script import RUN_FAILED_MESSAGE, ScriptHost, ScriptInitError

BATCHING_SCRIPT = """
    import json
    import time

    MODELPORT_MAX_BATCH_SIZE = 4
    MODELPORT_DYNAMIC_BATCHING = {"max_queue_delay_microseconds": 20000}
    batches = []

    def init():
        pass

    def run(bodies):
        batches.append(len(bodies))
        time.sleep(0.02)
        if any(json.loads(body).get("short") for body in bodies):
            return [0]  # one answer for the whole batch: not what was declared
        return [{"x": json.loads(body)["x"] * 2, "batch": len(bodies)} for body in bodies]
"""


@pytest.fixture(autouse=True)
def _isolated_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZUREML_MODEL_DIR", "MODELPORT_MODEL_DIR", "SCORING_TIMEOUT_MS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))


def _script(folder: Path, source: str) -> Path:
    path = folder / "score.py"
    path.write_text(textwrap.dedent(source))
    return path


async def _score(app_or_url: Starlette | str, bodies: list[dict]) -> list[httpx.Response]:
    if isinstance(app_or_url, str):
        client = httpx.AsyncClient(base_url=app_or_url, timeout=30)
    else:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app_or_url), base_url="http://modelport")
    async with client:
        return await asyncio.gather(*(client.post("/score", content=json.dumps(b)) for b in bodies))


def test_concurrent_requests_reach_run_as_one_list_and_get_their_own_answers(tmp_path: Path) -> None:
    host = ScriptHost(_script(tmp_path, BATCHING_SCRIPT))
    replies = asyncio.run(_score(Starlette(routes=azureml_routes(host, None, None)), [{"x": i} for i in range(10)]))
    assert [r.status_code for r in replies] == [200] * 10
    assert [r.json()["x"] for r in replies] == [2 * i for i in range(10)]
    assert max(r.json()["batch"] for r in replies) > 1
    assert all(r.json()["batch"] <= 4 for r in replies)
    assert all(float(r.headers["x-ms-run-fn-exec-ms"]) > 0 for r in replies)


def test_a_batch_answered_with_the_wrong_count_fails_only_that_batch(tmp_path: Path) -> None:
    host = ScriptHost(_script(tmp_path, BATCHING_SCRIPT))
    app = Starlette(routes=azureml_routes(host, None, None))
    failed = asyncio.run(_score(app, [{"x": 1, "short": True}, {"x": 2, "short": True}]))
    assert [r.status_code for r in failed] == [500, 500]
    assert all(r.json() == {"message": RUN_FAILED_MESSAGE} for r in failed)
    assert asyncio.run(_score(app, [{"x": 3}]))[0].json()["x"] == 6


def test_a_full_queue_answers_503(tmp_path: Path) -> None:
    source = BATCHING_SCRIPT.replace('{"max_queue_delay_microseconds": 20000}', '{"max_queue_size": 1}').replace(
        "MODELPORT_MAX_BATCH_SIZE = 4", "MODELPORT_MAX_BATCH_SIZE = 1"
    )
    host = ScriptHost(_script(tmp_path, source))
    replies = asyncio.run(_score(Starlette(routes=azureml_routes(host, None, None)), [{"x": i} for i in range(6)]))
    codes = [r.status_code for r in replies]
    assert set(codes) == {200, 503}
    assert all("queue" in r.text for r in replies if r.status_code == 503)


@pytest.mark.parametrize(
    ("declaration", "reason"),
    [
        ("MODELPORT_MAX_BATCH_SIZE = 0", "MODELPORT_MAX_BATCH_SIZE must be an integer >= 1, got 0"),
        ("MODELPORT_MAX_BATCH_SIZE = '8'", "MODELPORT_MAX_BATCH_SIZE must be an integer >= 1, got '8'"),
        ("MODELPORT_DYNAMIC_BATCHING = {}", "MODELPORT_DYNAMIC_BATCHING needs MODELPORT_MAX_BATCH_SIZE as well"),
        (
            "MODELPORT_MAX_BATCH_SIZE = 8\nMODELPORT_DYNAMIC_BATCHING = {'max_queue_delay_microseconds': -1}",
            "MODELPORT_DYNAMIC_BATCHING: dynamic_batching.max_queue_delay_microseconds: input should be greater than or equal to 0",
        ),
        (
            "MODELPORT_MAX_BATCH_SIZE = 8\nfrom azureml.contrib.services.aml_request import rawhttp\nrun = rawhttp(run)",
            "MODELPORT_MAX_BATCH_SIZE needs run(data) to take the request body; a rawhttp run() is called once",
        ),
    ],
)
def test_a_declaration_that_cannot_be_honoured_stops_the_script(tmp_path: Path, declaration: str, reason: str) -> None:
    with pytest.raises(ScriptInitError) as failure:
        ScriptHost(_script(tmp_path, "def init():\n    pass\ndef run(data):\n    return [data]\n" + declaration + "\n"))
    assert reason in str(failure.value)


def test_the_real_server_batches_a_script(tmp_path: Path) -> None:
    server = Server(["--entry-script", str(_script(tmp_path, BATCHING_SCRIPT))], grpc=False)
    try:
        replies = asyncio.run(_score(server.url, [{"x": i} for i in range(12)]))
    finally:
        assert server.stop() == 0
    assert [r.json()["x"] for r in replies] == [2 * i for i in range(12)]
    assert 1 < max(r.json()["batch"] for r in replies) <= 4


def test_a_batch_past_the_scoring_timeout_is_a_500_and_the_script_serves_on(tmp_path: Path) -> None:
    source = """
        import time

        MODELPORT_MAX_BATCH_SIZE = 4

        def init():
            pass

        def run(bodies):
            while any("slow" in body for body in bodies):
                time.sleep(0.01)
            return ["done"] * len(bodies)
    """
    host = ScriptHost(_script(tmp_path, source), timeout_ms=200)
    app = Starlette(routes=azureml_routes(host, None, None))
    slow = asyncio.run(_score(app, [{"slow": True}]))[0]
    assert slow.status_code == 500 and slow.json() == {"message": "Scoring timeout after 200 ms"}
    assert asyncio.run(_score(app, [{"x": 1}]))[0].json() == "done"
