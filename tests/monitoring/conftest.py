"""Fixtures for the task tables: an app on SQLite or on PostgreSQL holding seeded tasks (bulk inserts
of rows as the sync leaves them: benchmarks/seed_tasks.py, and its summary), and a logged-in viewer."""

from __future__ import annotations

import shutil

import pytest

from app.extensions import db as _db
from app.stats import summary
from benchmarks.seed_tasks import seed
from tests.conftest import panel_for_test

SEEDED = 700


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app(request, settings_factory, migrated_sqlite):
    if request.param == "postgresql":
        settings = settings_factory(database_url=request.getfixturevalue("migrated_pg_url"))
    else:
        settings = settings_factory()
        shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    yield from panel_for_test(settings)


@pytest.fixture
def seeded(app):
    """SEEDED tasks in the app's database, with the statistics summary the sync keeps of them (the
    unfiltered counts and totals read it); returns the seed users' ids."""
    with _db.engine.begin() as conn:
        users = seed(conn, SEEDED, seed_value=7)
    summary.rebuild()
    _db.session.commit()
    return users
