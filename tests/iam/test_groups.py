"""Access follows the SPD-IAM groups: at every login and at every token refresh that carries them.
A user whose groups no longer map to a role loses access everywhere within one request."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.tokens import services as vault
from app.tokens.models import UserToken
from tests.oidc_fixture import iam_login


def _alice(db) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.sub == "alice"))


def _grants(db, user) -> list[UserToken]:
    db.session.expire_all()
    return db.session.scalars(select(UserToken).where(UserToken.user_id == user.id)).all()


def _role_changes(db) -> list[dict]:
    db.session.expire_all()
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.role_changed"))
    return [e.details for e in events]


def test_a_login_without_accepted_groups_ends_the_users_other_sessions_and_grants(
    app, db, oidc_op, real_clock
):
    first = app.test_client()
    assert iam_login(first, oidc_op, "alice").status_code == 302
    assert first.get("/tokens/").status_code == 200
    alice = _alice(db)
    vault.token_for(alice)

    # IAM took alice out of every group the panel accepts; she (or anyone with her IAM account) logs in.
    refused = iam_login(app.test_client(), oidc_op, "alice", tamper={"groups": []})
    assert refused.headers["Location"].endswith("/login")

    assert first.get("/tokens/").status_code == 302  # the open session ended at its next request
    [grant] = _grants(db, alice)
    assert grant.needs_relogin and "no longer give access" in grant.last_error
    with pytest.raises(vault.TokenUnavailable) as info:
        vault.token_for(alice)  # scheduled launches stop too
    assert info.value.relogin
    [change] = _role_changes(db)
    assert change["from"] == "manager" and change["to"] is None
    assert change["via"] == "iam-login" and change["sessions_ended"] == 1

    # Groups back at IAM: the next login restores access.
    assert iam_login(first, oidc_op, "alice").headers["Location"].endswith("/")
    assert first.get("/tokens/").status_code == 200 and not _grants(db, alice)[0].needs_relogin


def test_a_refresh_re_applies_the_role_map(app, client, db, oidc_op, real_clock):
    assert iam_login(client, oidc_op, "alice").status_code == 302
    assert client.get("/tasks/new").status_code == 200
    alice = _alice(db)
    [grant] = _grants(db, alice)

    # The ID token nears its expiry; IAM's refreshed one carries only the VO group (alice left production).
    real_clock.set(grant.id_token_expires_at - timedelta(seconds=60))
    oidc_op.tamper_next_id_token(groups=["spd"])
    vault.token_for(alice)

    assert _alice(db).role == "viewer"
    assert client.get("/tasks/new").status_code == 403  # the very next request
    page = client.get("/tokens/").get_data(as_text=True)
    assert 'id="role">viewer' in page and '<code class="me-1">spd</code>' in page
    [change] = _role_changes(db)
    assert (change["from"], change["to"], change["via"], change["groups"]) == (
        "manager",
        "viewer",
        "iam-refresh",
        ["spd"],
    )

    # The next refresh carries no group at all: access ends, this session included.
    oidc_op.tamper_next_id_token(groups=[])
    with pytest.raises(vault.TokenUnavailable) as info:
        vault.refresh_now(alice)
    assert info.value.relogin and "no longer give access" in info.value.reason
    assert client.get("/tokens/").status_code == 302
    assert all(g.needs_relogin for g in _grants(db, alice))
    assert _role_changes(db)[-1]["to"] is None


def test_a_refresh_without_the_groups_claim_keeps_the_role(app, client, db, oidc_op, real_clock):
    """Only a refresh that says which groups the user has changes the role."""
    assert iam_login(client, oidc_op, "alice").status_code == 302
    oidc_op.tamper_next_id_token(groups=None)  # the claim is absent
    vault.refresh_now(_alice(db))
    assert _alice(db).role == "manager" and client.get("/tasks/new").status_code == 200
    assert not _role_changes(db)
