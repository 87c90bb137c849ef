"""A request's page lists its tasks a page at a time (by id) and sums its progress in the database."""

from __future__ import annotations

from html import unescape

from app.prodrequests import services as prodrequests
from tests.prodrequests.conftest import make_task


def test_a_request_page_lists_its_tasks_a_page_at_a_time(client, login_as, make_user, db, monkeypatch):
    monkeypatch.setattr(prodrequests, "TASKS_SHOWN", 2)
    user = make_user("manager")
    tasks = [make_task(user, n, request_id=3, status="done", events=1_000_000) for n in (1, 2, 3)]
    make_task(user, 4, request_id=5)
    db.session.commit()
    login_as("viewer")
    html = unescape(client.get("/requests/3").get_data(as_text=True))
    table = html.split('id="request-tasks"')[1]
    assert "PROD2025-001.SIM</a>" in table and "PROD2025-002.SIM</a>" in table and "PROD2025-003.SIM" not in table
    assert f'href="/requests/3?after={tasks[1].id}" id="request-tasks-next"' in html and "3 tasks; 2 shown" in html
    assert 'id="events-produced">3 000 000' in html and 'id="progress-tasks">3<' in html  # every task counted
    rest = unescape(client.get(f"/requests/3?after={tasks[1].id}").get_data(as_text=True)).split('id="request-tasks"')[1]
    assert "PROD2025-003.SIM</a>" in rest and "PROD2025-001.SIM" not in rest and "request-tasks-next" not in rest
