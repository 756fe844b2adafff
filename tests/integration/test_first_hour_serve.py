"""What a newcomer runs into in the first hour of ``modelport serve``: a busy port, a no-code
``/score`` with more rows than ``max_batch_size``, an sklearn model scored with FP32 (tritonclient's
usual choice), and a model file served straight from its path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from conftest import Cli, Server, free_port

from modelport.samples import build_mlp_onnx


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    build_mlp_onnx(tmp_path / "repo" / "mlp" / "1" / "model.onnx")
    return tmp_path / "repo"


@pytest.mark.parametrize("option", ["--http-port", "--metrics-port", "--grpc-port"])
def test_a_busy_port_is_one_line_naming_its_option(repo: Path, option: str) -> None:
    """It was uvicorn's 70-line traceback and exit 3 for the HTTP and metrics ports."""
    ports = {"--http-port": free_port(), "--metrics-port": free_port(), "--grpc-port": free_port()}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports[option]))
        busy.listen()
        result = subprocess.run(
            [sys.executable, "-m", "modelport", "serve", str(repo), *(str(x) for pair in ports.items() for x in pair)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1, result.stderr
    assert (
        result.stderr.strip() == f"error: {option}: cannot listen on 127.0.0.1:{ports[option]} (Address already in use)"
    )


@pytest.mark.parametrize("option", ["--metrics-port", "--grpc-port"])
def test_one_port_given_twice_is_one_line_naming_both_options(repo: Path, option: str) -> None:
    """Binding both before either listened let it through, and start-up failed with an internal error."""
    port = str(free_port())
    result = subprocess.run(
        [sys.executable, "-m", "modelport", "serve", str(repo), "--http-port", port, option, port],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"error: {option}: {port} is the --http-port too; give each its own port"


def test_a_model_file_is_served_from_its_path_without_registering(tmp_path: Path) -> None:
    """``serve ./model.onnx`` refused a plain file ("register it"); MLflow serves a path."""
    model = build_mlp_onnx(tmp_path / "work" / "model.onnx")
    build_mlp_onnx(tmp_path / "work" / "other.onnx", seed=3)  # beside it, and never picked instead
    home = tmp_path / "home"
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    server = Server([str(model)], env=env, grpc=False)
    try:
        x = np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 32], "data": x.ravel().tolist()}]}
        reply = httpx.post(f"{server.url}/v2/models/model/infer", json=body)
        assert reply.status_code == 200, reply.text
        expected = ort.InferenceSession(str(model)).run(None, {"input": x})[0]
        assert np.allclose(np.array(reply.json()["outputs"][0]["data"], dtype=np.float32).reshape(2, 4), expected)
    finally:
        assert server.stop() == 0
    assert f"serving {model} as model 'model' (not registered)" in server.proc.stderr.read()
    assert not home.exists()  # no workspace was made, nothing was registered


def test_a_model_folder_is_served_under_the_name_given(tmp_path: Path) -> None:
    folder = tmp_path / "fraud-model"
    build_mlp_onnx(folder / "model.onnx")
    (folder / "config.yaml").write_text("name: whatever\nmax_batch_size: 16\n")
    server = Server([str(folder), "--name", "fraud"], grpc=False)
    try:
        config = httpx.get(f"{server.url}/v2/models/fraud/config").json()
        assert config["name"] == "fraud" and config["max_batch_size"] == 16
    finally:
        assert server.stop() == 0
    assert f"serving {folder} as model 'fraud' (not registered)" in server.proc.stderr.read()


def test_a_path_that_is_no_model_is_one_error_line(sqlite_cli: Cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    result = sqlite_cli("serve", notes, "--no-grpc", "--http-port", free_port(), timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: target: {notes}: not a model format modelport serves (onnx, sklearn, torch, xgboost, lightgbm, "
        "mlflow, a score.py)"
    ]


@pytest.fixture
def sklearn_model(tmp_path: Path) -> tuple[Path, object, np.ndarray]:
    """A fitted classifier saved with joblib (float64 features, as scikit-learn fits them)."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 4))
    model = LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    return path, model, x


def test_no_code_score_of_a_registered_sklearn_model_takes_any_row_count(
    sqlite_cli: Cli, sklearn_model: tuple[Path, object, np.ndarray]
) -> None:
    """It refused 5 rows: "batch-size must be <= 4", the auto-completed max_batch_size."""
    path, model, x = sklearn_model
    assert sqlite_cli("model", "register", path, "--name", "churn").returncode == 0
    server = Server(["churn"], env=sqlite_cli.env, grpc=False)
    try:
        for rows in (5, 1000):
            reply = httpx.post(f"{server.url}/score", json={"input_data": x[:rows].tolist()})
            assert reply.status_code == 200, reply.text
            assert reply.json()["predict"] == model.predict(x[:rows]).tolist()
        assert httpx.get(f"{server.url}/v2/models/churn/config").json()["max_batch_size"] == 32768
    finally:
        assert server.stop() == 0


def test_no_code_score_splits_rows_beyond_max_batch_size_and_v2_names_the_limit(repo: Path) -> None:
    """An ONNX model with Triton's auto-completed max_batch_size 4: /score runs 10 rows as chunks
    of 4, 4 and 2 through the scheduler; the v2 route refuses 5 rows, saying how to raise the limit."""
    server = Server([str(repo)], grpc=False)
    try:
        x = np.random.default_rng(1).standard_normal((10, 32)).astype(np.float32)
        reply = httpx.post(f"{server.url}/score", json={"input_data": x.tolist()})
        assert reply.status_code == 200, reply.text
        expected = ort.InferenceSession(str(repo / "mlp" / "1" / "model.onnx")).run(None, {"input": x})[0]
        assert np.allclose(np.array(reply.json(), dtype=np.float32), expected, atol=1e-6)
        stats = httpx.get(f"{server.url}/v2/models/mlp/stats").json()["model_stats"][0]
        assert (stats["inference_count"], stats["execution_count"]) == (10, 3)
        assert sorted(entry["batch_size"] for entry in stats["batch_stats"]) == [2, 4]

        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [5, 32], "data": x[:5].ravel().tolist()}]}
        refused = httpx.post(f"{server.url}/v2/models/mlp/infer", json=body)
        assert refused.status_code == 400
        assert refused.json()["error"] == (
            "inference request batch-size must be <= 4 for 'mlp' (got 5): the model's max_batch_size; send at most "
            "4 rows per request, or raise it with --model-config '{\"max_batch_size\": N}' (model_config in a "
            "deployment)"
        )
    finally:
        assert server.stop() == 0


def test_fp32_input_is_widened_for_an_fp64_sklearn_model_and_narrowing_is_refused(
    sqlite_cli: Cli, sklearn_model: tuple[Path, object, np.ndarray]
) -> None:
    """tritonclient sends numpy's float32; the FP64 model refused it."""
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    path, model, x = sklearn_model
    assert sqlite_cli("model", "register", path, "--name", "churn").returncode == 0
    server = Server(["churn"], env=sqlite_cli.env, grpc=False)
    try:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.http_port}")
        features = x[:3].astype(np.float32)
        tensor = triton.InferInput("input-0", [3, 4], "FP32")
        tensor.set_data_from_numpy(features)
        result = client.infer("churn", [tensor])
        assert result.as_numpy("predict").tolist() == model.predict(features.astype(np.float64)).tolist()

        integers = triton.InferInput("input-0", [3, 4], "INT64")
        integers.set_data_from_numpy(np.ones((3, 4), dtype=np.int64))
        with pytest.raises(InferenceServerException) as refused:
            client.infer("churn", [integers])
        assert (
            "input 'input-0': datatype is INT64, but the model expects FP64 (only widening casts are made: send "
            "FP64 or BF16, FP16, FP32)" in str(refused.value)
        )
    finally:
        assert server.stop() == 0


def test_an_input_example_or_a_signature_types_the_served_input(
    sqlite_cli: Cli, sklearn_model: tuple[Path, object, np.ndarray], tmp_path: Path
) -> None:
    """sklearn models registered with an empty signature; an example or a signature file gives one."""
    import json

    path, model, x = sklearn_model
    example = tmp_path / "example.npy"
    np.save(example, x[:2].astype(np.float32))
    assert sqlite_cli("model", "register", path, "--name", "plain").returncode == 0
    assert json.loads(sqlite_cli("model", "show", "plain:1", "-o", "json").stdout)["signature"] is None
    registered = sqlite_cli("model", "register", path, "--name", "typed", "--input-example", example, "-o", "json")
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["signature"] == {
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [],
    }

    signature = tmp_path / "signature.yaml"  # MLflow's form, one feature too many
    signature.write_text('inputs: \'[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 5]}}]\'\n')
    assert sqlite_cli("model", "register", path, "--name", "wrong", "--signature", signature).returncode == 0
    wrong = sqlite_cli(
        "serve", "wrong", "--no-grpc", "--http-port", free_port(), "--metrics-port", free_port(), timeout=120
    )
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines() == [
        "error: input[0].dims: [5] does not fit the model's input 'input-0' with dims [4] (after the batch dim)"
    ]

    server = Server(["typed"], env=sqlite_cli.env, grpc=False)
    try:
        metadata = httpx.get(f"{server.url}/v2/models/typed").json()
        assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "datatype": "FP32",
                    "shape": [2, 4],
                    "data": x[:2].astype(np.float32).ravel().tolist(),
                }
            ]
        }
        reply = httpx.post(f"{server.url}/v2/models/typed/infer", json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["outputs"][0]["data"] == model.predict(x[:2]).tolist()
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("content", "suffix", "reason"),
    [
        ("a,b\n1,x\n", ".csv", "column 'b' is not numeric; a table example is one numeric [rows, features] input"),
        ("[[1, 2], [3]]", ".json", "'input-0' is ragged (rows of different lengths)"),
        ('{"input_data": []}', ".json", "'input-0' holds no rows"),
    ],
)
def test_a_bad_input_example_is_one_line_and_registers_nothing(
    sqlite_cli: Cli,
    sklearn_model: tuple[Path, object, np.ndarray],
    tmp_path: Path,
    content: str,
    suffix: str,
    reason: str,
) -> None:
    example = tmp_path / f"example{suffix}"
    example.write_text(content)
    result = sqlite_cli("model", "register", sklearn_model[0], "--name", "m", "--input-example", example)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: --input-example: {example}: {reason}"]
    assert sqlite_cli("model", "list", "-o", "json").stdout.strip() == "[]"
