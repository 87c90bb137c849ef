"""Fixtures: the requests-service simulator served on loopback, and the panel configured to use it;
helpers that save tasks and chains for requests."""

from __future__ import annotations

import shutil

import pytest

from app.chains import services as chain_services
from app.chains.models import Chain
from app.prodrequests.client import ClientConfig, RequestsClient
from app.tasks import services as task_services
from app.tasks.models import Task
from reqsim import ReqSimConfig, create_simulator, serve_in_thread
from tests.chains.conftest import chain_definition, step
from tests.conftest import panel_for_test
from tests.tasks.conftest import sim_definition

TOKEN = "s3cret-requests-token"


def make_task(
    user, number: int, request_id: int | None, status: str | None = None, events: int = 10000
) -> Task:
    """Save task PROD2025-<number>.SIM for `request_id` (not dispatched) with this PanDA status."""
    created = task_services.create_bunch(
        sim_definition(number, request_id=request_id, total_events=events), user, f"k{number}", is_admin=False
    )
    task = created.bunch.tasks[0]
    task.panda_status = status
    return task


def make_chain(
    user,
    number: int,
    sim_request: int | None,
    reco_request: int | None,
    statuses: tuple[str | None, str | None] = (None, None),
    events: int = 10000,
) -> Chain:
    """Save chain PROD2025-<number> (SIM → RECO, one task each; not dispatched) whose steps name
    these requests, its tasks with these PanDA statuses."""
    definition = step(chain_definition(number, bunch_size=1), 1, request_id=sim_request, total_events=events)
    definition = step(definition, 2, request_id=reco_request)
    chain = chain_services.create_chain(definition, user, f"chain{number}", is_admin=False).chain
    for chain_step, status in zip(chain.steps, statuses, strict=True):
        chain_step.bunch.tasks[0].panda_status = status
    return chain


@pytest.fixture
def reqsim_server():
    running = serve_in_thread(create_simulator(ReqSimConfig(token=TOKEN)))
    yield running
    running.stop()


@pytest.fixture
def reqsim(reqsim_server):
    """The simulator (ReqSimApp): `set_faults`, `put`, `calls`."""
    return reqsim_server.app


@pytest.fixture
def requests_client(reqsim_server):
    client = RequestsClient(
        ClientConfig(url=reqsim_server.url, token=TOKEN, connect_timeout_s=1, read_timeout_s=1.5)
    )
    yield client
    client.close()


@pytest.fixture
def app(settings_factory, migrated_sqlite, reqsim_server, tmp_path):
    """The panel with [requests] pointing at the simulator (short timeouts, with room for a loaded machine) and an empty CVMFS-like
    tree under tmp_path/cvmfs as its catalog globs."""
    cvmfs = tmp_path / "cvmfs" / "spd.jinr.ru"
    settings = settings_factory(
        requests={"url": reqsim_server.url, "token": TOKEN, "connect_timeout_s": 1.0, "read_timeout_s": 1.5},
        catalog={
            "container_globs": [f"{cvmfs}/images/*.sif"],
            "exec_globs": [f"{cvmfs}/production/MC/*"],
        },
    )
    shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    yield from panel_for_test(settings)

