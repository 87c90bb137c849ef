"""launch schedules: a launch may wait for another task to be done or to reach N % of its jobs
(after_task_id, at_percent), carries a flag once its owner's token became unusable (token_problem),
and users keep the time zone they schedule in (user.time_zone)

Revision ID: 0011_launch_schedule
Revises: 0014_api_tokens
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_launch_schedule"
down_revision = "0014_api_tokens"  # re-chained after main's head at landing
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("launch") as batch_op:
        batch_op.add_column(sa.Column("after_task_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("at_percent", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("token_problem", sa.String(length=500), nullable=False, server_default="")
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_launch_after_task_id_task"), "task", ["after_task_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index(batch_op.f("ix_launch_after_task_id"), ["after_task_id"], unique=False)
        batch_op.create_check_constraint("at_percent", "at_percent IS NULL OR at_percent BETWEEN 1 AND 100")
    # In place, never in batch mode: recreating "user" on SQLite would delete the rows whose foreign
    # keys cascade from it (sessions, tokens).
    op.add_column("user", sa.Column("time_zone", sa.String(length=64), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("user", "time_zone")
    with op.batch_alter_table("launch") as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_launch_at_percent"), type_="check")
        batch_op.drop_index(batch_op.f("ix_launch_after_task_id"))
        batch_op.drop_constraint(batch_op.f("fk_launch_after_task_id_task"), type_="foreignkey")
        batch_op.drop_column("token_problem")
        batch_op.drop_column("at_percent")
        batch_op.drop_column("after_task_id")
