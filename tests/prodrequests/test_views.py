"""The requests pages over the Flask test client, with the simulator over real HTTP: list, filters,
paging, cache age, refresh, a request with its tasks and progress, failures shown without losing data."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import select

from app.tasks.models import Task
from reqsim import Faults
from tests.helpers import post_form
from tests.prodrequests.conftest import make_task

ROW = re.compile(r'<a href="/requests/(\d+)">')


def listed(html: str) -> list[int]:
    return [int(n) for n in ROW.findall(html)]


def test_viewer_sees_the_newest_requests_page_by_page(client, login_as, clock):
    login_as("viewer")
    html = client.get("/requests/").get_data(as_text=True)
    assert listed(html) == list(range(25, 5, -1))  # 20 per page, newest first
    assert "Elena Zemlyanichkina" in html and "jpsi-P8-spdroot418.27GeV" in html and "40 000 000" in html
    assert 'id="requests-age">just now<' in html
    assert listed(client.get("/requests/?page=2").get_data(as_text=True)) == [5, 4, 3, 2, 1]
    assert "25 in all" in html


def test_filters_by_status_and_group(client, login_as):
    login_as("viewer")
    done = client.get("/requests/?status=done").get_data(as_text=True)
    assert listed(done) == [21, 18, 17, 15, 3, 2, 1]
    both = client.get("/requests/?status=new&group=Charmonia").get_data(as_text=True)
    assert listed(both) == [10]
    assert (
        '<option value="new" selected>new</option>' in both and "<option selected>Charmonia</option>" in both
    )
    assert "No request matches these filters." in client.get("/requests/?group=Nothing").get_data(
        as_text=True
    )


def test_cached_data_shows_its_age_until_it_is_refreshed(client, login_as, clock, reqsim):
    login_as("viewer")
    client.get("/requests/")
    calls = reqsim.calls
    clock.advance(120)
    assert 'id="requests-age">2 min ago<' in client.get("/requests/").get_data(as_text=True)
    assert reqsim.calls == calls  # served from the cache
    response = post_form(
        client, "/requests/refresh", {"next": "/requests/?status=done"}, token_page="/requests/"
    )
    assert response.status_code == 302 and response.headers["Location"] == "/requests/?status=done"
    assert reqsim.calls == calls + 1
    page = client.get("/requests/").get_data(as_text=True)
    assert "25 requests read from the requests service." in page and 'id="requests-age">just now<' in page


def test_a_failing_service_keeps_the_old_data_with_the_reason(client, login_as, clock, reqsim):
    login_as("viewer")
    client.get("/requests/")
    clock.advance(600)
    reqsim.set_faults(Faults(http_status=500))
    html = unescape(client.get("/requests/").get_data(as_text=True))
    assert "failed (HTTP 500); try again later. The data below is from 10 min ago." in html
    assert len(listed(html)) == 20
    response = post_form(client, "/requests/refresh", {}, token_page="/requests/", follow_redirects=True)
    assert "failed (HTTP 500); try again later." in unescape(response.get_data(as_text=True))


def test_never_read_and_unreachable_says_so(client, login_as, reqsim):
    reqsim.set_faults(Faults(malformed_json=True))
    login_as("viewer")
    html = unescape(client.get("/requests/").get_data(as_text=True))
    assert "sent a reply that is not JSON" in html and "No requests could be read yet." in html
    assert 'id="requests-age">never read<' in html


def test_a_request_with_its_tasks_and_progress(client, login_as, make_user, db):
    user = make_user("manager")
    make_task(user, 1, request_id=3, status="done", events=4_000_000)
    make_task(user, 2, request_id=3, status="running", events=6_000_000)
    make_task(user, 3, request_id=5)
    db.session.commit()
    login_as("viewer")
    html = unescape(client.get("/requests/3").get_data(as_text=True))
    assert "Request #3: jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.7" in html
    assert "PROD2025-001.SIM" in html and "PROD2025-002.SIM" in html and "PROD2025-003.SIM" not in html
    assert 'id="events-planned">10 000 000<' in html
    assert 'id="events-produced">4 000 000 (40 %)<' in html  # of 10 000 000 requested
    assert "(1 still running or waiting)" in html
    assert 'id="task-from-request"' not in html  # viewers do not create tasks
    assert "known once the sync has read a finished task's jobs" in html


def test_an_unknown_request_is_404_and_a_down_service_still_shows_the_tasks(
    client, login_as, make_user, db, reqsim
):
    user = make_user("manager")
    make_task(user, 1, request_id=77, status="done")  # a request newer than the cached list
    db.session.commit()
    login_as("viewer")
    missing = client.get("/requests/999")
    assert missing.status_code == 404 and "Request 999 does not exist" in missing.get_data(as_text=True)
    reqsim.set_faults(Faults(latency_ms=2000))
    response = client.get("/requests/77")
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 200
    assert "did not answer within 1.5 s." in html and "PROD2025-001.SIM" in html


def test_pages_need_a_login(client):
    for url in ("/requests/", "/requests/3", "/requests/reconcile", "/requests/paths"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_tasks_of_a_request_are_found_by_their_spec(app, make_user, db):
    from app.prodrequests.services import tasks_for_request

    user = make_user("manager")
    make_task(user, 1, request_id=3)
    make_task(user, 2, request_id=33)
    db.session.commit()
    assert [t.name for t in tasks_for_request(3)] == ["PROD2025-001.SIM"]
    assert db.session.scalar(select(Task).where(Task.name == "PROD2025-002.SIM")).spec["request_id"] == 33
