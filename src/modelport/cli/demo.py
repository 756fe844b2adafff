"""``modelport demo``: the README's first command, on the embedded defaults.

It builds a small ONNX model, registers it (reusing an identical earlier registration),
points the ``prod`` alias at it and shows it, then starts ``modelport serve`` on free loopback
ports as a separate process, scores a request over the v2 HTTP protocol and checks the answer
against onnxruntime in-process, deploys it behind a key-authenticated online endpoint (``modelport
up`` on a free port, endpoint + deployment with payload collection, invoke, a few hundred requests
whose first features run high, the router's and the replica's metrics, ``modelport down``),
checks the collected inputs for drift against the training distribution, and finally scores a
2,000-row table with a batch endpoint and a no-code batch deployment of the same model — the
whole loop a new user goes through, each step run as the CLI command a user would type.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import httpx

from modelport.cli.model import show_info
from modelport.control.replica import free_port
from modelport.core.errors import ModelportError, NotFoundError
from modelport.core.extras import missing
from modelport.registry.manifest import scan
from modelport.registry.models import ModelInfo
from modelport.samples import build_mlp_onnx
from modelport.workspace import Workspace

DEMO_MODEL = "demo-mlp"


def run_demo(ws: Workspace) -> None:
    click.echo(f"workspace: {ws.root}")
    with tempfile.TemporaryDirectory() as tmp:
        model_file = build_mlp_onnx(Path(tmp) / "model.onnx")
        info = _register_once(ws, model_file)
    ws.models.set_alias(DEMO_MODEL, "prod", info.version)
    click.echo(f"registered {info.ref}; alias {DEMO_MODEL}@prod -> {info.ref}")
    show_info(ws.models.get(f"{DEMO_MODEL}@prod"), "table")
    local = ws.models.path(f"{DEMO_MODEL}@prod")
    click.echo(f"verified local copy: {local}")
    _serve_and_score(ws, local)
    _online_endpoint(ws)
    _batch_score(ws)


def _serve_and_score(ws: Workspace, model_file: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    http_port, metrics_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "modelport",
        "--workspace",
        str(ws.root),
        "serve",
        f"{DEMO_MODEL}@prod",
        "--no-grpc",
        "--http-port",
        str(http_port),
        "--metrics-port",
        str(metrics_port),
    ]
    click.echo("$ " + " ".join(["modelport", *command[3:]]))
    server = subprocess.Popen(command)
    base = f"http://127.0.0.1:{http_port}"
    try:
        _wait_ready(base, server)
        x = np.random.default_rng(1).standard_normal((2, 32)).astype(np.float32)
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 32], "data": x.ravel().tolist()}]}
        response = httpx.post(f"{base}/v2/models/{DEMO_MODEL}/infer", json=body, timeout=30, trust_env=False)
        reply = response.raise_for_status().json()
        served = np.array(reply["outputs"][0]["data"], dtype=np.float32).reshape(reply["outputs"][0]["shape"])
        expected = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        click.echo(
            f"POST {base}/v2/models/{DEMO_MODEL}/infer -> version {reply['model_version']}, "
            f"output {served.shape}: {[round(float(v), 4) for v in served[0]]} ..."
        )
        click.echo(f"served output equals in-process onnxruntime: {bool(np.array_equal(served, expected))}")
    finally:
        server.terminate()
        server.wait(timeout=30)


BATCH_ENDPOINT = "name: demo-batch\ndescription: scores tables with the demo model\n"
BATCH_DEPLOYMENT = f"""name: nocode
endpoint_name: demo-batch
model: azureml:{DEMO_MODEL}@prod
max_concurrency_per_instance: 2
mini_batch_size: 500
"""


ONLINE_ENDPOINT = "name: demo-online\nauth_mode: key\n"
ONLINE_DEPLOYMENT = f"""name: blue
endpoint_name: demo-online
model: azureml:{DEMO_MODEL}@prod
instance_count: 1
data_collector:
  collections:
    model_inputs: {{enabled: 'True'}}
    model_outputs: {{enabled: 'True'}}
  sampling_rate: 1.0
"""
TRAFFIC = 300  # requests sent through the endpoint: their inputs are collected and checked for drift
SHIFTED = 3  # features whose production values run one standard deviation above the training data


def _cli(ws: Workspace, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    click.echo("$ modelport " + " ".join(args))
    command = [sys.executable, "-m", "modelport", "--workspace", str(ws.root), *args]
    env = {**os.environ, "MODELPORT_URL": url} if url else None
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def _online_endpoint(ws: Workspace) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    _check(_cli(ws, "up", "--port", str(port)))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "endpoint.yml").write_text(ONLINE_ENDPOINT)
            (folder / "deployment.yml").write_text(ONLINE_DEPLOYMENT)
            (folder / "request.json").write_text(json.dumps({"data": [[0.5] * 32]}))
            if _cli(ws, "endpoint", "show", "-n", "demo-online", url=url).returncode != 0:
                _check(_cli(ws, "endpoint", "create", "-f", str(folder / "endpoint.yml"), url=url))
                _check(_cli(ws, "deployment", "create", "-f", str(folder / "deployment.yml"), "--all-traffic", url=url))
            else:  # a workspace from an earlier demo: bring its deployment up to this definition
                _check(_cli(ws, "deployment", "update", "-f", str(folder / "deployment.yml"), url=url))
            answer = _check(
                _cli(
                    ws,
                    "endpoint",
                    "invoke",
                    "--name",
                    "demo-online",
                    "--request-file",
                    str(folder / "request.json"),
                    url=url,
                )
            )
            click.echo(f"endpoint answered: {answer.stdout.strip()}")
            _production_traffic(ws, url)
            _show_metrics(ws, url)
    finally:
        _cli(ws, "down", url=url)  # replicas stop gracefully: collected payload is flushed to Parquet
    _drift(ws)


def _production_traffic(ws: Workspace, url: str) -> None:
    """Requests whose first features run high, as if production had moved away from training."""
    import numpy as np

    keys = json.loads(
        _check(_cli(ws, "endpoint", "get-credentials", "-n", "demo-online", "-o", "json", url=url)).stdout
    )
    x = np.random.default_rng(3).standard_normal((TRAFFIC, 32)).astype(np.float32)
    x[:, :SHIFTED] += 1.0
    target = f"{url}/endpoints/demo-online/v2/models/{DEMO_MODEL}/infer"
    headers = {"Authorization": f"Bearer {keys['primaryKey']}"}
    with httpx.Client(headers=headers, timeout=30, trust_env=False) as client:
        for row in x:
            body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": row.tolist()}]}
            client.post(target, json=body).raise_for_status()
    click.echo(f"sent {TRAFFIC} requests to {target}")


def _show_metrics(ws: Workspace, url: str) -> None:
    from modelport.control.auth import read_token

    token = {"Authorization": f"Bearer {read_token(ws.root)}"}  # the daemon's metrics name endpoints: token only
    router = httpx.get(f"{url}/metrics", headers=token, timeout=10, trust_env=False).raise_for_status().text
    click.echo(f"GET {url}/metrics (the router):")
    for line in router.splitlines():
        if line.startswith("modelport_endpoint_requests_total{") and 'endpoint="demo-online"' in line:
            click.echo(f"  {line}")
    replica = json.loads(
        _check(_cli(ws, "deployment", "show", "-e", "demo-online", "-n", "blue", "-o", "json", url=url)).stdout
    )["replicas"][0]
    served = httpx.get(replica["metrics_url"], timeout=10, trust_env=False).raise_for_status().text
    click.echo(f"GET {replica['metrics_url']} (the replica):")
    for line in served.splitlines():
        if line.startswith(
            (
                "nv_inference_request_success{",
                "nv_inference_exec_count{",
                "modelport_inference_request_duration_seconds_count{",
            )
        ):
            click.echo(f"  {line}")


def _drift(ws: Workspace) -> None:
    """The collected inputs against the training distribution: the shifted features are flagged."""
    if missing("drift"):
        click.echo("drift check skipped: it needs pip install 'modelport[drift]'")
        return
    import numpy as np
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "train.parquet"
        train = np.random.default_rng(4).standard_normal((2000, 32)).astype(np.float32)
        pd.DataFrame(train, columns=[f"input_{i}" for i in range(32)]).to_parquet(baseline)
        features = ",".join(f"input_{i}" for i in range(SHIFTED + 3))
        report = _check(
            _cli(
                ws,
                "monitor",
                "drift",
                "--baseline",
                str(baseline),
                "--target",
                "demo-online/blue",
                "--since",
                "1h",
                "--features",
                features,
            )
        )
        click.echo(report.stdout.rstrip())


def _batch_score(ws: Workspace) -> None:
    import numpy as np
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "endpoint.yml").write_text(BATCH_ENDPOINT)
        (folder / "deployment.yml").write_text(BATCH_DEPLOYMENT)
        rows = np.random.default_rng(2).standard_normal((2000, 32)).astype(np.float32)
        pd.DataFrame(rows, columns=[f"f{i}" for i in range(32)]).to_csv(folder / "rows.csv", index=False)
        if _cli(ws, "batch-endpoint", "show", "-n", "demo-batch").returncode != 0:
            for args in (
                ("batch-endpoint", "create", "-f", str(folder / "endpoint.yml")),
                ("batch-deployment", "create", "-f", str(folder / "deployment.yml"), "--set-default"),
            ):
                _check(_cli(ws, *args))
        job = _check(
            _cli(
                ws,
                "batch-endpoint",
                "invoke",
                "-n",
                "demo-batch",
                "--input",
                str(folder / "rows.csv"),
                "--output-path",
                str(folder / "out"),
                "--wait",
            )
        )
        click.echo(job.stdout.strip().splitlines()[-1])
        lines = (folder / "out" / "predictions.csv").read_text().splitlines()
        click.echo(f"predictions.csv: {len(lines)} rows, first: {lines[0]}")


def _check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        raise ModelportError(f"demo: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'failed'}")
    return result


def _wait_ready(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ModelportError(f"demo: the scoring server exited with code {server.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/v2/health/ready", timeout=2, trust_env=False).status_code == 200:
                return
        time.sleep(0.2)
    raise ModelportError("demo: the scoring server did not become ready within 60 s")


def _register_once(ws: Workspace, model_file: Path) -> ModelInfo:
    """Running the demo twice reuses the first registration instead of failing as a duplicate."""
    digest = scan(model_file).digest
    try:
        existing = ws.models.versions(DEMO_MODEL, include_archived=True)
    except NotFoundError:
        existing = []
    for info in existing:
        if info.digest == digest:
            return info
    return ws.models.register(
        model_file, DEMO_MODEL, tags={"source": "modelport demo"}, description="32-64-64-4 ReLU MLP, seed 0"
    )
