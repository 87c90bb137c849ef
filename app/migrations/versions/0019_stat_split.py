"""statistics: the per-day summary along one dimension at a time and over every day (`stat_split`), so
that the statistics page reads rows that grow with the days and one dimension's keys, not with their
product; filled from `stat_day`

Revision ID: 0019_stat_split
Revises: 0018_sort_status
"""

from datetime import date

import sqlalchemy as sa
from alembic import op

revision = "0019_stat_split"
down_revision = "0018_sort_status"
branch_labels = None
depends_on = None

VALUES = ("tasks", "jobs_done", "jobs_failed", "events", "output_bytes", "walltime_s")
# dimension -> the stat_day column of its key (copied from app/stats/summary.py: a migration must not
# change when the code does); "all" has the key "".
DIMENSIONS = {"all": None, "step": "step", "status": "status", "request": "request_id", "user": "user_id"}
ALL_DAYS = date(1, 1, 1)


def upgrade() -> None:
    op.create_table(
        "stat_split",
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("tasks", sa.Integer(), nullable=False),
        sa.Column("jobs_done", sa.BigInteger(), nullable=False),
        sa.Column("jobs_failed", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("output_bytes", sa.BigInteger(), nullable=False),
        sa.Column("walltime_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dimension", "day", "key", name=op.f("pk_stat_split")),
    )
    sums = ", ".join(f"SUM({name})" for name in VALUES)
    names = ", ".join(VALUES)
    all_days = sa.bindparam("all_days", ALL_DAYS, type_=sa.Date())
    for dimension, column in DIMENSIONS.items():
        key = "''" if column is None else f"CAST({column} AS VARCHAR(64))"
        for daily in (True, False):
            group = [name for name in ("day" if daily else None, column) if name]
            statement = sa.text(
                f"INSERT INTO stat_split (dimension, day, key, {names}) "
                f"SELECT :dimension, {'day' if daily else ':all_days'}, {key}, {sums} FROM stat_day "
                + (f"GROUP BY {', '.join(group)} " if group else "")
                + "HAVING COUNT(*) > 0"  # an empty stat_day adds nothing (not one row of NULLs)
            ).bindparams(sa.bindparam("dimension", dimension))
            op.execute(statement.bindparams(all_days) if not daily else statement)


def downgrade() -> None:
    op.drop_table("stat_split")
