"""``--set KEY.PATH=VALUE`` and definition files: one reader and one merger for online and batch
definitions, the CLI and the daemon's API alike.

Values are read as YAML, so ``--set instance_count=2`` is a number and ``--set traffic.blue=90``
too; a value that is not valid YAML (control characters, say — they arrive through the daemon's
API as well as from a shell) is refused with the item's key, never passed on as a parser error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelport.core.errors import ValidationError


def parse_override(item: str) -> tuple[list[str], Any]:
    """``("a.b.c=value")`` → ``(["a", "b", "c"], value)``; ValidationError naming the item's key."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ValidationError(f"--set: {item!r} is not KEY=VALUE")
    import yaml  # on use: the CLI modules that import this one are loaded for --help too

    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ValidationError(f"--set {key}: the value is not valid YAML ({reason})") from None
    return key.split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``--set a.b.c=value`` applied; a missing (or empty) mapping on
    the way is made, anything else on the way is refused. ``data`` itself is left alone."""
    result = _copy(data)
    for item in overrides:
        (*parents, leaf), value = parse_override(item)
        target = result
        for part in parents:
            if target.get(part) is None:
                target[part] = {}
            if not isinstance(target[part], dict):
                raise ValidationError(f"--set {item}: {part} is not a mapping")
            target = target[part]
        target[leaf] = value
    return result


def split_override(key: str, text: str) -> str:
    """``("traffic", "blue=90 green=10")`` → the ``--set`` item ``traffic={blue: 90, green: 10}``:
    how ``endpoint update --traffic``/``--mirror-traffic`` and the dashboard's traffic form write a
    split, so both are refused in the same words."""
    items = []
    for item in text.replace(",", " ").split():
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit():
            raise ValidationError(f"--{key.replace('_', '-')}: {item!r} is not DEPLOYMENT=PERCENT")
        items.append(f"{name}: {value}")
    return f"{key}={{{', '.join(items)}}}"


def _copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _copy(value) if isinstance(value, Mapping) else value for key, value in data.items()}


def read_definition(
    file: str | Path | None, overrides: Sequence[str] = (), name: str | None = None
) -> tuple[dict[str, Any], Path]:
    """The YAML mapping in ``file`` (empty when None) with ``--set`` applied and ``name`` (``-n``)
    set, and the folder its relative paths start from (the file's, else the current one)."""
    data: dict[str, Any] = {}
    base = Path.cwd()
    if file is not None:
        import yaml

        path = Path(file)
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ValidationError(f"--file: {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"--file: cannot read {path} ({exc})") from None
        except yaml.YAMLError as exc:
            raise ValidationError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValidationError(f"{path}: expected a YAML mapping at the top, got {type(loaded).__name__}")
        data = loaded or {}
        base = path.absolute().parent
    data = apply_overrides(data, overrides)
    if name is not None:
        data["name"] = name
    return data, base
