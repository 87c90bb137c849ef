"""Fixtures for the task tables: an app on SQLite or on PostgreSQL holding seeded tasks (bulk inserts
of rows as the sync leaves them: benchmarks/seed_tasks.py), and a logged-in viewer."""

from __future__ import annotations

import shutil

import pytest
from flask import g

from app import create_app
from app.extensions import db as _db
from benchmarks.seed_tasks import seed

SEEDED = 700


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app(request, settings_factory, migrated_sqlite):
    if request.param == "postgresql":
        settings = settings_factory(database_url=request.getfixturevalue("migrated_pg_url"))
    else:
        settings = settings_factory()
        shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    application = create_app(settings)
    application.config["TESTING"] = True

    @application.before_request
    def _fresh_csrf_cache() -> None:  # as the shared app fixture: `g` outlives each request here
        g.pop("csrf_token", None)

    with application.app_context():
        yield application
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def seeded(app):
    """SEEDED tasks in the app's database; returns the seed users' ids."""
    with _db.engine.begin() as conn:
        users = seed(conn, SEEDED, seed_value=7)
    return users
