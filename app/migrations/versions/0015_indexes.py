"""indexes on the foreign keys that had none: the task page's children and clones, a bunch's clones,
and what a user's or a command's rows are found by (deleting a user sets these columns to NULL)

Revision ID: 0015_indexes
Revises: 0011_launch_schedule
"""

from alembic import op

revision = "0015_indexes"
down_revision = "0011_launch_schedule"
branch_labels = None
depends_on = None

# Plain CREATE INDEX (no batch mode): tables keep their rows and foreign keys on SQLite.
INDEXES = (
    ("task", "parent_id"),
    ("task", "cloned_from_id"),
    ("task_bunch", "created_by_id"),
    ("task_bunch", "cloned_from_id"),
    ("launch", "created_by_id"),
    ("chain", "created_by_id"),
    ("chain", "cloned_from_id"),
    ("task_command", "user_id"),
    ("task_command", "superseded_by_id"),
    ("bulk_action", "created_by_id"),
    ("bulk_action", "retry_of_id"),
    ("bulk_item", "command_id"),
    ("audit_event", "user_id"),
    ("panda_call", "user_id"),
    ("path_catalog_entry", "created_by_id"),
)


def upgrade() -> None:
    for table, column in INDEXES:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column])


def downgrade() -> None:
    for table, column in reversed(INDEXES):
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
