"""``modelport pipeline export --kserve``: a two-step pipeline as KServe objects that pass the
strict KServe schemas, the webhook's rules and ``kubectl kustomize``, the same bytes each time;
a conditional or misaligned pipeline is refused in one line, and a folder in use is left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import Cli, ok
from test_k8s_render import validate

CHAIN = """\
kind: pipeline
inputs: [{name: x, datatype: FP32, shape: [-1, 4]}]
steps:
  - {name: scale, model: scale:1, inputs: {x: x}, outputs: {h: h}}
  - {name: Clip_Step, model: clip:1, inputs: {h: h}, outputs: {y: y}}
outputs: [{name: y, datatype: FP32, shape: [-1, 4]}]
"""
CASCADE = """\
kind: pipeline
inputs: [{name: x, datatype: FP32, shape: [-1, 4]}]
steps:
  - {name: scale, model: scale:1, inputs: {x: x}, outputs: {h: h}}
  - {name: clip, model: clip:1, when: {tensor: h, below: 0.5}, inputs: {h: h}, outputs: {y: y}}
outputs: [{name: y, datatype: FP32, shape: [-1, 4], from: [y, h]}]
"""
SKIPPING = """\
kind: pipeline
inputs: [{name: x, datatype: FP32, shape: [-1, 4]}]
steps:
  - {name: scale, model: scale:1, inputs: {x: x}, outputs: {h: h}}
  - {name: clip, model: clip:1, inputs: {h: x}, outputs: {y: y}}
outputs: [{name: y, datatype: FP32, shape: [-1, 4]}]
"""

EARLY = CHAIN.replace("outputs: [{name: y,", "outputs: [{name: h, datatype: FP32, shape: [-1, 4]}, {name: y,")


def _onnx(path: Path, op: str, source: str, target: str) -> Path:
    """One-node float model ``source`` [-1, 4] → ``target`` [-1, 4]."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node(op, [source], [target])],
        op.lower(),
        [helper.make_tensor_value_info(source, TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info(target, TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.mkdir(parents=True)
    onnx.save(model, str(path / "model.onnx"))
    return path


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A workspace with the two step models and the three pipelines over them, registered by the CLI."""
    root = tmp_path_factory.mktemp("kserve-export")
    cli = Cli(root / "ws")
    ok(cli("model", "register", _onnx(root / "scale", "Sigmoid", "x", "h"), "--name", "scale"))
    ok(cli("model", "register", _onnx(root / "clip", "Relu", "h", "y"), "--name", "clip"))
    for name, text in (("chain", CHAIN), ("cascade", CASCADE), ("skipping", SKIPPING), ("early", EARLY)):
        (root / f"{name}.yaml").write_text(text)
        ok(cli("model", "register", root / f"{name}.yaml", "--name", name))
    return cli


def test_a_sequential_pipeline_exports_as_a_valid_inference_graph(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "chain-kserve"
    listed = ok(cli("pipeline", "export", "chain:1", "--kserve", out, "--image", "registry.example/{model}:{version}"))
    assert str(out / "kustomization.yaml") in listed
    assert sorted(validate(out)) == [
        "InferenceGraph",
        "InferenceService",
        "InferenceService",
        "ServingRuntime",
        "ServingRuntime",
    ]
    graph = yaml.safe_load((out / "chain.inferencegraph.yaml").read_text())
    assert graph["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert graph["spec"]["nodes"]["root"] == {
        "routerType": "Sequence",
        "steps": [
            {"name": "scale", "serviceName": "chain-scale-1"},
            # a step name that is not a DNS label gets a hash of the original, as object names do
            {"name": "clip-step-2345cdfa", "serviceName": "chain-clip-1", "data": "$response"},
        ],
    }
    runtime = yaml.safe_load((out / "chain-clip-1.servingruntime.yaml").read_text())
    assert runtime["spec"]["containers"][0]["image"] == "registry.example/clip:1"
    service = yaml.safe_load((out / "chain-clip-1.inferenceservice.yaml").read_text())
    assert service["spec"]["predictor"]["model"]["storageUri"] == "pvc://modelport-models/clip/1"
    assert service["metadata"]["annotations"]["modelport.io/model"] == "clip:1"
    again = tmp_path / "again"
    ok(cli("pipeline", "export", "chain:1", "--kserve", again, "--image", "registry.example/{model}:{version}"))
    assert {p.name: p.read_bytes() for p in again.iterdir()} == {p.name: p.read_bytes() for p in out.iterdir()}
    default = tmp_path / "default"
    ok(cli("pipeline", "export", "chain:1", "--kserve", default))
    runtime = yaml.safe_load((default / "chain-scale-1.servingruntime.yaml").read_text())
    assert runtime["spec"]["containers"][0]["image"] == "scale:1"  # modelport package's tag


def test_unexpressible_pipelines_and_used_folders_are_refused(cli: Cli, tmp_path: Path) -> None:
    refused = cli("pipeline", "export", "cascade:1", "--kserve", tmp_path / "cascade")
    assert refused.returncode == 1 and refused.stderr.strip() == (
        "error: --kserve: pipeline cascade:1: step 'clip' runs only where max(h) below 0.5; a KServe "
        "Sequence runs every step on every row, so this pipeline has no Sequence equivalent"
    )
    refused = cli("pipeline", "export", "skipping:1", "--kserve", tmp_path / "skipping")
    assert refused.returncode == 1 and refused.stderr.strip() == (
        "error: --kserve: pipeline skipping:1: step 'clip' input 'h' is pipeline tensor 'x'; KServe passes "
        "tensors under the model's own names, so they must be equal"
    )
    refused = cli("pipeline", "export", "early:1", "--kserve", tmp_path / "early")
    assert refused.returncode == 1 and refused.stderr.strip() == (
        "error: --kserve: pipeline early:1: output 'h' is not an output of the last step 'Clip_Step' under its "
        "own name; a Sequence answers with the last step's response"
    )
    assert not any((tmp_path / name).exists() for name in ("cascade", "skipping", "early"))
    used = tmp_path / "used"
    used.mkdir()
    (used / "mine.yaml").write_text("kept\n")
    refused = cli("pipeline", "export", "chain:1", "--kserve", used)
    assert refused.returncode == 1 and refused.stderr.strip() == (
        f"error: --kserve: {used} is not empty; give a new or empty folder"
    )
    assert [p.name for p in used.iterdir()] == ["mine.yaml"] and (used / "mine.yaml").read_text() == "kept\n"
    both = cli("pipeline", "export", "chain:1", "--kserve", tmp_path / "a", "--triton", tmp_path / "b")
    assert both.returncode == 1 and both.stderr.strip() == "error: export: give one of --triton DIR or --kserve DIR"


@pytest.mark.parametrize("binary", [False, True])
def test_the_sequence_runs_on_modelport_as_kserve_routes_it(cli: Cli, binary: bool) -> None:
    """What the exported graph's router does, by hand: the request to the first step's server as
    it came, then that step's answer, body and header as they came, to the next step's server;
    the last answer is the pipeline's (served whole by ``modelport serve chain``)."""
    import httpx
    import numpy as np
    from conftest import Server

    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    request = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 4], "data": x.ravel().tolist()}]}
    if binary:
        request["parameters"] = {"binary_data_output": True}
    servers = [Server(["scale:1"], env=cli.env, grpc=False), Server(["clip:1"], env=cli.env, grpc=False)]
    whole = Server(["chain:1"], env=cli.env, grpc=False)
    try:
        first = httpx.post(f"{servers[0].url}/v2/models/scale/infer", json=request, timeout=30)
        assert first.status_code == 200, first.text
        headers = {k: v for k, v in first.headers.items() if k in ("content-type", "inference-header-content-length")}
        second = httpx.post(
            f"{servers[1].url}/v2/models/clip/infer", content=first.content, headers=headers, timeout=30
        )
        assert second.status_code == 200, second.text
        reference = httpx.post(f"{whole.url}/v2/models/chain/infer", json=request, timeout=30)
        assert reference.status_code == 200, reference.text
    finally:
        for server in (*servers, whole):
            server.stop()
    from modelport.protocol import decode_request

    def tensor(answer: httpx.Response) -> np.ndarray:  # an answer read back as the tensors it holds
        (y,) = decode_request(answer.content, answer.headers.get("inference-header-content-length")).inputs
        assert (y.name, y.datatype, y.shape) == ("y", "FP32", (3, 4))
        return y.data

    np.testing.assert_array_equal(tensor(second), tensor(reference))
    np.testing.assert_allclose(tensor(second), np.maximum(1 / (1 + np.exp(-x)), 0), rtol=1e-6)
