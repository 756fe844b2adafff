"""Batch endpoint keys: each endpoint gets a primary and a secondary key, as online endpoints have.

Endpoints made before this revision get two fresh keys here, so every row has both.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from modelport.core.keys import new_key

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NOT NULL needs a default for the rows already there; they are given real keys at once.
    for column in ("primary_key", "secondary_key"):
        op.add_column("batch_endpoints", sa.Column(column, sa.String(64), nullable=False, server_default=""))
    bind = op.get_bind()
    for (row_id,) in bind.execute(sa.text("SELECT id FROM batch_endpoints")).all():
        bind.execute(
            sa.text("UPDATE batch_endpoints SET primary_key = :p, secondary_key = :s WHERE id = :id"),
            {"p": new_key(), "s": new_key(), "id": row_id},
        )


def downgrade() -> None:
    op.drop_column("batch_endpoints", "secondary_key")
    op.drop_column("batch_endpoints", "primary_key")
