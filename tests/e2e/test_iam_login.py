"""The SPD-IAM login in a real browser: panel → provider's login and consent pages → panel, with
the role from the groups claim; then logout, including the provider's RP-initiated logout."""

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.auth.models import User
from app.tokens.jwtutil import JWT_SHAPE
from tests.oidc_fixture import build_iam_app

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(settings_factory, migrated_sqlite, oidc_op):
    from app.extensions import db as _db

    application = build_iam_app(settings_factory, migrated_sqlite, oidc_op, server_name=None)
    with application.app_context():
        yield application
        _db.session.remove()
        _db.engine.dispose()


def _sign_in_at_provider(page: Page, username: str) -> None:
    page.locator('input[name="login"]').fill(username)
    page.locator('input[name="password"]').fill("whatever-the-provider-accepts")
    page.locator('button[type="submit"]').click()
    page.get_by_role("button", name="Continue").click()  # consent (offline_access)


def test_login_role_mapping_and_logout_in_a_browser(page: Page, live_server, oidc_op, db):
    page.goto("/tokens/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.locator("#iam-login").click()
    expect(page).to_have_url(re.compile(re.escape(oidc_op.issuer) + "interaction/"))
    _sign_in_at_provider(page, "carol")
    expect(page).to_have_url(live_server + "/tokens/")  # back where the user wanted to go
    expect(page.locator("#role")).to_have_text("admin")
    expect(page.locator("#groups")).to_contain_text("spd/production/admin")
    expect(page.locator(".grant[data-source=login] .token-health")).to_have_text("healthy")
    html = page.content()
    assert not JWT_SHAPE.search(html)
    user = db.session.scalar(select(User).where(User.sub == "carol"))
    assert user.role == "admin" and user.display_name == "Carol Admin"

    page.locator("#user-menu").click()
    page.locator("#logout").click()
    expect(page).to_have_url(live_server + "/auth/iam/logged-out")
    page.locator("#iam-logout").click()
    page.get_by_role("button", name=re.compile("sign me out", re.I)).click()
    expect(page).to_have_url(re.compile(re.escape(live_server + "/auth/iam/signed-out?state=")))
    # IAM's answer is the same whichever button was pressed: the page claims no more than that.
    expect(page.locator("#iam-answer")).to_contain_text("does not say which button you pressed")
    page.goto("/tokens/")
    expect(page).to_have_url(re.compile(r"/login"))
    # The provider's session is gone too: the next IAM login asks for the password again.
    page.locator("#iam-login").click()
    expect(page.locator('input[name="login"]')).to_be_visible()
