"""Online endpoints end to end, as a user runs them: ``modelport up``, YAML definitions through
the CLI, requests over loopback through the router to real replica processes.

Blue/green from YAML (pin, 90/10 split, mirror, move, delete), bad definitions refused in one
line with nothing changed, key auth, logs, the registry refusing to delete a served model, and
the API's OpenAPI document. One daemon serves the whole module."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from endpoint_daemon import Daemon, Load, log_lines, running_daemon, scoring_headers, write_yaml

SCHEMA = "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("endpoints")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def files(daemon: Daemon) -> Path:
    """Where definitions are written; ``code/`` holds the scoring script."""
    return daemon.home.parent


def deployment_file(files: Path, endpoint: str, name: str, **extra: object) -> Path:
    data = {
        "$schema": SCHEMA,
        "name": name,
        "endpoint_name": endpoint,
        "model": "azureml:mlp:1",
        "code_configuration": {"code": "code", "scoring_script": "score.py"},
        "environment_variables": {"COLOR": name},
        "instance_type": "Standard_DS3_v2",
        "instance_count": 1,
        "request_settings": {"max_concurrent_requests_per_instance": 4},
        **extra,
    }
    return write_yaml(files / f"{endpoint}-{name}.yml", data)


def endpoint_file(files: Path, name: str, **extra: object) -> Path:
    return write_yaml(
        files / f"{name}.yml",
        {"$schema": "https://x/managedOnlineEndpoint.schema.json", "name": name, "auth_mode": "key", **extra},
    )


def scored_lines(daemon: Daemon, endpoint: str, deployment: str) -> int:
    folder = daemon.home / "logs" / "endpoints" / endpoint / deployment
    return sum(line == f"scored by {deployment}" for line in log_lines(folder))


def test_blue_green_from_yaml(daemon: Daemon, files: Path) -> None:
    created = daemon.ok("endpoint", "create", "-f", str(endpoint_file(files, "bg")))
    assert "ignored" not in created.stderr  # $schema is a schema reference, accepted silently
    created = daemon.ok("deployment", "create", "-f", str(deployment_file(files, "bg", "blue")), "--all-traffic")
    assert "note: ignored cloud-only keys: instance_type\n" in created.stderr
    key = daemon.key("bg")
    answer = daemon.score("bg", key)
    assert answer.status_code == 200, answer.text
    assert answer.json()["color"] == "blue" and answer.headers["azureml-model-deployment"] == "blue"
    assert answer.json()["model_dir"].endswith("/mlp/1")

    daemon.ok("deployment", "create", "-f", str(deployment_file(files, "bg", "green")))
    assert daemon.json("endpoint", "show", "-n", "bg")["traffic"] == {"blue": 100}
    url = f"{daemon.url}/endpoints/bg/score"
    unpinned = Load(url, scoring_headers(key), seconds=30, count=50)
    unpinned.run()
    assert {o.body.get("color") for o in unpinned.outcomes} == {"blue"} and not unpinned.failures()
    for header in ("x-modelport-deployment", "azureml-model-deployment"):
        answer = daemon.score("bg", key, headers={header: "green"})  # reaches green at 0 %
        assert answer.json()["color"] == "green" and answer.headers["azureml-model-deployment"] == "green"
    assert daemon.score("bg", key, headers={"x-modelport-deployment": "purple"}).status_code == 404

    daemon.ok("endpoint", "update", "-n", "bg", "--traffic", "blue=90 green=10")
    split = Load(url, scoring_headers(key), seconds=60, count=1000, concurrency=8)
    split.run()
    assert not split.failures()
    counts = Counter(o.deployment for o in split.outcomes)
    assert counts["blue"] + counts["green"] == 1000
    assert 0.07 <= counts["green"] / 1000 <= 0.13, counts
    assert all(o.body["color"] == o.deployment for o in split.outcomes)

    # Mirror 20 % to green: the caller only ever sees blue, at the same latency.
    daemon.ok("endpoint", "update", "-n", "bg", "--traffic", "blue=100 green=0")
    baseline = Load(url, scoring_headers(key), seconds=30, count=300, concurrency=4)
    baseline.run()
    before = scored_lines(daemon, "bg", "green")
    daemon.ok("endpoint", "update", "-n", "bg", "--mirror-traffic", "green=20")
    mirrored = Load(url, scoring_headers(key), seconds=30, count=300, concurrency=4)
    mirrored.run()
    assert not mirrored.failures()
    assert {(o.deployment, o.body["color"]) for o in mirrored.outcomes} == {("blue", "blue")}
    time.sleep(1)  # mirror copies still in flight
    copies = scored_lines(daemon, "bg", "green") - before
    assert 30 <= copies <= 90, copies  # 20 % of 300 = 60
    p50 = statistics.median(o.seconds for o in mirrored.outcomes)
    base_p50 = statistics.median(o.seconds for o in baseline.outcomes)
    assert p50 < 2 * base_p50 + 0.005, (p50, base_p50)

    before = scored_lines(daemon, "bg", "green")  # pinned requests are never mirrored
    for _ in range(20):
        assert daemon.score("bg", key, headers={"azureml-model-deployment": "blue"}).json()["color"] == "blue"
    time.sleep(0.5)
    assert scored_lines(daemon, "bg", "green") == before

    daemon.ok("endpoint", "update", "-n", "bg", "--traffic", "blue=0 green=100", "--mirror-traffic", "")
    assert daemon.score("bg", key).json()["color"] == "green"
    daemon.ok("deployment", "delete", "-e", "bg", "-n", "blue", "--yes")
    assert [d["name"] for d in daemon.json("deployment", "list", "-e", "bg")] == ["green"]
    moved = Load(url, scoring_headers(key), seconds=30, count=100)
    moved.run()
    assert {o.deployment for o in moved.outcomes} == {"green"} and not moved.failures()


def test_bad_definitions_are_refused_in_one_line_and_change_nothing(daemon: Daemon, files: Path) -> None:
    daemon.ok("endpoint", "create", "-f", str(endpoint_file(files, "bad")))
    daemon.ok("deployment", "create", "-f", str(deployment_file(files, "bad", "blue")), "--all-traffic")
    green = str(deployment_file(files, "bad", "green"))
    before = (
        daemon.json("endpoint", "show", "-n", "bad"),
        daemon.json("deployment", "list", "-e", "bad"),
        daemon.json("model", "list"),
    )
    refusals = {
        "traffic: the weights sum to 90; they must sum to 100": (
            "endpoint",
            "update",
            "-n",
            "bad",
            "--traffic",
            "blue=90",
        ),
        "mirror_traffic.blue: 'blue' already gets 100 % of live traffic": (
            "endpoint",
            "update",
            "-n",
            "bad",
            "--mirror-traffic",
            "blue=10",
        ),
        "traffic.purple: endpoint 'bad' has no deployment 'purple'": (
            "endpoint",
            "update",
            "-n",
            "bad",
            "--traffic",
            "blue=50 purple=50",
        ),
        "model: model 'ghost' does not exist": ("deployment", "create", "-f", green, "--set", "model=azureml:ghost:1"),
        "code_configuration.scoring_script: ": (
            "deployment",
            "create",
            "-f",
            green,
            "--set",
            "code_configuration.scoring_script=missing.py",
        ),
        "instance_cnt: unknown key": ("deployment", "create", "-f", green, "--set", "instance_cnt=2"),
        "traffic.green: endpoint 'other' has no deployment 'green'": (
            "endpoint",
            "create",
            "-f",
            str(endpoint_file(files, "other", traffic={"green": 100})),
        ),
    }
    for expected, command in refusals.items():
        assert daemon.fails(*command).startswith(f"error: {expected}")
    assert "missing.py does not exist" in daemon.fails(*refusals["code_configuration.scoring_script: "])
    after = (
        daemon.json("endpoint", "show", "-n", "bad"),
        daemon.json("deployment", "list", "-e", "bad"),
        daemon.json("model", "list"),
    )
    assert after == before
    assert [e["name"] for e in daemon.json("endpoint", "list")].count("other") == 0


def test_keys(daemon: Daemon, files: Path) -> None:
    daemon.ok("endpoint", "create", "-f", str(endpoint_file(files, "auth")))
    daemon.ok(
        "deployment",
        "create",
        "-f",
        str(deployment_file(files, "auth", "blue", environment_variables={"COLOR": "blue", "PRINT_HEADERS": "1"})),
        "--all-traffic",
    )
    primary, secondary = daemon.key("auth"), daemon.key("auth", "secondaryKey")
    assert daemon.score("auth", None).status_code == 401
    assert daemon.score("auth", "not-the-key").status_code == 401
    assert daemon.score("auth", None, headers={"authorization": primary}).status_code == 401  # no Bearer
    assert daemon.score("auth", primary).status_code == 200
    assert daemon.score("auth", secondary).status_code == 200
    daemon.ok("endpoint", "regenerate-keys", "-n", "auth", "--key", "primary")
    new_primary = daemon.key("auth")
    assert new_primary != primary
    assert daemon.score("auth", primary).status_code == 401  # at once
    assert daemon.score("auth", new_primary).status_code == 200
    assert daemon.score("auth", secondary).status_code == 200
    request = files / "request.json"
    request.write_text("{}")
    assert '"color":"blue"' in daemon.ok("endpoint", "invoke", "-n", "auth", "--request-file", str(request)).stdout

    header_lines = [line.lower() for line in log_lines(daemon.home / "logs") if line.startswith("headers ")]
    assert header_lines and all("x-request-id" in line for line in header_lines)  # the script saw headers...
    assert not any("authorization" in line for line in header_lines)  # ...but never the key
    everything = "\n".join(log_lines(daemon.home))  # and no log anywhere holds one
    for key in (primary, secondary, new_primary):
        assert key not in everything


def test_logs_errors_and_in_use_model(daemon: Daemon, files: Path) -> None:
    daemon.ok("endpoint", "create", "-f", str(endpoint_file(files, "logs", auth_mode="none")))
    daemon.ok("deployment", "create", "-f", str(deployment_file(files, "logs", "blue")), "--all-traffic")
    for _ in range(3):
        assert daemon.score("logs", None).status_code == 200  # auth_mode none: no key needed
    lines = daemon.ok("deployment", "logs", "-e", "logs", "-n", "blue", "--lines", "2").stdout.splitlines()
    assert lines == ["scored by blue", "scored by blue"]
    failed = daemon.score("logs", None, {"fail": True})  # Azure's gateway: a failing container is a 424
    assert failed.status_code == 424 and failed.headers["ms-azureml-model-error-statuscode"] == "500"
    assert failed.json()["message"].startswith("An unexpected error occurred in scoring script")
    logged = daemon.ok("deployment", "logs", "-e", "logs", "-n", "blue", "--lines", "40").stdout
    assert "ValueError: asked to fail" in logged  # the traceback is in the replica's console

    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelport",
            "deployment",
            "logs",
            "-e",
            "logs",
            "-n",
            "blue",
            "--lines",
            "0",
            "--follow",
        ],
        env=daemon.cli.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(follower.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:  # the follower is connected once it printed the tail
            time.sleep(0.1)
        assert daemon.score("logs", None).status_code == 200
        deadline = time.monotonic() + 10
        while "scored by blue\n" not in seen and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "scored by blue\n" in seen
    finally:
        follower.terminate()
        follower.wait(timeout=10)

    error = daemon.fails("model", "delete", "mlp:1")
    assert error.startswith("error: model mlp:1 is used by online deployment ")
    assert "logs/blue" in error


def test_api_is_described_and_status_lists_replicas(daemon: Daemon) -> None:
    document = httpx.get(f"{daemon.url}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/api/endpoints", "/api/endpoints/{endpoint}/deployments/{deployment}/logs"} <= set(document["paths"])
    assert set(document["paths"]["/api/endpoints/{endpoint}"]) == {"get", "put", "delete"}
    status = daemon.json("status")
    assert status["url"] == daemon.url
    served = {(e["name"], d["name"]): d for e in status["endpoints"] for d in e["deployments"]}
    assert all(d["provisioning_state"] == "Succeeded" for d in served.values())
    assert all(r["state"] == "ready" for d in served.values() for r in d["replicas"])
    assert httpx.get(f"{daemon.url}/endpoints/nothing/score").status_code == 404
    assert httpx.get(f"{daemon.url}/endpoints/logs/metrics").status_code == 404  # not a scoring route


def test_deployment_operations_metrics_request_logs_and_collection(daemon: Daemon, files: Path) -> None:
    daemon.ok("endpoint", "create", "-f", str(endpoint_file(files, "ops")))
    collector = {
        "collections": {"model_inputs": {"enabled": "True"}, "model_outputs": {"enabled": "True"}},
        "sampling_rate": 1.0,
        "format": "jsonl",
        "request_logging": {"capture_headers": []},
    }
    created = daemon.ok(
        "deployment",
        "create",
        "-f",
        str(deployment_file(files, "ops", "blue", code_configuration=None, data_collector=collector)),
        "--all-traffic",
    )
    assert "data_collector.request_logging" in created.stderr  # a cloud-only key, reported as ignored
    key = daemon.key("ops")
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 32], "data": [0.5] * 64}]}
    url = f"{daemon.url}/endpoints/ops/v2/models/mlp/infer"
    for _ in range(6):
        assert httpx.post(url, json=body, headers={"authorization": f"Bearer {key}"}).status_code == 200
    assert httpx.post(url, json=body).status_code == 401

    assert httpx.get(f"{daemon.url}/metrics").status_code == 401  # it names the endpoints: the token only
    metrics = httpx.get(f"{daemon.url}/metrics", headers=daemon.api_headers()).text
    assert 'modelport_endpoint_requests_total{code="200",deployment="blue",endpoint="ops"} 6.0' in metrics
    assert 'modelport_endpoint_requests_total{code="401",deployment="",endpoint="ops"} 1.0' in metrics
    replica = daemon.replicas("ops", "blue")[0]
    replica_metrics = httpx.get(replica["metrics_url"]).text
    assert 'nv_inference_request_success{model="mlp",version="1"} 6' in replica_metrics

    deadline = time.monotonic() + 10
    while True:  # the request log and the collector write a few times a second, off the request path
        logged = daemon.ok("deployment", "logs", "-e", "ops", "-n", "blue", "--requests").stdout.splitlines()
        collected = list((daemon.home / "collected" / "ops" / "blue" / "model_inputs").rglob("*.jsonl"))
        if len(logged) >= 6 and collected and len(collected[0].read_text().splitlines()) >= 6:
            break
        assert time.monotonic() < deadline, (logged, collected)
        time.sleep(0.2)
    lines = [json.loads(line) for line in logged]
    assert {(line["endpoint"], line["deployment"], line["model"], line["status"]) for line in lines} == {
        ("ops", "blue", "mlp", 200)
    }
    records = [json.loads(line) for line in collected[0].read_text().splitlines()]
    assert {record["correlationid"] for record in records} == {line["request_id"] for line in lines}
    assert records[0]["source"] == "/endpoints/ops/deployments/blue" and len(records[0]["data"]) == 2
    daemon.ok("endpoint", "delete", "-n", "ops", "--yes")


def test_the_sdk_does_what_the_cli_does(daemon: Daemon, files: Path) -> None:
    from modelport.core.errors import ConflictError, ValidationError
    from modelport.online import OnlineEndpoints

    with OnlineEndpoints(daemon.url, workspace=daemon.home) as online:
        created = online.create_endpoint({"name": "sdk", "auth_mode": "key", "$schema": "https://x"})
        assert created["name"] == "sdk" and created["ignored"] == []
        online.create_deployment(deployment_file(files, "sdk", "blue"), all_traffic=True)
        online.create_deployment({"name": "green", "endpoint_name": "sdk", "model": "mlp:2"})
        assert online.invoke("sdk", {})["color"] == "blue"
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [0.5] * 32}]}
        answer = online.invoke("sdk", body, deployment="green", route="v2/models/mlp/infer")
        assert answer["model_version"] == "2"
        online.update_endpoint("sdk", set=["traffic.blue=0", "traffic.green=100"])
        assert online.get_endpoint("sdk")["traffic"] == {"blue": 0, "green": 100}
        assert {d["name"] for d in online.list_deployments("sdk")} == {"blue", "green"}
        old = online.get_credentials("sdk")["primaryKey"]
        online.regenerate_keys("sdk", "primary")
        assert online.get_credentials("sdk")["primaryKey"] != old
        assert "scored by blue" in online.logs("sdk", "blue", lines=5)
        with pytest.raises(ValidationError, match="traffic: the weights sum to 90"):
            online.update_endpoint("sdk", set=["traffic.green=90"])
        with pytest.raises(ConflictError, match="already exists"):
            online.create_deployment({"name": "green", "endpoint_name": "sdk", "model": "mlp:2"})
        online.delete_endpoint("sdk")
        assert "sdk" not in {e["name"] for e in online.list_endpoints()}
