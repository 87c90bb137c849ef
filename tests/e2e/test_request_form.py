"""From a request to a prefilled task form in a real browser: the datalists arrive through htmx ranked
for the request, the request field shows its title, and a path outside the catalog is warned about
(static/js/path-catalog.js) without blocking anything."""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import expect

from app import create_app
from app.extensions import db as _db
from app.prodrequests.models import CatalogEntry
from reqsim import ReqSimConfig, create_simulator, serve_in_thread
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

MC = "/cvmfs/spd.jinr.ru/production/MC"
IMAGES = "/cvmfs/spd.jinr.ru/images"


@pytest.fixture
def reqsim_url():
    running = serve_in_thread(create_simulator(ReqSimConfig()))
    yield running.url
    running.stop()


@pytest.fixture
def app(settings_factory, migrated_sqlite, reqsim_url):
    settings = settings_factory(requests={"url": reqsim_url})
    shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    application = create_app(settings)
    with application.app_context():
        rows = [
            ("exec", f"{MC}/jpsi-P8-spdroot418.27GeV.V01"),
            ("exec", f"{MC}/jpsi-P8-spdroot418.27GeV.V02"),
            ("exec", f"{MC}/minbias-P8-spdroot417-dev.10GeV.V01"),
            ("container", f"{IMAGES}/spdroot-4.1.7.sif"),
            ("container", f"{IMAGES}/spdroot-4.1.8.sif"),
        ]
        _db.session.add_all(CatalogEntry(kind=k, path=p, source="admin") for k, p in rows)
        _db.session.commit()
        yield application
        _db.session.remove()
        _db.engine.dispose()


def option_values(page, list_id: str) -> list[str]:
    return page.locator(f"#{list_id} option").evaluate_all("options => options.map(o => o.value)")


def test_request_to_prefilled_form_with_ranked_paths_and_warnings(page, make_user):
    user = make_user("manager")
    log_in(page, user.username)
    page.locator("#mainnav").get_by_role("link", name="Requests").click()
    page.get_by_label("Status").select_option("new")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8").click()
    page.locator("#task-from-request").click()
    expect(page).to_have_url(re.compile(r"/tasks/from-request/10$"))

    expect(page.get_by_label("Path to execution files")).to_have_value(f"{MC}/jpsi-P8-spdroot418.27GeV.V02")
    expect(page.get_by_label("Path to container")).to_have_value(f"{IMAGES}/spdroot-4.1.8.sif")
    expect(page.get_by_label("Total events (per task)")).to_have_value("20000000")
    expect(page.locator("#request_id-help")).to_have_text(
        "#10 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8 (new, Charmonia)"
    )
    expect(page.locator("#exec-path-options option")).to_have_count(3)
    assert option_values(page, "exec-path-options")[:2] == [
        f"{MC}/jpsi-P8-spdroot418.27GeV.V02",
        f"{MC}/jpsi-P8-spdroot418.27GeV.V01",
    ]
    expect(page.locator(".catalog-warning:visible")).to_have_count(0)

    exec_field = page.get_by_label("Path to execution files")
    exec_field.fill(f"{MC}/jpsi-P8-spdroot418.27GeV.V07")
    warning = page.locator(".catalog-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Not in the path catalog")
    exec_field.fill(f"{MC}/jpsi-P8-spdroot418.27GeV.V01/")
    expect(warning).to_be_hidden()

    # Another request: its title and its own paths first (offered, though not in the catalog).
    page.get_by_label("Request").fill("3")
    page.get_by_label("Request").press("Tab")
    expect(page.locator("#request_id-help")).to_contain_text("#3 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.7")
    expect(page.locator("#exec-path-options option").first).to_have_attribute(
        "value", f"{MC}/jpsi-P8-spdroot417.27GeV.V01"
    )
    # The request's own path is not in the catalog: warned about, and still previewed.
    exec_field.fill(f"{MC}/jpsi-P8-spdroot417.27GeV.V01")
    expect(warning).to_be_visible()
    page.get_by_label("Events per job").fill("4000")
    page.locator("#preview-button").click()
    expect(page.locator("#preview")).to_contain_text("nothing has been sent")
    expect(page.locator(".preview-warning")).to_contain_text(
        f"path to execution files {MC}/jpsi-P8-spdroot417.27GeV.V01 is not in the path catalog"
    )
    expect(page.get_by_label("Path to execution files")).to_have_value(f"{MC}/jpsi-P8-spdroot417.27GeV.V01")
