"""Fixtures of the sync tests: the panel in sandbox mode bound to a served simulator whose clock
moves only when a test advances it, and bunches submitted to it synchronously."""

from __future__ import annotations

import pytest

from app.extensions import db as _db
from app.tasks import services
from app.tasks.models import TaskBunch
from pandasim import SimConfig, Timings, create_simulator, serve_in_thread
from tests.conftest import panel_for_test
from tests.helpers import bunch_counts, settle_launches
from tests.tasks.conftest import sandbox_app, sim_definition


@pytest.fixture
def sim():
    config = SimConfig(seed=5, time_scale=0.0, job_failure_rate=0.0, timings=Timings(pickup_s=60.0))
    running = serve_in_thread(create_simulator(config))
    yield running.app
    running.stop()


@pytest.fixture
def sync_settings():
    """Overrides of the [sync] section for one test (the app fixture reads it)."""
    return {}


@pytest.fixture
def queue_settings():
    """Overrides of the [queue] section for one test."""
    return {}


@pytest.fixture
def app(settings_factory, migrated_sqlite, sim, sync_settings, queue_settings):
    settings = settings_factory(
        panda={"read_timeout_s": 5.0, "connect_timeout_s": 1.0, "retries": 0, "transport": "v1"},
        sync=sync_settings,
        queue=queue_settings,
    )
    yield from panel_for_test(sandbox_app(settings, migrated_sqlite, sim))


@pytest.fixture
def submit(app, make_user):
    """submit(n, owner=None, number=8) -> the bunch of n tasks, each sent to the simulator once."""

    def run(n: int = 1, owner=None, number: int = 8, **changes) -> TaskBunch:
        owner = owner or make_user("manager")
        definition = sim_definition(number=number, bunch_size=n, **changes)
        bunch, _, _ = services.create_bunch(definition, owner, f"sync-{number}", is_admin=False)
        _db.session.commit()
        assert settle_launches()
        counts = bunch_counts(bunch.id)
        assert counts == {"submitted": n}, counts
        _db.session.expire_all()
        return _db.session.get(TaskBunch, bunch.id)

    return run
