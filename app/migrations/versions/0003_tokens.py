"""token vault and server-side sessions

Revision ID: 0003_tokens
Revises: 0002_panda
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = "0003_tokens"
down_revision = "0002_panda"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("issuer", sa.String(length=300), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("scope", sa.String(length=500), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("refresh_token_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("id_token_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("access_token_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("exchanged_token_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("id_token_expires_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("access_token_expires_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("refresh_token_expires_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("exchanged_token_expires_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("obtained_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("last_refresh_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("refresh_count", sa.Integer(), nullable=False),
        sa.Column("needs_relogin", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("panda_checked_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("panda_is_production", sa.Boolean(), nullable=True),
        sa.Column("panda_check_message", sa.String(length=500), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "source IN ('login', 'device-link', 'sandbox')", name=op.f("ck_user_token_source")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_user_token_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_token")),
        sa.UniqueConstraint("user_id", "source", name="uq_user_token_user_id_source"),
    )
    with op.batch_alter_table("user_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_token_user_id"), ["user_id"], unique=False)

    op.create_table(
        "web_session",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_web_session_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_session")),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_session_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_session_user_id"))
    op.drop_table("web_session")
    with op.batch_alter_table("user_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_token_user_id"))
    op.drop_table("user_token")
