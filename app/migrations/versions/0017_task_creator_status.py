"""ix_task_creator_status (created_by_id, panda_status): the home page counts a user's active tasks per
status through one index range each, not by reading every task the user made

Revision ID: 0017_task_creator_status
Revises: 0016_table_search
"""

from alembic import op

revision = "0017_task_creator_status"
down_revision = "0016_table_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain CREATE INDEX (no batch mode): the table keeps its rows and foreign keys on SQLite.
    op.create_index("ix_task_creator_status", "task", ["created_by_id", "panda_status"])


def downgrade() -> None:
    op.drop_index("ix_task_creator_status", table_name="task")
