"""A conda environment file (``conda.yml``) as a definition: the keys and shapes it may have.

What the entries mean (which pin a Python version, which are pip requirements, which only conda
can install) is ``modelport.envs.spec``'s business; this is the document's shape, so a typo
such as ``dependancies`` is refused with the key it meant instead of building nothing, and
editors can validate the file against the published schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Discriminator, StrictStr, Tag

from modelport.schema.base import Definition


class PipSection(Definition):
    """``- pip: [...]``: requirement lines for pip, in order."""

    pip: list[StrictStr]


def _entry_kind(value: Any) -> str:
    return "PipSection" if isinstance(value, Mapping) else "Package"


def _package(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a package string or a 'pip:' list")
    return value


Package = Annotated[StrictStr, AfterValidator(_package), Tag("Package")]
Dependency = Annotated[Package | Annotated[PipSection, Tag("PipSection")], Discriminator(_entry_kind)]


class CondaEnvironment(Definition):
    """A conda environment file. ``name``, ``channels`` and ``prefix`` matter to conda only and
    are checked for shape; ``dependencies`` lists conda match specs and ``pip:`` sections."""

    name: StrictStr | None = None
    channels: list[StrictStr] = []
    dependencies: list[Dependency] = []
    prefix: Any = None
