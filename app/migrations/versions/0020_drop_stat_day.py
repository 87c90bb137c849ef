"""statistics: drop the per-day summary by every dimension at once (`stat_day`): nothing reads it,
`stat_split` (its "all" dimension the daily total) answers everything it did; the downgrade
recreates it, summed again from the tasks

Revision ID: 0020_drop_stat_day
Revises: 0019_stat_split
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_drop_stat_day"
down_revision = "0019_stat_split"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("stat_day")


def downgrade() -> None:
    op.create_table(
        "stat_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("tasks", sa.Integer(), nullable=False),
        sa.Column("jobs_done", sa.BigInteger(), nullable=False),
        sa.Column("jobs_failed", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("output_bytes", sa.BigInteger(), nullable=False),
        sa.Column("walltime_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "step", "status", "request_id", "user_id", name=op.f("pk_stat_day")),
    )
    # Refilled as the older code's rebuild() would (the sync then moves its rows, never from zero): a
    # task PanDA knows counts on the day it ended, or was submitted, or was created; 0 is "none".
    when = "COALESCE(ended_at, submitted_at, created_at)"
    day = f"date({when})" if op.get_bind().dialect.name == "sqlite" else f"CAST({when} AS DATE)"
    op.execute(
        "INSERT INTO stat_day (day, step, status, request_id, user_id, tasks, jobs_done, jobs_failed, "
        "events, output_bytes, walltime_s) "
        f"SELECT {day}, step, panda_status, COALESCE(request_id, 0), COALESCE(created_by_id, 0), COUNT(*), "
        "SUM(COALESCE(jobs_done, 0)), SUM(COALESCE(jobs_failed, 0)), SUM(COALESCE(events_processed, 0)), "
        "SUM(COALESCE(output_bytes, 0)), SUM(COALESCE(walltime_s, 0)) "
        "FROM task WHERE panda_status IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
    )
