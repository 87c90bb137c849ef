"""task definitions, launches (outbox), manifests

Revision ID: 0004_tasks
Revises: 0003_tokens
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import app.db  # noqa: F401

revision = "0004_tasks"
down_revision = "0003_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
