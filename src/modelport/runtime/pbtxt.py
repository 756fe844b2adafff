"""Triton's ``config.pbtxt``: protobuf text read against Triton's own model config schema.

protobuf's ``text_format`` parses the text into ``inference.ModelConfig``
(:mod:`modelport.schema.triton`), so a file means to modelport what it means to Triton: the
syntax, a field written twice, an unknown field or enum value are refused there, and the error
is reworded to one line with the file and the line. :func:`parse_pbtxt` then gives the fields
the file wrote as the mapping a YAML config gives (Triton's field names, maps as mappings, enum
values by name, numbers as numbers), which :mod:`modelport.schema.model_config` reads, so both
formats are checked by one set of rules.
"""

from __future__ import annotations

import re
import struct
from collections.abc import MutableSequence
from typing import Any

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from modelport.core.errors import ValidationError
from modelport.schema.base import suggestion
from modelport.schema.triton import POOL, ModelConfigMessage

_UNKNOWN_FIELD = re.compile(r'Message type "(?P<message>[\w.]+)" has no field named "(?P<field>[^"]+)"')
_REPEATED = re.compile(r'Message type "[\w.]+" should not have multiple "(?P<field>[^"]+)" fields')
_FIELD_NAME = re.compile(r"([A-Za-z_]\w*)\s*:")
_STRUCTURE = re.compile(r'Expected (identifier|"[{}<>\[\],:;]")')  # not about a value: no field to name


def parse_pbtxt(text: str, source: str = "config.pbtxt") -> dict[str, Any]:
    """The fields ``text`` writes, as a mapping; ``source`` names the text in errors."""
    message = ModelConfigMessage()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise ValidationError(f"{source}: {_reason(exc, text)}") from None
    return _fields(message)


def _fields(message: Message) -> dict[str, Any]:
    return {field.name: _value(field, value) for field, value in message.ListFields()}


def _value(field: FieldDescriptor, value: Any) -> Any:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        item_field = entry.fields_by_name["value"]
        return {key: _single(item_field, item) for key, item in value.items()}
    if isinstance(value, MutableSequence):  # a repeated field (protobuf's containers are sequences)
        return [_single(field, item) for item in value]
    return _single(field, value)


def _single(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None:
        return _fields(value)
    if field.enum_type is not None:
        named = field.enum_type.values_by_number.get(value)
        return named.name if named is not None else value
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return _shortest_float(value)
    return value


def _shortest_float(value: float) -> float:
    """A 32-bit float field's value as written (``0.1``, not ``0.10000000149011612``)."""
    for digits in range(6, 10):
        rounded = float(f"{value:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", rounded))[0] == value:
            return rounded
    return value


def _reason(exc: text_format.ParseError, text: str) -> str:
    """protobuf's message as ``line N column M: field: reason``: an unknown field gets the closest
    known one, a bad value the field it is given to (the last ``name:`` before it on its line)."""
    line, column = exc.GetLine() or 0, exc.GetColumn() or 0
    written = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
    message = re.sub(r"^\d+:\d+ : ", "", str(exc)).removeprefix(f"'{written}': ").rstrip(".")
    unknown = _UNKNOWN_FIELD.fullmatch(message)
    if unknown is not None:
        known = [field.name for field in POOL.FindMessageTypeByName(unknown["message"]).fields]
        return f"line {line}: {unknown['field']}: unknown field{suggestion(unknown['field'], known)}"
    repeated = _REPEATED.fullmatch(message)
    if repeated is not None:
        return f"line {line}: {repeated['field']}: given more than once; expected a single value"
    names = [] if _STRUCTURE.match(message) else _FIELD_NAME.findall(written[: max(column - 1, 0)])
    field = f"{names[-1]}: " if names else ""
    return f"line {line} column {column}: {field}{message[:1].lower()}{message[1:]}"


def render_pbtxt(config: dict[str, Any]) -> str:
    """Triton's JSON model config (``ModelConfig.to_dict``) as the ``config.pbtxt`` Triton reads."""
    from google.protobuf import json_format

    message = ModelConfigMessage()
    json_format.ParseDict(config, message)
    return text_format.MessageToString(message)
