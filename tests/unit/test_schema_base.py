"""The shared rules of every definition: key paths, suggestions, cloud keys, one-line errors."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from modelport.core.errors import ValidationError
from modelport.schema.base import Definition, parse


class Probe(Definition):
    period: Annotated[float, Field(gt=0)] = 10
    failure_threshold: Annotated[int, Field(ge=1)] = 30


class Inline(Definition):
    cloud_keys = frozenset({"datastore"})
    path: str


class Deployment(Definition):
    cloud_keys = frozenset({"instance_type"})
    name: str
    model: str | Inline | None = None
    probe: Probe = Probe()
    probes: list[Probe] = []
    by_name: dict[str, Probe] = {}


def test_cloud_keys_are_reported_by_path_and_schema_key_is_silent() -> None:
    parsed = parse(
        Deployment,
        {
            "$schema": "https://example/x.json",
            "name": "a",
            "instance_type": "Standard_DS3_v2",
            "model": {"path": "m", "datastore": "d"},
            "by_name": {"x": {"period": "3"}},
        },
    )
    assert parsed.ignored == ("instance_type", "model.datastore")
    assert parsed.value.model == Inline(path="m")
    assert parsed.value.by_name["x"].period == 3.0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "a", "probe": {"perod": 1}}, "probe.perod: unknown key; did you mean 'period'?"),
        ({"name": "a", "zzz": 1}, "zzz: unknown key (allowed: by_name, instance_type, model, name, probe, probes)"),
        ({"name": "a", "probe": {"period": 0}}, "probe.period: input should be greater than 0"),
        ({"probe": {}}, "name: required"),
        ({"name": "a", "model": {"pth": "m"}}, "model.pth: unknown key; did you mean 'path'?"),
        ({"name": "a", "probes": [{}, {"failure_threshold": "x"}]}, "probes[1].failure_threshold: input should be"),
        ({"name": "a", "by_name": {"x": {"period": -1}}}, "by_name.x.period: input should be greater than 0"),
        ({"name": "a", "probe": [1]}, "probe: expected a mapping, got a list"),
        ([], "expected a mapping, got a list"),
    ],
)
def test_errors_name_the_path_in_one_line(document: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(Deployment, document)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_published_schema_lists_cloud_keys_and_forbids_others() -> None:
    schema = Deployment.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "instance_type" in schema["properties"]
    assert "datastore" in schema["$defs"]["Inline"]["properties"]
