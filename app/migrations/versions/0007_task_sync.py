"""PanDA sync: the stored state of each task, its status history, and the sync's own state

Revision ID: 0007_task_sync
Revises: 0008_chains
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = "0007_task_sync"
down_revision = "0008_chains"  # re-chained after main's 0008 (the lead re-chains at merge)
branch_labels = None
depends_on = None


def task_columns() -> list[sa.Column]:
    return [
        sa.Column("panda_modified_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("panda_error", sa.Text(), nullable=True),
        sa.Column("jobs_done", sa.Integer(), nullable=True),
        sa.Column("jobs_failed", sa.Integer(), nullable=True),
        sa.Column("jobs_total", sa.Integer(), nullable=True),
        sa.Column("events_requested", sa.BigInteger(), nullable=True),
        sa.Column("events_processed", sa.BigInteger(), nullable=True),
        sa.Column("priority_default", sa.Integer(), nullable=True),
        sa.Column("priority_current", sa.Integer(), nullable=True),
        sa.Column("submitted_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("started_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("ended_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("cloud", sa.String(length=64), nullable=True),
        sa.Column("site", sa.String(length=128), nullable=True),
        sa.Column("accounted_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("accounted_jobs", sa.Integer(), nullable=True),
        sa.Column("walltime_s", sa.BigInteger(), nullable=True),
        sa.Column("output_bytes", sa.BigInteger(), nullable=True),
        sa.Column("log_bytes", sa.BigInteger(), nullable=True),
        sa.Column("accounting_error", sa.Text(), nullable=True),
    ]


# Columns are added and dropped in place, never in batch mode: recreating "task" on SQLite would
# delete every launch and status change of the tasks (their foreign keys cascade).


def upgrade() -> None:
    for column in task_columns():
        op.add_column("task", column)
    op.create_index("ix_task_panda_status", "task", ["panda_status"])
    op.create_index("ix_task_ended_at", "task", ["ended_at"])
    op.create_table(
        "task_status_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("began_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_task_status_change_task_id_task"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_status_change")),
    )
    op.create_index("ix_task_status_change_task_id_began_at", "task_status_change", ["task_id", "began_at"])
    op.create_index("ix_task_status_change_status_began_at", "task_status_change", ["status", "began_at"])
    op.create_table(
        "sync_state",
        sa.Column("server", sa.String(length=300), nullable=False),
        sa.Column("unreachable_since", app.db.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("last_success_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("last_cycle_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("last_cycle_calls", sa.Integer(), nullable=False),
        sa.Column("cursors", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("server", name=op.f("pk_sync_state")),
    )


def downgrade() -> None:
    op.drop_table("sync_state")
    op.drop_index("ix_task_status_change_status_began_at", table_name="task_status_change")
    op.drop_index("ix_task_status_change_task_id_began_at", table_name="task_status_change")
    op.drop_table("task_status_change")
    op.drop_index("ix_task_ended_at", table_name="task")
    op.drop_index("ix_task_panda_status", table_name="task")
    for column in reversed(task_columns()):
        op.drop_column("task", column.name)
