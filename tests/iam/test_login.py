"""IAM login against the real OpenID provider: roles from groups, refusals, logout."""

from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.sessions import WebSession
from tests.helpers import post_form
from tests.oidc_fixture import iam_login


def _events(db, action):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def _me(client):
    return client.get("/tokens/")


def test_login_button_on_login_page(client):
    html = client.get("/login").get_data(as_text=True)
    assert 'id="iam-login"' in html and "Log in with SPD-IAM" in html


def test_authorization_request_uses_pkce_nonce_state_and_default_scopes(client):
    query = parse_qs(urlsplit(client.get("/auth/iam/login").headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert query["response_type"] == ["code"] and query["client_id"] == ["panel"]
    assert query["scope"] == ["openid profile email offline_access"]
    assert len(query["state"][0]) >= 20 and len(query["nonce"][0]) >= 20


def test_full_login_maps_groups_to_roles(client, db, oidc_op):
    response = iam_login(client, oidc_op, "alice", next_url="/tokens/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/tokens/")
    user = db.session.scalar(select(User).where(User.sub == "alice"))
    assert (user.iss, user.role, user.display_name) == (oidc_op.issuer, "manager", "Alice Manager")
    assert user.email == "alice@example.org" and not user.is_local
    page = _me(client).get_data(as_text=True)
    assert "spd/production" in page and 'id="role">manager' in page
    [ok] = _events(db, "login.ok")
    assert ok.details["method"] == "iam" and ok.user_id == user.id


def test_admin_and_viewer_roles(app, db, oidc_op):
    for name, role in (("carol", "admin"), ("bob", "viewer")):
        client = app.test_client()
        assert iam_login(client, oidc_op, name).status_code == 302
        assert db.session.scalar(select(User.role).where(User.sub == name)) == role


def test_user_without_accepted_group_is_refused(client, db, oidc_op):
    response = iam_login(client, oidc_op, "mallory")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert db.session.scalar(select(User).where(User.sub == "mallory")) is None
    [failed] = _events(db, "login.failed")
    assert "none of the groups" in failed.details["reason"]
    assert client.get("/tokens/").status_code == 302  # not logged in


def test_role_follows_groups_on_every_login_and_change_is_audited(app, db, oidc_op):
    assert iam_login(app.test_client(), oidc_op, "alice").status_code == 302
    user = db.session.scalar(select(User).where(User.sub == "alice"))
    user.role = "viewer"
    db.session.commit()
    assert iam_login(app.test_client(), oidc_op, "alice").status_code == 302
    db.session.refresh(user)
    assert user.role == "manager"
    [change] = _events(db, "user.role_changed")
    assert change.details["from"] == "viewer" and change.details["to"] == "manager"


def _refused(client, db, response, reason_part):
    assert response.status_code == 302 and response.headers["Location"].endswith("/login"), response.headers
    assert client.get("/tokens/").status_code == 302
    reasons = [e.details.get("reason", "") for e in _events(db, "login.failed")]
    assert any(reason_part in r for r in reasons), reasons
    assert not _events(db, "login.ok")


def test_wrong_nonce_is_refused(client, db, oidc_op):
    _refused(client, db, iam_login(client, oidc_op, "alice", tamper={"nonce": "not-the-nonce"}), "nonce")


def test_wrong_audience_is_refused(client, db, oidc_op):
    _refused(
        client,
        db,
        iam_login(client, oidc_op, "alice", tamper={"aud": "another-client", "azp": "panel"}),
        "aud",
    )


def test_wrong_issuer_in_id_token_is_refused(client, db, oidc_op):
    _refused(client, db, iam_login(client, oidc_op, "alice", tamper={"iss": "http://127.0.0.1:1/"}), "iss")


def test_expired_id_token_is_refused(client, db, oidc_op):
    _refused(client, db, iam_login(client, oidc_op, "alice", tamper={"exp": 1_000_000_000}), "exp")


def test_wrong_state_is_refused(client, db, oidc_op):
    start = client.get("/auth/iam/login")
    import requests

    browser = requests.Session()
    back = oidc_op.sign_in(browser, browser.get(start.headers["Location"]), "alice")
    url = urlsplit(back.headers["Location"])
    query = parse_qs(url.query)
    response = client.get(
        url.path, query_string={"code": query["code"][0], "state": "forged", "iss": query["iss"][0]}
    )
    _refused(client, db, response, "state")


def test_iss_parameter_of_another_issuer_is_refused(client, db, oidc_op):
    start = client.get("/auth/iam/login")
    import requests

    browser = requests.Session()
    back = oidc_op.sign_in(browser, browser.get(start.headers["Location"]), "alice")
    url = urlsplit(back.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    query["iss"] = "http://127.0.0.1:1/"
    _refused(client, db, client.get(url.path, query_string=query), "another issuer")


def test_logout_ends_session_and_offers_rp_logout(client, db, oidc_op):
    iam_login(client, oidc_op, "alice")
    assert db.session.scalar(select(WebSession).where(WebSession.user_id.is_not(None))) is not None
    response = post_form(client, "/logout", token_page="/tokens/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/auth/iam/logged-out")
    assert db.session.scalar(select(WebSession).where(WebSession.user_id.is_not(None))) is None
    assert client.get("/tokens/").status_code == 302
    page = client.get("/auth/iam/logged-out").get_data(as_text=True)
    assert 'id="iam-logout"' in page
    end = client.get("/auth/iam/end-session")
    target = urlsplit(end.headers["Location"])
    params = parse_qs(target.query)
    assert end.headers["Location"].startswith(oidc_op.metadata["end_session_endpoint"])
    assert params["client_id"] == ["panel"] and "id_token_hint" not in params
    assert params["post_logout_redirect_uri"] == ["http://127.0.0.1/auth/iam/signed-out"]
    assert _events(db, "logout")


@pytest.mark.parametrize(
    "iam_overrides", [{"iam": {"groups_claim": "wlcg.groups", "extra_scopes": "wlcg.groups"}}]
)
def test_wlcg_groups_claim(client, db, oidc_op, iam_overrides):
    start = client.get("/auth/iam/login")
    assert "wlcg.groups" in parse_qs(urlsplit(start.headers["Location"]).query)["scope"][0]
    assert iam_login(client, oidc_op, "carol").status_code == 302
    assert db.session.scalar(select(User.role).where(User.sub == "carol")) == "admin"


def test_a_callback_with_an_unknown_state_shows_one_fixed_message(client, db, oidc_op):
    from app.auth.services import UNKNOWN_STATE

    client.get("/auth/iam/login")  # a login is under way in this browser, with its own state
    lure = "Your account is locked: call +1 555 0100"
    response = client.get("/auth/iam/callback", query_string={"error": lure, "state": "forged"})
    assert response.headers["Location"].endswith("/login")
    page = client.get("/login").get_data(as_text=True)
    assert "555" not in page and "unknown state" in page
    [failed] = _events(db, "login.failed")
    assert failed.details == {"method": "iam", "reason": UNKNOWN_STATE}


def test_an_error_from_iam_for_this_browsers_login_is_shown(client, db, oidc_op):
    import re

    import requests

    start = client.get("/auth/iam/login")
    browser = requests.Session()
    page = browser.get(start.headers["Location"])
    cancel = re.search(r'href="([^"]+)">\[ Cancel \]', page.text).group(1)  # the user cancels at IAM
    target = urljoin(page.url, cancel)
    while target.startswith(oidc_op.issuer):  # through the provider's own redirects
        target = urljoin(target, browser.get(target, allow_redirects=False).headers["Location"])
    url = urlsplit(target)
    assert parse_qs(url.query)["error"] == ["access_denied"]
    assert client.get(url.path, query_string=url.query).headers["Location"].endswith("/login")
    assert "SPD-IAM answered access_denied" in client.get("/login").get_data(as_text=True)
    # The state is spent: the same answer again is an unknown one.
    client.get(url.path, query_string=url.query)
    assert [e.details["reason"] for e in _events(db, "login.failed")][-1].endswith("start the login again")
