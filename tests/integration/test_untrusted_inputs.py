"""Inputs a user did not mean or an attacker made: links in model folders, hostile pickles,
non-finite numbers in JSON, FIFOs in batch inputs. Everything runs through the real CLI and a
real ``modelport serve``.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import Cli, Server
from test_batch_jobs import Project, _images, _one_line_error

from modelport import Workspace
from modelport.core.errors import ValidationError
from modelport.samples import build_mlp_onnx


def _strict_json(text: bytes | str) -> object:
    """``json.loads`` without the NaN/Infinity extension: what browsers and most languages accept."""

    def refuse(token: str) -> object:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _blob_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and "sha256" in p.parts]


# --- symbolic links in a registered folder ---------------------------------------------------------


def test_links_in_a_model_folder_are_refused_by_name_unless_followed(sqlite_cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    build_mlp_onnx(folder / "model.onnx")
    outside = tmp_path / "outside"
    (outside / "data").mkdir(parents=True)
    (outside / "secret.txt").write_text("not part of the model\n")
    (outside / "data" / "vocab.txt").write_text("a\nb\n")
    (folder / "secret.txt").symlink_to(outside / "secret.txt")
    (folder / "data").symlink_to(outside / "data", target_is_directory=True)

    result = sqlite_cli("model", "register", folder, "--name", "linked")
    assert result.returncode == 1, result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "--follow-symlinks" in line
    assert f"data -> {outside / 'data'}" in line and f"secret.txt -> {outside / 'secret.txt'}" in line
    assert json.loads(sqlite_cli("model", "list", "-o", "json").stdout) == []
    assert _blob_files(tmp_path / "ws") == []  # nothing was uploaded

    result = sqlite_cli("model", "register", folder, "--name", "linked", "--follow-symlinks", "-o", "json")
    assert result.returncode == 0, result.stderr
    files = {f["path"]: f["size"] for f in json.loads(result.stdout)["files"]}
    assert files == {"model.onnx": (folder / "model.onnx").stat().st_size, "secret.txt": 22, "data/vocab.txt": 4}
    stored = Path(sqlite_cli("model", "path", "linked:1").stdout.strip())
    assert (stored / "data" / "vocab.txt").read_text() == "a\nb\n"
    assert not (stored / "data").is_symlink() and not (stored / "secret.txt").is_symlink()

    (outside / "data" / "back").symlink_to(folder, target_is_directory=True)  # model/data/back -> model
    result = sqlite_cli("model", "register", folder, "--name", "linked", "--follow-symlinks", "--allow-duplicate")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"data/back -> {folder}" in line and "loops back" in line
    assert len(json.loads(sqlite_cli("model", "versions", "linked", "-o", "json").stdout)) == 1


def test_a_linked_path_named_on_the_command_line_is_followed(sqlite_cli: Cli, tmp_path: Path) -> None:
    """Like ``cp``: the path the user typed may be a link; only links inside a folder need the flag."""
    model = build_mlp_onnx(tmp_path / "real" / "model.onnx")
    (tmp_path / "current.onnx").symlink_to(model)
    (tmp_path / "current").symlink_to(model.parent, target_is_directory=True)
    result = sqlite_cli("model", "register", tmp_path / "current.onnx", "--name", "file", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert [f["path"] for f in json.loads(result.stdout)["files"]] == ["current.onnx"]
    result = sqlite_cli("model", "register", tmp_path / "current", "--name", "folder", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert [f["path"] for f in json.loads(result.stdout)["files"]] == ["model.onnx"]


def test_the_sdk_refuses_links_the_same_way(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    build_mlp_onnx(folder / "model.onnx")
    (folder / "copy.onnx").symlink_to(folder / "model.onnx")
    with pytest.raises(ValidationError, match="copy.onnx -> "):
        workspace.models.register(folder, "sdk")
    info = workspace.models.register(folder, "sdk", follow_symlinks=True)
    assert sorted(f["path"] for f in info.files) == ["copy.onnx", "model.onnx"]


# --- pickles are code ---------------------------------------------------------------------------------


class _RunsACommand:
    """Pickles as ``os.system(command)``: loading the file would run it. Never loaded here."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


def test_a_pickle_that_imports_os_system_is_registered_with_a_warning(sqlite_cli: Cli, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    marker = tmp_path / "pwned"
    hostile = tmp_path / "model.pkl"
    # An estimator first, so that detection (which stops at the estimator) would not see the payload.
    hostile.write_bytes(pickle.dumps([LogisticRegression(), _RunsACommand(f"touch {marker}")], protocol=4))
    handmade = tmp_path / "old.pkl"
    handmade.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")  # protocol 0, by hand

    result = sqlite_cli("model", "register", hostile, "--name", "hostile", "-o", "json")
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    system = f"{os.system.__module__}.system"  # posix.system on Linux
    assert len(warnings) == 1 and warnings[0].startswith("warning: model.pkl imports " + system), warnings
    assert "runs code when it is loaded" in warnings[0]
    info = json.loads(result.stdout)
    assert info["flavor"] == "sklearn" and info["details"]["unsafe_imports"] == {"model.pkl": [system]}
    shown = json.loads(sqlite_cli("model", "show", "hostile:1", "-o", "json").stdout)
    assert shown["details"]["unsafe_imports"] == {"model.pkl": [system]}

    result = sqlite_cli("model", "register", handmade, "--name", "handmade")
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "old.pkl imports os.system," in warning
    assert not marker.exists()  # registration walked the opcodes; nothing was loaded


def test_plain_framework_pickles_register_without_a_warning(sqlite_cli: Cli, tmp_path: Path) -> None:
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    folder = tmp_path / "bundle"
    folder.mkdir()
    joblib.dump(
        make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3)).fit(x, y),
        folder / "model.joblib",
        compress=3,
    )
    (folder / "labels.pkl").write_bytes(pickle.dumps({"classes": np.array([0, 1])}, protocol=5))
    result = sqlite_cli("model", "register", folder, "--name", "forest", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    details = json.loads(result.stdout)["details"]
    assert "unsafe_imports" not in details and "uninspected_pickles" not in details


# --- NaN and infinities in JSON ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def log_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """``y = log(x)``: log(-1) is NaN, log(0) is -Infinity, so finite inputs give non-finite outputs."""
    import onnx
    from onnx import TensorProto, helper

    repo = tmp_path_factory.mktemp("repo")
    graph = helper.make_graph(
        [helper.make_node("Log", ["x"], ["y"])],
        "log",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (repo / "log" / "1").mkdir(parents=True)
    onnx.save(model, str(repo / "log" / "1" / "model.onnx"))
    server = Server([str(repo)], grpc=False)
    yield server
    assert server.stop() == 0


def _infer(server: Server, data: str) -> httpx.Response:
    body = '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":' + data + "}]}"
    return httpx.post(f"{server.url}/v2/models/log/infer", content=body, timeout=30)


def test_v2_replies_with_nan_or_infinity_are_valid_json(log_server: Server) -> None:
    tritonhttp = pytest.importorskip("tritonclient.http")
    for data, want in (
        ("[NaN, Infinity, -Infinity]", [np.nan, np.inf, np.nan]),
        ("[-1, 0, 1]", [np.nan, -np.inf, 0.0]),
    ):
        reply = _infer(log_server, data)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/octet-stream"
        length = int(reply.headers["inference-header-content-length"])
        header = _strict_json(reply.content[:length])
        (output,) = header["outputs"]
        assert "data" not in output and output["parameters"]["binary_data_size"] == 12
        np.testing.assert_array_equal(np.frombuffer(reply.content[length:], "<f4"), np.array(want, np.float32))
        result = tritonhttp.InferResult.from_response_body(reply.content, header_length=length)
        np.testing.assert_array_equal(result.as_numpy("y"), np.array([want], np.float32))

    reply = _infer(log_server, "[1, 2, 4]")  # finite outputs stay JSON
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    assert _strict_json(reply.content)["outputs"][0]["data"] == pytest.approx(np.log([1, 2, 4]).tolist())

    reply = _infer(log_server, "[1e999, 1, 1]")
    assert reply.status_code == 400
    assert "1e999 is too large for a double" in reply.json()["error"]
    assert _infer(log_server, "[1, 1, 1]").status_code == 200  # still serving


def test_score_replies_with_nan_or_infinity_are_valid_json(log_server: Server, tmp_path: Path) -> None:
    reply = httpx.post(f"{log_server.url}/score", json={"input_data": [[-1, 0, 1]]}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert _strict_json(reply.content) == [[None, None, 0.0]]  # JSON's only way to say "no number"

    script = tmp_path / "score.py"
    script.write_text(
        "import numpy as np\n\ndef init():\n    pass\n\n"
        "def run(raw):\n    return {'nan': float('nan'), 'inf': np.array([np.inf, 1.5])}\n"
    )
    server = Server(["--entry-script", str(script)], grpc=False)
    try:
        reply = httpx.post(f"{server.url}/score", json={"data": [1]}, timeout=30)
        assert reply.status_code == 200, reply.text
        assert _strict_json(reply.content) == {"nan": None, "inf": [None, 1.5]}
    finally:
        assert server.stop() == 0


# --- batch inputs ------------------------------------------------------------------------------------


def test_a_fifo_in_a_batch_input_is_named_and_never_read(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.deployment("files")
    _images(tmp_path / "images", 3)
    os.mkfifo(tmp_path / "images" / "stream.fifo")  # opening it for reading would block for good
    began = time.monotonic()
    result = project.cli(
        "batch-endpoint", "invoke", "-n", "ep", "-d", "files", "--input", tmp_path / "images", "--wait", timeout=60
    )
    _one_line_error(result, "stream.fifo (a FIFO)", "only regular files are read")
    result = project.cli(
        "batch-endpoint",
        "invoke",
        "-n",
        "ep",
        "-d",
        "files",
        "--input",
        tmp_path / "images" / "stream.fifo",
        "--wait",
        timeout=60,
    )
    _one_line_error(result, "stream.fifo is a FIFO, not a regular file")
    assert time.monotonic() - began < 60
    assert json.loads(project.cli("job", "list", "-o", "json").stdout) == []
