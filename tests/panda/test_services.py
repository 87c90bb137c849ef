"""The Flask side wired together in sandbox mode: the simulator on loopback, sandbox tokens from
the token vault, the client from panda_client_for, the calls in panda_call, PanDA in /healthz."""

import json
import re

import pytest
from sqlalchemy import select

from app.panda.calllog import flush_call_log
from app.panda.errors import PandaAuthError, PandaNotFound, PandaRoleMissing
from app.panda.models import PandaCall
from app.panda.sandbox import attach_sandbox, start_sandbox
from app.panda.services import panda_client_for
from tests.panda.test_contract import task_params


@pytest.fixture
def sandbox(app):
    running = start_sandbox(app.config["SETTINGS"])
    attach_sandbox(app, running)
    yield running
    running.stop()


def test_healthz_reports_panda_alive_in_sandbox(client, sandbox):
    body = client.get("/healthz").get_json()
    assert body["panda"]["ok"] is True and body["panda"]["sandbox"] is True
    assert body["panda"]["transport"] == "v1" and body["panda"]["url"] == sandbox.url


def test_manager_submits_through_the_vault_and_the_log_shows_it(app, db, make_user, sandbox):
    manager = make_user("manager")
    client = panda_client_for(app.config["SETTINGS"])
    result = client.submit(manager, task_params("spd.mc.sandbox.services.1"))
    sandbox.app.advance(200)
    assert client.get_status(manager, result.task_id)
    assert flush_call_log(10)
    rows = db.session.scalars(
        select(PandaCall).where(PandaCall.user_id == manager.id).order_by(PandaCall.id)
    ).all()
    assert [r.method for r in rows] == ["get_user_attributes", "submit", "get_status"]
    assert rows[1].task_id == result.task_id and rows[1].server == sandbox.url
    assert "Bearer" not in str(rows[1].params) and "eyJ" not in str(rows[1].params)


def test_viewer_cannot_submit_production_tasks(app, make_user, sandbox, settings_factory):
    viewer = make_user("viewer")
    # A viewer's sandbox token carries only the VO group: with Origin spd.production PanDA says 403,
    # with Origin spd (no role) it answers is_production_user=false and the client refuses.
    client = panda_client_for(app.config["SETTINGS"])
    with pytest.raises(PandaAuthError) as info:
        client.submit(viewer, task_params("spd.mc.sandbox.services.2"))
    assert "spd/production" in str(info.value)
    settings = settings_factory(panda={"role": ""})
    client = panda_client_for(settings, url=sandbox.url)
    with pytest.raises(PandaRoleMissing):
        client.submit(viewer, task_params("spd.mc.sandbox.services.3"))


JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]*")


def test_no_logged_call_holds_a_token(app, db, make_user, sandbox):
    from app.tokens.services import token_for

    manager, viewer = make_user("manager"), make_user("viewer")
    tokens = {token_for(manager), token_for(viewer)}
    client = panda_client_for(app.config["SETTINGS"])
    task_id = client.submit(manager, task_params("spd.mc.sandbox.services.jwt")).task_id
    with pytest.raises(PandaNotFound):  # the "not found" window right after submit
        client.get_status(manager, task_id)
    with pytest.raises(PandaAuthError):  # HTTP 403 with the server's reason
        client.get_status(viewer, task_id)
    # A token pasted into an argument is masked too.
    client.get_tasks_detailed_info_since(manager, filters={"taskName": next(iter(tokens))})
    assert flush_call_log(10)
    rows = db.session.scalars(select(PandaCall)).all()
    assert {r.method for r in rows} >= {"submit", "get_status", "get_tasks_detailed_info_since"}
    assert {r.outcome for r in rows} >= {"ok", "not_found", "auth"}
    for row in rows:
        text = json.dumps([row.params, row.message, row.server, row.method, row.transport])
        assert not JWT.search(text) and not any(token in text for token in tokens), row


def test_sandbox_banner_only_without_a_panda_url(settings_factory):
    from app import create_app

    sandbox = create_app(settings_factory()).test_client()
    assert "SANDBOX" in sandbox.get("/login").get_data(as_text=True)
    real = create_app(settings_factory(panda={"url": "http://127.0.0.1:1"})).test_client()
    assert "SANDBOX" not in real.get("/login").get_data(as_text=True)
