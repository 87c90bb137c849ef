"""Task actions and accounts in a real browser: select tasks by filter, kill them in bulk with a
comment and read each task's result; change one's own password; an admin disables a user, whose
open session then ends."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.actions import jobs
from app.extensions import db as _db
from app.sync import jobs as sync_jobs
from app.tasks import services
from pandasim import SimConfig, Timings, create_simulator, serve_in_thread
from tests.conftest import TEST_PASSWORD
from tests.e2e.conftest import log_in
from tests.helpers import bunch_counts, settle_launches
from tests.tasks.conftest import sandbox_app, sim_definition

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim():
    running = serve_in_thread(create_simulator(SimConfig(seed=7, time_scale=0.0, timings=Timings(pickup_s=60.0))))
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


def launch(owner, number: int, size: int) -> None:
    bunch, _, _ = services.create_bunch(sim_definition(number=number, bunch_size=size), owner, f"e2e-{number}", is_admin=False)
    _db.session.commit()
    assert settle_launches() and bunch_counts(bunch.id) == {"submitted": size}


def test_bulk_kill_by_filter_with_a_comment_and_per_task_results(page, make_user, sim, browser_log):
    manager = make_user("manager")
    launch(manager, 62, 2)
    sim.advance(20_000)  # PROD2025-062 is done
    launch(manager, 61, 3)
    launch(manager, 71, 1)  # another production, outside the filter
    sim.advance(150)  # PROD2025-061 runs
    sync_jobs.sync_cycle()

    log_in(page, manager.username)
    page.goto("/tasks/")
    page.locator("#f-q").fill("PROD2025-06")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.locator("#tasks-table tbody tr")).to_have_count(5)
    page.locator("#bulk-action").select_option("kill")
    page.get_by_role("button", name="all 5 matching this filter…").click()

    expect(page.locator("#bulk-summary")).to_contain_text("This will send kill to PanDA for 3 task(s)")
    expect(page.locator("#bulk-summary")).to_contain_text("kill: not possible while done — 2 task(s)")
    page.get_by_role("button", name="Kill 3 task(s)").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("a bulk action needs a comment")  # nothing lost
    page.get_by_label("Comment").fill("wrong generator tune")
    page.get_by_role("button", name="Kill 3 task(s)").click()

    expect(page).to_have_url(re.compile(r"/actions/bulk/\d+$"))
    expect(page.locator("#bulk-comment")).to_have_text("wrong generator tune")
    expect(page.locator('#bulk-counts [data-outcome="not_allowed"] .count')).to_have_text("2")
    jobs.run_bulk_actions()  # the scheduler's job; the page follows by itself
    expect(page.locator("#bulk-done")).to_have_text("finished")
    rows = page.locator("#bulk-items tbody tr")
    expect(rows).to_have_count(5)
    for name in ("PROD2025-061.SIM.1", "PROD2025-061.SIM.2", "PROD2025-061.SIM.3"):
        row = page.locator(f'#bulk-items tr[data-task="{name}"]')
        expect(row).to_have_attribute("data-outcome", "accepted")
        expect(row).to_contain_text("command=kill is registered")
    expect(page.locator('#bulk-items tr[data-task="PROD2025-062.SIM.1"]')).to_contain_text("kill: not possible while done")

    page.locator('#bulk-items tr[data-task="PROD2025-061.SIM.1"] a').click()
    expect(page.locator("#command-queued")).to_contain_text(f"command queued: kill (by {manager.username}")
    expect(page.locator("#command-history")).to_contain_text("wrong generator tune")
    expect(page.locator("#action-kill")).to_be_enabled()
    expect(page.locator("#action-resume")).to_be_disabled()
    # The one error: the form sent without a comment (400, the page kept what was chosen).
    assert [e.split(" http")[0] for e in browser_log.http_errors] == ["400 POST"], browser_log.http_errors


def test_change_ones_own_password(page, make_user):
    user = make_user("viewer")
    log_in(page, user.username)
    page.locator("#user-menu").click()
    page.locator("#change-password-link").click()
    page.get_by_label("Current password").fill(TEST_PASSWORD)
    page.get_by_label("New password", exact=True).fill("a-brand-new-password")
    page.get_by_label("Repeat the new password").fill("a-brand-new-password")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#flash-messages")).to_contain_text("Your password is changed")
    page.locator("#user-menu").click()
    page.locator("#logout").click()
    page.goto("/login")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("a-brand-new-password")
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile(r"/login"))


def test_an_admin_disables_a_user_whose_open_session_ends(page, browser, live_server, make_user):
    admin = make_user("admin")
    victim = make_user("manager")
    other = browser.new_context(base_url=live_server)
    try:
        victims_page = other.new_page()
        log_in(victims_page, victim.username)
        victims_page.goto("/tasks/")
        expect(victims_page.locator("h1")).to_have_text("Tasks")

        log_in(page, admin.username)
        page.goto("/admin/users")
        row = page.locator(f'#users tr[data-user="{victim.username}"]')
        expect(row).to_contain_text("1")  # one open session
        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Disable").click()
        expect(page.locator("#flash-messages")).to_contain_text(f"{victim.username} is disabled; its sessions have ended")

        victims_page.reload()
        expect(victims_page).to_have_url(re.compile(r"/login"))
    finally:
        other.close()
