"""task tables (monitoring): the creator and the request copied onto each task, an index per sort and
filter column (with the id, for keyset paging), and each user's chosen columns

Revision ID: 0012_monitoring
Revises: 0015_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_monitoring"
down_revision = "0015_indexes"  # chained after main's head at landing
branch_labels = None
depends_on = None

# As in app/tasks/models.py SORT_INDEXES (copied: a migration must not change when the model does).
SORT_INDEXES: dict[str, tuple[str, ...]] = {
    "panda_status": ("panda_status",), "ended_at": ("ended_at",), "panda_task_id": ("panda_task_id",),
    "name": ("production", "step", "bunch_index"), "parent_id": ("parent_id",),
    "created_by_id": ("created_by_id",), "step": ("step",), "jobs_done": ("jobs_done",),
    "jobs_total": ("jobs_total",), "priority_default": ("priority_default",),
    "priority_current": ("priority_current",), "events_requested": ("events_requested",),
    "events_processed": ("events_processed",), "request_id": ("request_id",), "bunch_id": ("bunch_id",),
    "cloud": ("cloud",), "submitted_at": ("submitted_at",), "started_at": ("started_at",),
    "walltime_s": ("walltime_s",), "output_bytes": ("output_bytes",), "log_bytes": ("log_bytes",),
}  # fmt: skip
# Single-column indexes that the (column, id) ones replace.
REPLACED = {"ix_task_panda_status": "panda_status", "ix_task_ended_at": "ended_at",
            "ix_task_panda_task_id": "panda_task_id", "ix_task_production": "production",
            "ix_task_bunch_id": "bunch_id", "ix_task_parent_id": "parent_id"}  # fmt: skip

# Columns are added in place, never in batch mode: recreating "task" on SQLite would delete every
# launch and status change of the tasks (their foreign keys cascade).


def upgrade() -> None:
    op.add_column("task", sa.Column("created_by_id", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        request = "CAST(spec ->> 'request_id' AS INTEGER)"
    else:
        request = "CAST(json_extract(spec, '$.request_id') AS INTEGER)"
    op.add_column("task", sa.Column("request_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE task SET created_by_id = (SELECT created_by_id FROM task_bunch WHERE task_bunch.id = task.bunch_id),"
        f" request_id = {request}"
    )
    for name in REPLACED:
        op.drop_index(name, table_name="task")
    for name, columns in SORT_INDEXES.items():
        op.create_index(f"ix_task_sort_{name}", "task", [*columns, "id"])
    op.create_table(
        "user_preference",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_user_preference_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "name", name=op.f("pk_user_preference")),
    )


def downgrade() -> None:
    op.drop_table("user_preference")
    for name in SORT_INDEXES:
        op.drop_index(f"ix_task_sort_{name}", table_name="task")
    for name, column in REPLACED.items():
        op.create_index(name, "task", [column])
    op.drop_column("task", "request_id")
    op.drop_column("task", "created_by_id")
