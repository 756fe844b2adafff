"""A scoring script that calls two registered models in process (``modelport.models``): a scaler,
then a classifier. Served by ``modelport serve`` under 32 concurrent clients, every answer equals
running the two models by hand, and both models batched the calls of concurrent run()s; an online
deployment lists the models (``models:``), pinned and loaded beside its script."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from conftest import Cli, Server, ok
from endpoint_daemon import FAST_PROBES, Daemon, write_yaml

WIDTH, CLASSES, CLIENTS, LOAD_SECONDS = 4, 3, 32, 3.0

SCORE_PY = """
    import asyncio
    import json

    import numpy as np

    from modelport import models

    MODELPORT_CONCURRENCY = 8

    def init():
        global width
        width = models.metadata("scaler")["inputs"][0]["shape"][1]
        models.infer("classifier", {"z": np.zeros((1, width), np.float32)})  # a warm-up call before serving

    def run(raw):
        request = json.loads(raw)
        if "model" in request:
            try:
                models.infer(request["model"], {"x": np.zeros((1, width), np.float32)})
            except models.ModelCallError as exc:
                return {"error": str(exc), "status": exc.http_status}
        rows = np.asarray(request["data"], dtype=np.float32)
        if request.get("async"):
            return {"probabilities": asyncio.run(both(rows)).tolist()}
        scaled = models.infer("scaler", {"x": rows})["z"]
        return {"probabilities": models.infer("classifier", {"z": scaled}, outputs=["probabilities"])["probabilities"].tolist()}

    async def both(rows):
        scaled = (await models.infer_async("scaler", {"x": rows}))["z"]
        return (await models.infer_async("classifier", {"z": scaled}))["probabilities"]
"""


def config(name: str) -> str:
    return f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 32\ndynamic_batching {{ }}\n'


def build_scaler(folder: Path) -> Path:
    """``x`` [-1, 4] → ``z`` = (x - mean) / scale."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    mean = rng.standard_normal(WIDTH).astype(np.float32)
    scale = (rng.random(WIDTH) + 0.5).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Sub", ["x", "mean"], ["centred"]), helper.make_node("Div", ["centred", "scale"], ["z"])],
        "scaler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", WIDTH])],
        [numpy_helper.from_array(mean, "mean"), numpy_helper.from_array(scale, "scale")],
    )
    return _save(graph, folder, "scaler")


def build_classifier(folder: Path) -> Path:
    """``z`` [-1, 4] → ``probabilities`` [-1, 3] = softmax(z W + b)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    weight = rng.standard_normal((WIDTH, CLASSES)).astype(np.float32)
    bias = rng.standard_normal(CLASSES).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["z", "W", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "classifier",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", CLASSES])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    return _save(graph, folder, "classifier")


def _save(graph: Any, folder: Path, name: str) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "config.pbtxt").write_text(config(name))
    return folder


@dataclass(frozen=True)
class Setup:
    home: Path
    code: Path
    scaler: ort.InferenceSession
    classifier: ort.InferenceSession

    def reference(self, rows: np.ndarray) -> np.ndarray:
        scaled = self.scaler.run(None, {"x": rows})[0]
        return self.classifier.run(None, {"z": scaled})[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("calls")
    scaler, classifier = build_scaler(root / "scaler"), build_classifier(root / "classifier")
    cli = Cli(root / "ws")
    ok(cli("model", "register", scaler, "--name", "scaler"))
    ok(cli("model", "register", classifier, "--name", "classifier"))
    ok(cli("model", "alias", "set", "classifier", "prod", "1"))
    code = root / "code"
    code.mkdir()
    (code / "score.py").write_text(textwrap.dedent(SCORE_PY))
    yield Setup(
        root / "ws",
        code,
        ort.InferenceSession(str(scaler / "model.onnx")),
        ort.InferenceSession(str(classifier / "model.onnx")),
    )


def body(index: int) -> dict:
    """Request ``index``: 1-3 rows of its own, every other one through infer_async."""
    rows = np.random.default_rng(index).standard_normal((1 + index % 3, WIDTH)).astype(np.float32)
    return {"data": rows.tolist(), "async": index % 2 == 1}


async def load(url: str) -> list[tuple[dict, httpx.Response]]:
    """``CLIENTS`` clients, each sending one request after another for ``LOAD_SECONDS``."""
    stop = time.monotonic() + LOAD_SECONDS
    answers: list[tuple[dict, httpx.Response]] = []

    async def client(first: int, http: httpx.AsyncClient) -> None:
        index = first
        while time.monotonic() < stop:
            sent = body(index)
            answers.append((sent, await http.post(f"{url}/score", json=sent)))
            index += CLIENTS

    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        await asyncio.gather(*(client(first, http) for first in range(CLIENTS)))
    return answers


def test_a_script_calling_two_models_answers_correctly_under_load_and_its_calls_batch(setup: Setup) -> None:
    env = Cli(setup.home).env
    server = Server(["--entry-script", str(setup.code / "score.py"), "scaler:1", "classifier@prod"], env, grpc=False)
    try:
        answers = asyncio.run(load(server.url))
        unknown = httpx.post(f"{server.url}/score", json={"model": "ghost"}, timeout=30).json()
        stats = {
            name: httpx.get(f"{server.url}/v2/models/{name}/stats", timeout=30).json()["model_stats"][0]
            for name in ("scaler", "classifier")
        }
    finally:
        assert server.stop() == 0
    assert len(answers) >= CLIENTS
    for sent, answer in answers:
        assert answer.status_code == 200, answer.text
        expected = setup.reference(np.asarray(sent["data"], dtype=np.float32))
        np.testing.assert_allclose(answer.json()["probabilities"], expected, rtol=1e-5, atol=1e-6)
    assert unknown == {
        "error": "models: no model 'ghost' is loaded beside this script (loaded: classifier:1, scaler:1)",
        "status": 404,
    }
    rows = sum(len(sent["data"]) for sent, _ in answers)
    for name, model in stats.items():
        assert model["inference_count"] >= rows, (name, model)  # every call counted (plus init()'s warm-up)
        assert model["execution_count"] < model["inference_count"], (name, model)  # calls were batched


def test_an_online_deployment_loads_its_listed_models_beside_the_script(setup: Setup) -> None:
    daemon = Daemon(setup.home)
    daemon.up()
    try:
        files = setup.home.parent / "files"
        files.mkdir(exist_ok=True)
        daemon.ok("endpoint", "create", "-f", str(write_yaml(files / "endpoint.yml", {"name": "calls"})))
        deployment: dict[str, Any] = {
            "name": "blue",
            "endpoint_name": "calls",
            "code_configuration": {"code": str(setup.code), "scoring_script": "score.py"},
            "models": ["azureml:scaler:1", "classifier@prod", "ghost:1"],
            "readiness_probe": FAST_PROBES,
        }
        refused = daemon.fails("deployment", "create", "-f", str(write_yaml(files / "bad.yml", deployment)))
        assert refused == "error: models[2]: model 'ghost' does not exist"
        deployment["models"] = deployment["models"][:2]
        daemon.ok("deployment", "create", "-f", str(write_yaml(files / "blue.yml", deployment)), "--all-traffic")
        shown = daemon.json("deployment", "show", "-e", "calls", "-n", "blue")
        assert shown["models"] == ["scaler:1", "classifier:1"]  # pinned when stored
        daemon.wait_ready("calls", "blue", 1)
        sent = body(7)
        answer = daemon.score("calls", daemon.key("calls"), sent)
        assert answer.status_code == 200, answer.text
        expected = setup.reference(np.asarray(sent["data"], dtype=np.float32))
        np.testing.assert_allclose(answer.json()["probabilities"], expected, rtol=1e-5, atol=1e-6)
        in_use = daemon.fails("model", "delete", "scaler:1")
        assert "online deployment calls/blue" in in_use
    finally:
        daemon.down()
