"""Online endpoint rules without processes: definitions (Azure's keys and defaults), traffic
rules, traffic selection, replica choice, key checks and the routes the router passes."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelport.control.definitions import check_routing, load_deployment, parse_deployment, parse_endpoint
from modelport.core import keys
from modelport.core.errors import ValidationError
from modelport.core.overrides import apply_overrides
from modelport.routing.scoring_routes import is_scoring_route
from modelport.routing.traffic import choose_deployment, least_outstanding, mirror_target
from modelport.schema.online import DeploymentSpec, EndpointSpec


@pytest.fixture
def code(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text("def init(): pass\ndef run(data): return data\n")
    return tmp_path


def deployment(**fields: object) -> dict[str, object]:
    return {"name": "blue", "endpoint_name": "ep", "model": "fraud:1", **fields}


# -- definitions -------------------------------------------------------------------------------


def test_endpoint_defaults_and_cloud_keys() -> None:
    spec, ignored = parse_endpoint(
        {
            "name": "ep",
            "$schema": "https://x",
            "identity": {"type": "system_assigned"},
            "public_network_access": "enabled",
        }
    )
    assert spec == EndpointSpec(name="ep", auth_mode="key")
    assert ignored == ["identity", "public_network_access"]  # $schema is accepted silently


def test_deployment_has_azures_defaults(code: Path) -> None:
    spec, ignored = parse_deployment(
        deployment(
            instance_type="Standard_DS3_v2",
            app_insights_enabled=True,
            code_configuration={"code": "src", "scoring_script": "score.py"},
        ),
        code,
    )
    assert ignored == ["instance_type", "app_insights_enabled"]
    assert spec.instance_count == 1
    settings = spec.request_settings
    assert (settings.request_timeout_ms, settings.max_concurrent_requests_per_instance, settings.max_queue_wait_ms) == (
        5000,
        1,
        500,
    )
    for probe in (spec.liveness_probe, spec.readiness_probe):
        assert (probe.initial_delay, probe.period, probe.timeout, probe.success_threshold, probe.failure_threshold) == (
            10,
            10,
            2,
            1,
            30,
        )
    assert spec.code_configuration is not None
    assert spec.code_configuration.code == str((code / "src").resolve())
    assert spec.max_in_flight == 2


def test_stored_deployment_reads_back_unchanged(code: Path) -> None:
    spec, _ = parse_deployment(
        deployment(
            instance_count=3,
            environment_variables={"A": 1, "B": True, "C": None},
            request_settings={"request_timeout_ms": 250, "max_concurrent_requests_per_instance": 4},
            readiness_probe={"period": 0.5, "failure_threshold": 2},
            code_configuration={"code": "src", "scoring_script": "score.py"},
        ),
        code,
    )
    assert spec.environment_variables == {"A": "1", "B": "true", "C": ""}
    assert spec.max_in_flight == 24
    assert load_deployment(spec.to_dict()) == spec


def test_inline_assets_are_read_with_their_cloud_keys(code: Path) -> None:
    (code / "model.onnx").write_bytes(b"x")
    (code / "conda.yml").write_text("dependencies: [python=3.11]\n")
    spec, ignored = parse_deployment(
        deployment(
            model={"path": "model.onnx", "type": "custom_model"},
            environment={"conda_file": "conda.yml", "image": "mcr.microsoft.com/azureml/x"},
        ),
        code,
    )
    assert isinstance(spec, DeploymentSpec) and not isinstance(spec.model, str)
    assert spec.model.path == str((code / "model.onnx").resolve())
    assert ignored == ["model.type", "environment.image"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"instance_count": 0}, r"^instance_count: 0 is less than 1$"),
        (
            {"request_settings": {"request_timeout_ms": 180_001}},
            r"^request_settings.request_timeout_ms: 180001 is more",
        ),
        ({"request_settings": {"max_concurrency": 2}}, r"^request_settings.max_concurrency: unknown key"),
        ({"liveness_probe": {"period": 0}}, r"^liveness_probe.period: expected a positive number"),
        ({"environment_variables": {"A": [1]}}, r"^environment_variables.A: expected a string"),
        ({"modle": "x"}, r"^modle: unknown key; did you mean 'model'\?$"),
        ({"model": None}, r"^model: a deployment needs a model, a code_configuration, or both$"),
        ({"model": 3}, r"^model: expected a reference or a mapping"),
        ({"model": {"path": "nowhere.onnx"}}, r"^model.path: .*nowhere.onnx does not exist$"),
        ({"code_configuration": {"code": "src"}}, r"^code_configuration.scoring_script: required$"),
        (
            {"code_configuration": {"code": "src", "scoring_script": "nope.py"}},
            r"^code_configuration.scoring_script: .*nope.py does not exist$",
        ),
        ({"name": "a b"}, r"^name: 'a b' is not valid"),
        (
            {"model_config": {"max_batch_size": -1}},
            r"^model_config: max_batch_size: input should be greater than or equal to 0$",
        ),
        (
            {"model_config": {"dynamic_batching": {"max_queue_delay_microseconds": "soon"}}},
            r"^model_config: dynamic_batching.max_queue_delay_microseconds: input should be a valid integer",
        ),
        ({"model_config": {"name": "other"}}, r"^model_config: name: the served name cannot be overridden$"),
        (
            {
                "model_config": {"max_batch_size": 8},
                "code_configuration": {"code": "src", "scoring_script": "score.py"},
            },
            r"^model_config: tunes a no-code model's server",
        ),
    ],
)
def test_bad_deployments_name_the_key(code: Path, fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_deployment(deployment(**fields), code)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"auth_mode": "aml_token"}, r"^auth_mode: 'aml_token' is not available locally"),
        ({"traffic": {"blue": 101}}, r"^traffic.blue: 101 is more than 100$"),
        ({"traffic": {"blue": -1}}, r"^traffic.blue: -1 is less than 0$"),
        ({"traffic": ["blue"]}, r"^traffic: expected a mapping"),
        ({"name": None}, r"^name: required$"),
    ],
)
def test_bad_endpoints_name_the_key(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_endpoint({"name": "ep", **fields})


def test_overrides_apply_yaml_values_at_key_paths() -> None:
    data = {"name": "ep", "traffic": {"blue": 100}}
    changed = apply_overrides(
        data, ["traffic.green=10", "traffic.blue=90", "request_settings.max_queue_wait_ms=7", "description=a b"]
    )
    assert changed == {
        "name": "ep",
        "traffic": {"blue": 90, "green": 10},
        "description": "a b",
        "request_settings": {"max_queue_wait_ms": 7},
    }
    assert data == {"name": "ep", "traffic": {"blue": 100}}  # the input is left alone
    assert apply_overrides(data, ["traffic={green: 100}"])["traffic"] == {"green": 100}
    for bad, message in (
        ("traffic", "is not KEY=VALUE"),
        ("name.x=1", "name is not a mapping"),
        ("description=\x9bC", r"^--set description: the value is not valid YAML \("),
    ):
        with pytest.raises(ValidationError, match=message):
            apply_overrides(data, [bad])


# -- routing rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("traffic", "mirror", "message"),
    [
        ({"blue": 90}, {}, r"^traffic: the weights sum to 90; they must sum to 100 \(or 0"),
        ({"blue": 100, "purple": 0}, {}, r"^traffic.purple: endpoint 'ep' has no deployment 'purple'$"),
        ({"blue": 100}, {"purple": 10}, r"^mirror_traffic.purple: endpoint 'ep' has no deployment"),
        ({"blue": 100}, {"green": 51}, r"^mirror_traffic.green: 51 % is more than the 50 % allowed$"),
        ({"blue": 80, "green": 20}, {"green": 10}, r"^mirror_traffic.green: 'green' already gets 20 % of live traffic"),
        ({"blue": 100}, {"green": 10, "red": 10}, r"^mirror_traffic: one deployment at most"),
    ],
)
def test_routing_rules(traffic: dict[str, int], mirror: dict[str, int], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_routing(EndpointSpec(name="ep", traffic=traffic, mirror_traffic=mirror), ["blue", "green", "red"])


@pytest.mark.parametrize(
    ("traffic", "mirror"),
    [
        ({}, {}),
        ({"blue": 0, "green": 0}, {}),
        ({"blue": 100, "green": 0}, {"green": 50}),
        ({"blue": 70, "green": 30}, {"red": 1}),
        ({"blue": 100}, {"green": 0, "red": 20}),
    ],
)
def test_routing_accepts(traffic: dict[str, int], mirror: dict[str, int]) -> None:
    check_routing(EndpointSpec(name="ep", traffic=traffic, mirror_traffic=mirror), ["blue", "green", "red"])


# -- traffic selection -------------------------------------------------------------------------


def test_weighted_choice_is_proportional() -> None:
    rolls = [i / 1000 for i in range(1000)]
    counts = collections.Counter(choose_deployment({"blue": 90, "green": 10, "red": 0}, roll) for roll in rolls)
    assert counts == {"blue": 900, "green": 100}
    assert choose_deployment({"blue": 0}, 0.5) is None
    assert choose_deployment({}, 0.5) is None
    assert choose_deployment({"blue": 50, "green": 50}, 0.9999999) == "green"


def test_mirror_takes_its_percentage() -> None:
    hits = sum(mirror_target({"green": 20}, i / 1000) == "green" for i in range(1000))
    assert hits == 200
    assert mirror_target({"green": 0}, 0.0) is None
    assert mirror_target({}, 0.0) is None


@dataclass
class FakeReplica:
    name: str
    outstanding: int = 0


def test_least_outstanding_then_round_robin() -> None:
    a, b, c = FakeReplica("a", 2), FakeReplica("b", 0), FakeReplica("c", 1)
    assert least_outstanding([a, b, c], 0) is b
    idle = [FakeReplica("x"), FakeReplica("y"), FakeReplica("z")]
    assert [least_outstanding(idle, turn).name for turn in range(4)] == ["x", "y", "z", "x"]
    assert least_outstanding([], 3) is None


# -- scoring routes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "score"),
        ("GET", "score"),
        ("GET", "swagger.json"),
        ("GET", "v2"),
        ("GET", "v2/health/live"),
        ("GET", "v2/health/ready"),
        ("GET", "v2/models/mlp"),
        ("GET", "v2/models/mlp/ready"),
        ("GET", "v2/models/mlp/config"),
        ("POST", "v2/models/mlp/infer"),
        ("GET", "v2/models/mlp.v2_x-1/versions/3"),
        ("GET", "v2/models/mlp/versions/3/ready"),
        ("GET", "v2/models/mlp/versions/3/config"),
        ("POST", "v2/models/mlp/versions/12/infer"),
    ],
)
def test_scoring_routes_pass(method: str, path: str) -> None:
    assert is_scoring_route(method, path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        # the model repository extension, statistics, metrics, the replica's own API document
        ("POST", "v2/repository/index"),
        ("POST", "v2/repository/models/mlp/load"),
        ("POST", "v2/repository/models/mlp/unload"),
        ("GET", "v2/models/stats"),
        ("GET", "v2/models/mlp/stats"),
        ("GET", "v2/models/mlp/versions/1/stats"),
        ("POST", "v2/models/mlp/stats"),
        ("GET", "metrics"),
        ("GET", "v2/openapi.json"),
        ("POST", "v2/trace/setting"),
        ("POST", "v2/logging"),
        ("GET", ""),
        # wrong methods on known paths
        ("GET", "v2/models/mlp/infer"),
        ("POST", "v2/models/mlp"),
        ("POST", "v2/health/ready"),
        ("PUT", "score"),
        ("DELETE", "score"),
        ("OPTIONS", "score"),
        ("POST", "swagger.json"),
        ("HEAD", "v2"),
        # shapes that only look like model routes: dot segments, empty or bad names and versions, extra parts
        ("POST", "v2/models/../repository/models/mlp/unload"),
        ("POST", "v2/models/mlp/../../repository/index"),
        ("GET", "v2/models/.."),
        ("GET", "v2/models/."),
        ("POST", "v2/models//infer"),
        ("POST", "v2/models/mlp/infer/"),
        ("GET", "v2/models/mlp/versions/x/ready"),
        ("GET", "v2/models/mlp/versions/"),
        ("GET", "v2/models/mlp/versions"),
        ("POST", "v2/models/mlp/versions/1/versions/2/infer"),
        ("GET", "v2/models/a%2F..%2Fb"),
        ("GET", "score/"),
        ("GET", "v2/"),
        ("GET", "v2/models"),
        ("POST", "v2/models/mlp/infer/x"),
        ("GET", "V2/health/ready"),
    ],
)
def test_everything_else_is_refused(method: str, path: str) -> None:
    assert not is_scoring_route(method, path)


# -- keys --------------------------------------------------------------------------------------


def test_keys_accept_either_key_and_nothing_else() -> None:
    primary, secondary = keys.new_key(), keys.new_key()
    assert primary != secondary and len(primary) >= 43
    pair = (primary, secondary)
    assert keys.authorized(f"Bearer {primary}", pair)
    assert keys.authorized(f"bearer {secondary}", pair)
    for header in (
        None,
        "",
        "Bearer",
        "Bearer ",
        primary,
        f"Basic {primary}",
        f"Bearer {primary}x",
        f"Bearer {primary[:-1]}",
        f"Bearer {keys.new_key()}",
    ):
        assert not keys.authorized(header, pair), header


def test_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both keys are always compared with hmac.compare_digest, whichever matches."""
    calls = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    pair = ("k1", "k2")
    assert keys.authorized("Bearer k1", pair)
    assert not keys.authorized("Bearer nope", pair)
    assert calls == [(b"k1", b"k1"), (b"k1", b"k2"), (b"nope", b"k1"), (b"nope", b"k2")]


def test_console_logs_rotate_by_copy_and_truncate(tmp_path: Path) -> None:
    from modelport.control.logs import rotate_if_large

    log = tmp_path / "replica-0.log"
    with open(log, "ab") as console:  # the replica's handle stays open across rotations
        for generation in range(5):
            console.write(f"generation {generation}\\n".encode() * 100)
            console.flush()
            assert rotate_if_large(log, max_bytes=500, backups=2)
        console.write(b"after\\n")
        console.flush()
    assert log.read_bytes() == b"after\\n"  # appends continue at the start of the emptied file
    assert (tmp_path / "replica-0.log.1").read_text().startswith("generation 4")
    assert (tmp_path / "replica-0.log.2").read_text().startswith("generation 3")
    assert not (tmp_path / "replica-0.log.3").exists()
    assert not rotate_if_large(log, max_bytes=500)
