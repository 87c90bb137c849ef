"""indexes for counts that walked rows: launches by owner and status (the Launches page's state tabs
of one owner), audit events by outcome and action (the audit trail's outcomes and its filtered count,
read in the index)

Revision ID: 0022_count_indexes
Revises: 0021_summary_jobs_logs
"""

from alembic import op

revision = "0022_count_indexes"
down_revision = "0021_summary_jobs_logs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_launch_created_by_id_status", "launch", ["created_by_id", "status"])
    op.create_index("ix_audit_event_outcome_action", "audit_event", ["outcome", "action"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_outcome_action", table_name="audit_event")
    op.drop_index("ix_launch_created_by_id_status", table_name="launch")
