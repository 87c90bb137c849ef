"""From a request to a launched chain in a real browser, against the requests simulator and the PanDA
simulator over HTTP: the request list, the request, "Create chain from request" (both steps prefilled,
the path datalists ranked for the request, a path outside the catalog warned about), preview, create,
the chain page until its tasks are in PanDA and done, and back to the request's progress."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from app.extensions import db as _db
from app.prodrequests.models import CatalogEntry
from pandasim import SimConfig, create_simulator
from pandasim import serve_in_thread as serve_panda
from reqsim import ReqSimConfig
from reqsim import create_simulator as create_reqsim
from reqsim import serve_in_thread as serve_reqsim
from tests.e2e.conftest import log_in
from tests.tasks.conftest import sandbox_app

pytestmark = pytest.mark.e2e

MC = "/cvmfs/spd.jinr.ru/production/MC"
IMAGES = "/cvmfs/spd.jinr.ru/images"
EXEC = f"{MC}/jpsi-P8-spdroot418.27GeV.V02"
SIF = f"{IMAGES}/spdroot-4.1.8.sif"


@pytest.fixture
def sim():
    # 20 000 simulated seconds per real second: a 2-job task is done within a second or two.
    config = SimConfig(seed=7, time_scale=20000.0, client_ids=("prodpanel",), job_failure_rate=0.0)
    running = serve_panda(create_simulator(config))
    yield running.app
    running.stop()


@pytest.fixture
def reqsim_url():
    running = serve_reqsim(create_reqsim(ReqSimConfig()))
    yield running.url
    running.stop()


@pytest.fixture
def app(settings_factory, migrated_sqlite, sim, reqsim_url):
    settings = settings_factory(
        requests={"url": reqsim_url}, panda={"read_timeout_s": 5.0, "retries": 2, "retry_backoff_s": 0.05}
    )
    application = sandbox_app(settings, migrated_sqlite, sim)
    with application.app_context():
        rows = [
            ("exec", f"{MC}/jpsi-P8-spdroot418.27GeV.V01"),
            ("exec", EXEC),
            ("exec", f"{MC}/minbias-P8-spdroot417-dev.10GeV.V01"),
            ("container", f"{IMAGES}/spdroot-4.1.7.sif"),
            ("container", SIF),
        ]
        _db.session.add_all(CatalogEntry(kind=k, path=p, source="admin") for k, p in rows)
        _db.session.commit()
        yield application
        _db.session.remove()
        _db.engine.dispose()


def option_values(page, list_id: str) -> list[str]:
    return page.locator(f"#{list_id} option").evaluate_all("options => options.map(o => o.value)")


def test_from_a_request_to_a_launched_chain(page, browser_log, make_user, sim):
    user = make_user("manager")
    log_in(page, user.username)
    page.locator("#mainnav").get_by_role("link", name="Requests").click()
    page.get_by_role("link", name="jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8").click()
    page.locator("#chain-from-request").click()
    expect(page).to_have_url(re.compile(r"/chains/from-request/10$"))
    expect(page.get_by_role("heading", name="Create chain from request #10")).to_be_visible()

    # Both steps prefilled: SIM from the request, RECO derived from it.
    production = page.locator("#steps-0-task_name").input_value().removesuffix(".SIM")
    assert re.fullmatch(r"PROD\d{4}-\d{3}", production)
    expect(page.locator("#name")).to_have_value(f"{production} jpsi-P8-spdroot418.27GeV")
    expect(page.locator("#steps-0-exec_path")).to_have_value(EXEC)
    expect(page.locator("#steps-0-container_path")).to_have_value(SIF)
    expect(page.locator("#steps-0-total_events")).to_have_value("20000000")
    expect(page.locator("#steps-1-task_name")).to_have_value(f"{production}.RECO")
    expect(page.locator("#steps-1-request_id")).to_have_value("10")
    expect(page.locator("#steps-1-exec_path")).to_have_value(EXEC)
    expect(page.locator("#step-2-derived")).to_contain_text("20000000 per task")
    expect(page.locator("#steps-0-request_id-help")).to_have_text(
        "#10 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8 (new, Charmonia)"
    )

    # The datalists arrive through htmx, ranked for the request; a path outside the catalog is warned about.
    expect(page.locator("#exec-path-options option")).to_have_count(3)
    assert option_values(page, "exec-path-options")[:2] == [EXEC, f"{MC}/jpsi-P8-spdroot418.27GeV.V01"]
    expect(page.locator(".catalog-warning:visible")).to_have_count(0)
    reco_exec = page.locator("#steps-1-exec_path")
    reco_exec.fill(f"{MC}/jpsi-P8-spdroot418.27GeV.V09")
    warning = page.locator("#step-2 .catalog-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Not in the path catalog")
    reco_exec.fill(EXEC)
    expect(warning).to_be_hidden()
    # Another request in step 1: the datalists follow it (its own path first), and back.
    page.locator("#steps-0-request_id").fill("3")
    page.locator("#steps-0-request_id").press("Tab")
    expect(page.locator("#steps-0-request_id-help")).to_contain_text(
        "#3 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.7"
    )
    expect(page.locator("#exec-path-options option").first).to_have_attribute(
        "value", f"{MC}/jpsi-P8-spdroot417.27GeV.V01"
    )
    page.locator("#steps-0-request_id").fill("10")
    page.locator("#steps-0-request_id").press("Tab")
    expect(page.locator("#exec-path-options option").first).to_have_attribute("value", EXEC)

    # A small pilot of the request: 2 jobs of 1000 events, then preview and create.
    page.locator("#steps-0-total_events").fill("2000")
    page.locator("#steps-0-events_per_job").fill("1000")
    page.locator("#steps-0-skip_scout").check()
    page.locator("#preview-button").click()
    expect(page.locator("#preview")).to_contain_text("2 step(s), 2 task(s) — nothing has been saved or sent")
    expect(page.locator("#preview-step-2")).to_contain_text(
        f"MC2025_S1.jpsi-P8-spdroot418.27GeV.{production}.RECO.1"
    )
    expect(page.locator(".preview-warning")).to_have_count(0)
    assert list(sim.state.select_rows("SELECT taskName FROM tasks", ())) == []

    page.locator("#create-button").click()
    expect(page).to_have_url(re.compile(r"/chains/\d+$"))
    chain_url = page.url
    expect(page.locator(".chain-request")).to_contain_text("#10 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8")
    # The page polls the stored state: both steps reach PanDA (RECO sent with its SIM's id as parent).
    expect(page.locator("#flow-step-1 .step-progress")).to_contain_text("1 of 1 in PanDA", timeout=30_000)
    expect(page.locator("#flow-step-2 .step-progress")).to_contain_text("1 of 1 in PanDA", timeout=30_000)
    names = {row[0] for row in sim.state.select_rows("SELECT taskName FROM tasks", ())}
    assert names == {f"{production}.SIM", f"{production}.RECO"}

    # Follow it to done: the manager refreshes from PanDA until every task has ended.
    deadline = time.monotonic() + 60
    while "Finished:" not in page.locator("#chain-state").inner_text():
        assert time.monotonic() < deadline, page.locator("#chain-flow").inner_text()
        page.locator("#refresh-chain").click()
        page.wait_for_load_state()
    expect(page.locator("#chain-flow .status-done")).to_have_count(2)

    # Back to the request: its chain, both tasks, and the events produced.
    page.locator(".chain-request").click()
    expect(page).to_have_url(re.compile(r"/requests/10$"))
    chain_link = page.locator("#request-chains").get_by_role(
        "link", name=f"{production} jpsi-P8-spdroot418.27GeV"
    )
    expect(chain_link).to_have_attribute("href", urlsplit(chain_url).path)
    expect(page.locator("#request-tasks tbody tr")).to_have_count(2)
    expect(page.locator("#events-produced")).to_have_text("2 000 (0 %)")
    expect(page.locator("#progress-tasks")).to_have_text("2, 1 chain(s)")
    assert browser_log.console_errors == [], browser_log.http_errors  # e.g. an htmx swap without its target
