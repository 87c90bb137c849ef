"""state that every `serve` process must share: the device-code links in progress (`device_link`,
the device code sealed) and the login rate limiters' counted attempts (`login_failure`), which lived
in one process's memory

Revision ID: 0023_shared_state
Revises: 0022_count_indexes
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = "0023_shared_state"
down_revision = "0022_count_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_link",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("user_code", sa.String(length=64), nullable=False),
        sa.Column("verification_uri", sa.String(length=500), nullable=False),
        sa.Column("verification_uri_complete", sa.String(length=500), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("device_code_sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_device_link_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_device_link")),
    )
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("limiter", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("at", app.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failure")),
    )
    op.create_index("ix_login_failure_at", "login_failure", ["at"])
    op.create_index("ix_login_failure_key", "login_failure", ["limiter", "address", "username", "at"])


def downgrade() -> None:
    op.drop_index("ix_login_failure_key", table_name="login_failure")
    op.drop_index("ix_login_failure_at", table_name="login_failure")
    op.drop_table("login_failure")
    op.drop_table("device_link")
