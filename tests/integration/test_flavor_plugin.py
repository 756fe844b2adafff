"""A flavor from an outside package: pip-installed into a folder of its own, found through the
``modelport.flavors`` entry points, detected by ``model register``, served by ``modelport serve``.

The ``linear`` flavor is a JSON file ``*.linear.json`` holding ``weights`` [F, O] and ``bias`` [O];
its predictor computes ``x @ weights + bias``. A second package whose module cannot be imported
shows that a broken plug-in costs one warning line and nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import Cli, Server

from modelport.samples import build_mlp_onnx

LINEAR_MODULE = '''
"""A flavor for linear models stored as JSON: y = x @ weights + bias."""

import json
from pathlib import Path

import numpy as np

from modelport.core.errors import ValidationError
from modelport.runtime.flavor_contract import Flavor
from modelport.runtime.flavor_info import FlavorInfo, Signature, TensorSpec
from modelport.runtime.predictor import Predictor, TensorMeta


def detect(path, head):
    if not path.name.endswith(".linear.json"):
        return None
    try:
        doc = json.loads(path.read_text())
        weights = np.asarray(doc["weights"], dtype=np.float64)
    except (ValueError, KeyError) as exc:
        raise ValidationError(f"{path}: not a linear model ({exc})") from None
    features, outputs = weights.shape
    signature = Signature((TensorSpec("x", "FP64", (-1, features)),), (TensorSpec("y", "FP64", (-1, outputs)),))
    return FlavorInfo("linear", doc.get("version"), signature, {"format": "linear-json"})


class LinearPredictor(Predictor):
    batch_dim = True

    def __init__(self, weights, bias):
        self._weights, self._bias = weights, bias
        self.inputs = [TensorMeta("x", "FP64", (-1, weights.shape[0]))]
        self.outputs = [TensorMeta("y", "FP64", (-1, weights.shape[1]))]

    def _predict(self, inputs):
        return {"y": inputs["x"] @ self._weights + self._bias}


def load(model_dir, config, *, device="cpu"):
    path = model_dir if model_dir.is_file() else next(Path(model_dir).glob("*.linear.json"))
    doc = json.loads(path.read_text())
    return LinearPredictor(np.asarray(doc["weights"], dtype=np.float64), np.asarray(doc["bias"], dtype=np.float64))


FLAVOR = Flavor(
    "linear",
    loader="linear_flavor:load",
    file_detectors=(detect,),
    formats=frozenset({"linear-json"}),
    required="is not a linear model (*.linear.json)",
    max_batch_size=64,
)
'''


def _package(root: Path, name: str, module: str, source: str, entry: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "0.1.0"

            [project.entry-points."modelport.flavors"]
            {entry}

            [tool.setuptools]
            py-modules = ["{module}"]
            """
        )
    )
    return folder


def _install(package: Path, site: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation"]
        + ["--target", str(site), str(package)],
        check=True,
        capture_output=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the ``linear`` flavor package, installed as pip installs any package."""
    root = tmp_path_factory.mktemp("plugins")
    site = root / "site"
    _install(
        _package(root, "modelport-linear", "linear_flavor", LINEAR_MODULE, 'linear = "linear_flavor:FLAVOR"'), site
    )
    return site


@pytest.fixture
def broken_site(site: Path, tmp_path: Path) -> Path:
    """``site`` plus a plug-in whose module fails to import."""
    broken = tmp_path / "broken-site"
    _install(
        _package(
            tmp_path,
            "modelport-broken",
            "broken_flavor",
            "import modelport_no_such_module\n",
            'broken = "broken_flavor:FLAVOR"',
        ),
        broken,
    )
    return broken


def _cli(home: Path, *sites: Path) -> Cli:
    cli = Cli(home)
    cli.env["PYTHONPATH"] = os.pathsep.join([*map(str, sites), os.environ.get("PYTHONPATH", "")])
    return cli


def _linear_model(folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    weights, bias = rng.standard_normal((3, 2)), rng.standard_normal(2)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.linear.json"
    path.write_text(json.dumps({"weights": weights.tolist(), "bias": bias.tolist(), "version": "1.0"}))
    return path, weights, bias


def test_an_outside_flavor_is_registered_and_served(site: Path, tmp_path: Path) -> None:
    cli = _cli(tmp_path / "ws", site)
    path, weights, bias = _linear_model(tmp_path / "models")

    registered = cli("model", "register", path, "--name", "lin", "--output", "json")
    assert registered.returncode == 0, registered.stderr
    info = json.loads(registered.stdout)
    assert (info["flavor"], info["framework_version"]) == ("linear", "1.0")
    assert info["signature"]["inputs"] == [{"name": "x", "datatype": "FP64", "shape": [-1, 3]}]

    server = Server(["lin"], env=cli.env, grpc=False)
    try:
        x = np.random.default_rng(0).standard_normal((5, 3))
        body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [5, 3], "data": x.ravel().tolist()}]}
        reply = httpx.post(f"{server.url}/v2/models/lin/infer", json=body, timeout=30)
        assert reply.status_code == 200, reply.text
        output = reply.json()["outputs"][0]
        assert (output["name"], output["datatype"], output["shape"]) == ("y", "FP64", [5, 2])
        assert np.allclose(np.array(output["data"]).reshape(5, 2), x @ weights + bias)
        config = httpx.get(f"{server.url}/v2/models/lin/config", timeout=30).json()
        assert (config["backend"], config["max_batch_size"]) == ("linear", 64)  # the flavor's defaults
    finally:
        assert server.stop() == 0


def test_an_explicit_outside_flavor_is_verified(site: Path, tmp_path: Path) -> None:
    cli = _cli(tmp_path / "ws", site)
    onnx = build_mlp_onnx(tmp_path / "model.onnx")

    result = cli("model", "register", onnx, "--name", "m", "--flavor", "linear")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {onnx}: detected as onnx (onnx), which flavor 'linear' cannot load"


def test_a_broken_plugin_is_one_line_and_breaks_nothing(site: Path, broken_site: Path, tmp_path: Path) -> None:
    cli = _cli(tmp_path / "ws", site, broken_site)
    linear, _, _ = _linear_model(tmp_path / "models")
    onnx = build_mlp_onnx(tmp_path / "model.onnx")

    for path, name, flavor in ((onnx, "mlp", "onnx"), (linear, "lin", "linear")):
        result = cli("model", "register", path, "--name", name)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"registered {name}:1 ({flavor}, ")
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "broken = broken_flavor:FLAVOR (modelport-broken)" in lines[0]
        assert "No module named 'modelport_no_such_module'" in lines[0]

    # Flavors are read lazily: commands that need none never see the broken plug-in.
    for args in (["--help"], ["model", "list"]):
        result = cli(*args)
        assert result.returncode == 0 and result.stderr == "", result.stderr
