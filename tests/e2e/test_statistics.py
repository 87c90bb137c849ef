"""The statistics page in a real browser under the panel's CSP: Chart.js charts drawn from their
data tables (the fallback), the figure chooser, the splits; and the home dashboard's counts linking
to the filtered task list. The summary is built from task rows as the sync leaves them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app import clock
from app.extensions import db
from app.stats import summary
from app.tasks import services
from tests.e2e.conftest import log_in
from tests.tasks.conftest import sim_definition

pytestmark = pytest.mark.e2e


def seed(manager) -> list:
    """Four tasks as the sync stores them: three done in two different weeks, one running."""
    bunch, _, _ = services.create_bunch(sim_definition(bunch_size=4), manager, "e2e-stats", is_admin=False)
    now = clock.now()
    for i, task in enumerate(bunch.tasks):
        task.panda_task_id, task.submitted_at = 100 + i, now - timedelta(days=20)
        task.started_at = now - timedelta(days=19)
        if i < 3:
            task.panda_status, task.ended_at = "done", now - timedelta(days=14 * (i % 2) + 1)
            task.jobs_done, task.jobs_total, task.jobs_failed = 10, 10, 1
            task.events_processed, task.output_bytes, task.walltime_s = 10000, 2 * 10**12, 36000
            task.accounted_at = now
        else:
            task.panda_status, task.jobs_done, task.jobs_total = "running", 4, 10
    summary.rebuild()
    db.session.commit()
    return bunch.tasks


def test_statistics_charts_with_their_tables_and_the_dashboard(page, make_user, browser_log):
    manager = make_user("manager")
    seed(manager)
    log_in(page, manager.username)

    page.goto("/statistics/")
    totals = page.locator("#stats-totals")
    expect(totals.locator('tr[data-metric="jobs_done"] td').first).to_have_text("34")  # 3 x 10 + 4
    expect(totals.locator('tr[data-metric="output_tb"] td').first).to_have_text("6.000")
    weeks = page.locator("#weeks-chart")
    expect(weeks).to_have_attribute("data-chart-ready", "1")
    chart = "(id) => { const c = Chart.getChart(document.getElementById(id)); return [c.data.labels, c.data.datasets[0].label, c.data.datasets[0].data]; }"
    labels, name, data = page.evaluate(chart, "weeks-chart")
    table = page.locator("#weeks-table tbody tr")
    expect(table).to_have_count(len(labels))
    assert name == "Jobs processed" and sum(data) == 34  # the table's column, week by week
    assert labels == [table.nth(i).locator("th").inner_text() for i in range(len(labels))]

    page.select_option("#weeks-metric", label="Output (TB)")
    _, name, data = page.evaluate(chart, "weeks-chart")
    assert name == "Output (TB)" and sum(data) == pytest.approx(6.0)
    expect(weeks).to_have_attribute("aria-label", "Per week: Output (TB)")

    steps = page.locator("#split-1-table")
    expect(steps.locator("tbody tr")).to_have_count(1)
    expect(steps.locator("tbody th a")).to_have_attribute("href", "/tasks/?step=SIM")
    expect(page.locator("#split-1-chart")).to_have_attribute("data-chart-ready", "1")

    page.goto("/")
    mine = page.locator('#my-tasks a.status-count[data-status="running"]')
    expect(mine).to_contain_text("1")
    expect(mine).to_have_attribute("href", "/tasks/?status=running&mine=1")
    expect(page.locator("#running")).to_contain_text("PROD2025-008.SIM")
    expect(page.locator("#dashboard")).to_have_attribute("hx-get", "/statistics/dashboard")
    mine.click()
    expect(page).to_have_url("/tasks/?status=running&mine=1")

    assert browser_log.csp_violations == []
    assert browser_log.console_errors == [], browser_log.http_errors
