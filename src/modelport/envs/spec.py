"""Environment specifications: what a ``conda.yml`` or ``requirements.txt`` asks us to build.

An environment is built as a plain virtualenv, so a spec boils down to a Python version and a
list of pip requirement lines. Conda files are accepted because Azure ML projects carry them;
their pip packages are honoured, while conda-only packages (``numpy=1.26``, ``cudatoolkit``...)
cannot be installed by pip and are only reported so that the CLI can warn about them.

Decisions, so that every file either means one thing or is rejected with a one-line error:

* Requirement lines are kept in order with comments, blank lines and line continuations
  resolved and whitespace collapsed, so reformatting a file does not change its hash.
* pip option lines (``--extra-index-url``, ``--find-links``, ``--no-index``, ``-e``...) are
  kept as-is: they decide what gets installed, so they belong in the hash. ``-r``/``-c``
  (and their long forms) are rejected: the referenced file is not part of the spec, so it could
  change the built environment without changing its hash. Local paths must be absolute,
  because builds do not run in the directory the file came from.
* A conda ``python`` entry pinned to a version (``python=3.10``, ``python==3.10.*``,
  ``python=3.10.4=h12_0``, ``python 3.10``) gives ``X.Y``. A bare ``python`` or a range
  (``python>=3.9``, ``python=3.9|3.10``) is unpinned (``None``: the builder uses the
  interpreter modelport runs on), because picking a version out of a range would depend on
  what happens to be installed. A pinned major version alone (``python=3``) is rejected.
* Top-level keys other than ``name``, ``channels``, ``dependencies`` and ``prefix`` (e.g.
  ``variables``) are rejected rather than ignored, with the closest known key. The document's
  shape is :class:`modelport.schema.environment.CondaEnvironment`: ``name`` and ``channels``
  are checked for shape only, since the registry names environments and channels matter only
  to conda.
* ``pip`` entries (with or without a version) are not reported: the builder brings its own
  installer, so a pinned pip version is not honoured.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from modelport.core.errors import ValidationError
from modelport.schema.base import parse, suggestion
from modelport.schema.environment import CondaEnvironment, PipSection

_CONDA_SUFFIXES = (".yml", ".yaml")
_CONDA_KEYS = tuple(CondaEnvironment.model_fields)
_FILE_OPTIONS = ("-r", "-c", "--requirement", "--constraint")
_PYTHON_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")
_COMMENT = re.compile(r"(^|\s+)#.*$")
# A conda match spec: optional "channel::" prefix, the package name, then the version part.
_MATCH_SPEC = re.compile(r"(?:[^:\s]+::)?([A-Za-z0-9_.\-]+)(.*)", re.DOTALL)
_RANGE_MARKS = ("<", ">", "!", "~", ",", "|")


@dataclass(frozen=True)
class EnvSpec:
    """A parsed environment file.

    ``content_hash`` covers only what determines the built virtualenv (the Python version and
    the pip requirements), so a conda file and a requirements file asking for the same
    packages share one cached build.
    """

    kind: Literal["conda", "pip"]
    python: str | None
    pip_requirements: tuple[str, ...]
    conda_only: tuple[str, ...] = ()

    @property
    def content_hash(self) -> str:
        canonical = json.dumps(
            {"pip_requirements": list(self.pip_requirements), "python": self.python},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_spec(text: str, filename: str, python: str | None = None) -> EnvSpec:
    """Parse an environment file's ``text``; ``filename`` decides the format and names errors.

    ``.yml``/``.yaml`` files are conda environments, anything else is a pip requirements
    file. An explicit ``python`` ("X.Y" or "X.Y.Z") overrides the version the file asks for.
    """
    override = normalize_python(python, "python") if python is not None else None
    text = text.removeprefix("\ufeff")  # a BOM must not change what a file means, or its hash
    if filename.lower().endswith(_CONDA_SUFFIXES):
        spec = _parse_conda(text, filename)
    else:
        spec = EnvSpec("pip", None, _parse_requirements(text, filename))
    if override is not None:
        return replace(spec, python=override)
    return spec


def parse_spec_file(path: Path, python: str | None = None) -> EnvSpec:
    """Read and parse an environment file; errors name ``path`` as given."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise ValidationError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_spec(text, str(path), python)


def normalize_python(value: Any, where: str) -> str:
    """Return ``value`` as "X.Y" (a patch level is dropped: venvs are built per minor version)."""
    match = _PYTHON_VERSION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValidationError(f"{where}: {value!r} is not a Python version like 3.10")
    return f"{int(match[1])}.{int(match[2])}"


def _parse_requirements(text: str, filename: str) -> tuple[str, ...]:
    lines = (_requirement(line, f"{filename}: line {n}") for n, line in _logical_lines(text))
    return tuple(line for line in lines if line)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    r"""Drop comments and join ``\``-continued lines, numbering each by its first line."""
    joined: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 1
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        joined.append((start, "".join(pending) + line))
        pending = []
    if pending:
        joined.append((start, "".join(pending)))
    return joined


def _requirement(line: str, where: str) -> str:
    """Normalize one requirement line ("" for nothing), rejecting references to other files."""
    line = " ".join(line.split())
    if line.startswith(_FILE_OPTIONS):
        raise ValidationError(
            f"{where}: {line!r} refers to another file, which is not part of the environment; "
            "list its requirements here instead"
        )
    return line


def _parse_conda(text: str, filename: str) -> EnvSpec:
    document = _read_conda(_load_yaml(text, filename), filename)
    python: str | None = None
    seen_python = False
    pip: list[str] = []
    conda_only: list[str] = []
    for index, entry in enumerate(document.dependencies):
        where = f"{filename}: dependencies[{index}]"
        if isinstance(entry, PipSection):
            requirements = (_requirement(line, f"{where}.pip[{i}]") for i, line in enumerate(entry.pip))
            pip.extend(line for line in requirements if line)
            continue
        name, rest = _split_match_spec(entry, where)
        if name == "python":
            if seen_python:
                raise ValidationError(f"{where}: python is given more than once")
            seen_python = True
            python = _conda_python(entry, rest, where)
        elif name != "pip":
            conda_only.append(entry.strip())
    return EnvSpec("conda", python, tuple(pip), tuple(conda_only))


def _read_conda(document: Any, filename: str) -> CondaEnvironment:
    """The document's shape checked; an unknown key (a typo such as ``dependancies`` would build
    nothing) is named with the closest known one."""
    if not isinstance(document, dict):
        raise ValidationError(f"{filename}: expected a mapping with a 'dependencies' list")
    for key in document:
        if key not in _CONDA_KEYS:
            raise ValidationError(f"{filename}: unknown key {key!r}{suggestion(str(key), _CONDA_KEYS)}")
    try:
        return parse(CondaEnvironment, document).value
    except ValidationError as exc:
        raise ValidationError(f"{filename}: {exc}") from None


def _load_yaml(text: str, filename: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidationError(f"{filename}: invalid YAML{at}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"{filename}: invalid YAML: {exc}") from None


def _split_match_spec(entry: str, where: str) -> tuple[str, str]:
    match = _MATCH_SPEC.fullmatch(entry.strip())
    if match is None:
        raise ValidationError(f"{where}: {entry!r} is not a conda package spec")
    return match[1].lower(), match[2].strip()


def _conda_python(entry: str, version: str, where: str) -> str | None:
    """The "X.Y" a conda python entry pins; ``None`` for a bare one or a range."""
    if not version or any(mark in version for mark in _RANGE_MARKS):
        return None
    token = re.split(r"[=\s]", version.lstrip("="), maxsplit=1)[0]
    token = token.removesuffix("*").removesuffix(".")
    try:
        return normalize_python(token, where)
    except ValidationError:
        raise ValidationError(f"{where}: {entry.strip()!r} does not pin a Python version like 3.10") from None
