"""The one reader of request bodies that must be a JSON object (the daemon's management API, its
batch job trigger, the no-code ``/score``): one refusal each for "not JSON" and "not an object",
naming the body, so every front end words them the same way."""

from __future__ import annotations

from typing import Any

import orjson

from modelport.core.errors import ValidationError


def json_object(raw: bytes, field: str, example: str) -> dict[str, Any]:
    """``raw`` decoded as a JSON object; ValidationError naming ``field``, showing ``example``."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"{field}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{field}: expected a JSON object such as {example}")
    return data
