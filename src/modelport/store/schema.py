"""The ORM classes the registry, the endpoint catalog and batch jobs write (and load rows) through,
mapped onto the Core tables of :mod:`modelport.store.tables`: the tables (columns, keys,
defaults) are defined there once; this module adds the classes and their relationships, and the
``Mapped`` annotations that type their attributes. Importing it loads ``sqlalchemy.orm``, which
listings do without (see :mod:`modelport.store.tables`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from modelport.store import tables
from modelport.store.tables import utcnow as utcnow  # where the other layers have always taken it


class Base(DeclarativeBase):
    metadata = tables.metadata


def mapped_class(table: Table) -> type[Base]:
    """The class mapped onto ``table``: the registries name their tables, which their listings
    read without the ORM, and find their classes here when they load or write rows."""
    return next(mapper.class_ for mapper in Base.registry.mappers if mapper.local_table is table)


class Container:
    """Attributes every named, versioned asset container has."""

    id: Mapped[int]
    name: Mapped[str]
    archived: Mapped[bool]
    created_at: Mapped[datetime]


class Versioned:
    """Attributes every immutable asset version has; only description and tags change later."""

    id: Mapped[int]
    version: Mapped[int]
    description: Mapped[str]
    tags: Mapped[dict[str, Any]]
    archived: Mapped[bool]
    created_at: Mapped[datetime]


class Model(Container, Base):
    __table__ = tables.models

    versions: Mapped[list[ModelVersion]] = relationship(back_populates="container", passive_deletes=True)


class ModelVersion(Versioned, Base):
    __table__ = tables.model_versions

    model_id: Mapped[int]
    flavor: Mapped[str]
    framework_version: Mapped[str | None]
    properties: Mapped[dict[str, Any]]
    signature: Mapped[dict[str, Any] | None]
    details: Mapped[dict[str, Any]]
    root_name: Mapped[str]
    is_dir: Mapped[bool]
    digest: Mapped[str]
    size: Mapped[int]

    container: Mapped[Model] = relationship(back_populates="versions")
    files: Mapped[list[ModelFile]] = relationship(
        order_by="ModelFile.path", cascade="all, delete-orphan", passive_deletes=True
    )


class ModelFile(Base):
    __table__ = tables.model_files

    id: Mapped[int]
    version_id: Mapped[int]
    path: Mapped[str]
    sha256: Mapped[str]
    size: Mapped[int]


class ModelAlias(Base):
    __table__ = tables.model_aliases

    model_id: Mapped[int]
    alias: Mapped[str]
    version_id: Mapped[int]


class Environment(Container, Base):
    __table__ = tables.environments

    versions: Mapped[list[EnvironmentVersion]] = relationship(back_populates="container", passive_deletes=True)


class EnvironmentVersion(Versioned, Base):
    __table__ = tables.environment_versions

    environment_id: Mapped[int]
    kind: Mapped[str]
    python: Mapped[str | None]
    spec_file: Mapped[str]
    spec_sha256: Mapped[str]
    content_hash: Mapped[str]
    pip_requirements: Mapped[list[Any]]
    conda_only: Mapped[list[Any]]

    container: Mapped[Environment] = relationship(back_populates="versions")


# -- online endpoints -------------------------------------------------------------------------------


class OnlineEndpoint(Base):
    __table__ = tables.online_endpoints

    id: Mapped[int]
    name: Mapped[str]
    description: Mapped[str]
    tags: Mapped[dict[str, Any]]
    auth_mode: Mapped[str]
    traffic: Mapped[dict[str, Any]]
    mirror_traffic: Mapped[dict[str, Any]]
    primary_key: Mapped[str]
    secondary_key: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    deployments: Mapped[list[OnlineDeployment]] = relationship(
        order_by="OnlineDeployment.name", cascade="all, delete-orphan", passive_deletes=True
    )


class OnlineDeployment(Base):
    __table__ = tables.online_deployments

    id: Mapped[int]
    endpoint_id: Mapped[int]
    name: Mapped[str]
    spec: Mapped[dict[str, Any]]
    model_version_id: Mapped[int | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# -- batch endpoints and jobs ----------------------------------------------------------------------


class BatchEndpoint(Base):
    __table__ = tables.batch_endpoints

    id: Mapped[int]
    name: Mapped[str]
    description: Mapped[str]
    tags: Mapped[dict[str, Any]]
    default_deployment: Mapped[str | None]
    primary_key: Mapped[str]
    secondary_key: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BatchDeployment(Base):
    __table__ = tables.batch_deployments

    id: Mapped[int]
    endpoint_id: Mapped[int]
    name: Mapped[str]
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class BatchJob(Base):
    __table__ = tables.batch_jobs

    id: Mapped[str]
    endpoint: Mapped[str]
    deployment: Mapped[str]
    status: Mapped[str]
    engine: Mapped[str]
    spec: Mapped[dict[str, Any]]
    plan: Mapped[dict[str, Any]]
    output_file: Mapped[str | None]
    overwrite: Mapped[bool]
    job_dir: Mapped[str]
    total_items: Mapped[int]
    error: Mapped[str | None]
    runner_token: Mapped[str | None]
    runner_pid: Mapped[int | None]
    runner_host: Mapped[str | None]
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class BatchMiniBatch(Base):
    __table__ = tables.batch_minibatches

    job_id: Mapped[str]
    index: Mapped[int]
    start: Mapped[int]
    stop: Mapped[int]
    status: Mapped[str]
    attempts: Mapped[int]
    succeeded_items: Mapped[int]
    failed_items: Mapped[int]
    errors: Mapped[list[Any]]
    finished_at: Mapped[float | None]
