"""statistics: the summary (`stat_split`) also sums the tasks' total jobs and log bytes, so that the
successful table's totals row is read from it (a row per status) instead of summed over every task;
filled from the tasks

Revision ID: 0021_summary_jobs_logs
Revises: 0020_drop_stat_day
"""

from datetime import date

import sqlalchemy as sa
from alembic import op

revision = "0021_summary_jobs_logs"
down_revision = "0020_drop_stat_day"
branch_labels = None
depends_on = None

# dimension -> the task column of its key, as app/stats/summary.py keys a task (copied: a migration
# must not change when the code does); "all" has the key "", none (request, creator) is "0".
KEYS = {"all": "''", "step": "step", "status": "panda_status",
        "request": "CAST(COALESCE(request_id, 0) AS VARCHAR(64))",
        "user": "CAST(COALESCE(created_by_id, 0) AS VARCHAR(64))"}  # fmt: skip
ALL_DAYS = date(1, 1, 1)


def upgrade() -> None:
    with op.batch_alter_table("stat_split") as batch:
        batch.add_column(sa.Column("jobs_total", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("log_bytes", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("stat_split") as batch:  # the model has no server default
        batch.alter_column("jobs_total", server_default=None)
        batch.alter_column("log_bytes", server_default=None)
    # Each row gets the sums of the tasks it counts: a task PanDA knows counts on the day it ended, or
    # was submitted, or was created, and on every day (ALL_DAYS). Every such key has its row already
    # (each task adds 1 to `tasks`).
    when = "COALESCE(ended_at, submitted_at, created_at)"
    day = f"date({when})" if op.get_bind().dialect.name == "sqlite" else f"CAST({when} AS DATE)"
    all_days = sa.bindparam("all_days", ALL_DAYS, type_=sa.Date())
    for dimension, key in KEYS.items():
        for daily in (True, False):
            statement = sa.text(
                "UPDATE stat_split SET jobs_total = s.jobs_total, log_bytes = s.log_bytes FROM ("
                f"SELECT {day if daily else ':all_days'} AS day, {key} AS key, "
                "SUM(COALESCE(jobs_total, 0)) AS jobs_total, SUM(COALESCE(log_bytes, 0)) AS log_bytes "
                f"FROM task WHERE panda_status IS NOT NULL GROUP BY {'1, 2' if daily else '2'}) AS s "
                "WHERE stat_split.dimension = :dimension AND stat_split.day = s.day AND stat_split.key = s.key"
            ).bindparams(sa.bindparam("dimension", dimension))
            op.execute(statement if daily else statement.bindparams(all_days))


def downgrade() -> None:
    with op.batch_alter_table("stat_split") as batch:
        batch.drop_column("log_bytes")
        batch.drop_column("jobs_total")
