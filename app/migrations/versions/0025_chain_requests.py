"""tasks of a chain that name no request get their chain's in `task.request_id` (the first step whose
bunch names one), as chains made since the chain form derives it have: the request a task counts for
is then one indexed column, and the reconciliation's tasks without a request one index range; the
statistics' split by request is summed again from that column

Revision ID: 0025_chain_requests
Revises: 0024_sort_nulls_low
"""

from alembic import op

revision = "0025_chain_requests"
down_revision = "0024_sort_nulls_low"
branch_labels = None
depends_on = None


def _named(column: str) -> str:
    """SQL: the request id a JSON document `column` names (NULL when none)."""
    if op.get_bind().dialect.name == "postgresql":
        return f"CAST({column} ->> 'request_id' AS INTEGER)"
    return f"CAST(json_extract({column}, '$.request_id') AS INTEGER)"


def upgrade() -> None:
    # The request of a task's chain: the first step (by position) whose bunch's definition names one.
    named = _named("b.definition")
    op.execute(
        "UPDATE task SET request_id = ("
        " SELECT " + named + " FROM chain_step mine"
        " JOIN chain_step s ON s.chain_id = mine.chain_id"
        " JOIN task_bunch b ON b.id = s.bunch_id"
        " WHERE mine.bunch_id = task.bunch_id AND " + named + " IS NOT NULL"
        " ORDER BY s.position LIMIT 1)"
        " WHERE request_id IS NULL AND bunch_id IN (SELECT bunch_id FROM chain_step)"
    )
    _recount_requests()


def _recount_requests() -> None:
    """The statistics' "request" split summed again from `task.request_id`, as the summary's rebuild()
    sums it: a task PanDA knows counts on the day it ended, or was submitted, or was created, and over
    every day (day 0001-01-01); key "0" is "no request"."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    when = "COALESCE(ended_at, submitted_at, created_at)"
    day = f"date({when})" if sqlite else f"CAST({when} AS DATE)"
    all_days = "'0001-01-01'" if sqlite else "DATE '0001-01-01'"
    key = "CAST(COALESCE(request_id, 0) AS VARCHAR(64))"
    values = "tasks, jobs_done, jobs_failed, events, output_bytes, walltime_s, jobs_total, log_bytes"
    sums = ("COUNT(*), SUM(COALESCE(jobs_done, 0)), SUM(COALESCE(jobs_failed, 0)), SUM(COALESCE(events_processed, 0)), "
            "SUM(COALESCE(output_bytes, 0)), SUM(COALESCE(walltime_s, 0)), SUM(COALESCE(jobs_total, 0)), "
            "SUM(COALESCE(log_bytes, 0))")  # fmt: skip
    op.execute("DELETE FROM stat_split WHERE dimension = 'request'")
    for on_day, group_by in ((day, "2, 3"), (all_days, "3")):  # by position: PostgreSQL groups no constant
        op.execute(
            f"INSERT INTO stat_split (dimension, day, key, {values}) SELECT 'request', {on_day}, {key}, {sums}"
            f" FROM task WHERE panda_status IS NOT NULL GROUP BY {group_by}"
        )


def downgrade() -> None:
    # Back to the request each task's own spec names (what migration 0012 copied).
    op.execute(
        "UPDATE task SET request_id = NULL"
        " WHERE " + _named("spec") + " IS NULL AND bunch_id IN (SELECT bunch_id FROM chain_step)"
    )
    _recount_requests()
