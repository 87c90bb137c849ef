"""Lists over unbounded sets count their rows up to a cap ("10 000+") and page on past it."""

from __future__ import annotations

import re
from html import unescape

from app import extensions
from app.audit.services import record


def _link(html: str, rel: str) -> str:
    return unescape(re.search(rf'rel="{rel}" href="([^"]*)"', html)[1])


def test_the_audit_list_counts_up_to_the_cap_and_seeks_page_to_page(client, login_as, db, monkeypatch):
    monkeypatch.setattr(extensions, "COUNT_CAP", 55)
    for i in range(120):
        record("task.create", target=f"T{i:03d}", user=None)  # many share a time: the id breaks ties
    db.session.commit()
    login_as("admin")
    html = unescape(client.get("/audit/").get_data(as_text=True))
    assert "55+ in all" in html and "120 in all" not in html and _link(html, "prev") == "#"

    def targets(page: str) -> list[int]:
        return [int(n) for n in re.findall(r">T(\d{3})<", page)]

    pages = [html]
    while _link(pages[-1], "next") != "#":  # ?after=<id>: a seek, no OFFSET
        pages.append(unescape(client.get(_link(pages[-1], "next")).get_data(as_text=True)))
    seen = [targets(page) for page in pages]
    assert len(pages) == 3 and [n for ns in seen for n in ns] == list(range(119, -1, -1)), seen
    back = unescape(client.get(_link(pages[2], "prev")).get_data(as_text=True))  # ?before=<id>
    assert targets(back) == seen[1] and "after=" in _link(back, "next") and "before=" in _link(back, "prev")
    for bad in ("after=x", "before=-3", "after=99999999999999999999"):  # not an id the database can hold
        assert client.get(f"/audit/?{bad}").status_code == 400, bad


def test_reading_pages_touches_the_session_row_at_most_once_a_minute(client, login_as, db, clock):
    from tests.speed.test_statements import counting

    login_as("viewer")
    client.get("/tokens/")

    def writes() -> list[str]:
        with counting(db.engine) as statements:
            assert client.get("/tokens/").status_code == 200
        return [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]

    assert writes() == []  # within the minute: read only
    clock.advance(30)
    assert writes() == []
    clock.advance(31)
    touched = writes()
    assert len(touched) == 1 and "web_session" in touched[0] and "last_seen_at" in touched[0]
    assert writes() == []  # the new time is kept: the next minute starts now


def test_templates_are_compiled_once(app, client, login_as, monkeypatch):
    login_as("viewer")
    client.get("/tokens/")
    loads: list[str] = []
    loader = app.jinja_env.loader
    original = loader.get_source
    monkeypatch.setattr(loader, "get_source", lambda env, name: loads.append(name) or original(env, name))
    assert client.get("/tokens/").status_code == 200
    assert loads == [] and app.jinja_env.auto_reload is False  # no file read or stat per request


def test_the_home_page_counts_active_tasks_up_to_the_cap(client, login_as, make_user, db, monkeypatch):
    from tests.prodrequests.conftest import make_task

    monkeypatch.setattr(extensions, "COUNT_CAP", 2)
    user = login_as("manager")
    other = make_user("manager")
    for n in (1, 2, 3):
        make_task(user, n, request_id=None, status="running")
    make_task(other, 4, request_id=None, status="scouting")
    make_task(other, 5, request_id=None, status="done")  # final: not counted
    db.session.commit()
    html = unescape(client.get("/").get_data(as_text=True))
    mine = html.split('id="my-tasks"')[1].split("</section>")[0]
    team = html.split('id="team-tasks"')[1].split("</section>")[0]
    assert re.search(r'data-status="running".*?>2\+<', mine, re.S) and "scouting" not in mine
    assert re.search(r'data-status="running".*?>2\+<', team, re.S) and re.search(r'data-status="scouting".*?>1<', team, re.S)
    assert "done" not in team


def test_the_audit_filter_offers_each_recorded_outcome_once_in_order(client, login_as, db):
    for i, outcome in enumerate(["ok", "denied", "ok", "rate-limited", "accepted", "denied", "ok"]):
        record("task.kill" if i % 2 else "login.failed", target=f"T{i}", outcome=outcome, user=None)
    db.session.commit()
    login_as("admin")
    html = unescape(client.get("/audit/").get_data(as_text=True))
    select = html.split('id="f-outcome"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([^"]+)"', select) == ["accepted", "denied", "ok", "rate-limited"]
    filtered = unescape(client.get("/audit/?action=task&outcome=denied").get_data(as_text=True))
    assert re.findall(r"<td>(T\d)</td>", filtered) == ["T5", "T1"]  # the outcome read in its index
