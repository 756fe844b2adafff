"""Online endpoints under failure and change, end to end: gateway limits (429, 408), probes
(503 with a reason, liveness restarts), ``kill -9`` of a replica and of the daemon under load,
rolling updates under load (and one whose new replica fails ``init()``), a deployment in its own
built environment, and the whole daemon on PostgreSQL. Loads are scaled to a 2-core machine
and every load loop is bounded in time."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from endpoint_daemon import FAST_PROBES, Daemon, Load, running_daemon, scoring_headers, write_yaml

from modelport import Workspace

pytestmark = pytest.mark.serial  # timing assertions: run alone, after the parallel part (scripts/test.sh)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("resilience")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def files(daemon: Daemon) -> Path:
    """Where definitions are written; ``code/`` holds the scoring script."""
    return daemon.home.parent


def deploy(daemon: Daemon, files: Path, endpoint: str, *sets: str, **fields: object) -> str:
    """An endpoint with one deployment ``blue`` at 100 % (auth_mode none); its scoring URL."""
    daemon.ok("endpoint", "create", "-n", endpoint, "--set", "auth_mode=none")
    definition = {
        "name": "blue",
        "endpoint_name": endpoint,
        "model": "mlp:1",
        "code_configuration": {"code": "code", "scoring_script": "score.py"},
        "environment_variables": {"COLOR": "blue"},
        **fields,
    }
    path = write_yaml(files / f"{endpoint}.yml", definition)
    daemon.ok("deployment", "create", "-f", str(path), "--all-traffic", *[item for s in sets for item in ("--set", s)])
    return f"{daemon.url}/endpoints/{endpoint}/score"


def test_gateway_limits(daemon: Daemon, files: Path) -> None:
    url = deploy(
        daemon,
        files,
        "limits",
        request_settings={"max_concurrent_requests_per_instance": 1, "request_timeout_ms": 5000},
    )
    # 2 x 1 x 1 = 2 requests in flight at most: of 6 at once, 4 are turned away immediately, long
    # before either admitted request ends (2 s), not queued behind them. (With 0.5 s requests, a
    # busy 2-core machine's connection set-up alone came close to the bound once.)
    burst = Load(url, {}, seconds=20, count=6, concurrency=6, body={"sleep": 2.0})
    burst.run()
    statuses = sorted(o.status for o in burst.outcomes)
    assert statuses == [200, 200, 429, 429, 429, 429], statuses
    assert max(o.seconds for o in burst.outcomes if o.status == 429) < 1.0

    # Request settings change without replacing the replica.
    pid = daemon.replicas("limits", "blue")[0]["pid"]
    daemon.ok("deployment", "update", "-e", "limits", "-n", "blue", "--set", "request_settings.request_timeout_ms=300")
    began = time.monotonic()
    answer = httpx.post(url, json={"sleep": 1.5}, timeout=10)
    assert answer.status_code == 408 and 0.25 < time.monotonic() - began < 1.0
    assert "300 ms" in answer.json()["message"]
    assert daemon.replicas("limits", "blue")[0]["pid"] == pid


def test_probes_take_a_hung_replica_out_and_restart_it(daemon: Daemon, files: Path) -> None:
    url = deploy(
        daemon,
        files,
        "probes",
        readiness_probe=FAST_PROBES,
        liveness_probe={**FAST_PROBES, "failure_threshold": 5},
        request_settings={"request_timeout_ms": 500},
    )  # what the hung replica gets meanwhile: 408
    pid = daemon.replicas("probes", "blue")[0]["pid"]
    assert httpx.post(url, json={}).status_code == 200
    os.kill(pid, signal.SIGSTOP)  # alive but answering nothing
    try:
        deadline = time.monotonic() + 5
        while (answer := httpx.post(url, json={}, timeout=10)).status_code != 503:
            assert time.monotonic() < deadline, "a replica failing readiness still got traffic"
            time.sleep(0.1)
        assert "deployment 'blue' has no ready replica" in answer.json()["message"]
        replicas = daemon.wait_ready("probes", "blue", 1, timeout=15, exclude_pids=frozenset({pid}))
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed by then, unless the test failed
            os.kill(pid, signal.SIGCONT)
    assert replicas[0]["restarts"] == 1 and "liveness" in replicas[0]["last_error"]
    assert httpx.post(url, json={}).json()["color"] == "blue"


def test_kill_a_replica_under_load(daemon: Daemon, files: Path) -> None:
    url = deploy(
        daemon, files, "kill", "instance_count=2", request_settings={"max_concurrent_requests_per_instance": 4}
    )
    victim = daemon.replicas("kill", "blue")[0]["pid"]
    load = Load(url, {}, seconds=8, rate=100, concurrency=8)
    load.start()
    time.sleep(2)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    daemon.wait_ready("kill", "blue", 2, timeout=5, exclude_pids=frozenset({victim}))
    assert time.monotonic() - killed < 5
    load.join(30)
    assert len(load.outcomes) > 500
    failures = load.failures()
    assert len(failures) <= 8, failures  # at most what was in flight on the killed replica
    assert {o.status for o in failures} <= {502}, failures


def test_rolling_update_under_load_drops_nothing(daemon: Daemon, files: Path) -> None:
    url = deploy(
        daemon, files, "roll", "instance_count=2", request_settings={"max_concurrent_requests_per_instance": 4}
    )
    old = {replica["pid"] for replica in daemon.replicas("roll", "blue")}
    load = Load(url, {}, seconds=14, rate=100, concurrency=16)
    load.start()
    time.sleep(1)
    daemon.ok(
        "deployment",
        "update",
        "-e",
        "roll",
        "-n",
        "blue",
        "--set",
        "model=mlp:2",
        "--set",
        "environment_variables.COLOR=blue2",
    )
    load.join(60)
    assert not load.failures(), load.failures()[:5]
    assert len(load.outcomes) > 1000
    colors = [o.body["color"] for o in load.outcomes]
    assert colors[0] == "blue" and colors[-1] == "blue2"
    replicas = daemon.replicas("roll", "blue")
    assert len(replicas) == 2 and not old & {r["pid"] for r in replicas}
    assert httpx.post(url, json={}).json()["model_dir"].endswith("/mlp/2")


def test_failed_update_keeps_the_old_replicas_serving(daemon: Daemon, files: Path) -> None:
    url = deploy(daemon, files, "failing", "instance_count=2")
    before = daemon.json("deployment", "show", "-e", "failing", "-n", "blue")
    load = Load(url, {}, seconds=14, rate=50, concurrency=4)
    load.start()
    # The first new replica fails: nothing old was touched.
    error = daemon.fails(
        "deployment", "update", "-e", "failing", "-n", "blue", "--set", "environment_variables.FAIL_INIT=1"
    )
    assert "init() failed: RuntimeError: init refused on purpose" in error
    after = daemon.json("deployment", "show", "-e", "failing", "-n", "blue")
    assert [r["pid"] for r in after["replicas"]] == [r["pid"] for r in before["replicas"]]
    assert "init refused on purpose" in after["error"]
    # The second new replica fails after the first replaced an old one: the old revision comes back.
    error = daemon.fails(
        "deployment",
        "update",
        "-e",
        "failing",
        "-n",
        "blue",
        "--set",
        f"environment_variables.FAIL_SECOND={files / 'second.marker'}",
    )
    assert "second replica refused on purpose" in error
    load.join(60)
    assert not load.failures() and len(load.outcomes) > 300
    after = daemon.json("deployment", "show", "-e", "failing", "-n", "blue")
    assert after["revision"] == before["revision"] and after["environment_variables"] == {"COLOR": "blue"}
    assert [r["revision"] for r in after["replicas"]] == [before["revision"]] * 2
    assert all(r["state"] == "ready" for r in after["replicas"])


def test_deployment_runs_in_its_environment(daemon: Daemon, files: Path) -> None:
    (files / "conda.yml").write_text("name: local\ndependencies:\n  - python=3.11\n")
    url = deploy(daemon, files, "env", environment={"conda_file": "conda.yml", "image": "mcr.microsoft.com/x"})
    prefix = Path(httpx.post(url, json={}).json()["prefix"])
    assert prefix.parent == daemon.home / "envs"
    assert daemon.json("deployment", "show", "-e", "env", "-n", "blue")["environment"] == "env-blue-env:1"


def test_kill_the_daemon_and_come_back(daemon: Daemon, files: Path) -> None:
    url = deploy(daemon, files, "survive", "instance_count=2")
    pids = {replica["pid"] for replica in daemon.replicas("survive", "blue")}
    os.kill(daemon.daemon_pid(), signal.SIGKILL)
    time.sleep(0.5)
    daemon.up()  # nothing is redefined
    replicas = daemon.wait_ready("survive", "blue", 2, timeout=10)
    assert {r["pid"] for r in replicas} == pids and all(r["restarts"] == 0 for r in replicas)  # adopted
    served = Load(url, {}, seconds=20, count=200, concurrency=4)
    served.run()
    assert not served.failures()
    for endpoint in ("limits", "roll", "env"):  # every endpoint serves again
        assert httpx.post(f"{daemon.url}/endpoints/{endpoint}/score", json={}).status_code == 200

    adopted = next(iter(pids))  # an adopted replica is watched like the daemon's own children
    os.kill(adopted, signal.SIGKILL)
    daemon.wait_ready("survive", "blue", 2, timeout=5, exclude_pids=frozenset({adopted}))


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_daemon_on_postgres_serves_no_code_and_v2(db_url: str, tmp_path: Path, onnx_model: Path) -> None:
    home = tmp_path / "ws"
    with Workspace(home, db_url=db_url) as ws:
        ws.models.register(onnx_model, "mlp")
    daemon = Daemon(home, db_url)
    daemon.up()
    try:
        daemon.ok("endpoint", "create", "-n", "pg")
        daemon.ok("deployment", "create", "-e", "pg", "-n", "onnx", "--set", "model=mlp:1", "--all-traffic")
        headers = scoring_headers(daemon.key("pg"))
        rows = [[0.5] * 32, [0.25] * 32]
        answer = httpx.post(f"{daemon.url}/endpoints/pg/score", json={"input_data": rows}, headers=headers)
        assert answer.status_code == 200 and len(answer.json()) == 2
        infer = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 32], "data": rows}]}
        answer = httpx.post(f"{daemon.url}/endpoints/pg/v2/models/mlp/infer", json=infer, headers=headers)
        assert answer.status_code == 200 and answer.json()["outputs"][0]["shape"] == [2, 4]
        error = httpx.post(f"{daemon.url}/endpoints/pg/v2/models/mlp/infer", json={"inputs": []}, headers=headers)
        assert error.status_code == 400 and "error" in error.json()  # the replica's v2 error, passed on

        daemon.ok("down")
        assert not daemon.replica_records() or all(not _alive(r["pid"]) for r in daemon.replica_records())
        daemon.up()
        daemon.wait_ready("pg", "onnx", 1)
        answer = httpx.post(f"{daemon.url}/endpoints/pg/score", json={"input_data": rows}, headers=headers)
        assert answer.status_code == 200
    finally:
        daemon.down()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
