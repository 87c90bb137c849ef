"""Security properties of the IAM login and the token pages: rate limits, redirects after login,
CSRF on every form, admin-only pages, ciphertexts bound to their owner, local accounts switched off."""

import dataclasses
import re
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.sessions import WebSession
from app.tokens import services as vault
from app.tokens.crypto import VaultKeyError
from app.tokens.models import UserToken
from app.tokens.vault import unseal
from tests.conftest import TEST_PASSWORD
from tests.helpers import post_form
from tests.oidc_fixture import iam_login


def _events(db, action):
    db.session.expire_all()
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def _user(db, sub):
    return db.session.scalar(select(User).where(User.sub == sub))


def _tokens(db, user):
    db.session.expire_all()
    return db.session.scalars(select(UserToken).where(UserToken.user_id == user.id)).all()


# ---- rate limit -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iam_overrides",
    [{"iam": {"login_rate_limit": 2, "login_start_limit": 6}, "auth": {"login_window_s": 120}}],
)
def test_iam_limits_count_failed_callbacks_and_generously_login_starts(
    app, client, db, oidc_op, clock, iam_overrides
):
    # Successful logins never count as failures: four in a row, from one address (a site's NAT).
    for _ in range(4):
        assert iam_login(app.test_client(), oidc_op, "bob").headers["Location"].endswith("/")
    # Failed callbacks do: two are allowed, the third is refused before any call to IAM.
    for _ in range(2):
        response = client.get("/auth/iam/callback", query_string={"code": "c", "state": "s"})
        assert response.headers["Location"].endswith("/login")
    refused = client.get("/auth/iam/callback", query_string={"code": "c", "state": "s"})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "120"
    assert "Too many failed SPD-IAM logins" in refused.get_data(as_text=True)
    [event] = [e for e in _events(db, "login.failed") if e.outcome == "rate-limited"]
    assert event.details == {"method": "iam", "step": "callback"} and event.client_address == "127.0.0.1"
    # Starts have their own, larger budget (4 used by the logins above).
    for _ in range(2):
        assert client.get("/auth/iam/login").status_code == 302
    refused = client.get("/auth/iam/login")
    assert refused.status_code == 429 and "Too many SPD-IAM login attempts" in refused.get_data(as_text=True)
    # Another address is not affected; the window passes.
    other = app.test_client()
    assert other.get("/auth/iam/login", environ_base={"REMOTE_ADDR": "127.0.0.2"}).status_code == 302
    clock.advance(121)
    assert client.get("/auth/iam/login").status_code == 302
    assert iam_login(client, oidc_op, "bob").headers["Location"].endswith("/")


# ---- redirect after login ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["https://evil.example/x", "//evil.example/x", "/\\evil.example/x", "/\t/evil.example/x"]
)
def test_iam_login_never_redirects_off_site(client, oidc_op, target):
    response = iam_login(client, oidc_op, "alice", next_url=quote(target, safe=""))
    location = urlsplit(response.headers["Location"])
    assert response.status_code == 302 and location.netloc in ("", "127.0.0.1") and location.path == "/"
    assert client.get("/tokens/").status_code == 200  # logged in all the same


# ---- CSRF and roles ---------------------------------------------------------------------------


def test_every_post_of_the_auth_and_token_pages_needs_a_csrf_token(app, client, db, oidc_op, real_clock):
    assert iam_login(client, oidc_op, "carol").status_code == 302  # an admin with stored tokens
    carol = _user(db, "carol")
    routes = [
        rule
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and rule.endpoint.split(".")[0] in ("auth", "iam", "tokens")
    ]
    assert len(routes) >= 9, [r.rule for r in routes]
    for rule in routes:
        url = re.sub(r"<int:\w+>", str(carol.id), rule.rule)  # any id: the CSRF check comes first
        response = client.post(url, data={"username": carol.username})
        assert response.status_code == 400, (url, response.status_code)
    assert len(_tokens(db, carol)) == 1 and client.get("/tokens/").status_code == 200
    assert not _events(db, "token.deleted") and not _events(db, "session.ended_by_admin")


def test_admin_token_pages_refuse_non_admins_with_403_and_audit(app, client, db, oidc_op, real_clock):
    bob_client = app.test_client()
    assert iam_login(bob_client, oidc_op, "bob").status_code == 302
    assert iam_login(client, oidc_op, "alice").status_code == 302  # a manager: below admin
    alice, bob = _user(db, "alice"), _user(db, "bob")
    assert client.get("/tokens/all").status_code == 403
    for action in ("end-sessions", "delete"):
        response = post_form(client, f"/tokens/all/{bob.id}/{action}", token_page="/tokens/")
        assert response.status_code == 403, action
    assert len(_tokens(db, bob)) == 1 and bob_client.get("/tokens/").status_code == 200
    denied = _events(db, "access.denied")
    assert sorted(e.target for e in denied) == sorted(
        ["/tokens/all", f"/tokens/all/{bob.id}/end-sessions", f"/tokens/all/{bob.id}/delete"]
    )
    assert {(e.user_id, e.outcome) for e in denied} == {(alice.id, "denied")}


# ---- ciphertexts are bound to their owner -----------------------------------------------------


def test_a_ciphertext_copied_into_another_users_row_does_not_decrypt(app, db, oidc_op, real_clock):
    assert iam_login(app.test_client(), oidc_op, "alice").status_code == 302
    assert iam_login(app.test_client(), oidc_op, "bob").status_code == 302
    alice, bob = _user(db, "alice"), _user(db, "bob")
    alice_token = vault.token_for(alice)
    [alice_row], [bob_row] = _tokens(db, alice), _tokens(db, bob)
    # Same source, same column, a still valid token: only the owner in the associated data differs.
    bob_row.id_token_sealed = alice_row.id_token_sealed
    bob_row.refresh_token_sealed = alice_row.refresh_token_sealed
    db.session.commit()
    with pytest.raises(VaultKeyError, match="owner/purpose"):
        unseal(bob_row, "id_token")
    with pytest.raises(vault.TokenUnavailable, match="cannot be decrypted") as info:
        vault.token_for(bob)
    assert info.value.relogin and _tokens(db, bob)[0].needs_relogin
    [event] = _events(db, "token.refresh_failed")
    assert event.user_id == bob.id and event.outcome == "relogin-needed"
    assert vault.token_for(alice) == alice_token  # the owner's row is untouched


# ---- local accounts switched off --------------------------------------------------------------


def test_switching_local_accounts_off_ends_local_sessions(app, client, db, make_user, oidc_op, real_clock):
    local = make_user("manager")
    post_form(client, "/login", {"username": local.username, "password": TEST_PASSWORD})
    assert client.get("/tokens/").status_code == 200
    iam_client = app.test_client()
    assert iam_login(iam_client, oidc_op, "alice").status_code == 302

    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, local_accounts=False)
    )
    response = client.get("/tokens/")
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"
    db.session.expire_all()
    assert db.session.scalar(select(WebSession).where(WebSession.user_id == local.id)) is None
    assert iam_client.get("/tokens/").status_code == 200  # IAM sessions go on
    # ... and the password no longer logs in.
    post_form(client, "/login", {"username": local.username, "password": TEST_PASSWORD})
    assert client.get("/tokens/").status_code == 302
