"""Environment registry: environments and their versions.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "environment_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("environment_id", sa.Integer(), sa.ForeignKey("environments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("python", sa.String(16), nullable=True),
        sa.Column("spec_file", sa.String(255), nullable=False),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("pip_requirements", sa.JSON(), nullable=False),
        sa.Column("conda_only", sa.JSON(), nullable=False),
        sa.UniqueConstraint("environment_id", "version", name="uq_environment_versions_env_version"),
    )
    op.create_index("ix_environment_versions_environment_id", "environment_versions", ["environment_id"])
    op.create_index("ix_environment_versions_spec_sha256", "environment_versions", ["spec_sha256"])
    op.create_index("ix_environment_versions_content_hash", "environment_versions", ["content_hash"])


def downgrade() -> None:
    op.drop_table("environment_versions")
    op.drop_table("environments")
