"""Batch tables: endpoint and deployment definitions, and the durable state of their jobs.

A job's mini-batches are rows of their own, written as each one finishes, so that a runner
killed at any point is resumed from the database alone: a ``done`` mini-batch has its output
part on disk and is never scored again; anything else is scored again from scratch.
Jobs refer to their endpoint and deployment by name, not by key, so that deleting a
definition keeps its job history. An endpoint row holds its two keys (the bearer tokens that
start jobs over HTTP), as online endpoints do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from modelport.store.schema import Base, utcnow


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
