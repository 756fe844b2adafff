"""Property tests of the definition models: generated valid documents are accepted and stored as
expected (defaults filled in, tags and variables as text, numbers normalised, paths absolute, a
stored deployment reads back equal); a valid document with one field made bad (wrong type, out
of range, unknown key) is refused in one line that starts with that field's path.

Each strategy draws ``(written, stored)`` pairs: what a YAML file may hold, and what the
definition must store for it. The expected values are written out here, independently of the
models, so a change of what is stored fails a test.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.control.definitions import load_deployment, parse_deployment, parse_endpoint
from modelport.core.errors import ValidationError
from modelport.schema.base import parse
from modelport.schema.batch import BatchDeploymentSpec, BatchEndpointSpec
from modelport.schema.collector import DataCollector

Pair = tuple[Any, Any]  # (written, stored)
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ROOT = Path()  # the folder the ``files`` fixture makes


@pytest.fixture(scope="module", autouse=True)
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder definitions' relative paths start from: a scoring script, a model, a conda file."""
    global ROOT
    ROOT = tmp_path_factory.mktemp("definitions").resolve()
    (ROOT / "src").mkdir()
    (ROOT / "src" / "score.py").write_text("def init(): pass\ndef run(data): return data\n")
    (ROOT / "model.onnx").write_bytes(b"onnx")
    (ROOT / "conda.yml").write_text("dependencies: [python=3.11]\n")
    return ROOT


# -- values ----------------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,15}", fullmatch=True).filter(lambda name: ".." not in name)
FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)


def same(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Pair]:
    return strategy.map(lambda value: (value, value))


def integers(low: int, high: int) -> st.SearchStrategy[Pair]:
    """An integer, written as a number or as digits (``"30"``)."""
    return st.integers(low, high).flatmap(lambda n: st.sampled_from([(n, n), (str(n), n)]))


def seconds(*, zero: bool = False) -> st.SearchStrategy[Pair]:
    """A positive number of seconds (or 0 too, with ``zero``), as int, float or text."""
    values = st.one_of(st.integers(1, 10**6), st.floats(min_value=1e-3, max_value=1e6))
    if zero:
        values = st.one_of(st.just(0), values)
    return values.flatmap(lambda v: st.sampled_from([(v, float(v)), (str(v), float(v))]))


TEXT = st.one_of(
    same(st.text(string.printable, max_size=12)),
    st.integers().map(lambda n: (n, str(n))),
    FINITE.map(lambda f: (f, str(f))),
    st.booleans().map(lambda b: (b, "true" if b else "false")),  # YAML's spelling, online and batch alike
)
TAG_VALUES = st.one_of(TEXT, st.just((None, "")))
TAGS = st.dictionaries(NAMES, TAG_VALUES, max_size=4).map(
    lambda tags: ({key: w for key, (w, _) in tags.items()}, {key: s for key, (_, s) in tags.items()})
)


def choice(*values: str) -> st.SearchStrategy[Pair]:
    """A choice in any case; stored in lower case."""
    return st.sampled_from(values).flatmap(lambda v: st.sampled_from([(v, v), (v.upper(), v), (v.title(), v)]))


def mapping(
    fields: dict[str, st.SearchStrategy[Pair]], defaults: dict[str, Any], required: tuple[str, ...] = ()
) -> st.SearchStrategy[Pair]:
    """A mapping of some of ``fields`` (all of ``required``); stored: ``defaults`` with those laid over."""

    @st.composite
    def draw(draw: Callable[..., Any]) -> Pair:
        written: dict[str, Any] = {}
        stored = dict(defaults)
        for key, strategy in fields.items():
            if key in required or draw(st.booleans()):
                written[key], stored[key] = draw(strategy)
        return written, stored

    return draw()


# -- online ----------------------------------------------------------------------------------

PROBE_DEFAULTS = {
    "initial_delay": 10.0,
    "period": 10.0,
    "timeout": 2.0,
    "success_threshold": 1,
    "failure_threshold": 30,
}
PROBE = mapping(
    {
        "initial_delay": seconds(zero=True),
        "period": seconds(),
        "timeout": seconds(),
        "success_threshold": integers(1, 10**6),
        "failure_threshold": integers(1, 10**6),
    },
    PROBE_DEFAULTS,
)
REQUEST_DEFAULTS = {"request_timeout_ms": 5000, "max_concurrent_requests_per_instance": 1, "max_queue_wait_ms": 500}
REQUEST_SETTINGS = mapping(
    {
        "request_timeout_ms": integers(1, 180_000),
        "max_concurrent_requests_per_instance": integers(1, 1000),
        "max_queue_wait_ms": integers(0, 10**6),
    },
    REQUEST_DEFAULTS,
)
SCALE_DEFAULTS = {
    "type": "default",
    "min_instances": 1,
    "max_instances": 1,
    "target_utilization_percentage": 70,
    "polling_interval": 1.0,
    "scale_down_delay": 300.0,
}
SCALE_SETTINGS = mapping(
    {
        "type": choice("default", "target_utilization"),
        "max_instances": integers(1, 100),  # min_instances stays 1: never above max
        "target_utilization_percentage": integers(1, 100),
        "polling_interval": seconds(),
        "scale_down_delay": seconds(zero=True),
    },
    SCALE_DEFAULTS,
)
RESOURCE_DEFAULTS: dict[str, Any] = {"requests": {}, "limits": {}}
RESOURCES = mapping(
    {
        "requests": st.just(({"cpu": "500m", "memory": "1Gi"}, {"cpu": "500m", "memory": "1Gi"})),
        "limits": st.just(({"cpu": 2, "nvidia.com/gpu": 1}, {"cpu": "2", "nvidia.com/gpu": "1"})),
    },
    RESOURCE_DEFAULTS,
)
FLAG = st.one_of(same(st.booleans()), st.sampled_from([("True", True), ("false", False), ("TRUE", True)]))
COLLECTION = st.one_of(st.just((None, {"enabled": False})), mapping({"enabled": FLAG}, {"enabled": False}))
COLLECTOR_DEFAULTS = {"collections": {}, "sampling_rate": 1.0, "rolling_rate": "hour", "format": "parquet"}
COLLECTOR = mapping(
    {
        "collections": st.dictionaries(st.sampled_from(["model_inputs", "model_outputs"]), COLLECTION).map(
            lambda c: ({k: w for k, (w, _) in c.items()}, {k: s for k, (_, s) in c.items()})
        ),
        "sampling_rate": st.floats(min_value=1e-6, max_value=1.0).map(lambda r: (r, r)),
        "rolling_rate": choice("minute", "hour", "day"),
        "format": choice("parquet", "jsonl"),
    },
    COLLECTOR_DEFAULTS,
)
WEIGHTS = st.dictionaries(NAMES, integers(0, 100), max_size=3).map(
    lambda w: ({k: a for k, (a, _) in w.items()}, {k: b for k, (_, b) in w.items()})
)
ENDPOINT = mapping(
    {
        "name": same(NAMES),
        "description": TEXT,
        "tags": TAGS,
        "auth_mode": choice("key", "none"),
        "traffic": WEIGHTS,
        "mirror_traffic": WEIGHTS,
        "identity": st.just(({"type": "system_assigned"}, None)),  # cloud-only: dropped
    },
    {"description": "", "tags": {}, "auth_mode": "key", "traffic": {}, "mirror_traffic": {}},
    required=("name",),
).map(lambda pair: (pair[0], {k: v for k, v in pair[1].items() if k != "identity"}))


def _inline(key: str, file: str) -> st.SearchStrategy[Pair]:
    return mapping(
        {
            key: st.just((file, None)),
            "name": st.one_of(same(NAMES), st.just((None, None))),
            "description": TEXT,
            "tags": TAGS,
        },
        {"name": None, "description": "", "tags": {}},
        required=(key,),
    ).map(lambda pair: (pair[0], {**pair[1], key: str(ROOT / file)}))


REFERENCES = same(st.sampled_from(["fraud:1", "azureml:fraud:2", "fraud@prod", "fraud"]))
CODE = st.just(({"code": "src", "scoring_script": "score.py"}, None)).map(
    lambda pair: (pair[0], {"code": str(ROOT / "src"), "scoring_script": "score.py"})
)


@st.composite
def deployments(draw: Callable[..., Any]) -> Pair:
    """A deployment with a model, a scoring script, or both, and some of the other keys."""
    written, stored = draw(
        mapping(
            {
                "name": same(NAMES),
                "endpoint_name": same(NAMES),
                "description": TEXT,
                "tags": TAGS,
                "environment": st.one_of(REFERENCES, _inline("conda_file", "conda.yml")),
                "instance_count": integers(1, 100),
                "request_settings": REQUEST_SETTINGS,
                "liveness_probe": PROBE,
                "readiness_probe": PROBE,
                "environment_variables": TAGS,
                "data_collector": COLLECTOR,
                "scale_settings": SCALE_SETTINGS,
                "resources": RESOURCES,
            },
            {
                "description": "",
                "tags": {},
                "model": None,
                "code_configuration": None,
                "environment": None,
                "instance_count": 1,
                "request_settings": REQUEST_DEFAULTS,
                "liveness_probe": PROBE_DEFAULTS,
                "readiness_probe": PROBE_DEFAULTS,
                "environment_variables": {},
                "model_config": {},
                "data_collector": COLLECTOR_DEFAULTS,
                "scale_settings": SCALE_DEFAULTS,
                "resources": RESOURCE_DEFAULTS,
            },
            required=("name", "endpoint_name"),
        )
    )
    shape = draw(st.sampled_from(["model", "code", "both"]))
    if shape != "code":
        written["model"], stored["model"] = draw(st.one_of(REFERENCES, _inline("path", "model.onnx")))
    if shape != "model":
        written["code_configuration"], stored["code_configuration"] = draw(CODE)
    elif draw(st.booleans()):
        batching = draw(st.integers(0, 64))
        written["model_config"] = stored["model_config"] = {"max_batch_size": batching}
    return written, stored


@given(ENDPOINT)
@EXAMPLES
def test_valid_endpoints_are_stored_with_defaults(pair: Pair) -> None:
    written, stored = pair
    spec, ignored = parse_endpoint(written)
    assert spec.to_dict() == stored
    assert ignored == (["identity"] if "identity" in written else [])


@given(deployments())
@EXAMPLES
def test_valid_deployments_are_stored_and_read_back(pair: Pair) -> None:
    written, stored = pair
    spec, _ = parse_deployment(written, ROOT)
    assert spec.to_dict() == stored
    assert load_deployment(spec.to_dict()) == spec


@given(COLLECTOR)
@EXAMPLES
def test_valid_data_collectors(pair: Pair) -> None:
    written, stored = pair
    assert parse(DataCollector, written).value.to_dict() == stored


# -- batch -----------------------------------------------------------------------------------

BATCH_DEFAULTS = {
    "instance_count": 1,
    "max_concurrency_per_instance": 1,
    "mini_batch_size": 10,
    "output_action": "append_row",
    "output_file_name": "predictions.csv",
    "max_retries": 3,
    "timeout": 30.0,
    "error_threshold": -1,
    "logging_level": "info",
    "environment_variables": {},
}
JOB_SETTINGS = {
    "max_concurrency_per_instance": integers(1, 64),
    "mini_batch_size": integers(1, 10**6),
    "output_action": choice("append_row", "summary_only"),
    "output_file_name": same(NAMES.filter(lambda name: "/" not in name)),
    "error_threshold": integers(-1, 10**6),
    "logging_level": choice("debug", "info", "warning", "error", "critical"),
    "environment_variables": TAGS,
}
RETRY = mapping({"max_retries": integers(0, 100), "timeout": seconds()}, {"max_retries": 3, "timeout": 30.0})
BATCH_ENDPOINT = mapping(
    {
        "name": same(NAMES),
        "description": TEXT,
        "tags": TAGS,
        "defaults": st.one_of(same(NAMES), st.just((None, None))).map(
            lambda pair: ({"deployment_name": pair[0]}, pair[1])
        ),
    },
    {"description": "", "tags": {}, "defaults": None},
    required=("name",),
)


@st.composite
def batch_deployments(draw: Callable[..., Any]) -> Pair:
    """A batch deployment whose settings sit under ``settings:``, at the root, or both (never the
    same key twice); stored: the flat settings."""
    written: dict[str, Any] = {"name": draw(NAMES), "endpoint_name": draw(NAMES)}
    stored = dict(BATCH_DEFAULTS)
    nested: dict[str, Any] = {}
    for key, strategy in {**JOB_SETTINGS, "retry_settings": RETRY}.items():
        place = draw(st.sampled_from(["absent", "root", "settings"]))
        if place == "absent":
            continue
        value, result = draw(strategy)
        (written if place == "root" else nested)[key] = value
        if key == "retry_settings":
            stored.update(result)
        else:
            stored[key] = result
    if nested or draw(st.booleans()):
        written["settings"] = nested
    if draw(st.booleans()):
        written["resources"], count = draw(integers(1, 64).map(lambda p: ({"instance_count": p[0]}, p[1])))
        stored["instance_count"] = count
    shape = draw(st.sampled_from(["model", "code", "both"]))
    if shape != "code":
        written["model"] = draw(st.sampled_from(["mlp:1", "mlp", {"path": "model.onnx", "version": 3}]))
    if shape != "model":
        written["code_configuration"] = {"code": "src", "scoring_script": "score.py"}
    return written, stored


@given(BATCH_ENDPOINT)
@EXAMPLES
def test_valid_batch_endpoints(pair: Pair) -> None:
    written, stored = pair
    spec = parse(BatchEndpointSpec, written).value
    assert (spec.description, spec.tags, spec.default_deployment) == (
        stored["description"],
        stored["tags"],
        stored["defaults"],
    )


@given(batch_deployments())
@EXAMPLES
def test_valid_batch_deployments_store_flat_settings(pair: Pair) -> None:
    written, stored = pair
    spec = parse(BatchDeploymentSpec, written, context={"base": ROOT}).value
    assert spec.batch_settings.to_dict() == stored
    if spec.code_configuration is not None:
        assert spec.code_configuration.code == str(ROOT / "src")
    if not isinstance(spec.model, str) and spec.model is not None:
        assert (spec.model.path, spec.model.version) == (str(ROOT / "model.onnx"), 3)


# -- invalid documents -----------------------------------------------------------------------

WRONG_TYPE = st.sampled_from([[1, 2], {"a": 1}])
BAD_INT = st.one_of(WRONG_TYPE, st.just(True), st.just(1.5), st.just("many"))


def bad_values(path: str) -> st.SearchStrategy[Any]:
    """Values that ``path`` (a key path of a deployment or endpoint) must refuse."""
    leaf = path.rsplit(".", 1)[-1]
    lowest = {"initial_delay": 0, "max_queue_wait_ms": 0, "error_threshold": -1}.get(leaf, 1)
    if leaf in (
        "instance_count",
        "success_threshold",
        "failure_threshold",
        "max_concurrent_requests_per_instance",
        "max_queue_wait_ms",
        "request_timeout_ms",
        "mini_batch_size",
        "max_concurrency_per_instance",
        "max_retries",
        "error_threshold",
    ):
        if leaf == "max_retries":
            lowest = 0
        high = {"request_timeout_ms": st.integers(180_001, 10**9)}.get(leaf, st.nothing())
        return st.one_of(BAD_INT, st.integers(max_value=lowest - 1), high)
    if leaf in ("period", "timeout", "initial_delay"):
        below = st.floats(max_value=-1e-3) if leaf == "initial_delay" else st.floats(max_value=0.0)
        return st.one_of(WRONG_TYPE, st.just("soon"), st.just(float("nan")), below.filter(lambda f: f == f))
    if leaf in ("name", "endpoint_name"):
        return st.one_of(WRONG_TYPE, st.integers(), st.sampled_from(["a b", "-x", "a..b", "x" * 256, "é"]))
    if leaf in ("tags", "environment_variables", "traffic"):
        return st.one_of(st.just([1]), st.just("x"), st.just({"k": [1]}))
    if leaf in ("auth_mode", "output_action", "logging_level", "rolling_rate", "format"):
        return st.one_of(WRONG_TYPE, st.sampled_from(["aml_token", "loud", "weekly", ""]))
    if leaf == "sampling_rate":
        return st.one_of(WRONG_TYPE, st.floats(min_value=1.001, max_value=1e9), st.just(0))
    if leaf == "description":
        return WRONG_TYPE
    return WRONG_TYPE  # a mapping


ONLINE_FIELDS = [
    "name", "endpoint_name", "description", "tags", "instance_count", "environment_variables",
    "request_settings", "request_settings.request_timeout_ms", "request_settings.max_queue_wait_ms",
    "request_settings.max_concurrent_requests_per_instance", "liveness_probe", "liveness_probe.period",
    "readiness_probe.initial_delay", "readiness_probe.timeout", "readiness_probe.failure_threshold",
    "data_collector", "data_collector.sampling_rate", "data_collector.rolling_rate", "data_collector.format",
]  # fmt: skip
BATCH_FIELDS = [
    "name", "settings", "settings.mini_batch_size", "settings.output_action", "settings.logging_level",
    "settings.error_threshold", "settings.retry_settings", "settings.retry_settings.timeout",
    "settings.retry_settings.max_retries", "resources.instance_count", "max_concurrency_per_instance", "tags",
]  # fmt: skip


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``document`` with ``path`` set to ``value``, mappings on the way made (or replaced) as needed."""
    *parents, leaf = path.split(".")
    target = document
    for part in parents:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[leaf] = value
    return document


def _refused(read: Callable[[dict[str, Any]], Any], document: dict[str, Any], path: str) -> str:
    with pytest.raises(ValidationError) as caught:
        read(document)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}") and message[len(path)] in ":.", message
    return message


@given(deployments(), st.sampled_from(ONLINE_FIELDS), st.data())
@EXAMPLES
def test_a_bad_deployment_field_is_refused_by_its_path(pair: Pair, path: str, data: st.DataObject) -> None:
    value = data.draw(bad_values(path))
    document = _set(pair[0], path, value)
    _refused(lambda d: parse_deployment(d, ROOT), document, path)


@given(ENDPOINT, st.sampled_from(["name", "description", "tags", "auth_mode", "traffic"]), st.data())
@EXAMPLES
def test_a_bad_endpoint_field_is_refused_by_its_path(pair: Pair, path: str, data: st.DataObject) -> None:
    document = _set(pair[0], path, data.draw(bad_values(path)))
    _refused(parse_endpoint, document, path)


@given(batch_deployments(), st.sampled_from(BATCH_FIELDS), st.data())
@EXAMPLES
def test_a_bad_batch_field_is_refused_by_its_path(pair: Pair, path: str, data: st.DataObject) -> None:
    written = pair[0]
    root_key = path.split(".")[0]
    if root_key == "settings" and "." in path:  # the same key at the root would be the error instead
        written.pop(path.split(".")[1], None)
    document = _set(written, path, data.draw(bad_values(path)))
    _refused(lambda d: parse(BatchDeploymentSpec, d, context={"base": ROOT}), document, path)


UNKNOWN_KEYS = st.from_regex(r"[a-z][a-z_]{2,12}", fullmatch=True)


@given(deployments(), st.sampled_from(["", "request_settings.", "liveness_probe.", "data_collector."]), UNKNOWN_KEYS)
@EXAMPLES
def test_an_unknown_deployment_key_is_refused_by_its_path(pair: Pair, where: str, key: str) -> None:
    from modelport.schema.online import DeploymentSpec, Probe, RequestSettings

    known = {"": DeploymentSpec, "request_settings.": RequestSettings, "liveness_probe.": Probe,
             "data_collector.": DataCollector}[where]  # fmt: skip
    if key in known.model_fields or key in known.cloud_keys or key == "model_config":
        return
    document = _set(pair[0], f"{where}{key}", 1)
    message = _refused(lambda d: parse_deployment(d, ROOT), document, f"{where}{key}")
    assert message.startswith(f"{where}{key}: unknown key")


@given(batch_deployments(), st.sampled_from(["", "settings.", "settings.retry_settings.", "resources."]), UNKNOWN_KEYS)
@EXAMPLES
def test_an_unknown_batch_key_is_refused_by_its_path(pair: Pair, where: str, key: str) -> None:
    from modelport.schema.batch import JobSettings, Resources, RetrySettings

    known = {"": BatchDeploymentSpec, "settings.": JobSettings, "settings.retry_settings.": RetrySettings,
             "resources.": Resources}[where]  # fmt: skip
    if key in known.model_fields or key in known.cloud_keys:
        return
    written = pair[0]
    written.pop("retry_settings", None)  # so that settings.retry_settings is the only one
    document = _set(written, f"{where}{key}", 1)
    message = _refused(lambda d: parse(BatchDeploymentSpec, d, context={"base": ROOT}), document, f"{where}{key}")
    assert message.startswith(f"{where}{key}: unknown key")


def test_a_close_unknown_key_gets_a_suggestion() -> None:
    with pytest.raises(ValidationError, match=r"^request_settings\.request_timeout: unknown key; did you mean "):
        parse_deployment({"name": "a", "endpoint_name": "e", "model": "m:1",
                          "request_settings": {"request_timeout": 5}}, ROOT)  # fmt: skip
