"""The SDK entry point: ``Workspace()`` opens (or creates) a workspace and exposes its registries.

The CLI is a thin layer over this class. It is where the workspace is wired: the stores the
lower layers take (:class:`~modelport.registry.stores.WorkspaceStores`, which this class is)
plus the hooks of the layers above them, such as the endpoint catalog's usage check, so that
a model version an endpoint serves is not deleted. Servers, jobs and the daemon are handed the
opened workspace; none of them imports this module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from modelport.core.settings import resolve_settings
from modelport.registry.stores import WorkspaceStores

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from modelport.kube.render import RenderResult
    from modelport.packaging.package import PackageResult
    from modelport.store.schema import ModelVersion


class Workspace(WorkspaceStores):
    """Metadata database + artifact store + local folder, with ``models`` and ``environments``."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        db_url: str | None = None,
        artifact_root: str | None = None,
    ) -> None:
        super().__init__(resolve_settings(path, db_url, artifact_root))
        self.models.usage_checks.append(_deployments_using)  # a version an endpoint serves is not deleted

    def package(self, target: str | None = None, **options: Any) -> PackageResult:
        """``modelport package``: ``target`` (a model reference or ``ENDPOINT/DEPLOYMENT``) or
        ``file=`` as an image build context in ``output_dir=``, built with ``build=True``; the
        options are :func:`modelport.packaging.package.package`'s."""
        from modelport.packaging.package import package

        return package(self, target, **options)

    def render_k8s(self, endpoint: str | None = None, **options: Any) -> RenderResult:
        """``modelport k8s render``: the stored ``endpoint`` or ``files=`` (endpoint.yml and its
        deployment.yml files) as Kubernetes (``target="kubernetes"``) or KServe manifests in
        ``output_dir=``; the options are :func:`modelport.kube.render.render`'s."""
        from modelport.kube.render import render

        return render(self, endpoint, **options)


def _deployments_using(session: Session, version: ModelVersion) -> list[str]:
    """:func:`modelport.control.catalog.deployments_using`, imported when a version is deleted:
    the endpoint catalog brings the deployment definitions (and numpy) that opening does not need."""
    from modelport.control.catalog import deployments_using

    return deployments_using(session, version)
