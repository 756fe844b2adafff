"""An opened workspace as the layers below the SDK see it: its settings, metadata database,
artifact store and the two registries, and nothing that sits above the registry.

The SDK's :class:`modelport.workspace.Workspace` is one of these with the upper layers' hooks
wired in (the endpoint catalog's usage check); the CLI, the daemon and the SDK open it and hand
it down, so serving, batch and control take a ``WorkspaceStores`` and never import the SDK. A
process that only reads and scores (a batch job's runner) opens one directly.

Opening is also when the workspace is kept private and clean: its folder is made (or tightened
to) 0700, so a workspace made by an older version is closed to other users by that one
``chmod``, and the temporaries of writers that died are swept from the staging folders (one
listing each).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from modelport.core.errors import ModelportError
from modelport.core.files import DIR_MODE, private_dir, sweep, tighten
from modelport.core.settings import WorkspaceSettings
from modelport.registry.environments import EnvironmentRegistry
from modelport.registry.models import ModelRegistry
from modelport.store.artifacts import ArtifactStore
from modelport.store.db import Database

_Stores = TypeVar("_Stores", bound="WorkspaceStores")


class WorkspaceStores:
    """Metadata database + artifact store + local folder, with ``models`` and ``environments``."""

    def __init__(self, settings: WorkspaceSettings) -> None:
        self.settings = settings
        try:
            private_dir(settings.root)
            tighten(settings.root, DIR_MODE)
        except OSError as exc:
            raise ModelportError(f"workspace: cannot create {settings.root} ({exc.strerror})") from None
        try:
            self.db = Database(settings.db_url, settings.root)
        except OperationalError as exc:
            where = make_url(settings.db_url).render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise ModelportError(f"database {where}: {reason}") from None
        self.artifacts = ArtifactStore(settings.artifact_root)
        self.models = ModelRegistry(self.db, self.artifacts, settings.cache_dir, settings.tmp_dir, settings.root)
        self.environments = EnvironmentRegistry(self.db, self.artifacts, settings.envs_dir)
        self.sweep()

    def sweep(self) -> None:
        """Remove what writers that died (kill -9, power loss) left half-written: cheap, as it
        lists a few known folders only, so every open does it."""
        sweep(self.settings.tmp_dir)
        self.artifacts.sweep()
        self.environments.sweep()

    @property
    def root(self) -> Path:
        return self.settings.root

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self: _Stores) -> _Stores:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
