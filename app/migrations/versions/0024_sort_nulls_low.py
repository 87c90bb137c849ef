"""PostgreSQL's task sort indexes keep NULLs first, as SQLite's do: the task tables order NULLs
lowest on both databases (ASC NULLS FIRST, DESC NULLS LAST), and PostgreSQL walks an index only in
the NULL order it was built with. Before, its default (NULLs last, first in a descending walk) made
the successful table's default sort (end date, newest first) pass every task not ended yet before
the first done one. Nothing changes on SQLite.

Revision ID: 0024_sort_nulls_low
Revises: 0023_shared_state
"""

import sqlalchemy as sa
from alembic import op

revision = "0024_sort_nulls_low"
down_revision = "0023_shared_state"
branch_labels = None
depends_on = None

# The sort indexes of nullable columns (app/tasks/models.py SORT_INDEXES, copied: a migration must
# not change when the model does); each is (column, id, panda_status) but the status's own.
NULLABLE = (
    "panda_status", "ended_at", "panda_task_id", "parent_id", "created_by_id", "jobs_done", "jobs_total",
    "priority_default", "priority_current", "events_requested", "events_processed", "request_id", "cloud",
    "submitted_at", "started_at", "walltime_s", "output_bytes", "log_bytes", "progress", "events_per_job",
)  # fmt: skip


def _rebuild(nulls_first: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in NULLABLE:
        column = sa.column(name)
        op.drop_index(f"ix_task_sort_{name}", table_name="task")
        op.create_index(
            f"ix_task_sort_{name}",
            "task",
            [sa.nulls_first(column) if nulls_first else column, "id", *(["panda_status"] if name != "panda_status" else [])],
        )


def upgrade() -> None:
    _rebuild(nulls_first=True)


def downgrade() -> None:
    _rebuild(nulls_first=False)
