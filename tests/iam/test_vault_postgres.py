"""On PostgreSQL the vault also serialises refreshes across processes (SELECT ... FOR UPDATE):
with the in-process lock taken away, two concurrent callers still cause a single refresh."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.auth.models import User
from app.tokens import services as vault
from app.tokens.models import UserToken
from tests.iam.conftest import token_for_in_two_threads
from tests.oidc_fixture import iam_login

pytestmark = pytest.mark.postgres


@pytest.fixture
def iam_overrides(migrated_pg_url) -> dict:
    return {"database_url": migrated_pg_url}


def test_row_lock_serialises_refreshes_between_processes(app, client, db, oidc_op, clock, monkeypatch):
    clock.set(datetime.now(UTC))
    assert iam_login(client, oidc_op, "alice").status_code == 302
    alice = db.session.scalar(select(User).where(User.sub == "alice"))
    row = db.session.scalar(select(UserToken).where(UserToken.user_id == alice.id))
    clock.set(row.id_token_expires_at)
    oidc_op.tamper_next_id_token(exp=int((row.id_token_expires_at + timedelta(hours=1)).timestamp()))
    # Each call gets its own lock, as two processes would: only the database row lock is shared.
    monkeypatch.setattr("app.tokens.vault.lock_for", lambda user_id: threading.Lock())
    before = oidc_op.stats()
    results = token_for_in_two_threads(app, alice.id)
    assert len(results) == 2 and results[0] == results[1]
    after = oidc_op.stats()
    assert after["refresh"] == before["refresh"] + 1
    assert after["grant_errors"] == before["grant_errors"]  # nobody presented a spent refresh token
    vault.refresh_now(alice)  # and the grant is still alive (a reused token makes IAM revoke it)
