"""A registered cascade pipeline (a small ONNX classifier; a large one only where the small one's
top probability is below 0.9) served by ``modelport serve``, by an online endpoint and by a batch
deployment: answers equal the reference computed here, rows in order; the steps batch under 32 clients; the steps'
versions are pinned at registration, and a pinned version cannot be deleted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient
from conftest import Cli, Server, ok
from endpoint_daemon import FAST_PROBES, Daemon, write_yaml

from modelport import Workspace
from modelport.batch.definitions import parse_deployment, parse_endpoint
from modelport.batch.endpoints import BatchEndpoints
from modelport.samples import CASCADE_FEATURES, build_cascade, cascade_rows


@dataclass
class Setup:
    home: Path
    paths: dict[str, Path]

    def reference(self, rows: np.ndarray) -> np.ndarray:
        """The cascade by hand: the small model's answer, the large one's where it is unsure."""
        small = ort.InferenceSession(str(self.paths["small"] / "model.onnx")).run(None, {"input": rows})[0]
        large = ort.InferenceSession(str(self.paths["large"] / "model.onnx")).run(None, {"input": rows})[0]
        return np.where((small.max(axis=1) < 0.9)[:, None], large, small)

    def unsure(self, rows: np.ndarray) -> int:
        small = ort.InferenceSession(str(self.paths["small"] / "model.onnx")).run(None, {"input": rows})[0]
        return int((small.max(axis=1) < 0.9).sum())


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("pipeline")
    paths = build_cascade(root / "files", large_width=512)
    cli = Cli(root / "ws")
    ok(cli("model", "register", paths["small"], "--name", "small"))
    ok(cli("model", "register", paths["large"], "--name", "large"))
    ok(cli("model", "register", paths["small"], "--name", "small", "--allow-duplicate"))  # small:2, same files
    for name in ("small", "large"):
        ok(cli("model", "alias", "set", name, "prod", "1"))
    registered = ok(cli("model", "register", paths["pipeline"], "--name", "cascade"))
    assert "registered cascade:1 (pipeline" in registered
    yield Setup(root / "ws", paths)


@pytest.fixture(scope="module")
def server(setup: Setup) -> Iterator[Server]:
    srv = Server(["cascade"], Cli(setup.home).env)
    yield srv
    assert srv.stop() == 0


def _body(rows: np.ndarray) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}


def _answer(reply: httpx.Response) -> np.ndarray:
    assert reply.status_code == 200, reply.text
    output = reply.json()["outputs"][0]
    assert output["name"] == "probabilities"
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


ROWS = cascade_rows(64, sure=0.7, seed=1)


def test_http_and_grpc_answers_equal_the_cascade_by_hand_rows_in_order(setup: Setup, server: Server) -> None:
    assert 0 < setup.unsure(ROWS) < len(ROWS)  # both branches are taken
    got = _answer(httpx.post(f"{server.url}/v2/models/cascade/infer", json=_body(ROWS), timeout=30))
    np.testing.assert_allclose(got, setup.reference(ROWS), rtol=1e-5, atol=1e-6)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    tensor = grpcclient.InferInput("x", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS)
    result = client.infer("cascade", [tensor])
    np.testing.assert_allclose(result.as_numpy("probabilities"), setup.reference(ROWS), rtol=1e-5, atol=1e-6)
    sure = cascade_rows(8, sure=1.0, seed=5)
    sure = sure[[i for i in range(len(sure)) if setup.unsure(sure[i : i + 1]) == 0]]
    got = _answer(httpx.post(f"{server.url}/v2/models/cascade/infer", json=_body(sure), timeout=30))
    np.testing.assert_allclose(got, setup.reference(sure), rtol=1e-5, atol=1e-6)  # the large step never called
    metadata = httpx.get(f"{server.url}/v2/models/cascade").json()
    assert metadata["platform"] == "pipeline"
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, CASCADE_FEATURES]}]


def test_a_bad_request_is_a_400_naming_the_tensor_and_the_server_keeps_serving(server: Server) -> None:
    bad = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [0, 1, 2]}]}
    reply = httpx.post(f"{server.url}/v2/models/cascade/infer", json=bad, timeout=30)
    assert reply.status_code == 400
    assert reply.json()["error"] == "input 'x': shape [1, 3] does not match the model's [-1, 16]"
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def _stats(server: Server, name: str) -> dict:
    return httpx.get(f"{server.url}/v2/models/{name}/stats").json()["model_stats"][0]


async def _load(setup: Setup, url: str, clients: int, seconds: float) -> tuple[int, int, int]:
    """``clients`` closed-loop clients, each sending 4 rows a request: (answers, wrong answers, failures)."""
    deadline = time.monotonic() + seconds
    answered = wrong = failed = 0

    async def client(http: httpx.AsyncClient, seed: int) -> None:
        nonlocal answered, wrong, failed
        rows = cascade_rows(4, sure=0.75, seed=100 + seed)
        expected = setup.reference(rows)
        while time.monotonic() < deadline:
            reply = await http.post(url, json=_body(rows))
            if reply.status_code != 200:
                failed += 1
                continue
            answered += 1
            wrong += not np.allclose(_answer(reply), expected, rtol=1e-5, atol=1e-6)

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(client(http, seed) for seed in range(clients)))
    return answered, wrong, failed


def test_steps_are_batched_under_32_concurrent_clients(setup: Setup, server: Server) -> None:
    names = ("cascade", "small", "large")
    before = {name: _stats(server, name) for name in names}
    answered, wrong, failed = asyncio.run(_load(setup, f"{server.url}/v2/models/cascade/infer", 32, 3.0))
    assert failed == 0 and wrong == 0 and answered > 32
    after = {name: _stats(server, name) for name in names}
    grown = {
        name: {key: after[name][key] - before[name][key] for key in ("inference_count", "execution_count")}
        for name in names
    }
    assert grown["cascade"] == {"inference_count": 4 * answered, "execution_count": answered}
    assert grown["small"]["inference_count"] == 4 * answered  # every row
    assert 0 < grown["large"]["inference_count"] < grown["small"]["inference_count"]  # the unsure rows only
    for name in ("small", "large"):
        assert grown[name]["execution_count"] < grown[name]["inference_count"], (name, grown[name])


def _show(cli: Cli, ref: str) -> dict:
    return json.loads(ok(cli("model", "show", ref, "-o", "json")))


def test_steps_are_pinned_at_registration_and_lineage_goes_both_ways(setup: Setup) -> None:
    cli = Cli(setup.home)
    ok(cli("model", "alias", "set", "small", "prod", "2"))
    try:
        shown = _show(cli, "cascade:1")
        assert shown["details"]["steps"] == {"small": "small:1", "large": "large:1"}  # moving prod changed nothing
        assert _show(cli, "small:1")["used_by"] == ["pipeline cascade:1"]
        assert _show(cli, "small:2")["used_by"] == []
        refused = cli("model", "delete", "small:1")
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            "error: model small:1 is used by pipeline cascade:1; move them to another version first"
        )
        assert _show(cli, "small:1")["version"] == 1  # still there
        again = ok(cli("model", "register", setup.paths["pipeline"], "--name", "cascade"))  # other pins: no duplicate
        assert "cascade:2" in again
        assert _show(cli, "cascade:2")["details"]["steps"] == {"small": "small:2", "large": "large:1"}
        same = cli("model", "register", setup.paths["pipeline"], "--name", "cascade")
        assert same.returncode == 1 and "identical content is already registered as version 2" in same.stderr
        ok(cli("model", "delete", "cascade:2"))
    finally:
        ok(cli("model", "alias", "set", "small", "prod", "1"))


def test_a_pipeline_with_a_broken_edge_is_refused_at_registration_in_one_line(setup: Setup, tmp_path: Path) -> None:
    cli = Cli(setup.home)
    broken = tmp_path / "pipeline.yaml"
    broken.write_text(setup.paths["pipeline"].read_text().replace("inputs: {input: x}", "inputs: {features: x}", 1))
    refused = cli("model", "register", broken, "--name", "broken")
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith(
        "error: pipeline 'broken': step 'small' (model small:1): inputs 'features' (tensor 'x') is not an input of "
        "the model (it has 'input')"
    ), refused.stderr
    assert "broken" not in ok(cli("model", "list"))  # nothing stored
    missing = tmp_path / "missing.yaml"
    missing.write_text(setup.paths["pipeline"].read_text().replace("large@prod", "huge:1"))
    refused = cli("model", "register", missing, "--name", "broken")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: pipeline 'broken': steps[1].model: model 'huge' does not exist")


def test_an_online_endpoint_serves_the_pipeline(setup: Setup) -> None:
    daemon = Daemon(setup.home)
    daemon.up()
    try:
        files = setup.home.parent / "endpoint"
        files.mkdir(exist_ok=True)
        daemon.ok("endpoint", "create", "-f", str(write_yaml(files / "endpoint.yml", {"name": "cascade-ep"})))
        deployment = {
            "name": "blue",
            "endpoint_name": "cascade-ep",
            "model": "azureml:cascade:1",
            "readiness_probe": FAST_PROBES,
        }
        daemon.ok("deployment", "create", "-f", str(write_yaml(files / "blue.yml", deployment)), "--all-traffic")
        daemon.wait_ready("cascade-ep", "blue", 1, timeout=60)
        reply = httpx.post(
            f"{daemon.url}/endpoints/cascade-ep/v2/models/cascade/infer",
            json=_body(ROWS),
            headers={"authorization": f"Bearer {daemon.key('cascade-ep')}"},
            timeout=30,
        )
        np.testing.assert_allclose(_answer(reply), setup.reference(ROWS), rtol=1e-5, atol=1e-6)
        assert "online deployment cascade-ep/blue" in daemon.fails("model", "delete", "cascade:1")
    finally:
        daemon.down()


def test_a_batch_deployment_scores_a_table_with_the_pipeline(setup: Setup, tmp_path: Path) -> None:
    with Workspace(setup.home) as ws:
        endpoints = BatchEndpoints(ws)
        endpoints.create_endpoint(parse_endpoint({"name": "cascade-batch"}).value)
        spec = {
            "name": "nocode",
            "endpoint_name": "cascade-batch",
            "model": "cascade:1",
            "settings": {"mini_batch_size": 40},
        }
        endpoints.create_deployment(parse_deployment(spec, tmp_path).value)
    rows = cascade_rows(100, sure=0.7, seed=9)
    (tmp_path / "table").mkdir()
    pd.DataFrame(rows, columns=[f"f{i}" for i in range(CASCADE_FEATURES)]).to_csv(
        tmp_path / "table" / "x.csv", index=False
    )
    ok(
        Cli(setup.home)(
            "batch-endpoint",
            "invoke",
            "-n",
            "cascade-batch",
            "-d",
            "nocode",
            "--input",
            tmp_path / "table",
            "--input-type",
            "tabular",
            "--output-path",
            tmp_path / "out",
            "--wait",
            timeout=300,
        )
    )
    scored = pd.read_csv(tmp_path / "out" / "predictions.csv", header=None, sep=" ")
    assert list(scored[0]) == list(range(100))  # rows in order
    np.testing.assert_allclose(scored[[1, 2, 3, 4]].to_numpy(), setup.reference(rows), rtol=1e-5, atol=1e-6)
    assert 0 < setup.unsure(rows) < 100


PLAIN = """\
kind: pipeline
inputs: [{name: x, datatype: FP32, shape: [-1, 16]}]
steps:
  - {name: small, model: small@prod, inputs: {input: x}, outputs: {output: small_probs}}
  - {name: large, model: large:1, inputs: {input: x}, outputs: {output: large_probs}}
outputs:
  - {name: small_answer, datatype: FP32, shape: [-1, 4], from: small_probs}
  - {name: large_answer, datatype: FP32, shape: [-1, 4], from: large_probs}
"""


def test_a_pipeline_without_conditions_exports_as_a_triton_ensemble_that_serves(setup: Setup, tmp_path: Path) -> None:
    cli = Cli(setup.home)
    (tmp_path / "plain.yaml").write_text(PLAIN)
    ok(cli("model", "register", tmp_path / "plain.yaml", "--name", "plain"))
    refused = cli("pipeline", "export", "cascade:1", "--triton", tmp_path / "cascade-repo")
    assert refused.returncode == 1 and refused.stderr.strip() == (
        "error: --triton: pipeline cascade:1: step 'large' runs only where max(small_probs) below 0.9; a Triton "
        "ensemble runs every step on every row, so this pipeline has no ensemble equivalent"
    )
    assert not (tmp_path / "cascade-repo").exists()
    repo = tmp_path / "repo"
    ok(cli("pipeline", "export", "plain:1", "--triton", repo))
    assert sorted(p.name for p in repo.iterdir()) == ["large", "plain", "small"]
    assert (repo / "small" / "1" / "model.onnx").is_file() and (repo / "plain" / "1").is_dir()
    config = (repo / "plain" / "config.pbtxt").read_text()
    assert 'platform: "ensemble"' in config and "model_version: 1" in config
    again = cli("pipeline", "export", "plain:1", "--triton", repo)
    assert again.returncode == 1 and "already exists; refusing to overwrite it" in again.stderr
    server = Server([str(repo)], grpc=False)
    try:
        reply = httpx.post(f"{server.url}/v2/models/plain/infer", json=_body(ROWS), timeout=30)
        assert reply.status_code == 200, reply.text
        outputs = {
            o["name"]: np.asarray(o["data"], dtype=np.float32).reshape(o["shape"]) for o in reply.json()["outputs"]
        }
        for name, step in (("small_answer", "small"), ("large_answer", "large")):
            session = ort.InferenceSession(str(setup.paths[step] / "model.onnx"))
            np.testing.assert_allclose(outputs[name], session.run(None, {"input": ROWS})[0], rtol=1e-5, atol=1e-6)
    finally:
        assert server.stop() == 0
