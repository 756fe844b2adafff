"""Python entry scripts: a ``score.py``, or any script defining top-level ``init`` and ``run``."""

from __future__ import annotations

import ast
from pathlib import Path

from modelport.runtime.flavor_info import FlavorInfo


def python_folder(folder: Path) -> FlavorInfo | None:
    """The folder's entry script: ``score.py`` (Azure ML's name) first, else the first that fits."""
    script: str | None
    if (folder / "score.py").is_file():
        script = "score.py"
    else:
        scripts = (p for p in sorted(folder.glob("*.py")) if not p.name.startswith("."))
        script = next((p.name for p in scripts if p.is_file() and _defines_init_and_run(p)), None)
    return _python_info(script) if script else None


def python_file(path: Path, head: bytes) -> FlavorInfo | None:
    """A single ``.py`` file is a model only when it is an entry script (its head says nothing)."""
    return _python_info(path.name) if path.suffix == ".py" and _defines_init_and_run(path) else None


def _python_info(script: str) -> FlavorInfo:
    return FlavorInfo("python", None, None, {"format": "python", "entry_script": script})


def _defines_init_and_run(path: Path) -> bool:
    """Whether a script defines top-level ``init`` and ``run``: parsed, never imported."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return False
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return {"init", "run"} <= defined
