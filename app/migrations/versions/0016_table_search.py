"""task tables at scale: progress and events per job as generated columns with (column, id) indexes
(index-backed sorts), and a trigram index of task names for "contains" searches (SQLite: an FTS5
trigram table kept by triggers; PostgreSQL: pg_trgm)

Revision ID: 0016_table_search
Revises: 0012_monitoring
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_table_search"
down_revision = "0012_monitoring"
branch_labels = None
depends_on = None

# As in app/tasks/models.py (copied: a migration must not change when the model does).
RATIOS = {
    "progress": "CAST(jobs_done AS FLOAT) / NULLIF(jobs_total, 0)",
    "events_per_job": "CAST(events_processed AS FLOAT) / NULLIF(jobs_total, 0)",
}
# SQLite: the FTS5 table of names (external content: the task table), kept by these triggers. A
# future batch-mode migration of "task" would drop them: create them again after it.
SQLITE_FTS = (
    "CREATE VIRTUAL TABLE task_name_fts USING fts5(name, content='task', content_rowid='id',"
    " tokenize='trigram case_sensitive 1')",
    "INSERT INTO task_name_fts(task_name_fts) VALUES ('rebuild')",
    "CREATE TRIGGER task_name_fts_insert AFTER INSERT ON task BEGIN"
    " INSERT INTO task_name_fts(rowid, name) VALUES (new.id, new.name); END",
    "CREATE TRIGGER task_name_fts_delete AFTER DELETE ON task BEGIN"
    " INSERT INTO task_name_fts(task_name_fts, rowid, name) VALUES ('delete', old.id, old.name); END",
    "CREATE TRIGGER task_name_fts_update AFTER UPDATE OF name ON task BEGIN"
    " INSERT INTO task_name_fts(task_name_fts, rowid, name) VALUES ('delete', old.id, old.name);"
    " INSERT INTO task_name_fts(rowid, name) VALUES (new.id, new.name); END",
)
PG_TRGM = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_task_name_trgm ON task USING gin (name gin_trgm_ops)",
)

# Columns are added in place, never in batch mode (recreating "task" on SQLite would delete the rows
# that cascade from it). SQLite adds generated columns as VIRTUAL only; PostgreSQL has STORED only.


def upgrade() -> None:
    stored = op.get_bind().dialect.name == "postgresql" or None
    for name, expression in RATIOS.items():
        op.add_column(
            "task", sa.Column(name, sa.Float(), sa.Computed(expression, persisted=stored), nullable=True)
        )
        op.create_index(f"ix_task_sort_{name}", "task", [name, "id"])
    for statement in SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else PG_TRGM:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER task_name_fts_{trigger}")
        op.execute("DROP TABLE task_name_fts")
    else:
        op.drop_index("ix_task_name_trgm", table_name="task")
    for name in RATIOS:
        op.drop_index(f"ix_task_sort_{name}", table_name="task")
        op.drop_column("task", name)
