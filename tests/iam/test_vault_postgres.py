"""On PostgreSQL the vault also serialises refreshes across processes (SELECT ... FOR UPDATE):
with the in-process lock taken away, two concurrent callers still cause a single refresh."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select

import app.tokens as vault
from app import migrate
from app.auth.models import User
from app.tokens import services
from app.tokens.models import UserToken
from tests.oidc_fixture import build_iam_app, iam_login

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(pg_database_url):
    engine = create_engine(pg_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    return pg_database_url


@pytest.fixture
def app(settings_factory, migrated_sqlite, oidc_op, pg_url):
    from app.extensions import db as _db

    application = build_iam_app(settings_factory, migrated_sqlite, oidc_op, database_url=pg_url)
    with application.app_context():
        yield application
        _db.session.remove()
        _db.engine.dispose()


def test_row_lock_serialises_refreshes_between_processes(app, client, db, oidc_op, clock, monkeypatch):
    clock.set(datetime.now(UTC))
    assert iam_login(client, oidc_op, "alice").status_code == 302
    alice = db.session.scalar(select(User).where(User.sub == "alice"))
    row = db.session.scalar(select(UserToken).where(UserToken.user_id == alice.id))
    clock.set(row.id_token_expires_at)
    oidc_op.tamper_next_id_token(exp=int((row.id_token_expires_at + timedelta(hours=1)).timestamp()))
    # Each call gets its own lock, as two processes would: only the database row lock is shared.
    monkeypatch.setattr(services, "_lock_for", lambda user_id: threading.Lock())
    before = oidc_op.stats()
    barrier = threading.Barrier(2)
    results, errors = [], []

    def worker():
        with app.app_context():
            barrier.wait(timeout=10)
            try:
                results.append(vault.token_for(alice.id))
            except Exception as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(results) == 2 and results[0] == results[1]
    after = oidc_op.stats()
    assert after["refresh"] == before["refresh"] + 1
    assert after["grant_errors"] == before["grant_errors"]  # nobody presented a spent refresh token
    vault.refresh_now(alice)  # and the grant is still alive (a reused token makes IAM revoke it)
