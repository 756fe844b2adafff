"""``modelport package``: a registered model or an online deployment as a container build context,
and optionally the OCI image built from it.

One module per job: :mod:`.sources` decides what is packaged (model files, scoring code, the
environment, the server's settings), :mod:`.wheelhouse` gathers modelport and every dependency
as wheels, :mod:`.containerfile` writes the build recipe, :mod:`.context` lays the folder out
reproducibly and digests it, :mod:`.builders` drives docker, podman or buildah, and
:mod:`.entrypoint` is what the image runs. :func:`package` ties them together for the CLI and SDK.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``package`` and ``PackageResult`` load on use: the image's entrypoint imports this package
    too, and must start without the registry and its database code."""
    if name in ("package", "PackageResult"):
        from modelport.packaging import package as module

        return getattr(module, name)
    raise AttributeError(name)
