"""The reconciliation report: requests without tasks, tasks without a (known) request, requests whose
produced events fall short, each with links."""

from __future__ import annotations

from html import unescape

from reqsim import Faults
from tests.helpers import post_form
from tests.prodrequests.conftest import make_task


def test_the_three_lists(client, login_as, make_user, db):
    user = make_user("manager")
    make_task(user, 1, request_id=3, status="done", events=10_000_000)  # request 3 complete
    make_task(user, 2, request_id=1, status="done", events=30_000_000)  # request 1 wants 40M: short
    make_task(user, 3, request_id=1, status="failed", events=10_000_000)
    make_task(user, 4, request_id=4, status="running", events=5_000_000)  # still running: not short
    make_task(user, 5, request_id=None)
    make_task(user, 6, request_id=404)  # not on the service
    db.session.commit()
    login_as("viewer")
    html = unescape(client.get("/requests/reconcile").get_data(as_text=True))
    without = html.split('id="without-tasks"')[1].split("</section>")[0]
    assert '<a href="/requests/2">#2 ' in without and '<a href="/requests/25">#25 ' in without
    for listed_elsewhere in ('/requests/1"', '/requests/3"', '/requests/4"', '/requests/12"'):
        assert listed_elsewhere not in without  # 1, 3, 4 have tasks; 12 was rejected
    assert "create task" not in without  # viewers do not create tasks
    orphans = html.split('id="orphan-tasks"')[1].split("</section>")[0]
    assert "Tasks without a request (2)" in orphans
    assert "PROD2025-005.SIM</a></td>" in orphans and "no request" in orphans
    assert "PROD2025-006.SIM</a></td>" in orphans and "request 404 is not on the requests service" in orphans
    short = html.split('id="short-requests"')[1].split("</section>")[0]
    assert "(1)" in short and '<a href="/requests/1">#1 minbias (Pythia8) at 10 GeV' in short
    assert (
        "40 000 000" in short and "30 000 000" in short and "10 000 000" in short
    )  # requested, produced, missing


def test_a_down_service_is_said_and_managers_get_create_links(client, login_as, make_user, db, reqsim):
    reqsim.set_faults(Faults(http_status=502))
    user = make_user("manager")
    make_task(user, 1, request_id=None)
    make_task(user, 2, request_id=3)
    db.session.commit()
    login_as("manager")
    html = unescape(client.get("/requests/reconcile").get_data(as_text=True))
    assert "failed (HTTP 502)" in html and "only tasks without a request id are listed" in html
    orphans = html.split('id="orphan-tasks"')[1].split("</section>")[0]
    assert "PROD2025-001.SIM" in orphans and "PROD2025-002.SIM" not in orphans
    reqsim.set_faults(Faults())
    post_form(client, "/requests/refresh", {}, token_page="/requests/reconcile")
    html = unescape(client.get("/requests/reconcile").get_data(as_text=True))
    assert "failed (HTTP 502)" not in html and '<a href="/tasks/from-request/25">create task</a>' in html
