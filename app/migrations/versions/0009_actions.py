"""task actions: each command on a task (task_command), bulk actions and their items, the comment of a
command in the PanDA log, and the "must change password" flag of accounts

Revision ID: 0009_actions
Revises: 0007_task_sync
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = "0009_actions"
down_revision = "0007_task_sync"  # the lead re-chains at merge
branch_labels = None
depends_on = None

OUTCOMES = "outcome IN ('pending', 'sending', 'accepted', 'rejected', 'not_allowed', 'failed', 'unknown')"

# Columns of "user" and "panda_call" are added and dropped in place, never in batch mode: recreating
# "user" on SQLite would delete the rows whose foreign keys cascade from it (sessions, tokens).


def upgrade() -> None:
    op.create_table(
        "bulk_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("selection", sa.String(length=300), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("retry_of_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by_id"], ["user.id"], name=op.f("fk_bulk_action_created_by_id_user"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["retry_of_id"], ["bulk_action.id"],
                                name=op.f("fk_bulk_action_retry_of_id_bulk_action"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_action")),
    )  # fmt: skip
    op.create_table(
        "task_command",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("panda_task_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("bulk_id", sa.Integer(), nullable=True),
        sa.Column("status_before", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("panda_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("requested_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("superseded_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(OUTCOMES, name=op.f("ck_task_command_outcome")),
        sa.ForeignKeyConstraint(["bulk_id"], ["bulk_action.id"], name=op.f("fk_task_command_bulk_id_bulk_action"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["superseded_by_id"], ["task_command.id"],
                                name=op.f("fk_task_command_superseded_by_id_task_command"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_task_command_task_id_task"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_task_command_user_id_user"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_command")),
    )  # fmt: skip
    op.create_index("ix_task_command_bulk_id", "task_command", ["bulk_id"])
    op.create_index("ix_task_command_task_id_id", "task_command", ["task_id", "id"])
    op.create_table(
        "bulk_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bulk_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("command_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", app.db.UTCDateTime(), nullable=True),
        sa.CheckConstraint(OUTCOMES, name=op.f("ck_bulk_item_outcome")),
        sa.ForeignKeyConstraint(["bulk_id"], ["bulk_action.id"], name=op.f("fk_bulk_item_bulk_id_bulk_action"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["command_id"], ["task_command.id"],
                                name=op.f("fk_bulk_item_command_id_task_command"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_bulk_item_task_id_task"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_item")),
        sa.UniqueConstraint("bulk_id", "task_id", name="uq_bulk_item_bulk_id_task_id"),
    )  # fmt: skip
    op.create_index("ix_bulk_item_outcome_bulk_id", "bulk_item", ["outcome", "bulk_id"])
    op.create_index("ix_bulk_item_task_id", "bulk_item", ["task_id"])
    op.add_column("panda_call", sa.Column("comment", sa.Text(), nullable=False, server_default=""))
    op.add_column(
        "user", sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    op.drop_column("user", "must_change_password")
    op.drop_column("panda_call", "comment")
    op.drop_index("ix_bulk_item_task_id", table_name="bulk_item")
    op.drop_index("ix_bulk_item_outcome_bulk_id", table_name="bulk_item")
    op.drop_table("bulk_item")
    op.drop_index("ix_task_command_task_id_id", table_name="task_command")
    op.drop_index("ix_task_command_bulk_id", table_name="task_command")
    op.drop_table("task_command")
    op.drop_table("bulk_action")
