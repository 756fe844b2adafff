"""Model config properties over generated documents: every valid document is accepted with the
values it spells, its config.pbtxt rendering reads as the same config, and a document with one
field made wrong is refused with that field's path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.core.datatypes import TRITON_DATATYPES
from modelport.core.errors import ValidationError
from modelport.runtime import config_from_dict, load_config_pbtxt

NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12).filter(lambda n: n[0].isalnum())
ENUM_FIELDS = {"data_type", "kind", "timeout_action", "priority"}  # rendered bare in protobuf text
TRITON_TYPES = sorted(name for name in TRITON_DATATYPES if name != "TYPE_STRING")


def tensors(kind: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    def tensor(name: str) -> st.SearchStrategy[dict[str, Any]]:
        fields: dict[str, st.SearchStrategy[Any]] = {
            "name": st.just(name),
            "data_type": st.sampled_from(TRITON_TYPES),
            "dims": st.lists(st.sampled_from([-1, 1, 2, 3, 16]), max_size=3),
        }
        optional: dict[str, st.SearchStrategy[Any]] = (
            {
                "optional": st.booleans(),
                "reshape": st.fixed_dictionaries({"shape": st.lists(st.integers(1, 4), min_size=1)}),
            }
            if kind == "input"
            else {"label_filename": NAMES.map(lambda n: f"{n}.txt")}
        )
        return st.fixed_dictionaries(fields, optional=optional)

    return st.lists(NAMES, max_size=3, unique=True).flatmap(lambda names: st.tuples(*map(tensor, names)).map(list))


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid config in Triton's spelling (what config.pbtxt and Triton's JSON write)."""
    max_batch_size = draw(st.integers(0, 64))
    document: dict[str, Any] = {"name": draw(NAMES), "max_batch_size": max_batch_size}
    backend = draw(st.sampled_from([None, ("platform", "onnxruntime_onnx"), ("backend", "pytorch"), ("backend", "x")]))
    if backend:
        document[backend[0]] = backend[1]
    document["input"] = draw(tensors("input"))
    document["output"] = draw(tensors("output"))
    if draw(st.booleans()):
        batching: dict[str, Any] = {
            "preferred_batch_size": draw(st.lists(st.integers(1, max(max_batch_size, 1)), max_size=3)),
            "max_queue_delay_microseconds": draw(st.integers(0, 10**6)),
            "preserve_ordering": draw(st.booleans()),
        }
        if draw(st.booleans()):
            batching["default_queue_policy"] = {
                "max_queue_size": draw(st.integers(0, 100)),
                "default_timeout_microseconds": draw(st.integers(0, 10**6)),
                "timeout_action": draw(st.sampled_from(["REJECT", "DELAY"])),
            }
        document["dynamic_batching"] = batching
    groups = st.fixed_dictionaries(
        {"count": st.integers(1, 4), "kind": st.sampled_from(["KIND_CPU", "KIND_GPU", "KIND_AUTO"])},
        optional={"gpus": st.lists(st.integers(0, 3), min_size=1, max_size=2)},  # protobuf: empty = absent
    )
    if draw(st.booleans()):
        document["instance_group"] = draw(st.lists(groups, min_size=1, max_size=2))
    document["version_policy"] = draw(
        st.sampled_from(
            [
                {"latest": {"num_versions": 2}},
                {"all": {}},
                {"specific": {"versions": [1, 3]}},
                {"latest": {"num_versions": 1}},
            ]
        )
    )
    parameters = draw(st.dictionaries(NAMES, NAMES, max_size=2))
    if parameters:
        document["parameters"] = {key: {"string_value": value} for key, value in parameters.items()}
    if draw(st.booleans()):
        document["optimization"] = {"priority": draw(st.sampled_from(["PRIORITY_MAX", "PRIORITY_MIN"]))}
    return document


def yaml_spelling(document: dict[str, Any]) -> dict[str, Any]:
    """The same config as a YAML user writes it: plural keys, v2 datatypes, plain parameters."""
    spelled = {("inputs" if k == "input" else "outputs" if k == "output" else k): v for k, v in document.items()}
    for key in ("inputs", "outputs"):
        spelled[key] = [
            {
                ("datatype" if k == "data_type" else k): (TRITON_DATATYPES[v] if k == "data_type" else v)
                for k, v in t.items()
            }
            for t in spelled[key]
        ]
    if "parameters" in spelled:
        spelled["parameters"] = {key: value["string_value"] for key, value in spelled["parameters"].items()}
    return spelled


def pbtxt(document: dict[str, Any]) -> str:
    """``document`` as protobuf text, a repeated field written once per item or in brackets."""

    def value(key: str, item: Any) -> str:
        if isinstance(item, dict):
            return "{ " + " ".join(field(k, v) for k, v in item.items()) + " }"
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, str) and key not in ENUM_FIELDS:
            return json.dumps(item)
        return str(item)

    def field(key: str, item: Any) -> str:
        if key == "parameters":
            return " ".join(f"parameters {{ key: {json.dumps(k)} value {value('', v)} }}" for k, v in item.items())
        if isinstance(item, list):
            if len(item) % 2:  # both ways of writing a repeated field
                return " ".join(f"{key}: {value(key, element)}" for element in item)
            return f"{key}: [ " + ", ".join(value(key, element) for element in item) + " ]"
        return f"{key}: {value(key, item)}" if not isinstance(item, dict) else f"{key} {value(key, item)}"

    return "\n".join(field(key, item) for key, item in document.items()) + "\n"


def expected_values(config: Any, document: dict[str, Any]) -> None:
    """The config holds what ``document`` (Triton's spelling) says."""
    assert config.name == document["name"]
    assert config.max_batch_size == document["max_batch_size"]
    for kind, configured in (("input", config.inputs), ("output", config.outputs)):
        assert [t.name for t in configured] == [t["name"] for t in document[kind]]
        assert [t.datatype for t in configured] == [TRITON_DATATYPES[t["data_type"]] for t in document[kind]]
        assert [t.dims for t in configured] == [tuple(t["dims"]) for t in document[kind]]
    groups = document.get("instance_group", [{"count": 1, "kind": "KIND_CPU"}])
    assert [(g.count, g.kind) for g in config.instance_group] == [
        (g["count"], "gpu" if g["kind"] == "KIND_GPU" else "cpu") for g in groups
    ]
    batching = document.get("dynamic_batching")
    assert (config.dynamic_batching is None) == (batching is None)
    if batching is not None:
        assert config.dynamic_batching.preferred_batch_size == tuple(batching["preferred_batch_size"])
        policy = batching.get("default_queue_policy", {})
        assert config.dynamic_batching.max_queue_size == policy.get("max_queue_size", 0)
    assert config.version_policy.to_dict() == document["version_policy"]
    assert config.parameters == {k: v["string_value"] for k, v in document.get("parameters", {}).items()}
    assert config.extra == ({"optimization": document["optimization"]} if "optimization" in document else {})


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(documents())
def test_valid_documents_are_accepted_with_their_values(document: dict[str, Any]) -> None:
    config = config_from_dict(document)
    expected_values(config, document)
    assert config_from_dict(yaml_spelling(document)) == config
    triton_json = json.loads(json.dumps(config.to_dict()))
    assert config_from_dict(triton_json) == config  # what GET /v2/models/{m}/config returns reads back


@FAST
@given(documents())
def test_pbtxt_and_yaml_forms_give_one_config(tmp_path: Path, document: dict[str, Any]) -> None:
    path = tmp_path / document["name"] / "config.pbtxt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(pbtxt(document))
    assert load_config_pbtxt(path) == config_from_dict(yaml_spelling(document))


def _tensor_field(kind: str, key: str, bad: Any) -> Callable[[dict[str, Any]], str | None]:
    def spoil(document: dict[str, Any]) -> str | None:
        if not document[kind]:
            return None
        document[kind][-1][key] = bad
        return f"{kind}[{len(document[kind]) - 1}].{key}"

    return spoil


def _set(path: tuple[str, ...], bad: Any) -> Callable[[dict[str, Any]], str | None]:
    def spoil(document: dict[str, Any]) -> str | None:
        target = document
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = bad
        return ".".join(path)

    return spoil


def _dims(document: dict[str, Any]) -> str | None:
    if not document["input"]:
        return None
    document["input"][0]["dims"] = [3, 0]
    return "input[0].dims[1]"


def _group_count(document: dict[str, Any]) -> str | None:
    document["instance_group"] = [{"count": 1}, {"count": 0, "kind": "KIND_CPU"}]
    return "instance_group[1].count"


SPOILERS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "negative max_batch_size": _set(("max_batch_size",), -1),
    "text max_batch_size": _set(("max_batch_size",), "eight"),
    "a zero dim": _dims,
    "unknown datatype": _tensor_field("output", "data_type", "TYPE_COMPLEX"),
    "unknown tensor key": _tensor_field("input", "dimz", [1]),
    "empty tensor name": _tensor_field("output", "name", ""),
    "zero count": _group_count,
    "model kind": _set(("instance_group",), [{"kind": "KIND_MODEL"}]),
    "zero preferred size": _set(("dynamic_batching", "preferred_batch_size"), [0]),
    "non-boolean ordering": _set(("dynamic_batching", "preserve_ordering"), "maybe"),
    "negative delay": _set(("dynamic_batching", "max_queue_delay_microseconds"), -5),
    "zero latency budget": _set(("dynamic_batching", "latency_budget_ms"), 0),
    "zero num_versions": _set(("version_policy",), {"latest": {"num_versions": 0}}),
    "no specific versions": _set(("version_policy",), {"specific": {}}),
    "unknown top-level key": _set(("max_batch_sise",), 8),
    "bad name": _set(("name",), "bad name"),
}
SPOILED_PATHS = {  # where the error is reported when it is not the spoiled key itself
    "model kind": "instance_group[0].kind",
    "zero preferred size": "dynamic_batching.preferred_batch_size[0]",
    "zero num_versions": "version_policy.num_versions",
    "no specific versions": "version_policy.versions",
}


@pytest.mark.parametrize("spoiler", SPOILERS)
@settings(max_examples=20, deadline=None)
@given(documents())
def test_one_wrong_field_is_refused_naming_its_path(spoiler: str, document: dict[str, Any]) -> None:
    document = json.loads(json.dumps(document))
    path = SPOILERS[spoiler](document)
    if path is None:
        return
    with pytest.raises(ValidationError) as caught:
        config_from_dict(document, "config.yaml")
    message = str(caught.value)
    assert message.startswith(f"config.yaml: {SPOILED_PATHS.get(spoiler, path)}: "), message
    assert "\n" not in message
