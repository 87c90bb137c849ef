"""On PostgreSQL a GET request reads outside a transaction until its first statement that may write or
lock (app/transaction.py, `begin_lazily`): no BEGIN and COMMIT round trips on pages that only read, and
a GET that writes still commits its work once, or keeps nothing when it raises."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import event, select

from app.audit.models import AuditEvent
from app.audit.services import record
from app.auth.models import User
from app.extensions import db as _db
from tests.foundation.test_transaction import committed_actions

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(pg_app):
    return pg_app


@contextmanager
def transaction_states() -> Iterator[list[tuple[str, TransactionStatus]]]:
    """(statement, the connection's transaction status right after it) of every statement run."""
    seen: list[tuple[str, TransactionStatus]] = []

    def after(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append((statement, conn.connection.dbapi_connection.info.transaction_status))

    event.listen(_db.engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(_db.engine, "after_cursor_execute", after)


@pytest.fixture
def routes(app):
    """Test-only GET views: read then write, write then raise, lock a row, stream a result."""

    @app.get("/_test/reads-then-writes")
    def reads_then_writes():
        _db.session.scalars(select(User)).all()
        record("test.lazy_write", target="lazy", user=None)
        _db.session.flush()
        return "ok"

    @app.get("/_test/writes-then-raises")
    def writes_then_raises():
        record("test.lazy_raise", target="lazy", user=None)
        _db.session.flush()
        raise RuntimeError("boom")

    @app.get("/_test/locks")
    def locks():
        _db.session.scalars(select(User).with_for_update()).all()
        _db.session.scalars(select(AuditEvent.id)).all()
        return "ok"

    @app.get("/_test/streams")
    def streams():
        rows = _db.session.scalars(select(User.id).execution_options(yield_per=1))
        return str(len(list(rows)))


def test_pages_that_only_read_open_no_transaction(app, client, login_as):
    login_as("admin")
    for path in ("/", "/tasks/", "/healthz", "/api/v1/me", "/audit/"):
        client.get(path)  # a first request may write the session's row (its own session)
        with transaction_states() as seen:
            response = client.get(path)
        assert response.status_code in (200, 503), path  # /healthz: 503 without PanDA
        assert seen, path
        assert [s for s, status in seen if status != TransactionStatus.IDLE] == [], path


def test_a_get_that_writes_opens_the_transaction_at_its_first_write_and_commits_once(app, client, routes):
    with transaction_states() as seen:
        assert client.get("/_test/reads-then-writes").status_code == 200
    statuses = [status for _, status in seen]
    assert statuses[0] == TransactionStatus.IDLE  # the read ran outside a transaction
    assert TransactionStatus.INTRANS in statuses  # the write inside one
    assert "test.lazy_write" in committed_actions(app)


def test_a_get_that_writes_then_raises_keeps_nothing(app, client, routes):
    assert client.get("/_test/writes-then-raises").status_code == 500
    assert "test.lazy_raise" not in committed_actions(app)


def test_a_lock_holds_until_the_end_of_the_request(app, client, routes, make_user):
    make_user("viewer")
    with transaction_states() as seen:
        assert client.get("/_test/locks").status_code == 200
    # FOR UPDATE opened the transaction (its lock would end with the statement otherwise).
    assert [status for _, status in seen] == [TransactionStatus.INTRANS] * 2


def test_a_streamed_result_runs_in_a_transaction(app, client, routes, make_user):
    make_user("viewer")
    make_user("manager")
    assert client.get("/_test/streams").data == b"2"  # a server-side cursor needs a transaction


def test_connections_go_back_to_the_pool_transactional(app, client, login_as):
    login_as("viewer")
    for _ in range(3):
        assert client.get("/tasks/").status_code == 200
    with _db.engine.connect() as conn:
        assert conn.connection.dbapi_connection.autocommit is False
        conn.exec_driver_sql("SELECT 1")
        assert conn.connection.dbapi_connection.info.transaction_status == TransactionStatus.INTRANS
