"""Names and references."""

import pytest

from modelport.core.errors import ValidationError
from modelport.core.names import Ref, parse_ref, parse_version, validate_name


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("fraud", Ref("fraud")),
        ("fraud:3", Ref("fraud", version=3)),
        ("fraud@prod", Ref("fraud", alias="prod")),
        ("fraud@latest", Ref("fraud")),
        ("fraud:latest", Ref("fraud")),
        ("azureml:fraud:2", Ref("fraud", version=2)),
        ("my.model-v2_x", Ref("my.model-v2_x")),
    ],
)
def test_parse_ref(text: str, ref: Ref) -> None:
    assert parse_ref(text) == ref
    assert parse_ref(str(ref)) == ref


@pytest.mark.parametrize("text", ["", " ", "a/b", "../x", "a b", "a:0", "a:-1", "a:1.5", "a@", "a@1x", "-a", "x" * 256])
def test_bad_refs(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_ref(text)


def test_name_rules_name_the_field() -> None:
    with pytest.raises(ValidationError, match="^name: 'a/b' is not valid"):
        validate_name("a/b")
    assert validate_name("x" * 255)


def test_versions() -> None:
    assert parse_version("12") == 12
    for bad in ("0", "-3", "1e3", "", "١", True, "9999999999"):
        with pytest.raises(ValidationError):
            parse_version(bad)  # type: ignore[arg-type]
