"""path catalog (container and execution-file paths for the task form's autocomplete)

Revision ID: 0010_path_catalog
Revises: 0005_launch_needs_decision
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = "0010_path_catalog"
down_revision = "0005_launch_needs_decision"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "path_catalog_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("seen_at", app.db.UTCDateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('container', 'exec')", name=op.f("ck_path_catalog_entry_kind")),
        sa.CheckConstraint("source IN ('scan', 'admin')", name=op.f("ck_path_catalog_entry_source")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user.id"],
            name=op.f("fk_path_catalog_entry_created_by_id_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_path_catalog_entry")),
        sa.UniqueConstraint("kind", "path", name="uq_path_catalog_entry_kind_path"),
    )


def downgrade() -> None:
    op.drop_table("path_catalog_entry")
