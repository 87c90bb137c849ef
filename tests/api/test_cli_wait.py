"""`prodpanel chain submit FILE --wait` against the PanDA simulator over real HTTP, with the background
jobs running as under `prodpanel serve`: the command returns once step 1's tasks are in PanDA (from the
local panel; a remote panel is polled through the same calls, tests/api/test_cli.py covers that transport)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.cli import main
from app.extensions import db as _db
from app.panda.calllog import flush_call_log
from app.runtime import start_scheduler
from pandasim import SimConfig, Timings, create_simulator, serve_in_thread
from tests.api.test_examples import EXAMPLES
from tests.tasks.conftest import sandbox_app


@pytest.fixture
def sim():
    config = SimConfig(seed=3, time_scale=0.0, client_ids=("prodpanel",), timings=Timings(pickup_s=60.0))
    running = serve_in_thread(create_simulator(config))
    yield running.app
    running.stop()


@pytest.fixture
def app(settings_factory, migrated_sqlite, sim):
    settings = settings_factory(
        panda={"read_timeout_s": 5.0, "connect_timeout_s": 1.0, "retries": 1, "retry_backoff_s": 0.05, "transport": "v1"},
        scheduler={"dispatch_interval_s": 1.0},
    )  # fmt: skip
    application = sandbox_app(settings, migrated_sqlite, sim)
    application.config["TESTING"] = True
    with application.app_context():
        stop_jobs = start_scheduler(application)  # the dispatch job sends the launches, as under `serve`
        yield application
        stop_jobs()
        flush_call_log(10)
        _db.session.remove()
        _db.engine.dispose()


def in_panda(sim) -> set[str]:
    return {row[0] for row in sim.state.select_rows("SELECT taskName FROM tasks", ())}


def test_chain_submit_waits_until_step_one_is_in_panda(app, sim, runner, make_user):
    user = make_user("manager")
    local = runner.invoke(main, ["chain", "submit", str(EXAMPLES / "sim-reco-chain.yaml"), "--wait",
                                 "--timeout", "60", "--user", user.username])  # fmt: skip
    assert local.exit_code == 0, local.output
    assert "in PanDA" in local.output  # the progress bar
    assert {f"PROD2026-101.SIM.{i}" for i in (1, 2, 3)} <= in_panda(sim)  # there when the command returned


def test_chain_submit_at_a_time_then_wait_gives_up_with_its_exit_code(app, runner, make_user):
    """Launched at a time in your zone (--at): the launches wait for it, and --wait stops at its
    timeout with a clear message and exit code 6."""
    user = make_user("manager").username
    at = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    stuck = runner.invoke(main, ["chain", "submit", str(EXAMPLES / "sim-reco-chain.yaml"), "--at",
                                 at.strftime("%Y-%m-%dT%H:%M"), "--wait", "--timeout", "0.5", "--user", user])  # fmt: skip
    assert stuck.exit_code == 6 and "3 task(s) of step 1 not in PanDA after" in stuck.output, stuck.output
    upcoming = runner.invoke(main, ["launches", "list", "--state", "upcoming", "--json", "--user", user])
    due = {launch["due_at"] for launch in json.loads(upcoming.output)["items"]}
    assert due == {at.isoformat()}  # the user's zone is UTC
