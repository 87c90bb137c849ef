"""statistics: the per-day summary the sync keeps, failed jobs' errors per task, when each task's
jobs last moved, alerts with their deliveries and each person's notification opt-in

Revision ID: 0013_stats
Revises: 0009_actions
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = "0013_stats"
down_revision = "0009_actions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stat_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("tasks", sa.Integer(), nullable=False),
        sa.Column("jobs_done", sa.BigInteger(), nullable=False),
        sa.Column("jobs_failed", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("output_bytes", sa.BigInteger(), nullable=False),
        sa.Column("walltime_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "step", "status", "request_id", "user_id", name=op.f("pk_stat_day")),
    )
    op.create_table(
        "notify_preference",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        sa.Column("webhook", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_notify_preference_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notify_preference")),
    )
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("url", sa.String(length=300), nullable=False),
        sa.Column("raised_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("cleared_at", app.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_alert_task_id_task"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_alert_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
        sa.UniqueConstraint("key", name=op.f("uq_alert_key")),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index("ix_alert_cleared_at_user_id", ["cleared_at", "user_id"], unique=False)

    op.create_table(
        "task_error",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("example", sa.Text(), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_task_error_task_id_task"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_error")),
        sa.UniqueConstraint(
            "task_id", "source", "code", "message", name="uq_task_error_task_id_source_code_message"
        ),
    )
    with op.batch_alter_table("task_error", schema=None) as batch_op:
        batch_op.create_index("ix_task_error_source_code", ["source", "code"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_error_task_id"), ["task_id"], unique=False)

    op.create_table(
        "task_progress",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("moved_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_task_progress_task_id_task"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_progress")),
    )
    with op.batch_alter_table("task_progress", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_progress_moved_at"), ["moved_at"], unique=False)

    op.create_table(
        "alert_delivery",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("sent_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alert.id"], name=op.f("fk_alert_delivery_alert_id_alert"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_alert_delivery_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("alert_id", "user_id", "channel", name=op.f("pk_alert_delivery")),
    )


def downgrade() -> None:
    op.drop_table("alert_delivery")
    with op.batch_alter_table("task_progress", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_progress_moved_at"))

    op.drop_table("task_progress")
    with op.batch_alter_table("task_error", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_error_task_id"))
        batch_op.drop_index("ix_task_error_source_code")

    op.drop_table("task_error")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_cleared_at_user_id")

    op.drop_table("alert")
    op.drop_table("notify_preference")
    op.drop_table("stat_day")
