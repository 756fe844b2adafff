"""Alembic migrations of the metadata schema; run automatically by ``store.db.migrate``."""
