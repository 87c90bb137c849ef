"""The task flow on PostgreSQL (a team's shared instance): constraints, claims and concurrent creates."""

from __future__ import annotations

import threading

import pytest
from flask import g
from sqlalchemy import func, select

from app.extensions import db as _db
from app.launches import dispatcher
from app.launches.models import Launch
from app.tasks import services
from app.tasks.models import TaskBunch
from tests.helpers import csrf_token, settle_launches
from tests.tasks.conftest import form_data, sim_definition

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(pg_app):
    return pg_app


def test_concurrent_creates_and_dispatch_on_postgresql(app, client, login_as, fake_panda):
    login_as("manager")
    g.pop("csrf_token", None)
    token = csrf_token(client, "/tasks/")
    cookie = client.get_cookie("prodpanel_session").value
    data = {"csrf_token": token, **form_data(sim_definition(bunch_size=5), key="pg")}
    results = []

    def submit():
        other = app.test_client()
        other.set_cookie("prodpanel_session", cookie)
        results.append(other.post("/tasks/create", data=data).status_code)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [302] * 6
    assert settle_launches(60)
    assert _db.session.scalar(select(func.count()).select_from(TaskBunch)) == 1
    assert _db.session.scalar(select(func.count()).select_from(Launch)) == 5
    assert sorted(fake_panda.submits) == [f"PROD2025-008.SIM.{i}" for i in range(1, 6)]
    bunch = _db.session.scalar(select(TaskBunch))
    assert services.bunch_progress(bunch).submitted == 5
    # A claimed row cannot be claimed again, by any connection.
    launch = bunch.tasks[0].launches[0]
    assert not dispatcher.claim(launch.id, launch.created_at)


def test_a_chain_s_bunch_pages_on_postgresql(app, client, login_as):
    """The bunch page names the bunches it reads and that read it (PostgreSQL cannot DISTINCT a row
    with a JSON column: the relations go through the bunch ids)."""
    from app.chains import services as chains
    from tests.chains.conftest import chain_definition

    user = login_as("manager")
    chain = chains.create_chain(chain_definition(bunch_size=2), user, "pg-chain", is_admin=False).chain
    _db.session.commit()
    sim, reco = (step.bunch for step in chain.steps)
    sim_page = client.get(f"/tasks/bunch/{sim.id}")
    reco_page = client.get(f"/tasks/bunch/{reco.id}")
    assert sim_page.status_code == reco_page.status_code == 200
    assert f'Read by</dt><dd class="col-sm-10"><a href="/tasks/bunch/{reco.id}">' in sim_page.get_data(as_text=True)
    assert f'Reads</dt><dd class="col-sm-10"><a href="/tasks/bunch/{sim.id}">' in reco_page.get_data(as_text=True)
    assert client.get(f"/chains/{chain.id}").status_code == 200 and client.get("/").status_code == 200
