"""A chain in a real browser against the PanDA simulator: build it with Add step and Remove (htmx),
see a constraint error, fix it, preview, create, and follow it to done on the chain page."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from app.extensions import db as _db
from pandasim import SimConfig, create_simulator, serve_in_thread
from tests.e2e.conftest import log_in
from tests.tasks.conftest import sandbox_app

pytestmark = pytest.mark.e2e

EXEC = "/cvmfs/spd.jinr.ru/production/MC/minbias-P8-spdroot417-dev.10GeV.V01"
SIF = "/cvmfs/spd.jinr.ru/images/spdroot-dev-4.1.7.sif"


@pytest.fixture
def sim():
    # 20 000 simulated seconds per real second: a 10-job task is done within a second or two.
    config = SimConfig(seed=4, time_scale=20000.0, client_ids=("prodpanel",), job_failure_rate=0.0)
    running = serve_in_thread(create_simulator(config))
    yield running.app
    running.stop()


@pytest.fixture
def app(settings_factory, migrated_sqlite, sim):
    settings = settings_factory(panda={"read_timeout_s": 5.0, "retries": 2, "retry_backoff_s": 0.05})
    application = sandbox_app(settings, migrated_sqlite, sim)
    with application.app_context():
        yield application
        _db.session.remove()
        _db.engine.dispose()


def test_build_fix_launch_and_follow_a_chain(page, make_user, sim):
    user = make_user("manager")
    log_in(page, user.username)
    page.locator("#mainnav").get_by_role("link", name="Chains").click()
    page.locator("#new-chain").click()
    expect(page.get_by_role("heading", name="Create chain")).to_be_visible()
    production = page.locator("#name").input_value()
    expect(page.locator("#steps-0-task_name")).to_have_value(f"{production}.SIM")

    page.locator("#steps-0-bunch_size").fill("2")
    page.locator("#steps-0-total_events").fill("1000")
    page.locator("#steps-0-events_per_job").fill("100")
    page.locator("#steps-0-exec_path").fill(EXEC)
    page.locator("#steps-0-container_path").fill(SIF)
    page.locator("#steps-0-skip_scout").check()

    # Add two steps and remove the last one, all without a page load (htmx swaps the steps).
    page.get_by_role("button", name="Add a step after the last one (everything derivable prefilled)").click()
    expect(page.locator("#steps-1-task_name")).to_have_value(f"{production}.RECO")
    expect(page.locator("#steps-1-exec_path")).to_have_value(EXEC)
    expect(page.locator("#step-2-derived")).to_contain_text("1000 per task")
    page.get_by_role("button", name="Add a step after the last one (everything derivable prefilled)").click()
    expect(page.locator("fieldset.chain-step")).to_have_count(3)
    page.get_by_role("button", name="Remove step 3").click()
    expect(page.locator("fieldset.chain-step")).to_have_count(2)
    assert page.url.endswith("/chains/new")  # no navigation: the rows changed in place

    # A constraint error: the RECO step does not have as many tasks as the SIM step.
    page.locator("#steps-1-bunch_size").fill("3")
    page.locator("#preview-button").click()
    expect(page.locator("#chain-errors")).to_contain_text(
        "step 2 (RECO), tasks to launch: 3 does not match step 1's 2; each task of step 1 gets its own RECO child"
    )
    expect(page.locator("#steps-0-exec_path")).to_have_value(EXEC)  # nothing typed was lost
    page.locator("#steps-1-bunch_size").fill("2")
    page.locator("#preview-button").click()
    expect(page.locator("#preview")).to_contain_text("2 step(s), 4 task(s) — nothing has been saved or sent")
    expect(page.locator("#preview-step-2")).to_contain_text(f"{production}.SIM.2")
    assert list(sim.state.select_rows("SELECT taskName FROM tasks", ())) == []

    page.locator("#create-button").click()
    expect(page).to_have_url(re.compile(r"/chains/\d+$"))
    expect(page.locator("#chain-name")).to_contain_text(production)

    # Follow it to done: the manager refreshes from PanDA until every task has ended.
    deadline = time.monotonic() + 60
    while "Finished:" not in page.locator("#chain-state").inner_text():
        assert time.monotonic() < deadline, page.locator("#chain-flow").inner_text()
        page.locator("#refresh-chain").click()
        page.wait_for_load_state()
    expect(page.locator("#flow-step-2 .chain-tasks tbody tr")).to_have_count(2)
    expect(page.locator("#chain-flow .status-done")).to_have_count(4)
    expect(page.locator("#flow-step-2")).to_contain_text(f"{production}.SIM.1")  # each RECO's parent
