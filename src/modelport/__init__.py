"""modelport: from a trained model file to production and healthy there.

``from modelport import Workspace`` is the SDK; ``modelport`` is the CLI over it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from modelport.core.version import __version__

# Runtimes we load carry usage telemetry of their own: onnxruntime's builds for Linux resolve and
# call mobile.events.data.microsoft.com from a thread once a session runs (seen with strace from
# `modelport serve`), and MLflow reports API usage. A model server does not reach out on its own:
# both are off unless the environment says otherwise, set before either is imported anywhere in
# this process or its children.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

if TYPE_CHECKING:
    from modelport.workspace import Workspace


def __getattr__(name: str):  # noqa: ANN202 - lazy import keeps ``import modelport`` light
    if name == "Workspace":
        from modelport.workspace import Workspace

        return Workspace
    raise AttributeError(name)


__all__ = ["Workspace", "__version__"]
