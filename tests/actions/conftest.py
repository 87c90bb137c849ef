"""Fixtures of the task-action tests: tasks in a chosen PanDA status (no PanDA needed), the fake PanDA
for unit tests, and a panel in sandbox mode bound to a served simulator for the HTTP tests."""

from __future__ import annotations

import itertools

import pytest

from app.extensions import db as _db
from app.panda.calllog import flush_call_log
from app.tasks import services as task_services
from app.tasks.models import Task
from pandasim import SimConfig, Timings, create_simulator, serve_in_thread
from tests.fakes.panda import FakePanda, install
from tests.helpers import csrf_token
from tests.tasks.conftest import sandbox_app, sim_definition

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
    return install(app, FakePanda())


def post(client, url: str, data: dict | None = None, **kwargs):
    """POST with the CSRF token of the client's session (read from the task list)."""
    from flask import g

    g.pop("csrf_token", None)
    return client.post(url, data={"csrf_token": csrf_token(client, "/tasks/"), **(data or {})}, **kwargs)


@pytest.fixture
def sim():
    """A served simulator whose clock moves only when a test advances it; tasks whose name has
    -09x, -08x or -07x end failed, exhausted or broken."""
    config = SimConfig(
        seed=11, time_scale=0.0, job_failure_rate=0.0, timings=Timings(pickup_s=60.0),
        outcome_rules={r"-09\d\.SIM": "failed", r"-08\d\.SIM": "exhausted", r"-07\d\.SIM": "broken"},
    )  # fmt: skip
    running = serve_in_thread(create_simulator(config))
    yield running.app
    running.stop()


@pytest.fixture
def sim_panel(settings_factory, migrated_sqlite, sim):
    """The panel in sandbox mode bound to `sim` (a module's `app` fixture returns it)."""
    settings = settings_factory(panda={"read_timeout_s": 5.0, "connect_timeout_s": 1.0, "retries": 0, "transport": "v1"})
    application = sandbox_app(settings, migrated_sqlite, sim)
    application.config["TESTING"] = True
    with application.app_context():
        yield application
        flush_call_log(10)
        _db.session.remove()
        _db.engine.dispose()
