"""modelport.kube's pure parts: Kubernetes names, the profiler's recommendation, YAML output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelport.core.errors import ValidationError
from modelport.kube.inputs import Recommendation, read_profile
from modelport.kube.names import LABEL_LIMIT, NAME_LIMIT, label_value, object_name
from modelport.kube.writer import dump
from modelport.schema.base import parse
from modelport.schema.online import DeploymentSpec

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}", fullmatch=True).filter(lambda name: ".." not in name)


def test_names_that_fit_are_kept_and_others_are_told_apart() -> None:
    assert object_name("web", "blue") == "web-blue"
    assert object_name("Web", "blue") != object_name("web", "blue")
    assert object_name("web", "blue_1") != object_name("web", "blue-1")
    assert object_name("7up", "a").startswith("m-7up-a")
    assert len(object_name("x" * 200, "blue")) == NAME_LIMIT
    assert label_value("Blue_1.a") == "Blue_1.a"


@given(NAMES, NAMES)
def test_every_modelport_name_makes_a_valid_object_name_and_label(endpoint: str, deployment: str) -> None:
    name = object_name(endpoint, deployment)
    assert DNS_1035.match(name) and len(name) <= NAME_LIMIT
    value = label_value(deployment)
    assert LABEL.match(value) and len(value) <= LABEL_LIMIT


def _spec(**fields: object) -> DeploymentSpec:
    data = {"name": "blue", "endpoint_name": "web", "model": "m:1", **fields}
    return parse(DeploymentSpec, data, context={"base": Path("/"), "stored": True}).value


def test_a_recommendation_fills_only_what_the_deployment_leaves_out() -> None:
    filled = Recommendation(cpu=0.25, memory_gb=1.5).fill(_spec(resources={"requests": {"cpu": 2}}))
    assert filled.resources.requests == {"cpu": "2", "memory": "1536Mi"}
    assert filled.resources.limits == {"memory": "1536Mi"}
    assert Recommendation(cpu=0.25, memory_gb=None).fill(_spec()).resources.requests == {"cpu": "250m"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "is not a JSON document"),
        ("[1]", "is not a profile"),
        ('{"recommendedMemoryInGB": true}', "recommendedMemoryInGB: expected a positive number"),
        ('{"recommendedCpu": -1}', "recommendedCpu: expected a positive number"),
    ],
)
def test_a_bad_profile_is_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "profile.json"
    path.write_text(text)
    with pytest.raises(ValidationError, match=message) as refused:
        read_profile(path)
    assert "\n" not in str(refused.value)
    with pytest.raises(ValidationError, match="does not exist"):
        read_profile(tmp_path / "missing.json")


def test_yaml_is_sorted_and_keeps_text_readable() -> None:
    text = dump({"b": 1, "a": {"router.yml": "x: 1\ny: 2\n", "n": "on"}})
    assert text == "a:\n  n: 'on'\n  router.yml: |\n    x: 1\n    y: 2\nb: 1\n"
