"""tasks of a chain that name no request get their chain's in `task.request_id` (the first step whose
bunch names one), as chains made since the chain form derives it have: the request a task counts for
is then one indexed column, and the reconciliation's tasks without a request one index range

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


def downgrade() -> None:
    # Back to the request each task's own spec names (what migration 0012 copied).
    op.execute(
        "UPDATE task SET request_id = NULL"
        " WHERE " + _named("spec") + " IS NULL AND bunch_id IN (SELECT bunch_id FROM chain_step)"
    )
