"""Fixtures of the task-action tests: tasks in a chosen PanDA status (no PanDA needed), the fake PanDA
for unit tests, and a panel in sandbox mode bound to a served simulator for the HTTP tests."""

from __future__ import annotations

import itertools

import pytest

from app.extensions import db as _db
from app.extensions import panda_clients
from app.tasks import services as task_services
from app.tasks.models import Task
from tests.fakes.panda import FakePanda
from tests.helpers import csrf_token
from tests.tasks.conftest import sim_definition

_numbers = itertools.count(100)


def new_task(owner, status: str | None = "running", panda_id: int | None = 5000, bunch_size: int = 1) -> Task:
    """A saved task (of a new bunch) as the sync would have stored it: PanDA id and status."""
    number = next(_numbers)
    bunch, _, _ = task_services.create_bunch(
        sim_definition(number=number, bunch_size=bunch_size), owner, f"act-{number}", is_admin=False
    )
    for index, task in enumerate(bunch.tasks):
        task.panda_task_id = None if panda_id is None else panda_id + number * 100 + index
        task.panda_status = status
    _db.session.commit()
    return bunch.tasks[0]


@pytest.fixture
def fake_panda(app) -> FakePanda:
    fake = FakePanda()
    panda_clients.init_app(app, lambda **_: fake)
    return fake


def post(client, url: str, data: dict | None = None, **kwargs):
    """POST with the CSRF token of the client's session (read from the task list)."""
    from flask import g

    g.pop("csrf_token", None)
    return client.post(url, data={"csrf_token": csrf_token(client, "/tasks/"), **(data or {})}, **kwargs)
