"""the task tables' sort indexes end with the PanDA status: walking a sort, a status filter is checked
in the index before the row is read (SQLite's deferred seek), so that a filtered sort costs the index
entries it passes, not a row read each

Revision ID: 0018_sort_status
Revises: 0017_task_creator_status
"""

from alembic import op

revision = "0018_sort_status"
down_revision = "0017_task_creator_status"
branch_labels = None
depends_on = None

# As in app/tasks/models.py SORT_INDEXES, but the status's own (copied: a migration must not change
# when the model does).
SORT_INDEXES: dict[str, tuple[str, ...]] = {
    "ended_at": ("ended_at",), "panda_task_id": ("panda_task_id",),
    "name": ("production", "step", "bunch_index"), "parent_id": ("parent_id",),
    "created_by_id": ("created_by_id",), "step": ("step",), "jobs_done": ("jobs_done",),
    "jobs_total": ("jobs_total",), "priority_default": ("priority_default",),
    "priority_current": ("priority_current",), "events_requested": ("events_requested",),
    "events_processed": ("events_processed",), "request_id": ("request_id",), "bunch_id": ("bunch_id",),
    "cloud": ("cloud",), "submitted_at": ("submitted_at",), "started_at": ("started_at",),
    "walltime_s": ("walltime_s",), "output_bytes": ("output_bytes",), "log_bytes": ("log_bytes",),
    "progress": ("progress",), "events_per_job": ("events_per_job",),
}  # fmt: skip

# Plain DROP / CREATE INDEX (no batch mode): the table keeps its rows and foreign keys on SQLite.


def upgrade() -> None:
    for name, columns in SORT_INDEXES.items():
        op.drop_index(f"ix_task_sort_{name}", table_name="task")
        op.create_index(f"ix_task_sort_{name}", "task", [*columns, "id", "panda_status"])


def downgrade() -> None:
    for name, columns in SORT_INDEXES.items():
        op.drop_index(f"ix_task_sort_{name}", table_name="task")
        op.create_index(f"ix_task_sort_{name}", "task", [*columns, "id"])
