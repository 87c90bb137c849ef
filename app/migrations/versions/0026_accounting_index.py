"""the final accounting's queue in an index of its own: the tasks PanDA knows that are not accounted
yet, by end date (partial: the active tasks and the final ones waiting, not every task), so that each
accounting run reads a few index entries instead of walking every task's end date

Revision ID: 0026_accounting_index
Revises: 0025_chain_requests
"""

import sqlalchemy as sa
from alembic import op

revision = "0026_accounting_index"
down_revision = "0025_chain_requests"
branch_labels = None
depends_on = None

TO_ACCOUNT = "accounted_at IS NULL AND panda_task_id IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_task_to_account", "task", ["ended_at", "id"],
        sqlite_where=sa.text(TO_ACCOUNT), postgresql_where=sa.text(TO_ACCOUNT),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_task_to_account", table_name="task")
