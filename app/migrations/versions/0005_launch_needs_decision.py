"""launches awaiting a manager's decision get a status of their own (needs_decision)

Until now they were status 'unknown' with the INCONCLUSIVE sentence in `error`.

Revision ID: 0005_launch_needs_decision
Revises: 0004_tasks
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_launch_needs_decision"
down_revision = "0004_tasks"
branch_labels = None
depends_on = None

OLD = "status IN ('pending', 'sending', 'submitted', 'failed', 'unknown', 'cancelled')"
NEW = "status IN ('pending', 'sending', 'submitted', 'failed', 'unknown', 'needs_decision', 'cancelled')"
# The dispatcher's sentence for a submit PanDA cannot settle (app/launches/dispatcher.py: INCONCLUSIVE).
INCONCLUSIVE = (
    "PanDA cannot confirm whether this task arrived (its task listing hides tasks sharing a request id). "
    "Check PanDA for the task name; if it is not there, a manager marks it not submitted, then resends."
)
launch = sa.table("launch", sa.column("status", sa.String), sa.column("error", sa.Text))


def upgrade() -> None:
    with op.batch_alter_table("launch") as batch_op:
        batch_op.drop_constraint(op.f("ck_launch_status"), type_="check")
    op.execute(
        launch.update()
        .where(launch.c.status == "unknown", launch.c.error == INCONCLUSIVE)
        .values(status="needs_decision")
    )
    with op.batch_alter_table("launch") as batch_op:
        batch_op.create_check_constraint(op.f("ck_launch_status"), NEW)


def downgrade() -> None:
    with op.batch_alter_table("launch") as batch_op:
        batch_op.drop_constraint(op.f("ck_launch_status"), type_="check")
    op.execute(launch.update().where(launch.c.status == "needs_decision").values(status="unknown"))
    with op.batch_alter_table("launch") as batch_op:
        batch_op.create_check_constraint(op.f("ck_launch_status"), OLD)
