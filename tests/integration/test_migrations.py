"""Schema migrations: the tables and the migrations agree, and older workspaces open in newer code."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from modelport import Workspace
from modelport.store.db import create_db_engine, current_revision, head_revision, migrate
from modelport.store.tables import metadata


def test_migrations_match_the_schema(db_url: str, tmp_path: Path) -> None:
    engine = create_db_engine(db_url)
    migrate(engine, tmp_path)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_workspace_from_first_schema_opens_and_keeps_data(db_url: str, tmp_path: Path, onnx_model: Path) -> None:
    engine = create_db_engine(db_url)
    migrate(engine, tmp_path, revision="0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO models (name, archived, created_at) VALUES ('old', false, '2025-01-01')"))
    engine.dispose()
    with Workspace(tmp_path / "ws", db_url=db_url) as ws:
        assert current_revision(ws.db.engine) == head_revision()
        assert ws.models.list(include_archived=True)[0].name == "old"
        assert ws.models.register(onnx_model, "old").version == 1
