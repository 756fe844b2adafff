"""Persistence: the metadata database (SQLAlchemy + Alembic) and the content-addressed artifact store."""
