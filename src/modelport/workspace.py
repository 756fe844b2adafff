"""The SDK entry point: ``Workspace()`` opens (or creates) a workspace and exposes its registries.

The CLI is a thin layer over this class; servers and jobs use it the same way. Opening is also
when the workspace is kept private and clean: its folder is made (or tightened to) 0700, so a
workspace made by an older version is closed to other users by that one ``chmod``, and the
temporaries of writers that died are swept from the staging folders (one listing each).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from modelport.core.errors import ModelportError
from modelport.core.files import DIR_MODE, private_dir, sweep, tighten
from modelport.core.settings import WorkspaceSettings, resolve_settings
from modelport.registry.environments import EnvironmentRegistry
from modelport.registry.models import ModelRegistry
from modelport.store.artifacts import ArtifactStore
from modelport.store.db import Database

if TYPE_CHECKING:
    from modelport.packaging.package import PackageResult
    from modelport.store.schema import ModelVersion


class Workspace:
    """Metadata database + artifact store + local folder, with ``models`` and ``environments``."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        db_url: str | None = None,
        artifact_root: str | None = None,
    ) -> None:
        self.settings: WorkspaceSettings = resolve_settings(path, db_url, artifact_root)
        try:
            private_dir(self.settings.root)
            tighten(self.settings.root, DIR_MODE)
        except OSError as exc:
            raise ModelportError(f"workspace: cannot create {self.settings.root} ({exc.strerror})") from None
        try:
            self.db = Database(self.settings.db_url, self.settings.root)
        except OperationalError as exc:
            where = make_url(self.settings.db_url).render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise ModelportError(f"database {where}: {reason}") from None
        self.artifacts = ArtifactStore(self.settings.artifact_root)
        self.models = ModelRegistry(self.db, self.artifacts, self.settings.cache_dir, self.settings.tmp_dir)
        self.models.usage_checks.append(_deployments_using)  # a version an endpoint serves is not deleted
        self.environments = EnvironmentRegistry(self.db, self.artifacts, self.settings.envs_dir)
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

    def package(self, target: str | None = None, **options: Any) -> PackageResult:
        """``modelport package``: ``target`` (a model reference or ``ENDPOINT/DEPLOYMENT``) or
        ``file=`` as an image build context in ``output_dir=``, built with ``build=True``; the
        options are :func:`modelport.packaging.package.package`'s."""
        from modelport.packaging.package import package

        return package(self, target, **options)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _deployments_using(session: Session, version: ModelVersion) -> list[str]:
    """:func:`modelport.control.catalog.deployments_using`, imported when a version is deleted:
    the endpoint catalog brings the deployment definitions (and numpy) that opening does not need."""
    from modelport.control.catalog import deployments_using

    return deployments_using(session, version)
