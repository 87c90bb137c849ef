"""token vault and server-side sessions

Revision ID: 0003_tokens
Revises: 0002_panda
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import app.db  # noqa: F401

revision = "0003_tokens"
down_revision = "0002_panda"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
