"""The stats tests run on the sync tests' fixtures (the panel in sandbox mode against a served
simulator whose clock moves only when a test advances it), with jobs that fail."""

from __future__ import annotations

import pytest

from pandasim import SimConfig, Timings, create_simulator, serve_in_thread
from tests.sync.conftest import app, queue_settings, submit, sync_settings  # noqa: F401


@pytest.fixture
def sim():
    """A simulator where about one job in four fails for good, with the pilots' varied errors."""
    config = SimConfig(seed=7, time_scale=0.0, job_failure_rate=0.25, timings=Timings(pickup_s=60.0))
    running = serve_in_thread(create_simulator(config))
    yield running.app
    running.stop()
