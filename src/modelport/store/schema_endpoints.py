"""Online endpoint tables: the desired state the daemon serves, and the endpoint keys.

An endpoint row holds its routing (``traffic``, ``mirror_traffic``) and its two keys, which
live nowhere else. A deployment row holds its definition *resolved* (model and environment
pinned to versions, code pointing at an immutable snapshot) in ``spec``, so the daemon brings
the same replicas back after a restart whatever happened to the files it was created from.
``model_version_id`` refers to the pinned model version with ``RESTRICT``: the database itself
refuses to delete a version a deployment serves, whichever code tries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from modelport.store.schema import Base, utcnow


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
