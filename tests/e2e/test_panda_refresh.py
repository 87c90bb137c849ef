"""The task list refreshes its active rows whole in place (htmx, out-of-band swaps of each row) when
the sync stored something new: status, jobs, priorities, times; a ticked box stays ticked; no reload,
no PanDA call from the page, no CSP violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.extensions import db as _db
from app.sync import jobs
from app.tasks import services
from pandasim import SimConfig, Timings, create_simulator, serve_in_thread
from tests.e2e.conftest import log_in
from tests.helpers import bunch_counts, settle_launches
from tests.tasks.conftest import sandbox_app, sim_definition

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim():
    running = serve_in_thread(
        create_simulator(SimConfig(seed=5, time_scale=0.0, timings=Timings(pickup_s=60.0)))
    )
    yield running.app
    running.stop()


@pytest.fixture
def app(settings_factory, migrated_sqlite, sim):
    settings = settings_factory(panda={"transport": "v1", "retries": 0}, sync={"page_refresh_s": 1.0})
    application = sandbox_app(settings, migrated_sqlite, sim)
    with application.app_context():
        yield application
        _db.session.remove()
        _db.engine.dispose()


def test_active_rows_refresh_in_place(page, make_user, sim, browser_log):
    manager = make_user("manager")
    bunch, _, _ = services.create_bunch(sim_definition(bunch_size=2), manager, "e2e-sync", is_admin=False)
    _db.session.commit()
    assert settle_launches() and bunch_counts(bunch.id) == {"submitted": 2}
    task = bunch.tasks[0]
    log_in(page, manager.username)
    page.goto("/tasks/?cols=name,status,priority_current,submitted_at,started_at")
    state = page.locator(f"#panda-state-{task.id}")
    expect(state).to_contain_text("not read yet")
    row = page.locator(f"#task-row-{task.id} td")
    expect(row.nth(3)).to_have_text("—")  # current priority, after the selection box: not read yet
    expect(row.nth(4)).to_have_text("—")  # submit time
    page.locator(f"#select-task-{task.id}").check()
    page.evaluate("() => { window.__notReloaded = true; }")

    calls = sum(sim.calls.values())
    sim.advance(150)
    jobs.sync_cycle()  # the background job stores "running"; the page picks it up by itself
    expect(state.locator(".status")).to_have_text("running")
    expect(state).to_contain_text("0/10 jobs")
    _db.session.refresh(task)
    expect(row.nth(3)).to_have_text(f"{task.priority_current:,}".replace(",", " "))  # the whole row, not just status
    expect(row.nth(4).locator("time")).to_have_attribute("datetime", task.submitted_at.isoformat().replace("+00:00", "Z"))
    expect(page.locator(f"#select-task-{task.id}")).to_be_checked()  # the ticked box kept
    assert page.evaluate("() => window.__notReloaded") is True  # swapped in place, not reloaded
    assert sum(sim.calls.values()) == calls + 1  # the sync's one listing; the page asked PanDA nothing
    assert browser_log.console_errors == [], browser_log.http_errors
