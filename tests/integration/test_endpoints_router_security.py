"""What an endpoint key buys through the router, and what a refused deployment leaves behind, end
to end against ``modelport up`` and its replicas: only scoring routes pass (the model repository,
statistics and metrics answer 404 even with a valid key, whatever the path's spelling); a model
unloaded on the replica's own port takes the replica out of rotation (503 naming why) and a load
brings it back; a deployment refused after its inline model was registered leaves no model."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from endpoint_daemon import FAST_PROBES, Daemon, running_daemon, scoring_headers, write_yaml

from modelport.samples import build_mlp_onnx

ROWS = [[0.5] * 32]
INFER = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": ROWS[0]}]}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("router-security")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def files(daemon: Daemon) -> Path:
    """Where definitions are written; ``code/`` holds the scoring script."""
    return daemon.home.parent


def no_code(daemon: Daemon, endpoint: str, **fields: object) -> httpx.Client:
    """An endpoint (key auth) serving ``mlp:1`` without a script; a client with its key."""
    daemon.ok("endpoint", "create", "-n", endpoint)
    daemon.ok(
        "deployment",
        "create",
        "-e",
        endpoint,
        "-n",
        "blue",
        "--set",
        "model=mlp:1",
        *[item for key, value in fields.items() for item in ("--set", f"{key}={value}")],
        "--all-traffic",
    )
    return httpx.Client(
        base_url=f"{daemon.url}/endpoints/{endpoint}", headers=scoring_headers(daemon.key(endpoint)), timeout=30
    )


def raw_status(daemon: Daemon, method: str, target: str, key: str) -> int:
    """The status of a request sent byte for byte, so no client normalises ``..`` or ``%2F`` away."""
    request = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
        sock.sendall(request.encode())
        head = sock.recv(4096).decode("latin-1")
    return int(head.split(" ", 2)[1])


def test_the_key_buys_inference_only(daemon: Daemon) -> None:
    client = no_code(daemon, "inference")
    refused = [
        ("POST", "/v2/repository/models/mlp/unload"),
        ("POST", "/v2/repository/models/mlp/load"),
        ("POST", "/v2/repository/index"),
        ("GET", "/v2/models/stats"),
        ("GET", "/v2/models/mlp/stats"),
        ("GET", "/v2/models/mlp/versions/1/stats"),
        ("GET", "/metrics"),
        ("GET", "/v2/openapi.json"),
        ("POST", "/v2/trace/setting"),
        ("GET", "/v2/models/mlp/infer"),
        ("DELETE", "/score"),
    ]
    for method, path in refused:
        answer = client.request(method, path)
        assert answer.status_code == 404, (method, path, answer.text)
        assert "is not a scoring route" in answer.json()["error" if path.startswith("/v2") else "message"]
    for target in (
        "/endpoints/inference/v2/models/mlp/../../repository/models/mlp/unload",
        "/endpoints/inference/v2/models/mlp/..%2F..%2Frepository/models/mlp/unload",
        "/endpoints/inference/v2/models/..%2Frepository%2Fmodels%2Fmlp%2Funload",
    ):
        assert raw_status(daemon, "POST", target, daemon.key("inference")) == 404, target
    # nothing reached the replica: its model is loaded and answers through the router
    replica = daemon.replicas("inference", "blue")[0]
    index = httpx.post(f"http://127.0.0.1:{replica['port']}/v2/repository/index", json={}).json()
    assert index == [{"name": "mlp", "version": "1", "state": "READY", "reason": ""}]

    assert client.post("/v2/models/mlp/infer", json=INFER).json()["outputs"][0]["shape"] == [1, 4]
    assert client.post("/v2/models/mlp/versions/1/infer", json=INFER).status_code == 200
    assert len(client.post("/score", json={"input_data": ROWS}).json()) == 1
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/mlp",
        "/v2/models/mlp/ready",
        "/v2/models/mlp/config",
        "/v2/models/mlp/versions/1/ready",
        "/swagger.json",
    ):
        assert client.get(path).status_code == 200, path
    assert client.get("/v2/models/mlp").json()["name"] == "mlp"

    # without the key every path answers the same 401: the routes cannot be probed
    for method, path in [("POST", "/v2/repository/models/mlp/unload"), ("GET", "/metrics"), ("POST", "/score")]:
        assert httpx.request(method, f"{daemon.url}/endpoints/inference{path}").status_code == 401


def test_readiness_follows_the_model(daemon: Daemon) -> None:
    # 30 failures in a row take 15 s; a replica that answers "not ready" leaves at the next probe
    probe = {**FAST_PROBES, "failure_threshold": 30}
    client = no_code(daemon, "unloaded", **{f"readiness_probe.{k}": v for k, v in probe.items()})
    replica = daemon.replicas("unloaded", "blue")[0]
    assert replica["state"] == "ready" and replica["url"] == f"http://127.0.0.1:{replica['port']}"
    assert client.post("/v2/models/mlp/infer", json=INFER).status_code == 200

    assert httpx.post(f"{replica['url']}/v2/repository/models/mlp/unload", json={}).status_code == 200
    deadline = time.monotonic() + 3  # a few probe periods of 0.5 s
    while (answer := client.post("/v2/models/mlp/infer", json=INFER)).status_code != 503:
        assert answer.status_code == 400, answer.text  # the replica's own "not ready", until the next probe
        assert time.monotonic() < deadline, "a replica whose model was unloaded still gets requests"
        time.sleep(0.1)
    reason = answer.json()["error"]
    assert "deployment 'blue' has no ready replica (replica 0 unready)" in reason
    assert "model 'mlp' is not ready (unloaded)" in reason
    assert client.post("/score", json={"input_data": ROWS}).status_code == 503
    shown = daemon.replicas("unloaded", "blue")[0]
    assert shown["state"] == "unready" and shown["pid"] == replica["pid"]  # out of rotation, not restarted
    assert shown["unready"] == "model 'mlp' is not ready (unloaded)"

    assert httpx.post(f"{replica['url']}/v2/repository/models/mlp/load", json={}).status_code == 200
    back = daemon.wait_ready("unloaded", "blue", 1, timeout=5)
    assert back[0]["pid"] == replica["pid"] and back[0]["unready"] is None
    assert client.post("/v2/models/mlp/infer", json=INFER).status_code == 200


def models(daemon: Daemon) -> dict[str, int]:
    return {m["name"]: m["version_count"] for m in daemon.json("model", "list")}


def test_a_refused_deployment_leaves_no_model(daemon: Daemon, files: Path) -> None:
    before = models(daemon)
    inline = build_mlp_onnx(files / "inline-a" / "model.onnx", seed=7)
    definition = {
        "name": "blue",
        "endpoint_name": "refused",
        "model": {"path": str(inline)},
        "code_configuration": {"code": "code", "scoring_script": "score.py"},
        "environment_variables": {"FAIL_INIT": "1"},
    }
    daemon.ok("endpoint", "create", "-n", "refused")
    error = daemon.fails("deployment", "create", "-f", str(write_yaml(files / "refused.yml", definition)))
    assert "init refused on purpose" in error or "exited before it was ready" in error, error
    assert models(daemon) == before  # the inline model registered for it went with it
    assert not daemon.json("deployment", "list", "-e", "refused")

    # a referenced model is never removed, whatever happens to the deployment
    daemon.fails("deployment", "create", "-f", str(write_yaml(files / "refused.yml", {**definition, "model": "mlp:2"})))
    assert models(daemon) == before

    # an update rolled back removes the model version registered for it; the old one keeps serving
    daemon.ok(
        "deployment",
        "create",
        "-f",
        str(write_yaml(files / "refused.yml", {**definition, "environment_variables": {"COLOR": "blue"}})),
        "--all-traffic",
    )
    with_a = models(daemon)
    assert with_a == {**before, "refused-blue": 1}
    other = build_mlp_onnx(files / "inline-b" / "model.onnx", seed=8)
    daemon.fails(
        "deployment",
        "update",
        "-f",
        str(write_yaml(files / "refused.yml", {**definition, "model": {"path": str(other)}})),
    )
    assert models(daemon) == with_a
    assert daemon.json("deployment", "show", "-e", "refused", "-n", "blue")["model"] == "refused-blue:1"
    assert daemon.score("refused", daemon.key("refused")).json()["color"] == "blue"
