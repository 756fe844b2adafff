"""modelport: from a trained model file to production and healthy there.

``from modelport import Workspace`` is the SDK; ``modelport`` is the CLI over it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from modelport.workspace import Workspace


def __getattr__(name: str):  # noqa: ANN202 - lazy import keeps ``import modelport`` light
    if name == "Workspace":
        from modelport.workspace import Workspace

        return Workspace
    raise AttributeError(name)


__all__ = ["Workspace", "__version__"]
