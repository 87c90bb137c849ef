"""Server-side sessions: opaque cookie, hashed id in the table, new id at login, idle and absolute
timeouts, logout and an admin ending a user's sessions."""

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.sessions import WebSession
from tests.conftest import TEST_PASSWORD
from tests.helpers import csrf_token, post_form


@pytest.fixture
def iam_overrides():
    return {"auth": {"session_idle_minutes": 30, "session_max_hours": 2}}


def _cookie(client):
    cookie = client.get_cookie("prodpanel_session", domain="127.0.0.1")
    return cookie.value if cookie else None


def _rows(db):
    db.session.expire_all()
    return db.session.scalars(select(WebSession)).all()


def test_cookie_holds_only_an_id_and_the_table_its_hash(client, db, make_user, clock):
    csrf_token(client, "/login")  # an anonymous session (it carries the CSRF token)
    anon = _cookie(client)
    assert anon and len(anon) < 60 and "." not in anon  # not a signed data cookie
    user = make_user("viewer")
    post_form(client, "/login", {"username": user.username, "password": TEST_PASSWORD})
    sid = _cookie(client)
    assert sid != anon  # a new id at login
    ids = {row.id for row in _rows(db)}
    assert hashlib.sha256(sid.encode()).hexdigest() in ids and sid not in ids
    assert hashlib.sha256(anon.encode()).hexdigest() not in ids  # the pre-login row is gone
    [row] = [r for r in _rows(db) if r.user_id == user.id]
    assert row.data["uid"] == user.id


def test_iam_login_gets_a_new_session_id(client, db, oidc_op):
    import requests

    start = client.get("/auth/iam/login")  # the pre-login session holds authlib's state
    before = _cookie(client)
    assert before and start.status_code == 302
    browser = requests.Session()
    back = oidc_op.sign_in(browser, browser.get(start.headers["Location"]), "alice")
    assert client.get(back.headers["Location"]).status_code == 302
    after = _cookie(client)
    ids = {row.id for row in _rows(db)}
    assert after != before and hashlib.sha256(after.encode()).hexdigest() in ids
    assert hashlib.sha256(before.encode()).hexdigest() not in ids


def test_idle_timeout(client, make_user, clock):
    user = make_user("viewer")
    post_form(client, "/login", {"username": user.username, "password": TEST_PASSWORD})
    clock.advance(minutes=29)
    assert client.get("/tokens/").status_code == 200  # activity keeps it alive
    clock.advance(minutes=29)
    assert client.get("/tokens/").status_code == 200
    clock.advance(minutes=31)
    assert client.get("/tokens/").status_code == 302


def test_absolute_timeout_despite_activity(client, make_user, clock):
    user = make_user("viewer")
    post_form(client, "/login", {"username": user.username, "password": TEST_PASSWORD})
    for _ in range(4):
        clock.advance(minutes=25)
        assert client.get("/tokens/").status_code == 200
    clock.advance(minutes=25)  # 125 min after login
    assert client.get("/tokens/").status_code == 302


def test_admin_ends_a_users_sessions(app, db, make_user, clock):
    victim, admin = make_user("manager"), make_user("admin")
    victim_client, admin_client = app.test_client(), app.test_client()
    post_form(victim_client, "/login", {"username": victim.username, "password": TEST_PASSWORD})
    post_form(admin_client, "/login", {"username": admin.username, "password": TEST_PASSWORD})
    assert victim_client.get("/tokens/").status_code == 200
    page = admin_client.get("/tokens/all").get_data(as_text=True)
    assert f'id="end-sessions-{victim.username}"' in page
    response = post_form(admin_client, f"/tokens/all/{victim.id}/end-sessions", token_page="/tokens/all")
    assert response.status_code == 302
    assert victim_client.get("/tokens/").status_code == 302
    assert admin_client.get("/tokens/").status_code == 200
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "session.ended_by_admin"))
    assert event.target == victim.username and event.details == {"sessions": 1}


def test_non_admin_cannot_end_sessions(client, login_as, make_user):
    other = make_user("viewer")
    login_as("manager")
    assert post_form(client, f"/tokens/all/{other.id}/end-sessions", token_page="/tokens/").status_code == 403


def test_logout_deletes_the_row(client, db, make_user, clock):
    user = make_user("viewer")
    post_form(client, "/login", {"username": user.username, "password": TEST_PASSWORD})
    assert any(r.user_id == user.id for r in _rows(db))
    post_form(client, "/logout", token_page="/tokens/")
    assert not any(r.user_id == user.id for r in _rows(db))
    clock.advance(timedelta(seconds=1).total_seconds())
    assert client.get("/tokens/").status_code == 302


def test_timed_out_sessions_are_purged(app, client, db, clock):
    from app.auth.sessions import purge_expired

    csrf_token(client, "/login")  # one anonymous session
    assert len(_rows(db)) == 1
    clock.advance(minutes=31)
    assert purge_expired(app) == 1
    db.session.commit()
    assert _rows(db) == []
