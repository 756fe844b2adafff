"""Online endpoints and deployments in the database (SQLite and PostgreSQL): resolution, the
routing rules, refusals that change nothing, keys, and the registry's in-use check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy.exc

from modelport.control.catalog import Catalog
from modelport.control.definitions import parse_deployment, parse_endpoint
from modelport.core.errors import ConflictError, ModelportError, NotFoundError, ValidationError
from modelport.samples import build_mlp_onnx
from modelport.schema.online import EndpointSpec


@pytest.fixture
def catalog(workspace, onnx_model: Path) -> Catalog:  # noqa: ANN001 - Workspace
    workspace.models.register(onnx_model, "mlp")
    catalog = Catalog(workspace)
    catalog.create_endpoint(EndpointSpec(name="ep"))
    return catalog


def deploy(catalog: Catalog, base: Path, *, all_traffic: bool = False, **fields: object) -> None:
    spec, _ = parse_deployment({"endpoint_name": "ep", **fields}, base)
    resolution = catalog.resolve(spec)
    catalog.save_deployment(resolution.spec, all_traffic=all_traffic)
    catalog.release(resolution, refused=False)


def snapshot(catalog: Catalog) -> list[dict]:
    return [
        {**record.to_dict(), "keys": record.keys, "deployments": [d.to_dict() for d in record.deployments]}
        for record in catalog.endpoints()
    ]


def test_deployment_is_stored_resolved(catalog: Catalog, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text("def init(): pass\ndef run(data): return 1\n")
    deploy(
        catalog,
        tmp_path,
        name="blue",
        model="azureml:mlp@latest",
        all_traffic=True,
        code_configuration={"code": "code", "scoring_script": "score.py"},
    )
    catalog.ws.models.register(build_mlp_onnx(tmp_path / "v2" / "model.onnx", seed=1), "mlp")
    (code / "score.py").write_text("changed after deployment\n")

    record = catalog.endpoint("ep")
    assert record.spec.traffic == {"blue": 100}
    blue = record.deployment("blue")
    assert blue.spec.model == "mlp:1"  # pinned when deployed, whatever @latest says later
    assert blue.spec.code_configuration is not None
    snapshot_script = blue.spec.code_configuration.script_path
    assert snapshot_script.read_text().startswith("def init()")  # a snapshot, not the user's folder
    assert snapshot_script.parent.parent == catalog.ws.root / "endpoints" / "code"


def test_inline_model_is_registered_once(catalog: Catalog, tmp_path: Path) -> None:
    model = build_mlp_onnx(tmp_path / "inline" / "model.onnx", seed=3)
    deploy(catalog, tmp_path, name="green", model={"path": str(model), "description": "inline"})
    deploy(catalog, tmp_path, name="red", model={"path": str(model), "name": "ep-green"})
    assert [d.spec.model for d in catalog.endpoint("ep").deployments] == ["ep-green:1", "ep-green:1"]
    assert [info.version for info in catalog.ws.models.versions("ep-green")] == [1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"traffic": {"blue": 90}}, "traffic: the weights sum to 90"),
        ({"traffic": {"blue": 100}, "mirror_traffic": {"blue": 20}}, "mirror_traffic.blue: 'blue' already gets 100 %"),
        ({"traffic": {"blue": 50, "purple": 50}}, "traffic.purple: endpoint 'ep' has no deployment 'purple'"),
    ],
)
def test_bad_routing_changes_nothing(catalog: Catalog, tmp_path: Path, change: dict, message: str) -> None:
    deploy(catalog, tmp_path, name="blue", model="mlp:1", all_traffic=True)
    before = snapshot(catalog)
    with pytest.raises(ValidationError, match=message):
        catalog.update_endpoint(parse_endpoint({"name": "ep", **change})[0])
    assert snapshot(catalog) == before


def test_bad_references_change_nothing(catalog: Catalog, tmp_path: Path) -> None:
    before = snapshot(catalog)
    with pytest.raises(NotFoundError, match="^model: model 'nothing' does not exist$"):
        deploy(catalog, tmp_path, name="blue", model="nothing:1")
    with pytest.raises(NotFoundError, match="^environment: environment 'nowhere' does not exist$"):
        deploy(catalog, tmp_path, name="blue", model="mlp:1", environment="nowhere")
    with pytest.raises(NotFoundError, match="^endpoint 'other' does not exist$"):
        catalog.resolve(parse_deployment({"name": "b", "endpoint_name": "other", "model": "mlp:1"}, tmp_path)[0])
    assert snapshot(catalog) == before
    assert [m.name for m in catalog.ws.models.list()] == ["mlp"]


def test_a_resolution_failing_halfway_leaves_no_model(catalog: Catalog, tmp_path: Path) -> None:
    model = build_mlp_onnx(tmp_path / "inline" / "model.onnx", seed=4)
    bad_env = tmp_path / "conda.yml"
    bad_env.write_text("dependencies: [[[\n")  # the model is registered before this is read
    spec, _ = parse_deployment(
        {
            "name": "blue",
            "endpoint_name": "ep",
            "model": {"path": str(model)},
            "environment": {"conda_file": str(bad_env)},
        },
        tmp_path,
    )
    with pytest.raises(ValidationError):
        catalog.resolve(spec)
    assert [m.name for m in catalog.ws.models.list()] == ["mlp"]
    assert not list((catalog.ws.root / "cache" / "models").glob("ep-blue*"))


def test_a_refused_deployment_removes_only_what_it_registered(catalog: Catalog, tmp_path: Path) -> None:
    model = build_mlp_onnx(tmp_path / "inline" / "model.onnx", seed=5)
    inline, _ = parse_deployment({"name": "blue", "endpoint_name": "ep", "model": {"path": str(model)}}, tmp_path)
    referenced, _ = parse_deployment({"name": "green", "endpoint_name": "ep", "model": "mlp:1"}, tmp_path)
    first = catalog.resolve(inline)
    assert first.registered == ("ep-blue:1",)
    second = catalog.resolve(inline)  # a second request in flight finds the same version: not its own
    assert second.spec.model == "ep-blue:1" and second.registered == ()
    catalog.release(first, refused=True)
    assert catalog.ws.models.get("ep-blue:1")  # still held by the second request
    catalog.release(second, refused=True)
    assert catalog.ws.models.get("ep-blue:1")  # the second one did not register it

    fresh, _ = parse_deployment({"name": "red", "endpoint_name": "ep", "model": {"path": str(model)}}, tmp_path)
    third = catalog.resolve(fresh)
    assert third.registered == ("ep-red:1",)
    catalog.release(third, refused=True)
    with pytest.raises(NotFoundError):
        catalog.ws.models.get("ep-red:1")
    kept = catalog.resolve(referenced)
    catalog.release(kept, refused=True)  # a reference to an existing model is never removed
    assert [m.name for m in catalog.ws.models.list()] == ["ep-blue", "mlp"]


def test_model_in_use_cannot_be_deleted(catalog: Catalog, tmp_path: Path) -> None:
    deploy(catalog, tmp_path, name="blue", model="mlp:1", all_traffic=True)
    with pytest.raises(ConflictError, match="^model mlp:1 is used by online deployment ep/blue"):
        catalog.ws.models.delete("mlp:1")
    catalog.ws.models.usage_checks.clear()  # without the hook, the foreign key still refuses
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        catalog.ws.models.delete("mlp:1")
    catalog.delete_endpoint("ep")
    assert catalog.ws.models.delete("mlp:1").ref == "mlp:1"


def test_deployment_with_traffic_is_not_deleted(catalog: Catalog, tmp_path: Path) -> None:
    deploy(catalog, tmp_path, name="blue", model="mlp:1", all_traffic=True)
    deploy(catalog, tmp_path, name="green", model="mlp:1")
    with pytest.raises(ConflictError, match="deployment 'blue' still gets 100 % of traffic"):
        catalog.delete_deployment("ep", "blue")
    catalog.update_endpoint(parse_endpoint({"name": "ep", "traffic": {"blue": 0, "green": 100}})[0])
    catalog.delete_deployment("ep", "blue")
    record = catalog.endpoint("ep")
    assert record.spec.traffic == {"green": 100}
    assert [d.spec.name for d in record.deployments] == ["green"]


def test_keys_regenerate_one_at_a_time(catalog: Catalog) -> None:
    primary, secondary = catalog.endpoint("ep").keys
    catalog.regenerate_key("ep", "primary")
    new_primary, same_secondary = catalog.endpoint("ep").keys
    assert new_primary != primary and same_secondary == secondary
    with pytest.raises(ValidationError, match="--key: 'tertiary' is not one of primary, secondary"):
        catalog.regenerate_key("ep", "tertiary")
    with pytest.raises(ConflictError, match="endpoint 'ep' already exists"):
        catalog.create_endpoint(EndpointSpec(name="ep"))


def test_models_a_script_calls_are_pinned_checked_and_kept(catalog: Catalog, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text("def init(): pass\ndef run(data): return 1\n")
    script = {"code": "code", "scoring_script": "score.py"}
    catalog.ws.models.register(build_mlp_onnx(tmp_path / "v2" / "model.onnx", seed=1), "mlp")
    catalog.ws.models.set_alias("mlp", "prod", 1)
    catalog.ws.models.register(code, "scorer", flavor="python")
    refusals = {
        "models[1]: model 'mlp' has no version 3": ["mlp@prod", "mlp:3"],
        "models[1]: mlp:1 is listed already": ["mlp@prod", "mlp:1"],
        "models[1]: mlp@prod is mlp:1, listed already": ["mlp:1", "mlp@prod"],
        "models[0]: model scorer:1 is a python model, which the server does not run": ["scorer:1"],
    }
    for message, listed in refusals.items():
        with pytest.raises(ModelportError, match=f"^{re.escape(message)}"):
            deploy(catalog, tmp_path, name="blue", code_configuration=script, models=listed)
    assert catalog.endpoint("ep").deployments == ()

    deploy(catalog, tmp_path, name="blue", code_configuration=script, models=["azureml:mlp@prod", "mlp:2"])
    deploy(catalog, tmp_path, name="green", model="mlp:2")
    blue, green = catalog.endpoint("ep").deployments
    assert blue.spec.models == ["mlp:1", "mlp:2"]  # pinned when stored: moving prod changes nothing
    assert blue.to_dict()["models"] == ["mlp:1", "mlp:2"] and "models" not in green.to_dict()
    with pytest.raises(ConflictError, match="^model mlp:1 is used by online deployment ep/blue"):
        catalog.ws.models.delete("mlp:1")
    with pytest.raises(ConflictError, match="used by online deployment ep/blue, online deployment ep/green"):
        catalog.ws.models.delete("mlp:2")
