"""One transaction per request: the view's work is committed once when it returns and rolled back
when it raises; the denial audit and the server-side session write through their own sessions; work
registered with `after_commit` runs only once the data is committed."""

import re
from pathlib import Path

import pytest
from flask import abort
from sqlalchemy import create_engine, select, text

from app.audit.models import AuditEvent
from app.audit.services import record
from app.auth.sessions import WebSession
from app.transaction import after_commit
from tests.helpers import post_form

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def routes(app):
    """Test-only views that write an audit event, then return, raise or abort."""
    ran: list[str] = []

    def write(action: str) -> None:
        record(action, target="transaction-test", user=None)
        after_commit(lambda: ran.append(action))

    @app.get("/_test/returns")
    def returns():
        write("test.returned")
        return "ok"

    @app.get("/_test/raises")
    def raises():
        write("test.raised")
        raise RuntimeError("boom")

    @app.get("/_test/aborts")
    def aborts():
        write("test.aborted")
        abort(409)

    return ran


def committed_actions(app) -> set[str]:
    """Audit actions as another connection sees them (only committed rows)."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as conn:
            return set(conn.scalars(text("SELECT action FROM audit_event")))
    finally:
        engine.dispose()


def test_a_view_that_returns_is_committed_once(app, client, routes):
    assert client.get("/_test/returns").status_code == 200
    assert "test.returned" in committed_actions(app)
    assert routes == ["test.returned"]  # after_commit ran, after the commit


@pytest.mark.parametrize(("path", "status"), [("/_test/raises", 500), ("/_test/aborts", 409)])
def test_a_view_that_raises_keeps_nothing(app, client, routes, path, status):
    assert client.get(path).status_code == status
    assert not {"test.raised", "test.aborted"} & committed_actions(app)
    assert routes == []  # rolled back: the callbacks are dropped
    assert client.get("/_test/returns").status_code == 200
    assert routes == ["test.returned"]  # and do not fire with the next request's commit


def test_the_denial_audit_survives_the_refusal(app, client, db, login_as):
    login_as("viewer")
    assert client.get("/audit/").status_code == 403
    assert "access.denied" in committed_actions(app)


def test_the_session_is_saved_without_committing_a_failed_view(app, client, db, routes, login_as):
    user = login_as("manager")
    sessions_before = db.session.scalars(select(WebSession.id).where(WebSession.user_id == user.id)).all()
    assert client.get("/_test/raises").status_code == 500
    db.session.expire_all()
    assert (
        db.session.scalars(select(WebSession.id).where(WebSession.user_id == user.id)).all()
        == sessions_before
    )
    assert client.get("/tokens/").status_code == 200  # still logged in
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "test.raised")) is None


def test_a_failed_login_is_audited_by_the_request_commit(app, client, make_user):
    user = make_user("viewer")
    response = post_form(client, "/login", {"username": user.username, "password": "wrong password!"})
    assert response.status_code == 401
    assert "login.failed" in committed_actions(app)


def test_only_the_request_hook_jobs_and_commands_commit():
    """`db.session.commit` appears only in the request hook, the background jobs and CLI commands."""
    allowed = {
        "app/transaction.py",
        "app/launches/dispatcher.py",
        "app/sync/jobs.py",
        "app/prodrequests/jobs.py",
        "app/actions/jobs.py",
        "app/auth/jobs.py",
        "app/launches/jobs.py",
        "app/cli.py",
        "app/auth/cli.py",
        "app/tokens/cli.py",
        "app/stats/cli.py",
        "app/stats/jobs.py",
    }
    found = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "app").rglob("*.py")
        if "simulator" not in path.parts and re.search(r"\bdb\.session\.commit\(", path.read_text())
    }
    assert found <= allowed, f"commits outside the request hook, jobs and commands: {sorted(found - allowed)}"
