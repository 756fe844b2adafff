"""Batch endpoints and deployments in the database.

A deployment is stored *resolved*: its model and environment references are pinned to the
versions they named at creation (inline ones are registered first, as Azure does), and its
scoring script is checked to define ``run``, so a job never starts from a definition that
cannot work. Jobs copy the resolved spec, so later changes never alter a running job.

An endpoint has two keys, made with it: either one, sent as ``Authorization: Bearer <key>``,
lets a client start and watch the endpoint's jobs over HTTP (:mod:`modelport.control.batch_router`).
They never appear in :meth:`EndpointInfo.to_dict`; only :meth:`BatchEndpoints.keys` gives them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelport.batch.definitions import parse_endpoint
from modelport.batch.scoring import TRITON, check_script
from modelport.core.errors import ConflictError, NotFoundError, ValidationError
from modelport.core.keys import KEY_NAMES, new_key
from modelport.core.names import validate_name
from modelport.registry.flavors.pipelines import PIPELINE
from modelport.registry.manifest import scan
from modelport.registry.stores import WorkspaceStores
from modelport.runtime import flavor_catalog
from modelport.schema.batch import BatchDeploymentSpec, BatchEndpointSpec, BatchInlineModel, BatchSettings
from modelport.store.schema import BatchDeployment, BatchEndpoint, utcnow


@dataclass(frozen=True)
class EndpointInfo:
    name: str
    description: str
    tags: dict[str, str]
    default_deployment: str | None
    deployments: list[str]
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["defaults"] = {"deployment_name": data.pop("default_deployment")}
        data["created_at"] = self.created_at.isoformat() + "Z"
        data["updated_at"] = self.updated_at.isoformat() + "Z"
        return data


@dataclass(frozen=True)
class DeploymentInfo:
    """A stored deployment. ``spec`` holds ``model`` (``NAME:V``), ``flavor``, ``code``,
    ``scoring_script``, ``environment`` (``NAME:V``), ``description``, ``tags`` and ``settings``."""

    name: str
    endpoint_name: str
    spec: dict[str, Any]
    created_at: datetime
    is_default: bool = False
    ignored: list[str] = field(default_factory=list)

    @property
    def settings(self) -> BatchSettings:
        return BatchSettings.from_dict(self.spec["settings"])

    def to_dict(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "endpoint_name": self.endpoint_name,
            **self.spec,
            "is_default": self.is_default,
            "created_at": self.created_at.isoformat() + "Z",
        }
        if self.ignored:
            data["ignored"] = self.ignored
        return data


class BatchEndpoints:
    """Create, read, change and delete batch endpoints and their deployments."""

    def __init__(self, workspace: WorkspaceStores) -> None:
        self.ws = workspace
        self.db = workspace.db

    # -- endpoints ----------------------------------------------------------------------------

    def create_endpoint(self, definition: BatchEndpointSpec) -> EndpointInfo:
        if definition.default_deployment is not None:
            raise ValidationError(
                f"defaults.deployment_name: endpoint {definition.name!r} has no deployments yet; "
                "set the default after creating one"
            )
        with self.db.session() as session:
            if self._endpoint(session, definition.name) is not None:
                raise ConflictError(f"batch endpoint {definition.name!r} already exists")
            row = BatchEndpoint(
                name=definition.name,
                description=definition.description,
                tags=definition.tags,
                primary_key=new_key(),
                secondary_key=new_key(),
            )
            session.add(row)
            session.flush()
            return self._endpoint_info(session, row)

    def update_endpoint(self, name: str, changes: dict[str, Any]) -> EndpointInfo:
        """Merge ``changes`` (YAML keys: description, tags, defaults.deployment_name) into the endpoint."""
        with self.db.session() as session:
            row = self._require_endpoint(session, name)
            current: dict[str, Any] = {
                "name": row.name,
                "description": row.description,
                "tags": dict(row.tags),
                "defaults": {"deployment_name": row.default_deployment},
            }
            if changes.get("name", name) != name:
                raise ValidationError(f"name: {changes['name']!r} differs from the endpoint being updated ({name!r})")
            merged = {**current, **changes}
            merged["defaults"] = {**current["defaults"], **(changes.get("defaults") or {})}
            definition = parse_endpoint(merged).value
            default = definition.default_deployment
            if default is not None and self._deployment(session, row, default) is None:
                raise NotFoundError(f"defaults.deployment_name: endpoint {name!r} has no deployment {default!r}")
            row.description, row.tags, row.default_deployment = definition.description, definition.tags, default
            row.updated_at = utcnow()
            return self._endpoint_info(session, row)

    def get_endpoint(self, name: str) -> EndpointInfo:
        with self.db.session() as session:
            return self._endpoint_info(session, self._require_endpoint(session, name))

    def list_endpoints(self) -> list[EndpointInfo]:
        with self.db.session() as session:
            rows = session.scalars(select(BatchEndpoint).order_by(BatchEndpoint.name))
            return [self._endpoint_info(session, row) for row in rows]

    def keys(self, name: str) -> tuple[str, str]:
        """The endpoint's primary and secondary keys."""
        with self.db.session() as session:
            row = self._require_endpoint(session, name)
            return row.primary_key, row.secondary_key

    def regenerate_key(self, name: str, which: str) -> tuple[str, str]:
        """Replace one key (``primary`` or ``secondary``); the other keeps working meanwhile."""
        if which not in KEY_NAMES:
            raise ValidationError(f"--key: {which!r} is not one of {', '.join(KEY_NAMES)}")
        with self.db.session() as session:
            row = self._require_endpoint(session, name)
            setattr(row, f"{which}_key", new_key())
            row.updated_at = utcnow()
            return row.primary_key, row.secondary_key

    def delete_endpoint(self, name: str) -> None:
        """Delete the endpoint and its deployments; its jobs' history stays."""
        with self.db.session() as session:
            session.delete(self._require_endpoint(session, name))

    # -- deployments --------------------------------------------------------------------------

    def create_deployment(
        self, definition: BatchDeploymentSpec, *, ignored: tuple[str, ...] = (), set_default: bool = False
    ) -> DeploymentInfo:
        """Store ``definition`` resolved; ``ignored`` (its cloud-only keys) is shown with the result."""
        with self.db.session() as session:
            self._new_deployment_endpoint(session, definition)  # fail before registering inline assets
        spec = self._resolve(definition)
        with self.db.session() as session:
            endpoint = self._new_deployment_endpoint(session, definition)  # a concurrent create may have won
            row = BatchDeployment(endpoint_id=endpoint.id, name=definition.name, spec=spec)
            session.add(row)
            if set_default:
                endpoint.default_deployment = definition.name
                endpoint.updated_at = utcnow()
            session.flush()
            return _deployment_info(endpoint, row, list(ignored))

    def _new_deployment_endpoint(self, session: Session, definition: BatchDeploymentSpec) -> BatchEndpoint:
        """The endpoint a new deployment goes into, checking the name is free there."""
        endpoint = self._require_endpoint(session, definition.endpoint_name)
        if self._deployment(session, endpoint, definition.name) is not None:
            raise ConflictError(
                f"batch deployment {definition.name!r} already exists in endpoint {definition.endpoint_name!r}"
            )
        return endpoint

    def get_deployment(self, endpoint_name: str, name: str | None = None) -> DeploymentInfo:
        """The named deployment, or the endpoint's default one when ``name`` is None."""
        with self.db.session() as session:
            endpoint = self._require_endpoint(session, endpoint_name)
            if name is None:
                name = endpoint.default_deployment
                if name is None:
                    raise NotFoundError(
                        f"batch endpoint {endpoint_name!r} has no default deployment; name one with --deployment "
                        "or set defaults.deployment_name"
                    )
            row = self._deployment(session, endpoint, name)
            if row is None:
                raise NotFoundError(f"batch endpoint {endpoint_name!r} has no deployment {name!r}")
            return _deployment_info(endpoint, row)

    def list_deployments(self, endpoint_name: str) -> list[DeploymentInfo]:
        with self.db.session() as session:
            endpoint = self._require_endpoint(session, endpoint_name)
            rows = session.scalars(
                select(BatchDeployment).where(BatchDeployment.endpoint_id == endpoint.id).order_by(BatchDeployment.name)
            )
            return [_deployment_info(endpoint, row) for row in rows]

    def delete_deployment(self, endpoint_name: str, name: str) -> None:
        with self.db.session() as session:
            endpoint = self._require_endpoint(session, endpoint_name)
            row = self._deployment(session, endpoint, name)
            if row is None:
                raise NotFoundError(f"batch endpoint {endpoint_name!r} has no deployment {name!r}")
            if endpoint.default_deployment == name:
                raise ConflictError(
                    f"batch deployment {name!r} is the default of endpoint {endpoint_name!r}; "
                    "set another default (or delete the endpoint) first"
                )
            session.delete(row)

    # -- resolution ---------------------------------------------------------------------------

    def _resolve(self, definition: BatchDeploymentSpec) -> dict[str, Any]:
        """The stored spec: assets pinned to versions, the script checked, no-code flavors checked."""
        code = definition.code_configuration
        if code is not None:
            check_script(code.script_path)
        model, flavor = self._model(definition, definition.model) if definition.model is not None else (None, None)
        no_code = (*flavor_catalog.loadable_names(), PIPELINE, TRITON)  # a Triton repository: its one ensemble
        if code is None and flavor not in no_code:
            raise ValidationError(
                f"code_configuration: model {model} is a {flavor} model; without a scoring script a "
                f"deployment needs a {', '.join(no_code)} model"
            )
        return {
            "description": definition.description,
            "tags": definition.tags,
            "model": model,
            "flavor": flavor,
            "code": code and code.code,
            "scoring_script": code and code.scoring_script,
            "environment": self._environment(definition),
            "settings": definition.batch_settings.to_dict(),
        }

    def _model(self, definition: BatchDeploymentSpec, inline: str | BatchInlineModel) -> tuple[str, str]:
        if isinstance(inline, str):
            info = self.ws.models.get(inline)
            return info.ref, info.flavor
        name = inline.name or f"{definition.endpoint_name}-{definition.name}"
        try:
            info = self.ws.models.register(
                inline.path, name, version=inline.version, description=inline.description, tags=inline.tags
            )
        except ConflictError:  # identical content already registered: use that version, as Azure does
            digest = scan(Path(inline.path)).digest
            info = next(v for v in self.ws.models.versions(name, include_archived=True) if v.digest == digest)
        return info.ref, info.flavor

    def _environment(self, definition: BatchDeploymentSpec) -> str | None:
        environment = definition.environment
        if environment is None:
            return None
        if isinstance(environment, str):
            return self.ws.environments.get(environment).ref
        if environment.conda_file is None:
            return None  # an image-only environment: nothing to register locally
        name = environment.name or f"{definition.endpoint_name}-{definition.name}"
        return self.ws.environments.create(
            name, environment.conda_file, description=environment.description, tags=environment.tags
        ).ref

    # -- rows ---------------------------------------------------------------------------------

    @staticmethod
    def _endpoint(session: Session, name: str) -> BatchEndpoint | None:
        return session.scalars(select(BatchEndpoint).where(BatchEndpoint.name == name)).first()

    def _require_endpoint(self, session: Session, name: str) -> BatchEndpoint:
        row = self._endpoint(session, validate_name(name, "endpoint name"))
        if row is None:
            raise NotFoundError(f"batch endpoint {name!r} does not exist")
        return row

    @staticmethod
    def _deployment(session: Session, endpoint: BatchEndpoint, name: str) -> BatchDeployment | None:
        return session.scalars(
            select(BatchDeployment).where(BatchDeployment.endpoint_id == endpoint.id, BatchDeployment.name == name)
        ).first()

    @staticmethod
    def _endpoint_info(session: Session, row: BatchEndpoint) -> EndpointInfo:
        names = session.scalars(
            select(BatchDeployment.name).where(BatchDeployment.endpoint_id == row.id).order_by(BatchDeployment.name)
        )
        return EndpointInfo(
            row.name,
            row.description,
            dict(row.tags),
            row.default_deployment,
            list(names),
            row.created_at,
            row.updated_at,
        )


def _deployment_info(endpoint: BatchEndpoint, row: BatchDeployment, ignored: list[str] | None = None) -> DeploymentInfo:
    return DeploymentInfo(
        row.name, endpoint.name, dict(row.spec), row.created_at, endpoint.default_deployment == row.name, ignored or []
    )
