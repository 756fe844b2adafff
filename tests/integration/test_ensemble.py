"""A Triton ensemble (scaler → classifier → post-processor, three ONNX models built here) served
by ``modelport serve``: tritonclient over HTTP and gRPC gets what running the three models by
hand gives, config and metadata read as Triton serves them, steps are batched under concurrent
clients, and a broken ensemble stops the server at load with one line naming the step."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import Cli, Server, free_port, ok
from onnx import TensorProto, helper, numpy_helper

from modelport import Workspace
from modelport.batch.definitions import parse_deployment, parse_endpoint
from modelport.batch.endpoints import BatchEndpoints

FEATURES, CLASSES = 4, 3
COMPOSING = ("scaler", "classifier", "post")
BATCHING = "max_batch_size: 64\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n"
ENSEMBLE = """
name: "pipeline"
platform: "ensemble"
max_batch_size: 64
input [ { name: "RAW" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [
  { name: "PROBABILITIES" data_type: TYPE_FP32 dims: [ 3 ] },
  { name: "LABEL" data_type: TYPE_INT64 dims: [ 1 ] }
]
ensemble_scheduling {
  step [
    { model_name: "scaler" model_version: -1
      input_map { key: "raw" value: "RAW" } output_map { key: "scaled" value: "scaled" } },
    { model_name: "classifier" model_version: -1
      input_map { key: "features" value: "scaled" } output_map { key: "logits" value: "logits" } },
    { model_name: "post" model_version: -1
      input_map { key: "logits" value: "logits" }
      output_map [ { key: "probabilities" value: "PROBABILITIES" }, { key: "label" value: "LABEL" } ] }
  ]
}
"""


def _save(graph: onnx.GraphProto, path: Path) -> None:
    path.parent.mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def _tensor(name: str, kind: int, width: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, kind, [None, width])


def build_repository(root: Path) -> Path:
    rng = np.random.default_rng(0)
    mean = rng.standard_normal(FEATURES).astype(np.float32)
    scale = (rng.random(FEATURES) + 0.5).astype(np.float32)
    weights = rng.standard_normal((FEATURES, CLASSES)).astype(np.float32)
    bias = rng.standard_normal(CLASSES).astype(np.float32)
    node = helper.make_node
    scaler = helper.make_graph(
        [node("Sub", ["raw", "mean"], ["centred"]), node("Div", ["centred", "scale"], ["scaled"])],
        "scaler",
        [_tensor("raw", TensorProto.FLOAT, FEATURES)],
        [_tensor("scaled", TensorProto.FLOAT, FEATURES)],
        [numpy_helper.from_array(mean, "mean"), numpy_helper.from_array(scale, "scale")],
    )
    classifier = helper.make_graph(
        [node("MatMul", ["features", "w"], ["product"]), node("Add", ["product", "b"], ["logits"])],
        "classifier",
        [_tensor("features", TensorProto.FLOAT, FEATURES)],
        [_tensor("logits", TensorProto.FLOAT, CLASSES)],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    post = helper.make_graph(
        [
            node("Softmax", ["logits"], ["probabilities"], axis=1),
            node("ArgMax", ["logits"], ["label"], axis=1, keepdims=1),
        ],
        "post",
        [_tensor("logits", TensorProto.FLOAT, CLASSES)],
        [_tensor("probabilities", TensorProto.FLOAT, CLASSES), _tensor("label", TensorProto.INT64, 1)],
    )
    for name, graph in zip(COMPOSING, (scaler, classifier, post)):
        _save(graph, root / name / "1" / "model.onnx")
        (root / name / "config.pbtxt").write_text(BATCHING)
    (root / "pipeline" / "1").mkdir(parents=True)  # Triton's empty version folder of an ensemble
    (root / "pipeline" / "config.pbtxt").write_text(ENSEMBLE)
    return root


def by_hand(root: Path, raw: np.ndarray) -> dict[str, np.ndarray]:
    """The three models run one after the other with onnxruntime, as a client would without the ensemble."""

    def run(name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return ort.InferenceSession(str(root / name / "1" / "model.onnx")).run(None, feeds)

    (scaled,) = run("scaler", {"raw": raw})
    (logits,) = run("classifier", {"features": scaled})
    probabilities, label = run("post", {"logits": logits})
    return {"PROBABILITIES": probabilities, "LABEL": label}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = build_repository(tmp_path_factory.mktemp("ensemble"))
    srv = Server([str(root)])
    srv.root = root
    yield srv
    assert srv.stop() == 0


RAW = np.random.default_rng(1).standard_normal((5, FEATURES)).astype(np.float32)


def test_http_answers_equal_the_three_models_run_by_hand(server: Server) -> None:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    raw = httpclient.InferInput("RAW", list(RAW.shape), "FP32")
    raw.set_data_from_numpy(RAW, binary_data=True)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=True) for name in ("PROBABILITIES", "LABEL")]
    result = client.infer("pipeline", [raw], outputs=outputs)
    expected = by_hand(server.root, RAW)
    np.testing.assert_allclose(result.as_numpy("PROBABILITIES"), expected["PROBABILITIES"], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(result.as_numpy("LABEL"), expected["LABEL"])
    assert client.is_model_ready("pipeline")


def test_grpc_answers_equal_the_three_models_run_by_hand(server: Server) -> None:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    raw = grpcclient.InferInput("RAW", list(RAW.shape), "FP32")
    raw.set_data_from_numpy(RAW)
    result = client.infer("pipeline", [raw], outputs=[grpcclient.InferRequestedOutput("LABEL")])
    np.testing.assert_array_equal(result.as_numpy("LABEL"), by_hand(server.root, RAW)["LABEL"])
    assert result.as_numpy("PROBABILITIES") is None  # only what was asked for
    assert client.is_model_ready("pipeline")


def test_config_and_metadata_as_triton_serves_them(server: Server) -> None:
    http = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    config = http.get_model_config("pipeline")
    assert config["platform"] == "ensemble" and config["max_batch_size"] == 64
    assert config["instance_group"] == [] and "dynamic_batching" not in config
    steps = config["ensemble_scheduling"]["step"]
    assert [step["model_name"] for step in steps] == list(COMPOSING)
    assert steps[2]["input_map"] == {"logits": "logits"}
    assert steps[2]["output_map"] == {"probabilities": "PROBABILITIES", "label": "LABEL"}
    assert all(int(step["model_version"]) == -1 for step in steps)
    metadata = http.get_model_metadata("pipeline")
    assert metadata == {
        "name": "pipeline",
        "versions": ["1"],
        "platform": "ensemble",
        "inputs": [{"name": "RAW", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "PROBABILITIES", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "LABEL", "datatype": "INT64", "shape": [-1, 1]},
        ],
    }
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    grpc_config = grpc.get_model_config("pipeline", as_json=True)["config"]
    assert grpc_config["platform"] == "ensemble"
    assert grpc_config["ensemble_scheduling"]["step"][1] == {
        "model_name": "classifier",
        "model_version": "-1",  # protobuf's JSON writes int64 as a string
        "input_map": {"features": "scaled"},
        "output_map": {"logits": "logits"},
    }
    grpc_metadata = grpc.get_model_metadata("pipeline", as_json=True)
    assert grpc_metadata["platform"] == "ensemble" and grpc_metadata["inputs"][0]["shape"] == ["-1", "4"]
    index = {entry["name"]: entry["state"] for entry in http.get_model_repository_index()}
    assert index == dict.fromkeys(("classifier", "pipeline", "post", "scaler"), "READY")


async def _load(url: str, clients: int, seconds: float) -> tuple[int, int]:
    """``clients`` closed-loop clients of one row each for ``seconds``: (answers, failures)."""
    deadline = time.monotonic() + seconds
    answered = failed = 0

    async def client(http: httpx.AsyncClient, seed: int) -> None:
        nonlocal answered, failed
        row = np.random.default_rng(seed).standard_normal((1, FEATURES)).astype(np.float32)
        body = {"inputs": [{"name": "RAW", "datatype": "FP32", "shape": [1, FEATURES], "data": row.ravel().tolist()}]}
        while time.monotonic() < deadline:
            reply = await http.post(url, json=body)
            if reply.status_code == 200:
                answered += 1
            else:
                failed += 1

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(http, seed) for seed in range(clients)))
    return answered, failed


def _stats(server: Server, name: str) -> dict:
    return httpx.get(f"{server.url}/v2/models/{name}/stats").json()["model_stats"][0]


def test_steps_are_batched_under_32_concurrent_clients(server: Server) -> None:
    before = {name: _stats(server, name) for name in (*COMPOSING, "pipeline")}
    answered, failed = asyncio.run(_load(f"{server.url}/v2/models/pipeline/infer", 32, 3.0))
    assert failed == 0 and answered > 32
    after = {name: _stats(server, name) for name in (*COMPOSING, "pipeline")}
    grown = {
        name: {key: after[name][key] - before[name][key] for key in ("inference_count", "execution_count")}
        for name in after
    }
    assert grown["pipeline"] == {"inference_count": answered, "execution_count": answered}  # one per request
    for name in COMPOSING:
        assert grown[name]["inference_count"] == answered, name
        assert grown[name]["execution_count"] < grown[name]["inference_count"], (name, grown[name])
        successes = (
            after[name]["inference_stats"]["success"]["count"] - before[name]["inference_stats"]["success"]["count"]
        )
        assert successes == answered, name  # every step request counted by its model
    pipeline = after["pipeline"]["inference_stats"]
    assert pipeline["success"]["count"] >= answered and pipeline["compute_infer"]["ns"] > 0


def test_a_composing_model_unloaded_makes_the_ensemble_unready(server: Server) -> None:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    client.unload_model("post")
    try:
        assert not client.is_model_ready("pipeline")
        entry = next(e for e in client.get_model_repository_index() if e["name"] == "pipeline")
        assert entry["state"] == "UNAVAILABLE" and "composing model 'post'" in entry["reason"]
        reply = httpx.post(
            f"{server.url}/v2/models/pipeline/infer",
            json={"inputs": [{"name": "RAW", "datatype": "FP32", "shape": [1, 4], "data": [0, 0, 0, 0]}]},
        )
        assert reply.status_code == 400 and "composing model 'post'" in reply.json()["error"]
    finally:
        client.load_model("post")
    assert client.is_model_ready("pipeline")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'key: "features" value: "scaled"',
            'key: "feature" value: "scaled"',
            "ensemble 'pipeline': step 1 (model 'classifier'): input_map 'feature' (tensor 'scaled') is not an input",
        ),
        (
            'name: "RAW" data_type: TYPE_FP32',
            'name: "RAW" data_type: TYPE_FP64',
            "ensemble 'pipeline': step 0 (model 'scaler'): input_map 'raw' reads tensor 'RAW': the tensor is FP64",
        ),
        (
            'key: "features" value: "scaled"',
            'key: "features" value: "logits"',
            "ensemble 'pipeline': step 1 (model 'classifier'): reads tensor 'logits', which depends on its own output",
        ),
    ],
    ids=["wrong-tensor-name", "wrong-datatype", "cycle"],
)
def test_a_broken_ensemble_stops_serve_with_one_line_naming_the_step(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    root = build_repository(tmp_path / "repo")
    config = root / "pipeline" / "config.pbtxt"
    assert old in config.read_text()
    config.write_text(config.read_text().replace(old, new))
    ports = ["--http-port", str(free_port()), "--metrics-port", str(free_port()), "--no-grpc"]
    result = subprocess.run(
        [sys.executable, "-m", "modelport", "serve", str(root), *ports], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_a_batch_deployment_scores_a_table_with_the_ensemble(server: Server, tmp_path: Path) -> None:
    """A registered repository holding one ensemble is a no-code batch deployment's model: each
    mini-batch runs through the three composing models, rows in order."""
    cli = Cli(tmp_path / "ws")
    ok(cli("model", "register", server.root, "--name", "scaled-classifier"))
    with Workspace(tmp_path / "ws") as ws:
        endpoints = BatchEndpoints(ws)
        endpoints.create_endpoint(parse_endpoint({"name": "ensemble-batch"}).value)
        spec = {"name": "nocode", "endpoint_name": "ensemble-batch", "model": "scaled-classifier:1"}
        endpoints.create_deployment(parse_deployment({**spec, "settings": {"mini_batch_size": 25}}, tmp_path).value)
    rows = np.random.default_rng(7).standard_normal((60, FEATURES)).astype(np.float32)
    (tmp_path / "table").mkdir()
    columns = ",".join(f"f{i}" for i in range(FEATURES))
    np.savetxt(tmp_path / "table" / "x.csv", rows, delimiter=",", header=columns, comments="", fmt="%.9g")
    ok(
        cli(
            *("batch-endpoint", "invoke", "-n", "ensemble-batch", "-d", "nocode", "--input", tmp_path / "table"),
            *("--input-type", "tabular", "--output-path", tmp_path / "out", "--wait"),
            timeout=300,
        )
    )
    scored = np.loadtxt(tmp_path / "out" / "predictions.csv", delimiter=" ", dtype=str)
    expected = by_hand(
        server.root, np.loadtxt(tmp_path / "table" / "x.csv", delimiter=",", skiprows=1, dtype=np.float32)
    )
    assert scored[:, 0].astype(int).tolist() == list(range(60))  # rows in order
    np.testing.assert_allclose(scored[:, 1 : 1 + CLASSES].astype(np.float32), expected["PROBABILITIES"], rtol=1e-5)
    assert scored[:, 1 + CLASSES].astype(int).tolist() == expected["LABEL"].ravel().tolist()
