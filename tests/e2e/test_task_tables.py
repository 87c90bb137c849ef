"""The task tables in a real browser: counts per status, choosing columns (kept for the user),
filtering, sorting, keyset paging, opening a task and coming back to the same state, the successful
table's totals; no console, CSP or JavaScript errors (the page fixture checks)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.extensions import db as _db
from app.stats import summary
from app.tasks import services
from benchmarks.seed_tasks import seed
from tests.e2e.conftest import log_in
from tests.tasks.conftest import sim_definition

pytestmark = pytest.mark.e2e


def _numbers(texts: list[str]) -> list[int]:
    return [int(t.replace(" ", "")) for t in texts if t.strip() not in ("", "—")]


def test_choose_columns_filter_sort_page_open_and_come_back(page, make_user, browser_log):
    manager = make_user("manager")
    with _db.engine.begin() as conn:
        seed(conn, 400, seed_value=3)
    summary.rebuild()  # as the sync keeps it: the unfiltered counts and totals read it
    services.create_bunch(sim_definition(number=900), manager, "e2e-tables", is_admin=False)
    _db.session.commit()
    viewer = make_user("viewer")
    log_in(page, viewer.username)

    page.goto("/tasks/")
    expect(page.locator('#status-counts [data-status="done"]')).to_be_visible()  # loaded after the page
    expect(page.locator("#tasks-table tbody tr")).to_have_count(50)

    # Select fields: drop Creator, add Cloud; the choice stays for this user.
    page.locator("#column-chooser summary").click()
    page.get_by_role("checkbox", name="Creator", exact=True).uncheck()
    page.get_by_role("checkbox", name="Cloud", exact=True).check()
    page.get_by_role("button", name="Save columns").click()
    expect(page.locator('th[data-col="cloud"]')).to_be_visible()
    expect(page.locator('th[data-col="creator"]')).to_have_count(0)
    page.reload()
    expect(page.locator('th[data-col="cloud"]')).to_be_visible()

    # Filter: done tasks of the seeded SIM bunches, by name prefix and status.
    page.locator("#f-q").fill("PROD2025-0")
    page.locator("#f-status").select_option(["done"])
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page).to_have_url(re.compile(r"q=PROD2025-0.*status=done"))
    statuses = page.locator("#tasks-table tbody td .panda-state .badge").all_inner_texts()
    assert statuses and set(statuses) == {"done"}

    # Sort by total events, most first, then fewest first; the filter is kept.
    page.locator('th[data-col="events_total"] a').click()
    expect(page).to_have_url(re.compile(r"status=done.*sort=events_total&order=desc"))
    header = page.locator("#tasks-table thead th").all_inner_texts()
    index = next(i for i, h in enumerate(header) if h.startswith("Total events")) + 1
    column = page.locator(f"#tasks-table tbody tr td:nth-child({index})")
    events = _numbers(column.all_inner_texts())
    assert events == sorted(events, reverse=True) and len(events) > 10
    page.get_by_role("link", name="Total events ▼").click()
    expect(page).to_have_url(re.compile(r"order=asc"))
    events = _numbers(column.all_inner_texts())
    assert events == sorted(events)

    # Next page (keyset), then back to the first by Previous.
    first_page = page.locator(".task-link").all_inner_texts()
    page.get_by_role("link", name="Next").click()
    expect(page).to_have_url(re.compile(r"after="))
    expect(page.locator(".task-link").first).not_to_have_text(first_page[0])
    assert set(page.locator(".task-link").all_inner_texts()).isdisjoint(first_page)
    page.get_by_role("link", name="Previous").click()
    expect(page.locator(".task-link").first).to_have_text(first_page[0])

    # Open a task from the table and come back to the same table.
    page.goto("/tasks/?q=PROD2025-900")
    table_url = page.url
    page.locator(".task-link", has_text="PROD2025-900.SIM").click()
    expect(page).to_have_url(re.compile(r"/tasks/\d+$"))
    page.go_back()
    expect(page).to_have_url(table_url)
    expect(page.locator(".task-link")).to_have_text(["PROD2025-900.SIM"])

    # The successful table with its totals row.
    page.locator("#mainnav").get_by_role("link", name="Successful tasks").click()
    expect(page.locator("#totals")).to_contain_text("Total:")  # loaded after the page
    expect(page.locator("#successful-table tbody tr")).to_have_count(50)
    assert not browser_log.page_errors and not browser_log.csp_violations
