"""What every definition shares: strict keys with suggestions, Azure's cloud-only keys, one-line errors.

Each definition users write (endpoint, deployment, batch deployment, model config...) or the
system stores (a job's spec) is a frozen pydantic model deriving from :class:`Definition`, and
is read by :func:`parse`, so every file format refuses bad input in the same words:

- An unknown key is an error naming its path, with the closest known key when one is close
  (``settings.mini_batch_sise: unknown key; did you mean 'mini_batch_size'?``), as Azure's SDK
  schemas (``unknown=RAISE``) refuse it.
- A key in a class's ``cloud_keys`` (``instance_type``, ``identity``...) only means something in
  Azure: it is accepted and reported in :attr:`Parsed.ignored` by its path, so the CLI can say once
  what was dropped. ``$schema`` at the top is a reference for editors, accepted silently.
- A key in a class's ``kept_keys`` belongs to the file format but modelport does not act on it
  (Triton's ``optimization``, ``model_warmup``...): it reaches the class as written, unchecked, and
  the class keeps it (the model config renders it back in Triton's JSON).
- Any other failure is pydantic's, reworded to one line: ``request_settings.request_timeout_ms:
  input should be greater than or equal to 1``. The path is the key path in the document as the
  user wrote it (pydantic's union-member tags are left out).

Keys are checked before pydantic runs, by walking the document along the model classes: that
walk knows which class a mapping is read as, so it can suggest that class's keys and collect the
cloud keys by path — neither of which pydantic's own ``extra="forbid"`` can do.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict

from modelport.core.errors import ValidationError

SCHEMA_KEY = "$schema"  # the file's JSON schema: tells editors what the file is, means nothing here

D = TypeVar("D", bound="Definition")


def _advertise_cloud_keys(schema: dict[str, Any], cls: type[Any]) -> None:
    """Published JSON Schemas list the cloud-only and kept keys too, so an editor accepts an Azure
    file or a Triton config."""
    properties = schema.setdefault("properties", {})
    for key in sorted(getattr(cls, "cloud_keys", ())):
        properties.setdefault(key, {"description": "Accepted and ignored: only meaningful in Azure ML."})
    for key in sorted(getattr(cls, "kept_keys", ())):
        properties.setdefault(key, {"description": "Accepted and kept as written; modelport does not act on it."})


class Definition(BaseModel):
    """A definition: frozen, no unknown keys, numbers given as YAML or JSON spell them.

    ``coerce_numbers_to_str``: a ``description: 1.0`` or a tag ``version: 2`` is text, as YAML
    users expect. Pydantic's lax mode reads ``"30"`` as the number 30 everywhere (Triton's JSON
    writes int64 fields as strings), and ``"true"``/``"True"`` as booleans (Azure writes ``'True'``).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,
        json_schema_extra=_advertise_cloud_keys,
    )

    cloud_keys: ClassVar[frozenset[str]] = frozenset()
    kept_keys: ClassVar[frozenset[str]] = frozenset()
    # keys a sibling definition has and this one does not support yet, with the reason: a user who
    # copies them over gets that reason instead of a "did you mean" pointing elsewhere
    unsupported_keys: ClassVar[Mapping[str, str]] = {}


@dataclass(frozen=True)
class Parsed(Generic[D]):
    """A checked definition and the paths of the cloud-only keys it contained."""

    value: D
    ignored: tuple[str, ...] = ()


def parse(cls: type[D], data: object, *, context: Mapping[str, Any] | None = None) -> Parsed[D]:
    """``data`` (a YAML/JSON document) read as ``cls``; one-line :class:`ValidationError` otherwise.

    ``context`` reaches field validators (``info.context``), e.g. the folder relative paths start
    from. The returned value never shares mutable state with ``data``.
    """
    ignored: list[str] = []
    cleaned = _check_keys(cls, data, "", ignored, top=True)
    try:
        value = cls.model_validate(cleaned, context=dict(context or {}))
    except pydantic.ValidationError as exc:
        raise ValidationError(describe_error(exc, cleaned)) from None
    return Parsed(value, tuple(ignored))


def describe_error(exc: pydantic.ValidationError, data: object) -> str:
    """Pydantic's first error as one line: the key path in ``data``, then the reason."""
    error = exc.errors(include_url=False)[0]
    path = _document_path(error["loc"], data)
    reason = _reason(error)
    return f"{path}: {reason}" if path else reason


def suggestion(key: str, known: Sequence[str]) -> str:
    """``; did you mean 'x'?`` for the closest of ``known``, else the list of allowed keys."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (allowed: {', '.join(sorted(known))})"


# -- the key walk ------------------------------------------------------------------------------


def _check_keys(cls: type[Definition], data: object, prefix: str, ignored: list[str], *, top: bool = False) -> object:
    """``data`` without cloud keys (recorded in ``ignored``); unknown keys refused with a suggestion.
    Anything that is not a mapping is left for pydantic to refuse in its own words."""
    if not isinstance(data, Mapping):
        return data
    fields = cls.model_fields
    known = [name for name, info in fields.items()] + [
        info.alias for info in fields.values() if info.alias and info.alias not in fields
    ]
    kept = sorted(cls.kept_keys)
    result: dict[Any, Any] = {}
    for key, value in data.items():
        if top and key == SCHEMA_KEY:
            continue
        if key in cls.cloud_keys:
            ignored.append(prefix + str(key))
            continue
        if key in cls.kept_keys and key not in fields:
            result[key] = value
            continue
        if key in cls.unsupported_keys:
            raise ValidationError(f"{prefix}{key}: {cls.unsupported_keys[key]}")
        if key not in known:
            path = prefix + str(key)
            raise ValidationError(f"{path}: unknown key{suggestion(str(key), known + kept + sorted(cls.cloud_keys))}")
        info = fields.get(key) or next(f for f in fields.values() if f.alias == key)
        result[key] = _check_nested(info.annotation, value, f"{prefix}{key}", ignored)
    return result


def _check_nested(annotation: Any, value: object, path: str, ignored: list[str]) -> object:
    """Follow ``annotation`` into ``value``: a definition, a mapping or list of them, or a union."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _check_nested(args[0], value, path, ignored)
    if isinstance(annotation, type) and issubclass(annotation, Definition):
        return _check_keys(annotation, value, path + ".", ignored)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in args if _mentions_definition(arg)]
        if len(members) == 1 and isinstance(value, Mapping):
            return _check_nested(members[0], value, path, ignored)
        return value
    if origin in (dict, Mapping) and isinstance(value, Mapping) and len(args) == 2 and _mentions_definition(args[1]):
        return {key: _check_nested(args[1], item, f"{path}.{key}", ignored) for key, item in value.items()}
    if origin in (list, tuple, Sequence) and isinstance(value, list) and args and _mentions_definition(args[0]):
        return [_check_nested(args[0], item, f"{path}[{index}]", ignored) for index, item in enumerate(value)]
    return value


def _mentions_definition(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, Definition):
        return True
    return any(_mentions_definition(arg) for arg in typing.get_args(annotation))


# -- error wording ---------------------------------------------------------------------------


def _document_path(loc: tuple[int | str, ...], data: object) -> str:
    """``loc`` as the user's key path: steps that are not keys of the document (pydantic's union
    member tags such as ``str`` or ``InlineModel``) are skipped."""
    path = ""
    current = data
    for step in loc:
        if isinstance(current, Mapping) and step in current:
            path = f"{path}.{step}" if path else str(step)
            current = current[step]
        elif isinstance(current, list) and isinstance(step, int) and 0 <= step < len(current):
            path = f"{path}[{step}]"
            current = current[step]
        elif isinstance(current, Mapping) and isinstance(step, str) and not _is_member_tag(step):
            path = f"{path}.{step}" if path else step  # a required key that is missing
            current = None
    return path


def _is_member_tag(step: str) -> bool:
    return step[:1].isupper() or step in {"str", "int", "float", "bool", "list", "dict", "none"} or "[" in step


def _kind(value: object) -> str:
    return {list: "a list", str: "text", bool: "a boolean", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _reason(error: Mapping[str, Any]) -> str:
    if error["type"] == "missing":
        return "required"
    if error["type"] in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {_kind(error['input'])}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message
