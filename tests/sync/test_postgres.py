"""The sync on PostgreSQL (the shared-instance database): owners are grouped by the PanDA user name
read from the stored task parameters (JSON), and a cycle stores what PanDA says."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db as _db
from app.panda.calllog import flush_call_log
from app.sync import jobs
from app.sync.models import TaskStatusChange
from app.tasks.models import Task
from tests.tasks.conftest import sandbox_app

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(settings_factory, migrated_sqlite, migrated_pg_url, sim):
    settings = settings_factory(
        database_url=migrated_pg_url, panda={"transport": "v1", "retries": 0, "read_timeout_s": 5.0}
    )
    application = sandbox_app(settings, migrated_sqlite, sim)
    with application.app_context():
        yield application
        flush_call_log(10)
        _db.session.remove()
        _db.engine.dispose()


def test_a_cycle_on_postgresql(sim, submit, make_user):
    alice = make_user("manager")
    submit(3, owner=alice)
    [group] = jobs.active_groups()
    assert group.owner_id == alice.id and group.user_name == alice.name and len(group.tasks) == 3
    sim.advance(150)
    report = jobs.sync_cycle()
    assert report.calls == 1 and report.updated == 3 and report.errors == []
    _db.session.expire_all()
    assert {t.panda_status for t in _db.session.scalars(select(Task))} == {"running"}
    assert len(_db.session.scalars(select(TaskStatusChange)).all()) == 3
