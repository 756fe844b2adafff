"""Field types that online and batch definitions share: how a YAML scalar becomes a value.

One spelling rule for every definition, where the old readers disagreed:

- integers may be written as digits in a string (``"30"``, as Triton's JSON and ``--set`` give
  them), never as booleans or fractions; numbers of seconds may be strings too, must be finite;
- text (descriptions, tag and variable values) is written as YAML gives it: ``1.0`` is ``"1.0"``,
  ``true`` is ``"true"`` (YAML's spelling, not Python's ``"True"``), an empty value is ``""``;
- names follow :func:`modelport.core.names.validate_name` and must be text (``name: 007`` is
  refused rather than silently becoming ``"7"``);
- a choice (:class:`Choice`) is read case-insensitively and stored as its lower-case value;
- a key written with nothing after it (null) means its default (:class:`Document`).

Failures are ``ValueError``s whose text is the reason only: :mod:`.base` prefixes the key path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from modelport.core.errors import ValidationError
from modelport.core.names import validate_name
from modelport.schema.base import Definition
from modelport.schema.choices import Choice


class Document(Definition):
    """A definition read from YAML: ``key:`` with no value (null) means the key's default, as
    Azure's CLI reads it, so ``model:`` left empty is no model rather than an error."""

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if value is not None}
        return data


def describe(value: object) -> str:
    """A value for a message: scalars verbatim, containers by what they are."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    return "a list" if isinstance(value, list) else type(value).__name__


# -- numbers -----------------------------------------------------------------------------------


def integer(value: object) -> int:
    """An integer; digits in a string count (``"30"``), a boolean or a fraction does not."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {describe(value)}")
    return value


def number(value: object) -> float:
    """A finite number; numeric text counts (``--set timeout=1.5`` arrives as text from a job's CLI)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {describe(value)}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {describe(value)}")
    return float(value)


def between(minimum: int, maximum: int | None = None) -> BeforeValidator:
    """An integer field's check, with bounds: ``instance_count: 0`` → ``0 is less than 1``
    (used beside ``Field(ge=..., le=...)``, which puts the bounds into the published schema)."""

    def check(value: object) -> int:
        value = integer(value)
        if value < minimum:
            raise ValueError(f"{value} is less than {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"{value} is more than {maximum}")
        return value

    return BeforeValidator(check)


def positive(value: object) -> float:
    seconds = number(value) if not isinstance(value, bool) else math.nan
    if not seconds > 0:
        raise ValueError(f"expected a positive number, got {describe(value)}")
    return seconds


def _not_negative(value: object) -> float:
    seconds = number(value) if not isinstance(value, bool) else math.nan
    if not seconds >= 0:
        raise ValueError(f"expected 0 or a positive number, got {describe(value)}")
    return seconds


Count = Annotated[int, Field(ge=1), between(1)]
NonNegative = Annotated[int, Field(ge=0), between(0)]
Seconds = Annotated[float, Field(gt=0), BeforeValidator(positive)]
Delay = Annotated[float, Field(ge=0), BeforeValidator(_not_negative)]


# -- text --------------------------------------------------------------------------------------


def scalar_text(value: object) -> str:
    """A YAML scalar as text: booleans as YAML writes them (``true``), numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(f"expected a string, number or boolean, got {describe(value)}")


def _string_keys(value: object) -> object:
    return {str(key): item for key, item in value.items()} if isinstance(value, Mapping) else value


def _name(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a name (text), got {describe(value)}")
    try:
        return validate_name(value)
    except ValidationError as exc:  # the key path is added by the caller
        raise ValueError(str(exc).removeprefix("name: ")) from None


def _name_key(value: object) -> str:
    return _name(str(value))


def _text_given(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {describe(value)}")
    return value


# Published schemas accept what is read, so that an editor does not flag ``version: 2`` or Azure's ``'True'``.
Text = Annotated[str, BeforeValidator(scalar_text), WithJsonSchema({"type": ["string", "number", "boolean"]})]
_TagValue = Annotated[
    str, BeforeValidator(scalar_text), WithJsonSchema({"type": ["string", "number", "boolean", "null"]})
]
Name = Annotated[str, BeforeValidator(_name)]
NameKey = Annotated[str, BeforeValidator(_name_key)]  # a name written as a mapping key (``traffic: {blue: 90}``)
NonEmpty = Annotated[str, AfterValidator(_text_given)]
Strings = Annotated[dict[str, _TagValue], BeforeValidator(_string_keys)]  # tags, environment variables


def _flag(value: object) -> bool:
    """Azure's YAML writes ``enabled: 'True'``; real booleans work too, nothing else is guessed at."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {describe(value)}")
    return value


Flag = Annotated[
    bool,
    BeforeValidator(_flag),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"enum": ["true", "false", "True", "False", "TRUE", "FALSE"]}]}),
]


def one_of(kind: type[Choice], refusal: Callable[[object], str] | None = None) -> BeforeValidator:
    """The check of a ``kind`` field: its member named by its value, any case; ``refusal`` words
    the error for anything else."""

    def check(value: object) -> Choice:
        if isinstance(value, str):
            for member in kind:
                if member.value == value.strip().lower():
                    return member
        if refusal is not None:
            raise ValueError(refusal(value))
        allowed = ", ".join(member.value for member in kind)
        if not isinstance(value, str):
            raise ValueError(f"expected one of {allowed}, got {describe(value)}")
        raise ValueError(f"{value!r} is not one of {allowed}")

    return BeforeValidator(check)


# -- files -------------------------------------------------------------------------------------


def _located(value: str, info: ValidationInfo) -> tuple[Path, bool]:
    """``value`` taken from the definition's folder (``base`` in the parse context, else the
    current folder), and whether the definition is a stored one whose paths are not checked again:
    a damaged snapshot shows up when a replica starts, not on every read."""
    context = info.context or {}
    return Path(context.get("base") or Path.cwd()) / _text_given(value), bool(context.get("stored"))


def _existing(value: str, info: ValidationInfo) -> str:
    path, stored = _located(value, info)
    if not (stored or path.exists()):
        raise ValueError(f"{path} does not exist")
    return str(path.resolve())


def _folder(value: str, info: ValidationInfo) -> str:
    path, stored = _located(value, info)
    if not (stored or path.is_dir()):
        raise ValueError(f"{path} is not a folder")
    return str(path.resolve())


ExistingPath = Annotated[str, AfterValidator(_existing)]  # stored absolute
Folder = Annotated[str, AfterValidator(_folder)]


def _reference(value: object) -> object:
    """A model or environment reference (``NAME``, ``NAME:V``, ``NAME@A``, ``azureml:`` allowed;
    checked against the registry when the deployment is stored) or an inline mapping."""
    if isinstance(value, str):
        return _text_given(value.strip())
    if isinstance(value, Mapping):
        return value
    raise ValueError(f"expected a reference or a mapping, got {describe(value)}")


REFERENCE = BeforeValidator(_reference)


def by_shape(inline: str) -> Discriminator:
    """Reads a reference-or-mapping field (tagged ``str`` and ``inline``) by the value's shape,
    so that an error names the key inside the mapping, not both readings."""
    return Discriminator(lambda value: "str" if isinstance(value, str) else inline)
