"""Scheduling in a real browser: a bunch scheduled for later in a chosen time zone, seen on the
Launches page in that zone, rescheduled for the whole bunch, then cancelled; nothing reaches PanDA."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db as _db
from app.tasks.models import TaskBunch
from tests.e2e.conftest import log_in
from tests.e2e.test_tasks import EXEC, SIF, app, sim  # noqa: F401 (fixtures: the panel bound to the simulator)

pytestmark = pytest.mark.e2e


def test_schedule_a_bunch_for_later_reschedule_and_cancel_it(page, make_user, sim):  # noqa: F811 (fixture)
    user = make_user("manager")
    day = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%d")  # within the sandbox grant's year
    later = (datetime.now(UTC) + timedelta(days=11)).strftime("%Y-%m-%d")
    log_in(page, user.username)
    page.goto("/tasks/new")
    production = page.locator("#next-production").inner_text()
    page.get_by_label("Tasks to launch").fill("2")
    page.get_by_label("Output dataset name").fill(f"MC2025_S1.minbias-P8-spdroot417-dev.10GeV.{production}.SIM.1")
    page.get_by_label("Total events (per task)").fill("1000")
    page.get_by_label("Events per job").fill("100")
    page.get_by_label("Path to execution files").fill(EXEC)
    page.get_by_label("Path to container").fill(SIF)
    schedule = page.locator("#launch-schedule")
    expect(schedule.get_by_label("Date and time", exact=True)).to_be_hidden()  # "now" is the default
    schedule.get_by_label("at a date and time").check()
    schedule.get_by_label("Date and time", exact=True).fill(f"{day}T09:30")
    schedule.get_by_label("Time zone").select_option("Europe/Moscow")
    expect(schedule.get_by_label("Other task", exact=True)).to_be_hidden()
    page.locator("#create-button").click()

    expect(page).to_have_url(re.compile(r"/tasks/bunch/\d+$"))
    expect(page.locator("#flash-messages")).to_contain_text(f"launching at {day} 06:30 UTC")
    page.locator("#mainnav").get_by_role("link", name="Launches").click()
    page.locator("#state-upcoming").click()
    rows = page.locator("#launches-table tbody tr[data-state=upcoming]")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(f"{day} 09:30 MSK")  # in the zone it was entered in

    rows.first.get_by_role("link", name="Reschedule").click()
    form = page.locator("#reschedule-form")
    expect(form.get_by_label("Date and time", exact=True)).to_have_value(f"{day}T09:30")
    form.get_by_label("Date and time", exact=True).fill(f"{later}T10:00")
    form.get_by_label("Every pending launch of its bunch").check()
    form.locator("#save-schedule").click()
    expect(page.locator("#flash-messages")).to_contain_text("Rescheduled 2 launch(es)")
    expect(page).to_have_url(re.compile(r"/launches/\?state=upcoming"))
    expect(rows.nth(0)).to_contain_text(f"{later} 10:00 MSK")
    expect(rows.nth(1)).to_contain_text(f"{later} 10:00 MSK")

    page.once("dialog", lambda dialog: dialog.accept())
    rows.first.get_by_role("button", name="Cancel bunch (2)").click()
    expect(page.locator("#flash-messages")).to_contain_text("Cancelled 2 launch(es)")
    expect(rows).to_have_count(0)
    page.locator("#state-cancelled").click()
    expect(page.locator("#launches-table tbody tr[data-state=cancelled]")).to_have_count(2)

    _db.session.expire_all()
    bunch = _db.session.scalar(select(TaskBunch))
    assert {t.latest_launch.status for t in bunch.tasks} == {"cancelled"}
    assert list(sim.state.select_rows("SELECT taskName FROM tasks", ())) == []
