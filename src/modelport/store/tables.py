"""The metadata tables, all of them in one module (one metadata, imported whole), as SQLAlchemy
Core tables. Changing them needs a new migration in ``store/migrations/versions``.

They are Core so that reading them needs no ORM: listings query these tables directly, and a
command that only lists (``modelport model list``) never loads ``sqlalchemy.orm``, whose import
and mapping cost more than the rest of such a command. The ORM classes the writers use are mapped
onto these same tables in :mod:`modelport.store.schema`.

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
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _column(name: str, *args: Any, nullable: bool = False, **kwargs: Any) -> Column[Any]:
    """A column, ``NOT NULL`` unless it says otherwise: most are required."""
    return Column(name, *args, nullable=nullable, **kwargs)


def _container(name: str) -> Table:
    """A named, versioned asset container: the columns every one has."""
    return Table(
        name,
        metadata,
        _column("id", Integer, primary_key=True),
        _column("name", String(255), unique=True),
        _column("archived", Boolean, default=False),
        _column("created_at", DateTime, default=utcnow),
    )


def _versions(name: str, *columns: Column[Any] | UniqueConstraint) -> Table:
    """Immutable asset versions: the columns every one has (only description and tags change
    later), then the asset's own."""
    return Table(
        name,
        metadata,
        _column("id", Integer, primary_key=True),
        _column("version", Integer),
        _column("description", Text, default=""),
        _column("tags", JSON, default=dict),
        _column("archived", Boolean, default=False),
        _column("created_at", DateTime, default=utcnow),
        *columns,
    )


models = _container("models")

model_versions = _versions(
    "model_versions",
    _column("model_id", ForeignKey("models.id", ondelete="CASCADE"), index=True),
    _column("flavor", String(32)),
    _column("framework_version", String(128), nullable=True),
    _column("properties", JSON, default=dict),
    _column("signature", JSON, nullable=True),
    _column("details", JSON, default=dict),
    _column("root_name", String(255)),
    _column("is_dir", Boolean),
    _column("digest", String(64), index=True),
    _column("size", BigInteger),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
)

model_files = Table(
    "model_files",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("version_id", ForeignKey("model_versions.id", ondelete="CASCADE"), index=True),
    _column("path", String(1024)),
    _column("sha256", String(64), index=True),
    _column("size", BigInteger),
    UniqueConstraint("version_id", "path", name="uq_model_files_version_path"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    _column("model_id", ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    _column("alias", String(64), primary_key=True),
    _column("version_id", ForeignKey("model_versions.id", ondelete="CASCADE"), index=True),
)

environments = _container("environments")

environment_versions = _versions(
    "environment_versions",
    _column("environment_id", ForeignKey("environments.id", ondelete="CASCADE"), index=True),
    _column("kind", String(16)),
    _column("python", String(16), nullable=True),
    _column("spec_file", String(255)),
    _column("spec_sha256", String(64), index=True),
    _column("content_hash", String(64), index=True),
    _column("pip_requirements", JSON, default=list),
    _column("conda_only", JSON, default=list),
    UniqueConstraint("environment_id", "version", name="uq_environment_versions_env_version"),
)

# -- online endpoints -------------------------------------------------------------------------------

online_endpoints = Table(
    "online_endpoints",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("name", String(255), unique=True),
    _column("description", Text, default=""),
    _column("tags", JSON, default=dict),
    _column("auth_mode", String(16)),
    _column("traffic", JSON, default=dict),
    _column("mirror_traffic", JSON, default=dict),
    _column("primary_key", String(64)),
    _column("secondary_key", String(64)),
    _column("created_at", DateTime, default=utcnow),
    _column("updated_at", DateTime, default=utcnow),
)

online_deployments = Table(
    "online_deployments",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("endpoint_id", ForeignKey("online_endpoints.id", ondelete="CASCADE"), index=True),
    _column("name", String(255)),
    _column("spec", JSON, default=dict),
    _column("model_version_id", ForeignKey("model_versions.id", ondelete="RESTRICT"), nullable=True, index=True),
    _column("created_at", DateTime, default=utcnow),
    _column("updated_at", DateTime, default=utcnow),
    UniqueConstraint("endpoint_id", "name", name="uq_online_deployments_endpoint_name"),
)

# -- batch endpoints and jobs ----------------------------------------------------------------------

batch_endpoints = Table(
    "batch_endpoints",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("name", String(255), unique=True),
    _column("description", Text, default=""),
    _column("tags", JSON, default=dict),
    _column("default_deployment", String(255), nullable=True),
    _column("primary_key", String(64)),
    _column("secondary_key", String(64)),
    _column("created_at", DateTime, default=utcnow),
    _column("updated_at", DateTime, default=utcnow),
)

batch_deployments = Table(
    "batch_deployments",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("endpoint_id", ForeignKey("batch_endpoints.id", ondelete="CASCADE"), index=True),
    _column("name", String(255)),
    _column("spec", JSON, default=dict),
    _column("created_at", DateTime, default=utcnow),
    UniqueConstraint("endpoint_id", "name", name="uq_batch_deployments_endpoint_name"),
)

batch_jobs = Table(
    "batch_jobs",
    metadata,
    _column("id", String(64), primary_key=True),
    _column("endpoint", String(255), index=True),
    _column("deployment", String(255)),
    _column("status", String(32), index=True),
    _column("engine", String(16)),
    _column("spec", JSON, default=dict),  # deployment spec with the job's overrides
    _column("plan", JSON, default=dict),  # resolved input: files, row counts
    _column("output_file", String(4096), nullable=True),
    _column("overwrite", Boolean, default=False),
    _column("job_dir", String(4096)),
    _column("total_items", BigInteger, default=0),
    _column("error", Text, nullable=True),
    _column("runner_token", String(64), nullable=True),
    _column("runner_pid", Integer, nullable=True),
    _column("runner_host", String(255), nullable=True),
    _column("heartbeat_at", DateTime, nullable=True),
    _column("created_at", DateTime, default=utcnow),
    _column("started_at", DateTime, nullable=True),
    _column("finished_at", DateTime, nullable=True),
)

# One mini-batch: items ``[start, stop)`` of the job's input, in input order.
batch_minibatches = Table(
    "batch_minibatches",
    metadata,
    _column("job_id", ForeignKey("batch_jobs.id", ondelete="CASCADE"), primary_key=True),
    _column("index", Integer, primary_key=True),
    _column("start", BigInteger),
    _column("stop", BigInteger),
    _column("status", String(16), index=True),
    _column("attempts", Integer, default=0),
    _column("succeeded_items", BigInteger, default=0),
    _column("failed_items", BigInteger, default=0),
    _column("errors", JSON, default=list),  # [{"items": [...], "error": "..."}]
    _column("finished_at", Float, nullable=True),  # epoch seconds, for rates
)
