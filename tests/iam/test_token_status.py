"""The token pages tell the truth: what IAM's logout answered, no stale "re-login needed" after a
fresh login, retired sandbox tokens, and no "healthy" badge on a grant whose last check failed."""

import dataclasses
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import requests
from sqlalchemy import select

from app.auth.models import User
from app.tokens import services as vault
from app.tokens.models import UserToken
from app.tokens.vault import unseal
from tests.conftest import TEST_PASSWORD
from tests.helpers import post_form
from tests.oidc_fixture import _form, iam_login


def _grant(db, sub) -> UserToken:
    db.session.expire_all()
    user = db.session.scalar(select(User).where(User.sub == sub))
    return db.session.scalar(select(UserToken).where(UserToken.user_id == user.id))


def _badges(page: str) -> list[str]:
    return [part.split('"', 1)[0] for part in page.split('token-health" data-status="')[1:]]


def test_staying_signed_in_at_iams_logout_is_not_reported_as_a_logout(client, oidc_op, real_clock):
    start = client.get("/auth/iam/login")
    browser = requests.Session()  # the user's browser at IAM
    back = oidc_op.sign_in(browser, browser.get(start.headers["Location"]), "alice")
    assert client.get(back.headers["Location"]).status_code == 302
    post_form(client, "/logout", token_page="/tokens/")
    end = client.get("/auth/iam/end-session")
    question = browser.get(end.headers["Location"])
    assert "No, stay signed in" in question.text
    action, fields = _form(question.text)
    answer = browser.post(urljoin(question.url, action), data=fields, allow_redirects=False)  # "No"
    target = urlsplit(answer.headers["Location"])
    page = client.get(target.path, query_string=target.query).get_data(as_text=True)
    assert "has ended as well" not in page
    assert "does not say which button you pressed" in page and 'id="iam-logout"' in page
    # Indeed IAM's session is still open: a new login asks for no password.
    again = browser.get(client.get("/auth/iam/login").headers["Location"])
    assert 'name="login"' not in again.text and 'name="password"' not in again.text
    # Reached some other way, the page claims nothing.
    page = client.get("/auth/iam/signed-out").get_data(as_text=True)
    assert "nothing is known about your SPD-IAM session" in page


def test_a_fresh_login_clears_the_previous_relogin_message(make_app, oidc_op, real_clock):
    from app.extensions import db

    client = make_app(panda={"transport": "v1"}).test_client()  # no probe: the token comes first
    assert iam_login(client, oidc_op, "alice").status_code == 302
    grant = _grant(db, "alice")
    oidc_op.revoke(unseal(grant, "refresh_token"))
    real_clock.set(grant.id_token_expires_at)
    post_form(client, "/tokens/check", token_page="/tokens/")  # finds the grant dead
    assert "re-login needed" in client.get("/tokens/").get_data(as_text=True).lower()

    real_clock.set(datetime.now(UTC))
    assert iam_login(client, oidc_op, "alice").status_code == 302
    page = client.get("/tokens/").get_data(as_text=True)
    assert "re-login needed" not in page.lower() and _badges(page) == ["ok"]


def test_a_grant_whose_last_check_failed_is_not_badged_healthy(client, db, oidc_op, real_clock):
    assert iam_login(client, oidc_op, "alice").status_code == 302
    assert _badges(client.get("/tokens/").get_data(as_text=True)) == ["ok"]
    post_form(client, "/tokens/check", token_page="/tokens/")  # this panel's PanDA does not answer
    page = client.get("/tokens/").get_data(as_text=True)
    assert _badges(page) == ["failing"] and "last check failed" in page and "healthy" not in page


def test_sandbox_tokens_are_retired_once_a_real_panda_is_configured(make_app, oidc_op, real_clock):
    from app.auth.services import create_local_user
    from app.extensions import db
    from app.panda.sandbox import attach_sandbox, start_sandbox

    app = make_app(panda={"url": ""})
    running = start_sandbox(app.config["SETTINGS"])
    try:
        attach_sandbox(app, running)
        create_local_user("mgr", TEST_PASSWORD, role="manager")
        db.session.commit()
        client = app.test_client()
        post_form(client, "/login", {"username": "mgr", "password": TEST_PASSWORD})
        vault.token_for(db.session.scalar(select(User).where(User.username == "mgr")))
        assert _badges(client.get("/tokens/").get_data(as_text=True)) == ["ok"]
    finally:
        running.stop()

    settings = app.config["SETTINGS"]  # the site admin points the panel at a real PanDA
    app.config["SETTINGS"] = dataclasses.replace(
        settings, panda=dataclasses.replace(settings.panda, url="http://127.0.0.1:9/")
    )
    page = client.get("/tokens/").get_data(as_text=True)
    assert _badges(page) == ["retired"] and "healthy" not in page
    assert "Retired: this sandbox token is no longer sent to PanDA" in page
