"""modelport k8s render: the manifests validate against the API's and KServe's schemas, build
with kustomize, match the golden files byte for byte, and bad input is refused in one line.

Golden files: tests/data/golden/k8s/{kubernetes,kserve}, rendered from tests/data/golden/inputs
with fixed keys and the model's sha256 written as MODEL_SHA256; rewrite them with
MODELPORT_REGENERATE_GOLDEN=1 (then review the diff).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Cli, ok

DATA = Path(__file__).resolve().parent.parent / "data"
INPUTS = DATA / "golden" / "inputs"
GOLDEN = DATA / "golden" / "k8s"
KEYS = ("primary-key-of-the-golden-files", "secondary-key-of-the-golden-files")
FILES = [INPUTS / "endpoint.yml", INPUTS / "blue.yml", INPUTS / "green.yml"]
MODEL_SHA = re.compile(
    rb"modelport.io/model-sha256: ([0-9a-f]{64})"
)  # built by the tests: MODEL_SHA256 in golden files
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
PREDICTORS = (
    "model", "sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "tensorflow", "triton", "pmml", "paddle",
    "huggingface", "containers",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _model(golden_model: Path) -> None:
    """The golden inputs' model file exists before any test reads them."""


def _objects(folder: Path) -> list[dict[str, Any]]:
    """Every object the kustomization lists, in its order."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return [yaml.safe_load((folder / name).read_text()) for name in kustomization["resources"]]


def _render(workspace: Any, out: Path, files: list[Path] = FILES, **options: Any) -> Path:
    workspace.render_k8s(files=files, output_dir=out, keys=KEYS, **options)
    return out


def _endpoint_file(folder: Path, **fields: Any) -> Path:
    data = yaml.safe_load((INPUTS / "endpoint.yml").read_text()) | fields
    path = folder / "endpoint.yml"
    path.write_text(yaml.safe_dump(data))
    return path


# -- schemas -------------------------------------------------------------------------------------


def _strict(node: Any) -> Any:
    """The CRD schema with ``additionalProperties: false`` wherever it lists properties."""
    if isinstance(node, dict):
        node = {key: _strict(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
    elif isinstance(node, list):
        node = [_strict(value) for value in node]
    return node


_METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "labels"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]{0,43}[a-z0-9])?$"},
        "namespace": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _kserve_validator(kind: str) -> Any:
    import jsonschema

    document = json.loads((DATA / "kserve" / f"{kind.lower()}.json").read_text())
    schema = _strict(document["schema"])
    schema["properties"]["metadata"] = _METADATA
    schema["properties"]["apiVersion"] = {"const": document["apiVersion"]}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    return jsonschema.Draft7Validator(schema)


def _webhook_rules(obj: dict[str, Any]) -> None:
    """What KServe's admission webhook checks beyond the schema."""
    if obj["kind"] == "InferenceService":
        implementations = [key for key in PREDICTORS if key in obj["spec"]["predictor"]]
        assert len(implementations) == 1, f"{obj['metadata']['name']}: predictors {implementations}"
    if obj["kind"] == "InferenceGraph":
        nodes = obj["spec"]["nodes"]
        assert "root" in nodes
        for node in nodes.values():
            if node["routerType"] == "Splitter":
                assert sum(step["weight"] for step in node["steps"]) == 100


def validate(folder: Path) -> list[str]:
    """Every object of the folder checked against its schema; the kinds seen."""
    import kubernetes_validate

    kinds = []
    for obj in _objects(folder):
        kinds.append(obj["kind"])
        if obj["apiVersion"].startswith("serving.kserve.io/"):
            errors = [error.message for error in _kserve_validator(obj["kind"]).iter_errors(obj)]
            assert not errors, f"{obj['kind']} {obj['metadata']['name']}: {errors}"
            _webhook_rules(obj)
        else:
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)
    kustomize(folder)
    return kinds


def kustomize(folder: Path) -> str:
    """``kubectl kustomize`` over the folder; kubectl missing fails (scripts/test.sh installs it)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed (scripts/test.sh installs it with apt as root)"
    result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_validators_refuse_what_the_schemas_do_not_allow() -> None:
    """The checks above can fail: an unknown field, a wrong type, two predictors, bad weights."""
    import kubernetes_validate

    deployment = yaml.safe_load((GOLDEN / "kubernetes" / "fraud-blue.deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenessProbes"):
        kubernetes_validate.validate(deployment, "1.29.0", strict=True)
    service = yaml.safe_load((GOLDEN / "kserve" / "fraud-blue.inferenceservice.yaml").read_text())
    wrong = copy.deepcopy(service)
    wrong["spec"]["predictor"]["model"]["protocolVersoin"] = "v2"
    assert list(_kserve_validator("InferenceService").iter_errors(wrong))
    wrong = copy.deepcopy(service)
    wrong["spec"]["predictor"]["minReplicas"] = "one"
    assert list(_kserve_validator("InferenceService").iter_errors(wrong))
    wrong = copy.deepcopy(service)
    wrong["spec"]["predictor"]["sklearn"] = {"storageUri": "s3://x"}
    with pytest.raises(AssertionError, match="predictors"):
        _webhook_rules(wrong)
    graph = {
        "kind": "InferenceGraph",
        "spec": {"nodes": {"root": {"routerType": "Splitter", "steps": [{"weight": 60}]}}},
    }
    with pytest.raises(AssertionError):
        _webhook_rules(graph)


# -- rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["kubernetes", "kserve"])
def test_golden_files(workspace: Any, tmp_path: Path, target: str) -> None:
    """One endpoint (key auth, 90/10 over two deployments, one autoscaled) as the golden files;
    a second render gives the same bytes."""
    out = _render(workspace, tmp_path / "out", target=target)
    again = _render(workspace, tmp_path / "again", target=target)
    rendered = {path.name: path.read_bytes() for path in sorted(out.iterdir())}
    assert rendered == {path.name: path.read_bytes() for path in sorted(again.iterdir())}
    (sha,) = {match.group(1) for text in rendered.values() for match in MODEL_SHA.finditer(text)}
    rendered = {name: text.replace(sha, b"MODEL_SHA256") for name, text in rendered.items()}
    golden = GOLDEN / target
    if os.environ.get("MODELPORT_REGENERATE_GOLDEN"):
        shutil.rmtree(golden, ignore_errors=True)
        golden.mkdir(parents=True)
        for name, text in rendered.items():
            (golden / name).write_bytes(text)
            (golden / name).chmod(0o644)
    assert rendered == {path.name: path.read_bytes() for path in sorted(golden.iterdir())}


def test_kubernetes_objects_validate(workspace: Any, tmp_path: Path) -> None:
    out = _render(workspace, tmp_path / "out", namespace="serving")
    kinds = validate(out)
    assert sorted(kinds) == sorted(
        ["Deployment", "Service", "PodDisruptionBudget"] * 3 + ["HorizontalPodAutoscaler", "ConfigMap", "Secret"]
    )
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for obj in _objects(out)}
    assert {obj["metadata"]["namespace"] for obj in objects.values()} == {"serving"}
    hpa = objects["HorizontalPodAutoscaler", "fraud-green"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 120
    assert objects["Deployment", "fraud-blue"]["spec"]["replicas"] == 2  # type default: fixed, no HPA
    assert "replicas" not in objects["Deployment", "fraud-green"]["spec"]  # the HPA's to set
    config = yaml.safe_load(objects["ConfigMap", "fraud-router"]["data"]["router.yml"])
    assert config["deployments"]["blue"]["urls"] == ["http://fraud-blue.serving.svc:8000"]
    assert config["traffic"] == {"blue": 90, "green": 10}
    assert "primary" not in objects["ConfigMap", "fraud-router"]["data"]["router.yml"]
    assert objects["Secret", "fraud-keys"]["stringData"] == {"primary": KEYS[0], "secondary": KEYS[1]}
    router = objects["Deployment", "fraud-router"]["spec"]["template"]["spec"]["containers"][0]
    assert router["image"] == "fraud-blue:latest"
    assert router["command"] == ["modelport", "router"]
    for obj in objects.values():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "modelport" and labels["modelport.io/endpoint"] == "fraud"
    assert objects["Deployment", "fraud-green"]["metadata"]["annotations"]["modelport.io/model-sha256"]


def test_kserve_objects_validate(workspace: Any, tmp_path: Path) -> None:
    """Key auth: the router in front of the InferenceServices; the ServingRuntime speaks v2."""
    out = _render(workspace, tmp_path / "out", target="kserve")
    kinds = validate(out)
    assert kinds.count("InferenceService") == 2 and kinds.count("ServingRuntime") == 2
    assert {"ConfigMap", "Secret"} <= set(kinds)
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for obj in _objects(out)}
    runtime = objects["ServingRuntime", "fraud-blue"]["spec"]
    assert runtime["protocolVersions"] == ["v2", "grpc-v2"]
    assert runtime["supportedModelFormats"][0]["name"] == "onnx"
    predictor = objects["InferenceService", "fraud-green"]["spec"]["predictor"]
    assert predictor["model"]["runtime"] == "fraud-green" and predictor["model"]["protocolVersion"] == "v2"
    assert predictor["model"]["storageUri"] == "pvc://modelport-models/fraud/green"
    assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["scaleTarget"]) == (1, 4, 1)
    config = yaml.safe_load(objects["ConfigMap", "fraud-router"]["data"]["router.yml"])
    assert config["deployments"]["green"]["urls"] == ["http://fraud-green-predictor:80"]


def test_kserve_split_as_canary_and_graph(workspace: Any, tmp_path: Path) -> None:
    """No key auth and no mirror: two live deployments are a canary, three an InferenceGraph."""
    endpoint = _endpoint_file(tmp_path, auth_mode="none")
    out = _render(workspace, tmp_path / "two", [endpoint, *FILES[1:]], target="kserve")
    kinds = validate(out)
    assert "ConfigMap" not in kinds and kinds.count("InferenceService") == 3
    canary = {obj["metadata"]["name"]: obj for obj in _objects(out)}["fraud"]["spec"]["predictor"]
    assert (canary["canaryTrafficPercent"], canary["model"]["runtime"]) == (10, "fraud-green")
    stable = yaml.safe_load((out / "rollout-stable.yaml").read_text())["spec"]["predictor"]
    assert stable["model"]["runtime"] == "fraud-blue" and "canaryTrafficPercent" not in stable

    red = yaml.safe_load((INPUTS / "green.yml").read_text()) | {"name": "red"}
    (tmp_path / "red.yml").write_text(yaml.safe_dump(red))
    shutil.copy(INPUTS / "model.onnx", tmp_path / "model.onnx")
    endpoint = _endpoint_file(tmp_path, auth_mode="none", traffic={"blue": 50, "green": 30, "red": 20})
    out = _render(workspace, tmp_path / "three", [endpoint, *FILES[1:], tmp_path / "red.yml"], target="kserve")
    kinds = validate(out)
    graph = {obj["kind"]: obj for obj in _objects(out)}["InferenceGraph"]["spec"]["nodes"]["root"]
    assert graph["routerType"] == "Splitter"
    assert {step["serviceName"]: step["weight"] for step in graph["steps"]} == {
        "fraud-blue": 50,
        "fraud-green": 30,
        "fraud-red": 20,
    }


def test_kserve_mirror_needs_the_router(workspace: Any, tmp_path: Path) -> None:
    from modelport.core.errors import ValidationError

    endpoint = _endpoint_file(tmp_path, auth_mode="none", traffic={"blue": 100}, mirror_traffic={"green": 20})
    with pytest.raises(ValidationError, match="mirror_traffic") as refused:
        _render(workspace, tmp_path / "refused", [endpoint, *FILES[1:]], target="kserve", no_router=True)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "refused").exists()
    result = workspace.render_k8s(files=[endpoint, *FILES[1:]], target="kserve", output_dir=tmp_path / "out")
    assert any("mirror_traffic" in note and "router" in note for note in result.notes)
    config = yaml.safe_load(
        yaml.safe_load((tmp_path / "out" / "fraud-router.configmap.yaml").read_text())["data"]["router.yml"]
    )
    assert config["mirror_traffic"] == {"green": 20} and "keys_dir" not in config
    validate(tmp_path / "out")


def test_stored_endpoint_renders_its_keys_the_same_each_time(workspace: Any, tmp_path: Path) -> None:
    """-e reads the workspace's database (no daemon): the Secret holds the stored keys."""
    from modelport.control.catalog import Catalog
    from modelport.control.definitions import parse_deployment, parse_endpoint
    from modelport.core.overrides import read_definition

    catalog = Catalog(workspace)
    endpoint, _ = parse_endpoint(read_definition(INPUTS / "endpoint.yml")[0])
    record = catalog.create_endpoint(endpoint.model_copy(update={"traffic": {}}))
    for file in FILES[1:]:
        spec, _ = parse_deployment(*read_definition(file))
        resolution = catalog.resolve(spec)
        catalog.save_deployment(resolution.spec)
        catalog.release(resolution, refused=False)
    catalog.update_endpoint(endpoint)
    first = workspace.render_k8s("fraud", output_dir=tmp_path / "one")
    second = workspace.render_k8s("fraud", output_dir=tmp_path / "two")
    assert first.notes == () and first.files == second.files
    for name in first.files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    secret = yaml.safe_load((tmp_path / "one" / "fraud-keys.secret.yaml").read_text())
    assert (secret["stringData"]["primary"], secret["stringData"]["secondary"]) == record.keys
    validate(tmp_path / "one")


def test_profile_fills_missing_resources(workspace: Any, tmp_path: Path) -> None:
    from modelport.core.errors import ValidationError

    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"name": "fraud-model", "recommendedCpu": 0.7, "recommendedMemoryInGB": 0.6}))
    out = _render(workspace, tmp_path / "out", profiles={None: profile})
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for obj in _objects(out)}
    blue = objects["Deployment", "fraud-blue"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    green = objects["Deployment", "fraud-green"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert blue == {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}  # its own
    assert green == {"requests": {"cpu": "1", "memory": "615Mi"}, "limits": {"memory": "615Mi"}}
    validate(out)
    profile.write_text(json.dumps({"recommendedCpu": "lots"}))
    with pytest.raises(ValidationError, match="recommendedCpu: expected a positive number"):
        _render(workspace, tmp_path / "bad", profiles={"green": profile})


# -- the command ---------------------------------------------------------------------------------


def test_cli_renders_and_refuses_bad_input(sqlite_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = sqlite_cli("k8s", "render", *[arg for f in FILES for arg in ("-f", f)], "--output-dir", out)
    assert ok(result).split() == [str(out / name) for name in sorted(os.listdir(out))]
    assert "new keys were made" in result.stderr
    secret = yaml.safe_load((out / "fraud-keys.secret.yaml").read_text())["stringData"]
    assert len(secret["primary"]) == 43 and secret["primary"] != secret["secondary"]
    kustomize(out)

    # a mis-spelled field is refused, naming its file and path; nothing is written
    bad = yaml.safe_load((INPUTS / "green.yml").read_text())
    bad["scale_settings"]["max_instance"] = 4
    (tmp_path / "green.yml").write_text(yaml.safe_dump(bad))
    shutil.copy(INPUTS / "model.onnx", tmp_path / "model.onnx")
    args = ["k8s", "render", "-f", FILES[0], "-f", FILES[1], "-f", tmp_path / "green.yml", "-o", tmp_path / "bad"]
    refused = sqlite_cli(*args)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.count("\n") == 1 and "scale_settings.max_instance" in refused.stderr
    assert not (tmp_path / "bad").exists()

    # a mis-typed one too
    bad["scale_settings"] = {"type": "target_utilization", "max_instances": "many"}
    (tmp_path / "green.yml").write_text(yaml.safe_dump(bad))
    refused = sqlite_cli(*args)
    assert refused.returncode == 1 and "scale_settings.max_instances" in refused.stderr, refused.stderr

    # an autoscaled deployment without a CPU request cannot get a HorizontalPodAutoscaler
    bad["scale_settings"] = {"type": "target_utilization", "max_instances": 3}
    bad.pop("resources")
    (tmp_path / "green.yml").write_text(yaml.safe_dump(bad))
    refused = sqlite_cli(*args)
    assert refused.returncode == 1 and "resources.requests.cpu" in refused.stderr, refused.stderr

    refused = sqlite_cli("k8s", "render", "-f", FILES[0], "-f", FILES[1], "-n", "Serving", "-o", tmp_path / "ns")
    assert refused.returncode == 1 and "--namespace" in refused.stderr, refused.stderr

    # an output folder with something in it is left alone
    refused = sqlite_cli("k8s", "render", *[arg for f in FILES for arg in ("-f", f)], "-o", out)
    assert refused.returncode == 1 and "not empty" in refused.stderr
