"""The metadata tables, all of them in one module (one metadata, imported whole). Changing them
needs a new migration in ``store/migrations/versions``.

Registry: models and environments share one shape, a *container* row per name and one row per
immutable *version*. Versions are integers allocated under a lock on the container row
(see ``registry.assets``), so concurrent registrations never collide.

Online endpoints: an endpoint row holds its routing (``traffic``, ``mirror_traffic``) and its
two keys, which live nowhere else. A deployment row holds its definition *resolved* (model and
environment pinned to versions, code pointing at an immutable snapshot) in ``spec``, so the
daemon brings the same replicas back after a restart whatever happened to the files it was
created from. ``model_version_id`` refers to the pinned model version with ``RESTRICT``: the
database itself refuses to delete a version a deployment serves, whichever code tries.

Batch: endpoint and deployment definitions, and the durable state of their jobs. A job's
mini-batches are rows of their own, written as each one finishes, so that a runner killed at
any point is resumed from the database alone: a ``done`` mini-batch has its output part on disk
and is never scored again; anything else is scored again from scratch. Jobs refer to their
endpoint and deployment by name, not by key, so that deleting a definition keeps its job
history. A batch endpoint row holds its two keys (the bearer tokens that start jobs over HTTP),
as online endpoints do.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Container:
    """Columns every named, versioned asset container has."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Versioned:
    """Columns every immutable asset version has; only description and tags change later."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Model(Container, Base):
    __tablename__ = "models"

    versions: Mapped[list[ModelVersion]] = relationship(back_populates="container", passive_deletes=True)


class ModelVersion(Versioned, Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),)

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    flavor: Mapped[str] = mapped_column(String(32))
    framework_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    root_name: Mapped[str] = mapped_column(String(255))
    is_dir: Mapped[bool] = mapped_column(Boolean)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)

    container: Mapped[Model] = relationship(back_populates="versions")
    files: Mapped[list[ModelFile]] = relationship(
        order_by="ModelFile.path", cascade="all, delete-orphan", passive_deletes=True
    )


class ModelFile(Base):
    __tablename__ = "model_files"
    __table_args__ = (UniqueConstraint("version_id", "path", name="uq_model_files_version_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class ModelAlias(Base):
    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)


class Environment(Container, Base):
    __tablename__ = "environments"

    versions: Mapped[list[EnvironmentVersion]] = relationship(back_populates="container", passive_deletes=True)


class EnvironmentVersion(Versioned, Base):
    __tablename__ = "environment_versions"
    __table_args__ = (UniqueConstraint("environment_id", "version", name="uq_environment_versions_env_version"),)

    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    python: Mapped[str | None] = mapped_column(String(16), nullable=True)
    spec_file: Mapped[str] = mapped_column(String(255))
    spec_sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    pip_requirements: Mapped[list[Any]] = mapped_column(default=list)
    conda_only: Mapped[list[Any]] = mapped_column(default=list)

    container: Mapped[Environment] = relationship(back_populates="versions")


# -- online endpoints -------------------------------------------------------------------------------


class OnlineEndpoint(Base):
    __tablename__ = "online_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    auth_mode: Mapped[str] = mapped_column(String(16))
    traffic: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mirror_traffic: Mapped[dict[str, Any]] = mapped_column(default=dict)
    primary_key: Mapped[str] = mapped_column(String(64))
    secondary_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    deployments: Mapped[list[OnlineDeployment]] = relationship(
        order_by="OnlineDeployment.name", cascade="all, delete-orphan", passive_deletes=True
    )


class OnlineDeployment(Base):
    __tablename__ = "online_deployments"
    __table_args__ = (UniqueConstraint("endpoint_id", "name", name="uq_online_deployments_endpoint_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("online_endpoints.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# -- batch endpoints and jobs ----------------------------------------------------------------------


class BatchEndpoint(Base):
    __tablename__ = "batch_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    default_deployment: Mapped[str | None] = mapped_column(String(255), nullable=True)
    primary_key: Mapped[str] = mapped_column(String(64))
    secondary_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class BatchDeployment(Base):
    __tablename__ = "batch_deployments"
    __table_args__ = (UniqueConstraint("endpoint_id", "name", name="uq_batch_deployments_endpoint_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("batch_endpoints.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class BatchJob(Base):
    __tablename__ = "batch_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(255), index=True)
    deployment: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), index=True)
    engine: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)  # deployment spec with the job's overrides
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)  # resolved input: files, row counts
    output_file: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    overwrite: Mapped[bool] = mapped_column(default=False)
    job_dir: Mapped[str] = mapped_column(String(4096))
    total_items: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    runner_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    runner_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    runner_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class BatchMiniBatch(Base):
    """One mini-batch: items ``[start, stop)`` of the job's input, in input order."""

    __tablename__ = "batch_minibatches"

    job_id: Mapped[str] = mapped_column(ForeignKey("batch_jobs.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger)
    stop: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    succeeded_items: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_items: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[list[Any]] = mapped_column(default=list)  # [{"items": [...], "error": "..."}]
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # epoch seconds, for rates
