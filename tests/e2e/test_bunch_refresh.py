"""The bunch page while it refreshes itself (htmx polling) under the panel's strict CSP: htmx's own
indicator <style> stays off (config meta), the panel's CSS shows the indicator only in flight."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from playwright.sync_api import Route, expect

from app import clock
from app.extensions import db
from app.launches.schedule import Schedule
from app.tasks import services
from tests.e2e.conftest import log_in
from tests.tasks.conftest import sim_definition

pytestmark = pytest.mark.e2e


def test_bunch_page_refreshes_without_csp_violations_and_shows_its_indicator_only_in_flight(
    page, make_user, browser_log
):
    manager = make_user("manager")
    # Launches due tomorrow stay pending, so the page keeps polling its progress fragment.
    bunch, _, _ = services.create_bunch(
        sim_definition(bunch_size=2), manager, "e2e-refresh", is_admin=False,
        schedule=Schedule(at=clock.now() + timedelta(days=1)),
    )  # fmt: skip
    db.session.commit()
    log_in(page, manager.username)
    progress = f"/tasks/bunch/{bunch.id}/progress"

    page.goto(f"/tasks/bunch/{bunch.id}")
    meta = json.loads(page.locator('meta[name="htmx-config"]').get_attribute("content"))
    assert meta["includeIndicatorStyles"] is False
    for _ in range(3):
        with page.expect_response(lambda r: r.url.endswith(progress) and r.status == 200):
            pass
    expect(page.locator("#progress-count")).to_have_text("0 of 2 submitted")
    indicator = page.locator("#refresh-indicator")
    expect(indicator).to_be_hidden()  # between refreshes (app.css: visibility hidden)

    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route(f"**{progress}", hold, times=1)  # the next refresh stays in flight
    expect(indicator).to_be_visible()
    assert len(held) == 1
    with page.expect_response(lambda r: r.url.endswith(progress) and r.status == 200):
        held[0].continue_()
    expect(indicator).to_be_hidden()

    assert page.evaluate("() => document.querySelectorAll('style').length") == 0
    assert browser_log.csp_violations == []
    assert browser_log.console_errors == [], browser_log.http_errors
