"""Every action × status × role combination of the matrix through the service and through a forged
POST (generated from the matrix): an allowed one is sent to PanDA (a fake here) and recorded; a
refused one answers 403/409 with the matrix's reason, and nothing is sent."""

from __future__ import annotations

import shutil
from html import unescape

import pytest
from flask import g
from sqlalchemy import select

from app import create_app
from app.actions import services
from app.actions.forms import FIELDS
from app.actions.matrix import STATUSES, Action, check
from app.actions.models import TaskCommand
from app.audit.models import AuditEvent
from app.auth.roles import ROLES
from app.auth.services import create_local_user
from app.config import load_settings
from app.extensions import db
from app.tasks.models import Task
from tests.actions.conftest import new_task
from tests.conftest import TEST_PASSWORD
from tests.fakes.panda import FakePanda, install
from tests.helpers import csrf_token

# Valid parameters for the actions that need some.
PARAMS = {
    "priority": {"priority": "700"},
    "increase_attempts": {"increase": "2"},
    "reassign": {"cloud": "JINR"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, migrated_sqlite):
    """One panel for the whole module: a user per role logged in, one task, the fake PanDA."""
    folder = tmp_path_factory.mktemp("matrix") / "instance"
    folder.mkdir(mode=0o700, parents=True)
    shutil.copy(migrated_sqlite, folder / "prodpanel.sqlite3")
    app = create_app(load_settings(folder, env={}))
    app.config["TESTING"] = True
    fake = install(app, FakePanda())
    clients = {}
    with app.app_context():
        users = {role: create_local_user(f"m-{role}", TEST_PASSWORD, role=role) for role in ROLES}
        db.session.commit()
        task_id = new_task(users["admin"]).id
        user_ids = {role: u.id for role, u in users.items()}
    for role in ROLES:
        client = app.test_client()
        with app.app_context():
            token = csrf_token(client)
            client.post(
                "/login", data={"csrf_token": token, "username": f"m-{role}", "password": TEST_PASSWORD}
            )
            g.pop("csrf_token", None)
            clients[role] = (client, csrf_token(client, "/tasks/"))
    yield app, fake, clients, task_id, user_ids
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _set_status(app, task_id: int, status: str | None) -> None:
    with app.app_context():
        task = db.session.get(Task, task_id)
        task.panda_status = status
        db.session.commit()


COMBINATIONS = [(a.value, s, r) for a in Action for s in (*STATUSES, None) for r in ROLES]


@pytest.mark.parametrize(("action", "status", "role"), COMBINATIONS, ids=lambda v: str(v))
def test_forged_post(world, action, status, role):
    app, fake, clients, task_id, _ = world
    _set_status(app, task_id, status)
    client, token = clients[role]
    sent_before = len(fake.commands)
    data = {"csrf_token": token, "comment": "matrix test", **PARAMS.get(action, {})}
    if action == "modify":  # the modification's own form, confirmed
        data.update({"memory_mb": str(3000 + len(fake.commands)), "confirmed": "y"})  # always a change
    response = client.post(f"/tasks/{task_id}/actions/{action}", data=data)
    expected = check(action, status, role)
    if expected:
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        assert len(fake.commands) == sent_before + 1
    else:
        assert response.status_code == expected.http_status
        assert expected.reason in unescape(response.get_data(as_text=True))
        assert len(fake.commands) == sent_before  # nothing was sent


@pytest.mark.parametrize(("action", "status", "role"), COMBINATIONS, ids=lambda v: str(v))
def test_service(world, action, status, role):
    app, fake, _, task_id, user_ids = world
    _set_status(app, task_id, status)
    with app.app_context():
        task = db.session.get(Task, task_id)
        from app.auth.models import User

        user = db.session.get(User, user_ids[role])
        expected = check(action, status, role)
        assert services.verdict(task, action, user) == expected
        params = (
            {"field": "memory_mb", "from": None, "to": 3000}
            if action == "modify"
            else services.parse_params(action, PARAMS.get(action, {}))
        )
        sent_before = len(fake.commands)
        if expected:
            command = services.act_on_task(task, action, params, user, "matrix test", client=fake)
            assert command.outcome == "accepted" and len(fake.commands) == sent_before + 1
        else:
            with pytest.raises(services.ActionRefused) as refused:
                services.act_on_task(task, action, params, user, "matrix test", client=fake)
            assert refused.value.verdict == expected and len(fake.commands) == sent_before
            denial = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
            assert denial.action == "task.action_refused" and denial.details["reason"] == expected.reason
        db.session.rollback()


def test_the_action_pages_show_every_field_they_need(world):
    """Each action's page offers the fields its parameters need (FIELDS)."""
    app, _, clients, task_id, _ = world
    client, _ = clients["admin"]
    for action, names in FIELDS.items():
        _set_status(app, task_id, next(s for s in STATUSES if check(action, s, "admin")))
        html = client.get(f"/tasks/{task_id}/actions/{action}").get_data(as_text=True)
        for name in names:
            assert f'name="{name}"' in html, (action, name)


def test_commands_are_recorded(world):
    app, _, _, task_id, _ = world
    with app.app_context():
        assert (
            db.session.scalar(select(TaskCommand).where(TaskCommand.task_id == task_id).limit(1)) is not None
        )
