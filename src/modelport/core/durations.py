"""Durations typed on the command line: ``500ms``, ``10s``, ``30m``/``30min``, ``24h``, ``7d``, or
plain seconds (``2.5``). One reader, so every option spells them the same way."""

from __future__ import annotations

import re

from modelport.core.errors import ValidationError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min|h|d)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str, option: str, examples: str = "10s, 500ms, 30m, 24h or 2.5") -> float:
    """Seconds, more than zero; otherwise a one-line error naming ``option``."""
    match = _DURATION.match(text)
    if not match:
        raise ValidationError(f"{option}: {text!r} is not a duration like {examples}")
    if float(match.group(1)) <= 0:
        raise ValidationError(f"{option}: {text!r} is not a positive duration like {examples}")
    return float(match.group(1)) * _SECONDS[match.group(2)]
