"""Serving registered models by reference, and refusing to serve what is broken."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
from conftest import Cli, Server

from modelport.samples import build_mlp_onnx


def test_serve_by_alias_and_version(sqlite_cli: Cli, tmp_path: Path) -> None:
    first = build_mlp_onnx(tmp_path / "a" / "model.onnx", seed=1)
    second = build_mlp_onnx(tmp_path / "b" / "model.onnx", seed=2)
    for path in (first, second):
        assert sqlite_cli("model", "register", path, "--name", "fraud").returncode == 0
    assert sqlite_cli("model", "alias", "set", "fraud", "prod", "1").returncode == 0
    server = Server(["fraud@prod"], env=sqlite_cli.env, grpc=False)
    try:
        x = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 32], "data": x.ravel().tolist()}]}
        reply = httpx.post(f"{server.url}/v2/models/fraud/infer", json=body).json()
        assert reply["model_version"] == "1"
        expected = ort.InferenceSession(str(first)).run(None, {"input": x})[0]
        assert np.array_equal(np.array(reply["outputs"][0]["data"], dtype=np.float32).reshape(3, 4), expected)
    finally:
        assert server.stop() == 0


def test_serve_refuses_missing_and_corrupted_models(sqlite_cli: Cli, tmp_path: Path) -> None:
    missing = sqlite_cli("serve", "nothing", "--no-grpc", "--http-port", "0", timeout=60)
    assert missing.returncode == 1 and "model 'nothing' does not exist" in missing.stderr
    model = build_mlp_onnx(tmp_path / "model.onnx")
    assert sqlite_cli("model", "register", model, "--name", "m").returncode == 0
    blob = next(p for p in (tmp_path / "ws" / "artifacts").rglob("*") if p.is_file())
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")
    corrupted = sqlite_cli("serve", "m", "--no-grpc", "--http-port", "0", timeout=60)
    assert corrupted.returncode == 1
    assert "corrupted" in corrupted.stderr and "model.onnx" in corrupted.stderr
    assert len(corrupted.stderr.strip().splitlines()) == 1


SCORE_PY = """
import json, os
import joblib

def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "bundle", "model.joblib"))

def run(raw_data):
    return model.predict(json.loads(raw_data)["data"]).tolist()
"""


def test_registered_scoring_script_serves_score(sqlite_cli: Cli, tmp_path: Path) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((60, 3)), rng.integers(0, 2, 60)
    model = LogisticRegression().fit(x, y)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    joblib.dump(model, bundle / "model.joblib")
    (bundle / "score.py").write_text(SCORE_PY)
    info = sqlite_cli("model", "register", bundle, "--name", "scorer", "--flavor", "python", "-o", "json")
    assert info.returncode == 0, info.stderr
    server = Server(["scorer"], env=sqlite_cli.env, grpc=False)
    try:
        assert httpx.get(server.url + "/").text == "Healthy"
        reply = httpx.post(server.url + "/score", content=json.dumps({"data": x[:5].tolist()}))
        assert reply.status_code == 200 and reply.json() == model.predict(x[:5]).tolist()
        assert reply.headers["x-ms-run-function-failed"] == "False"
    finally:
        assert server.stop() == 0


def test_failing_init_makes_serve_exit_non_zero(sqlite_cli: Cli, tmp_path: Path) -> None:
    script = tmp_path / "score.py"
    script.write_text("def init():\n    raise RuntimeError('weights missing')\n\ndef run(raw):\n    return raw\n")
    result = sqlite_cli("serve", "--entry-script", script, "--no-grpc", "--http-port", "0", timeout=60)
    assert result.returncode == 1 and "weights missing" in result.stderr
