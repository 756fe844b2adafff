"""The metadata tables. Changing them needs a new migration in ``store/migrations/versions``.

Models and environments share one shape: a *container* row per name and one row per
immutable *version*. Versions are integers allocated under a lock on the container row
(see ``registry.assets``), so concurrent registrations never collide.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
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


# Registers the batch and endpoint tables on this metadata; imported last because they use it.
from modelport.store import schema_batch, schema_endpoints  # noqa: E402,F401
