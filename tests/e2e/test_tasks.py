"""Task creation in a real browser against the PanDA simulator: fill the form, see a validation
error, preview, create, watch the bunch reach PanDA, open the task pages."""

from __future__ import annotations

import re

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
    running = serve_in_thread(
        create_simulator(SimConfig(seed=3, time_scale=600.0, client_ids=("prodpanel",)))
    )
    yield running.app
    running.stop()


@pytest.fixture
def app(settings_factory, migrated_sqlite, sim):
    """The panel in sandbox mode, talking to the simulator over HTTP."""
    settings = settings_factory(panda={"read_timeout_s": 5.0, "retries": 2, "retry_backoff_s": 0.05})
    application = sandbox_app(settings, migrated_sqlite, sim)
    with application.app_context():
        yield application
        _db.session.remove()
        _db.engine.dispose()


def test_create_preview_launch_and_inspect_a_bunch(page, make_user, sim):
    user = make_user("manager")
    log_in(page, user.username)
    page.locator("#mainnav").get_by_role("link", name="Tasks", exact=True).click()
    page.locator("#new-task").click()
    expect(page.get_by_role("heading", name="Task creation")).to_be_visible()

    production = page.locator("#next-production").inner_text()
    task_name = f"{production}.SIM"
    expect(page.get_by_label("Task name")).to_have_value(task_name)
    page.get_by_label("Tasks to launch").fill("2")
    page.get_by_label("Output dataset name").fill(
        f"MC2025_S1.minbias-P8-spdroot417-dev.10GeV.{production}.SIM.1"
    )
    page.get_by_label("Total events (per task)").fill("1000")
    page.get_by_label("Events per job").fill("5000")  # too many: a field error
    page.get_by_label("Initial offset").fill("100")
    page.get_by_label("Path to execution files").fill(EXEC)
    page.get_by_label("Path to container").fill(SIF)
    page.get_by_label("Skip scout").check()
    page.locator("#preview-button").click()

    expect(page.get_by_text("events per job (5000) must not exceed total events (1000)")).to_be_visible()
    expect(page.get_by_label("Path to container")).to_have_value(SIF)  # values kept
    expect(page.locator("#preview")).to_have_count(0)

    page.get_by_label("Events per job").fill("100")
    page.locator("#preview-button").click()
    expect(page.locator("#preview")).to_contain_text("nothing has been sent")
    first_json = page.locator(".preview-json").first.inner_text()
    assert f'"taskName": "{task_name}.1"' in first_json and '"offset": 100' in first_json
    expect(page.locator(".preview-item").nth(1)).to_contain_text(f"diff against {task_name}.1")
    assert list(sim.state.select_rows("SELECT taskName FROM tasks", ())) == []  # preview sent nothing

    page.locator("#create-button").click()
    expect(page).to_have_url(re.compile(r"/tasks/bunch/\d+$"))
    expect(page.locator("#progress-count")).to_have_text("2 of 2 submitted", timeout=30_000)
    names = sorted(row[0] for row in sim.state.select_rows("SELECT taskName FROM tasks", ()))
    assert names == [f"{task_name}.1", f"{task_name}.2"]

    page.get_by_role("link", name=f"{task_name}.2").click()
    expect(page.locator("#task-name")).to_have_text(f"{task_name}.2")
    panda_id = page.locator("#panda-task-id").inner_text()
    stored = sim.state.select_rows("SELECT jediTaskID FROM tasks WHERE taskName=?", (f"{task_name}.2",))
    assert panda_id == str(stored[0][0])
    expect(page.locator("#panda-task-status")).to_contain_text("not read from PanDA yet")  # no PanDA call
    page.locator("#refresh-from-panda").click()
    expect(page.locator("#panda-task-status .status")).to_have_text(
        re.compile(r"^(registered|defined|ready|scouting|running|done|finished)$")
    )
    expect(page.locator("#manifest-download")).to_be_visible()
    expect(page.locator("#task-params")).to_contain_text('"offset": 1100', use_inner_text=False)

    # Clone it: the form says what is copied and reset, with the next production number.
    page.locator("#clone-task").click()
    expect(page.locator("#clone-info")).to_contain_text("Reset")
    expect(page.get_by_label("Initial offset")).to_have_value("1100")
    assert page.get_by_label("Task name").input_value() != task_name
    clone_name = page.get_by_label("Task name").input_value()
    page.locator("#create-button").click()
    expect(page.locator("#progress-count")).to_have_text("1 of 1 submitted", timeout=30_000)
    page.get_by_role("link", name=clone_name).click()
    expect(page.locator("#cloned-from")).to_have_text(f"{task_name}.2")

    # The task list: newest first, filtered by name, sorted by clicking a header.
    page.locator("#mainnav").get_by_role("link", name="Tasks", exact=True).click()
    expect(page.locator("#tasks-table tbody tr").first).to_contain_text(clone_name)
    page.locator("#f-q").fill(task_name)
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.locator("#tasks-table tbody tr")).to_have_count(2)
    page.get_by_role("link", name="Task name", exact=True).click()  # by name, descending
    expect(page).to_have_url(re.compile(r"sort=name&order=desc"))
    page.get_by_role("link", name="Task name ▼").click()  # by name, ascending; the filter is kept
    expect(page.locator("#tasks-table tbody tr").first).to_contain_text(f"{task_name}.1")
    expect(page.locator("#tasks-table tbody tr")).to_have_count(2)
