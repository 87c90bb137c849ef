"""On PostgreSQL (a team's shared instance): tasks and chains are found by the request id in their JSON
spec and definitions, and the path catalog's unique (kind, path) holds."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.extensions import db as _db
from app.prodrequests import services
from app.prodrequests.models import CatalogEntry
from tests.prodrequests.conftest import TOKEN, make_chain, make_task

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(settings_factory, migrated_pg_url, reqsim_server):
    settings = settings_factory(
        database_url=migrated_pg_url, requests={"url": reqsim_server.url, "token": TOKEN}
    )
    application = create_app(settings)
    application.config["TESTING"] = True
    with application.app_context():
        yield application
        _db.session.remove()
        _db.engine.dispose()


def test_request_tasks_and_reconciliation_on_postgresql(app, make_user):
    user = make_user("manager")
    make_task(user, 1, request_id=3, status="done", events=10_000_000)
    make_task(user, 2, request_id=1, status="done")
    make_task(user, 3, request_id=None)
    _db.session.commit()
    assert [t.name for t in services.tasks_for_request(3)] == ["PROD2025-001.SIM"]
    report = services.reconciliation()
    assert [t.name for t, _ in report.orphan_tasks] == ["PROD2025-003.SIM"]
    assert [r.id for r, _ in report.short] == [1]
    assert 3 not in {r.id for r in report.without_tasks}


def test_request_chains_on_postgresql(app, make_user):
    user = make_user("manager")
    make_chain(user, 1, sim_request=3, reco_request=None, statuses=("done", "done"), events=10_000_000)
    make_chain(user, 2, sim_request=None, reco_request=None)
    _db.session.commit()
    assert [c.name for c in services.chains_for_request(3)] == ["PROD2025-001"]
    assert [t.name for t in services.tasks_for_request(3)] == ["PROD2025-001.SIM", "PROD2025-001.RECO"]
    report = services.reconciliation()
    assert sorted(t.name for t, _ in report.orphan_tasks) == ["PROD2025-002.RECO", "PROD2025-002.SIM"]
    assert 3 not in {r.id for r in report.without_tasks} and report.short == []


def test_a_path_is_in_the_catalog_once(app):
    path = "/cvmfs/spd.jinr.ru/images/spdroot-4.1.8.sif"
    _db.session.add(CatalogEntry(kind="container", path=path, source="scan"))
    _db.session.commit()
    _db.session.add(CatalogEntry(kind="container", path=path, source="admin"))
    with pytest.raises(IntegrityError):
        _db.session.commit()
    _db.session.rollback()
    _db.session.add(CatalogEntry(kind="exec", path=path, source="admin"))  # another kind: allowed
    _db.session.commit()
