"""PanDA interaction log (panda_call)

Revision ID: 0002_panda
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = "0002_panda"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "panda_call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", app.db.UTCDateTime(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("server", sa.String(length=300), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("return_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_panda_call_user_id_user"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panda_call")),
    )
    with op.batch_alter_table("panda_call", schema=None) as batch_op:
        batch_op.create_index("ix_panda_call_at", ["at"], unique=False)
        batch_op.create_index("ix_panda_call_method", ["method"], unique=False)
        batch_op.create_index("ix_panda_call_outcome", ["outcome"], unique=False)
        batch_op.create_index("ix_panda_call_task_id_at", ["task_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("panda_call", schema=None) as batch_op:
        batch_op.drop_index("ix_panda_call_task_id_at")
        batch_op.drop_index("ix_panda_call_outcome")
        batch_op.drop_index("ix_panda_call_method")
        batch_op.drop_index("ix_panda_call_at")
    op.drop_table("panda_call")
