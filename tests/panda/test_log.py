"""The interaction log: rows survive the caller's rollback, the pages filter and page them."""

import re
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.auth.models import User
from app.panda.calllog import db_recorder, flush_call_log
from app.panda.client import CallRecord
from app.panda.models import PandaCall
from app.panda.services import calls_for_task, panda_alive
from tests.helpers import free_port

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def record(method="get_status", task_id=None, outcome="ok", user_id=None, at=T0, **extra):
    fields = dict(
        started_at=at,
        user_id=user_id,
        server="http://127.0.0.1:1",
        transport="v1",
        method=method,
        task_id=task_id,
        params={"task_id": task_id},
        http_status=200,
        return_code=None,
        message="",
        duration_ms=3,
        outcome=outcome,
    )
    fields.update(extra)
    return CallRecord(**fields)


def count(db, **where):
    query = select(func.count()).select_from(PandaCall).filter_by(**where)
    return db.session.scalar(query)


def test_log_survives_the_callers_rollback(app, db, make_user):
    user = make_user("manager")
    writer = db_recorder()
    # The caller has flushed (SQLite: it now holds the write lock) when the client records a call.
    db.session.add(User(username="doomed", sub="doomed"))
    db.session.flush()
    writer(record(method="submit", task_id=101, user_id=user.id))
    db.session.rollback()
    assert flush_call_log(15)
    db.session.expire_all()
    assert count(db, method="submit", task_id=101) == 1
    assert db.session.scalar(select(func.count()).select_from(User).filter_by(username="doomed")) == 0


def test_recorder_works_from_background_threads(app, db):
    writer = db_recorder(db.engine)
    threads = [
        threading.Thread(target=lambda i=i: [writer(record(task_id=i)) for _ in range(10)]) for i in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert flush_call_log(15)
    assert count(db) == 50


def test_stopping_serve_stores_the_calls_still_queued(app, db, monkeypatch):
    from app.panda.calllog import CallLogWriter
    from app.runtime import start_background, stop_background

    real_store = CallLogWriter._store
    storing, release = threading.Event(), threading.Event()

    def slow_store(self, records, deadline):  # a database slower than the shutdown
        storing.set()
        release.wait(15)
        real_store(self, records, deadline)

    monkeypatch.setattr(CallLogWriter, "_store", slow_store)
    stoppers = start_background(app)
    db_recorder()(record(method="kill", task_id=55))
    assert storing.wait(10)
    stopping = threading.Thread(target=stop_background, args=(stoppers,))
    stopping.start()
    stopping.join(0.5)
    assert stopping.is_alive(), "serve's stop did not wait for the interaction log"
    release.set()
    stopping.join(30)
    assert not stopping.is_alive()
    assert count(db, method="kill", task_id=55) == 1


def test_calls_page_filters_and_pages(app, db, client, login_as):
    user = login_as("manager")
    writer = db_recorder()
    for i in range(60):
        writer(record(method="get_status", task_id=7, user_id=user.id, at=T0 + timedelta(minutes=i)))
    writer(
        record(method="kill", task_id=8, outcome="rejected", return_code=4, message="Command rejected: no")
    )
    writer(record(method="submit", task_id=9, outcome="unknown", at=T0 - timedelta(days=3)))
    assert flush_call_log(15)

    page = client.get("/panda/calls").get_data(as_text=True)
    assert "PanDA interaction log" in page and "62 in all" in page

    html = client.get("/panda/calls?method=kill").get_data(as_text=True)
    assert "Command rejected: no" in html and "get_status</code>" not in html
    html = client.get("/panda/calls?outcome=unknown").get_data(as_text=True)
    assert "submit</code>" in html and "kill</code>" not in html
    first = client.get(f"/panda/calls?user={user.username}").get_data(as_text=True)
    html = client.get(re.search(r'rel="next" href="([^"]*)"', first)[1].replace("&amp;", "&")).get_data(as_text=True)
    assert f"user={user.username}" in re.search(r'rel="prev" href="([^"]*)"', html)[1]  # the filter stays
    assert "60 in all" in html
    # newest first, 50 a page: page 2 holds the 10 oldest calls
    assert first.count("get_status</code>") == 50 and html.count("get_status</code>") == 10
    assert "2026-01-15 12:59:00" in first and "2026-01-15 12:59:00" not in html
    assert "2026-01-15 12:00:00" in html and "2026-01-15 12:00:00" not in first
    html = client.get("/panda/calls?task_id=8").get_data(as_text=True)
    assert "kill</code>" in html and "get_status</code>" not in html
    html = client.get("/panda/calls?since=2026-01-12&until=2026-01-12").get_data(as_text=True)
    assert "submit</code>" in html and "kill</code>" not in html
    html = client.get("/panda/calls?since=yesterday&task_id=x").get_data(as_text=True)
    assert "since: use YYYY-MM-DD" in html and "task id: a number" in html


def test_calls_page_needs_manager(client, login_as):
    assert client.get("/panda/calls").status_code == 302  # to the login page
    login_as("viewer")
    assert client.get("/panda/calls").status_code == 403


def test_task_calls_fragment_for_htmx_and_page_otherwise(app, db, client, login_as):
    login_as("manager")
    writer = db_recorder()
    for i in range(25):
        writer(record(method="get_status", task_id=77, at=T0 + timedelta(seconds=i // 2)))  # pairs share a time
    writer(record(method="kill", task_id=78))
    assert flush_call_log(15)
    first = calls_for_task(77)
    assert first.total == 25 and len(first.items) == 20 and first.before is None
    second = calls_for_task(77, after=first.after)  # by keyset: the rest, the id breaking the ties of time
    assert len(second.items) == 5 and second.after is None and second.before == second.items[0].id
    assert [c.id for c in first.items + second.items] == [
        c.id for c in sorted(first.items + second.items, key=lambda c: (c.at, c.id), reverse=True)
    ]
    assert calls_for_task(77, before=second.before).items == first.items
    fragment = client.get("/panda/tasks/77/calls", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'id="panda-task-calls-77"' in fragment and "25 calls" in fragment
    older = f"/panda/tasks/77/calls?after={first.after}"
    assert f'rel="next" href="{older}" hx-get="{older}"' in fragment and 'rel="prev"' not in fragment
    assert "<html" not in fragment and "kill</code>" not in fragment
    assert "all in the PanDA log" in fragment
    # Opened directly (a bookmark, "open in new tab"): the same list inside the whole styled page.
    whole = client.get(older).get_data(as_text=True)
    assert (
        whole.startswith("<!doctype html>") and 'rel="stylesheet"' in whole and '<nav class="navbar' in whole
    )
    assert 'id="panda-task-calls-77"' in whole and whole.count("get_status</code>") == 5
    assert f'rel="prev" href="/panda/tasks/77/calls?before={second.before}"' in whole and 'rel="next"' not in whole
    assert client.get("/panda/tasks/77/calls?after=x").status_code == 400


def test_task_calls_need_the_role_of_the_panda_log(client, login_as):
    assert client.get("/panda/tasks/77/calls").status_code == 302  # to the login page
    login_as("viewer")
    assert client.get("/panda/tasks/77/calls").status_code == 403
    assert client.get("/panda/tasks/77/calls", headers={"HX-Request": "true"}).status_code == 403


def test_healthz_reports_panda_unreachable(app, client, settings_factory):
    settings = settings_factory(panda={"url": f"http://127.0.0.1:{free_port()}"})
    report = panda_alive(settings)
    assert report["ok"] is False and "refused the connection" in report["error"]
    assert "HTTPConnectionPool" not in report["error"]  # a sentence, not urllib3's text
    app.config["SETTINGS"] = settings
    body = client.get("/healthz").get_json()
    assert body["panda"]["ok"] is False


def test_the_calls_of_a_request_or_a_jobs_run_are_stored_when_it_ends(app, db, client):
    from app.scheduler import Job, Scheduler

    @app.get("/_test/calls")
    def calls_made():  # a page whose work made a PanDA call
        db_recorder()(record(method="get_status", task_id=61))
        return "ok"

    assert client.get("/_test/calls").status_code == 200
    assert count(db, task_id=61) == 1  # no flush: the request's end stored it
    jobs = Scheduler(app, [Job("calls", lambda: db_recorder()(record(method="kill", task_id=62)), lambda s: 60)])
    jobs.run_now("calls")
    assert count(db, task_id=62) == 1  # likewise the end of the job's run
