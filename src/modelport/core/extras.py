"""Optional parts of modelport: the pip extra that brings the packages a feature needs.

The core install registers, serves and scores batches; packages that serve one feature alone
(SciPy, some 140 MB, for drift's statistics) are an extra, and that feature says so in one line
when they are missing rather than failing with an ImportError from deep inside.
"""

from __future__ import annotations

import importlib.util

from modelport.core.errors import MissingExtraError

EXTRAS = {"drift": ("scipy",)}
"""Extra name → the top-level modules it installs (as pyproject.toml's optional dependencies)."""


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require_extra(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` naming ``pip install 'modelport[extra]'`` when ``feature`` cannot run."""
    absent = missing(extra)
    if absent:
        raise MissingExtraError(f"{feature} needs {' and '.join(absent)}: pip install 'modelport[{extra}]'")
