"""The one reader of ``--set KEY.PATH=VALUE`` items, shared by online and batch definitions.

Values are read as YAML, so ``--set instance_count=2`` is a number and ``--set traffic.blue=90``
too; a value that is not valid YAML (control characters, say — they arrive through the daemon's
API as well as from a shell) is refused with the item's key, never passed on as a parser error.
"""

from __future__ import annotations

from typing import Any

import yaml

from modelport.core.errors import ValidationError


def parse_override(item: str) -> tuple[list[str], Any]:
    """``("a.b.c=value")`` → ``(["a", "b", "c"], value)``; ValidationError naming the item's key."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ValidationError(f"--set: {item!r} is not KEY=VALUE")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ValidationError(f"--set {key}: the value is not valid YAML ({reason})") from None
    return key.split("."), value
