"""Online endpoints and their deployments.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "online_endpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("auth_mode", sa.String(16), nullable=False),
        sa.Column("traffic", sa.JSON(), nullable=False),
        sa.Column("mirror_traffic", sa.JSON(), nullable=False),
        sa.Column("primary_key", sa.String(64), nullable=False),
        sa.Column("secondary_key", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "online_deployments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "endpoint_id", sa.Integer(), sa.ForeignKey("online_endpoints.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column(
            "model_version_id", sa.Integer(), sa.ForeignKey("model_versions.id", ondelete="RESTRICT"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("endpoint_id", "name", name="uq_online_deployments_endpoint_name"),
    )
    op.create_index("ix_online_deployments_endpoint_id", "online_deployments", ["endpoint_id"])
    op.create_index("ix_online_deployments_model_version_id", "online_deployments", ["model_version_id"])


def downgrade() -> None:
    op.drop_table("online_deployments")
    op.drop_table("online_endpoints")
