"""The token vault against the real OpenID provider: refresh on the ID token's expiry, one refresh
at a time, re-login on a revoked grant, token exchange, no token in the database or the logs."""

import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.tokens import services as vault
from app.tokens.jwtutil import JWT_SHAPE, unverified_claims
from app.tokens.models import UserToken
from app.tokens.vault import keyring, seal, unseal
from tests.iam.conftest import token_for_in_two_threads
from tests.oidc_fixture import iam_login


@pytest.fixture
def alice(client, db, oidc_op, real_clock) -> User:
    assert iam_login(client, oidc_op, "alice").status_code == 302
    return db.session.scalar(select(User).where(User.sub == "alice"))


def _row(db, user, source="login") -> UserToken:
    db.session.expire_all()
    return db.session.scalar(
        select(UserToken).where(UserToken.user_id == user.id, UserToken.source == source)
    )


def test_token_for_returns_the_login_id_token(alice, db, oidc_op):
    token = vault.token_for(alice)
    claims = unverified_claims(token)
    assert claims["aud"] == "panel" and claims["iss"] == oidc_op.issuer and claims["sub"] == "alice"
    assert "spd/production" in claims["groups"]
    row = _row(db, alice)
    assert row.groups == ["spd", "spd/production"] and row.refresh_token_sealed is not None
    assert row.id_token_expires_at - row.obtained_at <= timedelta(seconds=601)
    assert vault.valid_until(alice) > datetime.now(UTC) + timedelta(days=29)


def test_refresh_follows_the_id_token_expiry_not_the_access_token(alice, db, oidc_op, real_clock):
    first = vault.token_for(alice)
    first_refresh_token = unseal(_row(db, alice), "refresh_token")
    before = oidc_op.stats()["refresh"]
    assert vault.token_for(alice) == first  # still fresh: no refresh
    assert oidc_op.stats()["refresh"] == before
    row = _row(db, alice)
    # 600 s ID token vs 3600 s access token: move to just inside the refresh leeway of the ID token.
    real_clock.set(row.id_token_expires_at - timedelta(seconds=60))
    assert row.access_token_expires_at > real_clock.current + timedelta(minutes=30)
    # Marks the next ID token (same second => same bytes) and drops a group, as IAM would after a
    # group change: the token page must show the groups PanDA now sees.
    oidc_op.tamper_next_id_token(refreshed="yes", groups=["spd"])
    second = vault.token_for(alice)
    assert second != first and unverified_claims(second)["refreshed"] == "yes"
    assert oidc_op.stats()["refresh"] == before + 1
    row = _row(db, alice)
    assert row.refresh_count == 1 and row.last_refresh_at == real_clock.current
    assert row.groups == ["spd"]
    # The provider rotated the refresh token; the vault committed the new one (read back from the DB).
    assert unseal(row, "refresh_token") != first_refresh_token
    real_clock.set(datetime.now(UTC))  # back to the provider's time: the new token is fresh
    assert vault.token_for(alice) == second
    vault.refresh_now(alice)  # the stored refresh token is the live one (raises otherwise)


def test_two_threads_at_once_cause_one_refresh(app, alice, db, oidc_op, real_clock):
    expires = _row(db, alice).id_token_expires_at
    real_clock.set(expires)
    # The panel's clock now runs 10 min ahead of the provider's: make the refreshed token outlive that.
    oidc_op.tamper_next_id_token(exp=int((expires + timedelta(hours=1)).timestamp()))
    before = oidc_op.stats()["refresh"]
    results = token_for_in_two_threads(app, alice.id)
    assert len(results) == 2 and results[0] == results[1]
    # With rotating refresh tokens a second refresh would have reused a spent token and IAM would
    # have revoked the whole grant; exactly one refresh happened.
    assert oidc_op.stats()["refresh"] == before + 1
    assert not _row(db, alice).needs_relogin
    vault.refresh_now(alice)  # the grant is still alive (a reused refresh token makes IAM revoke it)


def test_revoked_refresh_token_means_relogin_needed(client, alice, db, oidc_op, real_clock):
    row = _row(db, alice)
    oidc_op.revoke(unseal(row, "refresh_token"))
    real_clock.set(row.id_token_expires_at)
    with pytest.raises(vault.TokenUnavailable) as info:
        vault.token_for(alice)
    assert "re-login needed" in info.value.reason and info.value.relogin
    db.session.rollback()  # whatever the caller does, the vault committed the flag and the audit event
    assert _row(db, alice).needs_relogin
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "token.refresh_failed")).all()
    assert event.outcome == "relogin-needed"
    before = oidc_op.stats()["refresh"]
    with pytest.raises(vault.TokenUnavailable, match="re-login needed"):
        vault.token_for(alice)  # no second attempt at IAM
    assert oidc_op.stats()["refresh"] == before
    page = client.get("/tokens/").get_data(as_text=True)
    assert 'id="relogin-needed"' in page and vault.valid_until(alice) is None
    # Logging in again heals the grant.
    assert iam_login(client, oidc_op, "alice").status_code == 302
    assert not _row(db, alice).needs_relogin
    assert unverified_claims(vault.token_for(alice))["sub"] == "alice"


@pytest.mark.parametrize("iam_overrides", [{"iam": {"exchange_audience": "panda"}}])
def test_token_exchange_to_the_panda_audience(alice, db, oidc_op, iam_overrides):
    before = oidc_op.stats()["token_exchange"]
    token = vault.token_for(alice)
    claims = unverified_claims(token)
    assert claims["aud"] == "panda" and "spd/production" in claims["groups"] and claims["sub"] == "alice"
    assert oidc_op.stats()["token_exchange"] == before + 1
    assert vault.token_for(alice) == token  # cached until it nears its expiry
    assert _row(db, alice).exchanged_token_sealed is not None


def test_no_token_in_database_file_pages_or_logs(app, client, db, oidc_op, real_clock, caplog):
    caplog.set_level(logging.DEBUG)  # before the login: the callback's token request is logged too
    assert iam_login(client, oidc_op, "alice").status_code == 302
    alice = db.session.scalar(select(User).where(User.sub == "alice"))
    real_clock.set(_row(db, alice).id_token_expires_at)  # force a refresh too
    id_token = vault.token_for(alice)
    row = _row(db, alice)
    secrets_ = [id_token, unseal(row, "refresh_token"), unseal(row, "access_token")]
    pages = "".join(client.get(url).get_data(as_text=True) for url in ("/tokens/", "/"))
    db.session.commit()
    db.engine.dispose()  # flush SQLite's WAL into the file
    path = app.config["SETTINGS"].instance_dir / "prodpanel.sqlite3"
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in path.parent.glob("prodpanel.sqlite3-*"))
    text = raw.decode("latin-1")
    assert not JWT_SHAPE.search(text), "a JWT is stored in plain text"
    for secret in secrets_:
        assert secret.encode() not in raw
        assert secret not in pages and secret not in caplog.text
    assert not JWT_SHAPE.search(pages) and not JWT_SHAPE.search(caplog.text)
    assert "ID token expires" in pages


def test_delete_tokens_button(client, alice, db):
    from tests.helpers import post_form

    response = post_form(client, "/tokens/delete", token_page="/tokens/")
    assert response.status_code == 302
    assert _row(db, alice) is None
    with pytest.raises(vault.TokenUnavailable, match="log in with SPD-IAM"):
        vault.token_for(alice)
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "token.deleted"))


def test_refresh_now_button(client, alice, db, oidc_op):
    from tests.helpers import post_form

    before = oidc_op.stats()["refresh"]
    response = post_form(client, "/tokens/refresh", token_page="/tokens/")
    assert response.status_code == 302
    assert oidc_op.stats()["refresh"] == before + 1 and _row(db, alice).refresh_count == 1


def test_keys_rotate_reencrypts_everything(app, alice, db):
    token = vault.token_for(alice)
    old_kid = keyring().current
    count, dropped = vault.rotate_keys()
    db.session.commit()
    assert count >= 3 and dropped == 0 and vault.prune_unused_keys() == 0
    row = _row(db, alice)
    assert keyring().current != old_kid
    assert row.id_token_sealed[1:9] == keyring().current
    assert unseal(row, "id_token") == token


def test_admin_sees_every_users_token_health(app, alice, oidc_op, db):
    carol_client = app.test_client()
    assert iam_login(carol_client, oidc_op, "carol").status_code == 302
    page = carol_client.get("/tokens/all").get_data(as_text=True)
    assert 'data-user="alice"' in page and 'data-status="ok"' in page
    assert not JWT_SHAPE.search(page)


def test_keys_rotate_cli_while_the_panel_runs(app, alice, db):
    from tests.helpers import run_cli

    token = vault.token_for(alice)  # the running app has its keyring cached
    instance = app.config["SETTINGS"].instance_dir
    result = run_cli("--instance", str(instance), "keys", "rotate", "--prune")
    assert result.exit_code == 0, result.output
    assert "re-encrypted" in result.output
    status = run_cli("--instance", str(instance), "keys", "status")
    assert "current" in status.output and "MISSING" not in status.output
    # The running panel seals with the new current key at once (it reloads a changed token_keys.json).
    assert keyring().current.hex() == json.loads((instance / "token_keys.json").read_text())["current"]
    # The running panel opens tokens sealed under the new key (it reloads its keyring).
    assert vault.token_for(alice) == token


def test_lost_key_means_relogin_not_a_crash(app, alice, db):
    import dataclasses
    import secrets as pysecrets

    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(settings, token_key=pysecrets.token_bytes(32))
    app.extensions.pop("token_keyring", None)
    with pytest.raises(vault.TokenUnavailable, match="cannot be decrypted") as info:
        vault.token_for(alice)
    assert info.value.relogin and _row(db, alice).needs_relogin


def test_admin_page_warns_before_the_refresh_token_ends(app, alice, oidc_op, db, real_clock):
    carol_client = app.test_client()
    assert iam_login(carol_client, oidc_op, "carol").status_code == 302
    real_clock.advance(days=28)
    carol_client = app.test_client()  # the old session timed out meanwhile
    assert iam_login(carol_client, oidc_op, "carol").status_code == 302
    page = carol_client.get("/tokens/all").get_data(as_text=True)
    row = re.search(r'<tr data-user="alice">.*?</tr>', page, re.S).group(0)
    assert 'data-status="warning"' in row and "expires soon" in row


def test_keys_rotate_drops_grants_sealed_under_a_lost_key(app, alice, make_user, db):
    """One undecryptable row (its key is gone) must not stop the rotation of everyone else's."""
    token = vault.token_for(alice)
    bob = make_user("viewer", "bob")
    lost = UserToken(user_id=bob.id, source="login", obtained_at=_row(db, alice).obtained_at)
    seal(lost, "refresh_token", "bob-refresh-token")
    blob = lost.refresh_token_sealed
    lost.refresh_token_sealed = blob[:1] + b"lostkey!" + blob[9:]  # a key id this instance never had
    db.session.add(lost)
    db.session.commit()

    count, dropped = vault.rotate_keys()

    assert dropped == 1 and count >= 3
    db.session.expire_all()
    assert unseal(_row(db, alice), "id_token") == token
    bob_row = db.session.get(UserToken, lost.id)
    assert bob_row.refresh_token_sealed is None and bob_row.needs_relogin
    assert "lost key" in bob_row.last_error


def test_the_refresh_lock_holds_other_processes_off_on_sqlite(app):
    """Two `serve` processes must never refresh one user's tokens at once (IAM rotates refresh
    tokens): on SQLite the lock is the user's byte of instance/token_refresh.lock."""
    import subprocess
    import sys

    from app.tokens.vault import REFRESH_LOCK_FILE, lock_for

    path = app.config["SETTINGS"].instance_dir / REFRESH_LOCK_FILE
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "for uid in (7, 8):\n"
        "    try:\n"
        "        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, uid)\n"
        "        print(uid, 'free')\n"
        "    except OSError:\n"
        "        print(uid, 'held')\n"
    )
    with lock_for(7):
        held = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True)
    after = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True)
    assert held.stdout.split("\n")[:2] == ["7 held", "8 free"]
    assert after.stdout.split("\n")[:2] == ["7 free", "8 free"]
