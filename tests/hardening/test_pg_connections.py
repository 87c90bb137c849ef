"""Pooled PostgreSQL connections without the pool's pre-ping: a connection the server ended (a
restart, a terminated backend) is replaced on checkout, and a logged-in page costs no extra round trip."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import event, text

from app.extensions import db as _db
from tests.helpers import wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(pg_app):
    return pg_app


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)


def test_pages_survive_the_server_ending_every_pooled_connection(app, client, login_as, migrated_pg_url):
    login_as("viewer")
    assert client.get("/tasks/").status_code == 200
    pool = _db.engine.pool
    assert pool.checkedin() >= 1 and not pool._pre_ping
    with _admin(migrated_pg_url) as admin:
        own = admin.info.backend_pid
        # The app's connections only (an autovacuum worker may come and go on the database).
        mine = "FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> %s"
        ended = admin.execute(f"SELECT pg_terminate_backend(pid) {mine}", (own,)).fetchall()
        assert ended and all(row[0] for row in ended)

        def others() -> int:
            return admin.execute(f"SELECT count(*) {mine}", (own,)).fetchone()[0]

        wait_until(lambda: others() == 0, message="the backends did not end")
    # Each pooled connection is dead: the pages still answer (the session read, the user, the list).
    for _ in range(3):
        assert client.get("/tasks/").status_code == 200


def test_a_logged_in_page_reads_outside_a_transaction(app, client, login_as):
    login_as("viewer")
    assert client.get("/tasks/").status_code == 200  # may touch the session's row (its own transaction)
    sent: list[tuple[bool, str]] = []

    def record(conn, cursor, statement, *args) -> None:
        sent.append((conn.connection.dbapi_connection.autocommit, statement.split("FROM", 1)[-1].split()[0]))

    event.listen(_db.engine, "before_cursor_execute", record)
    assert client.get("/tasks/").status_code == 200
    # psycopg sends no BEGIN (nor a COMMIT after) in autocommit: the session read, then the page's reads
    # (a GET's writes run in a transaction: tests/foundation/test_transaction_postgres.py).
    assert sent[0] == (True, "web_session"), sent
    assert len(sent) > 2 and all(autocommit for autocommit, _ in sent), sent


def test_pooled_connections_run_without_the_jit(app):
    # A page's query over a 100k-task database passed jit_above_cost and spent 20-40 ms compiling.
    assert _db.session.scalar(text("SHOW jit")) == "off"
