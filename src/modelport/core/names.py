"""Names and references: what a valid asset name is and how ``NAME[:VERSION|@ALIAS]`` parses.

Names follow Azure ML's rule (letters, digits, ``-``, ``_``, ``.``; at most 255 characters;
starting with a letter or digit) so that projects move between the two without renaming, and
so that a name is always safe as a single path segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelport.core.errors import ValidationError

MAX_NAME_LENGTH = 255
LATEST = "latest"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")


def validate_name(name: str, field: str = "name") -> str:
    """Return ``name`` unchanged, or raise naming ``field`` and what is wrong with it."""
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{field}: must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(f"{field}: {len(name)} characters, at most {MAX_NAME_LENGTH} allowed")
    if ".." in name or not _NAME.fullmatch(name):
        raise ValidationError(
            f"{field}: {name!r} is not valid; use letters, digits, '-', '_' and '.', starting with a letter or digit"
        )
    return name


def validate_alias(alias: str, field: str = "alias") -> str:
    """Aliases start with a letter so that they never look like a version number."""
    if not isinstance(alias, str) or not alias:
        raise ValidationError(f"{field}: must not be empty")
    if len(alias) > 64 or not _ALIAS.fullmatch(alias):
        raise ValidationError(
            f"{field}: {alias!r} is not valid; use at most 64 letters, digits, '-' and '_', starting with a letter"
        )
    return alias


def parse_version(text: str | int, field: str = "version") -> int:
    """Versions are positive integers, given as int or decimal text."""
    if isinstance(text, bool):
        raise ValidationError(f"{field}: {text!r} is not a positive integer")
    if isinstance(text, int):
        value = text
    elif isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 9:
        value = int(text)
    else:
        raise ValidationError(f"{field}: {text!r} is not a positive integer")
    if value < 1:
        raise ValidationError(f"{field}: {value} is not a positive integer")
    return value


@dataclass(frozen=True)
class Ref:
    """A parsed reference: exactly one of ``version`` and ``alias`` may be set.

    Neither set means "latest"; ``alias == "latest"`` means the same.
    """

    name: str
    version: int | None = None
    alias: str | None = None

    @property
    def is_latest(self) -> bool:
        return self.version is None and self.alias in (None, LATEST)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: str, field: str = "reference") -> Ref:
    """Parse ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS`` (an ``azureml:`` prefix is tolerated)."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"{field}: must not be empty")
    text = text.strip()
    if text.startswith("azureml:"):
        text = text[len("azureml:") :]
    if "@" in text:
        name, _, alias = text.partition("@")
        validate_name(name, field)
        if alias == LATEST:
            return Ref(name)
        return Ref(name, alias=validate_alias(alias, f"{field} alias"))
    if ":" in text:
        name, _, version = text.partition(":")
        validate_name(name, field)
        if version == LATEST:
            return Ref(name)
        return Ref(name, version=parse_version(version, f"{field} version"))
    return Ref(validate_name(text, field))
