"""Alembic environment: the connection comes from app.migrate (no alembic.ini, works when frozen)."""

from alembic import context

import app.models  # noqa: F401  (registers every table on the metadata)
from app.db import Base
from app.migrate import include_name

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `prodpanel db upgrade` (app.migrate), not the alembic CLI")

context.configure(
    connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True,
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
