"""Claims on PostgreSQL (a team's shared instance): another instance's lock is skipped, never waited for."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from app.launches import dispatcher
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.tasks import services
from tests.tasks.conftest import sim_definition

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(pg_app):
    return pg_app


def test_claim_skips_a_row_another_instance_holds(app, db, make_user, migrated_pg_url):
    """Without SKIP LOCKED the claim would wait for the other transaction (here: fail on lock_timeout)."""
    bunch = services.create_bunch(sim_definition(), make_user("manager"), "k", is_admin=False)[0]
    db.session.commit()
    launch_id = bunch.tasks[0].launches[0].id
    other = create_engine(migrated_pg_url)
    try:
        with other.connect() as holder:
            holder.execute(text("SELECT id FROM launch WHERE id = :id FOR UPDATE"), {"id": launch_id})
            db.session.execute(text("SET lock_timeout = '2s'"))
            assert not dispatcher.claim(launch_id, bunch.created_at)
            holder.rollback()
    finally:
        other.dispose()
    assert dispatcher.claim(launch_id, bunch.created_at)
    assert db.session.get(Launch, launch_id).status == LaunchStatus.SENDING
