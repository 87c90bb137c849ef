"""The web shell in a real browser: vendored assets load under the CSP, log in, navigate, log out.

The ``page`` fixture already fails a test on any CSP violation, uncaught JavaScript error or
request leaving loopback; these tests add what a user sees.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

BOOTSTRAP_PRIMARY = "rgb(13, 110, 253)"  # Bootstrap 5.3 --bs-primary (#0d6efd)
APP_BACKGROUND = "rgb(244, 246, 249)"  # static/css/app.css --pp-bg (#f4f6f9)


def computed(page, selector: str, prop: str) -> str:
    return page.locator(selector).first.evaluate(f"el => getComputedStyle(el).{prop}")


def test_login_page_uses_vendored_assets_without_errors(page, browser_log):
    response = page.goto("/login")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]

    # Bootstrap's and our stylesheet apply, i.e. both were served from static/ and parsed.
    assert computed(page, "#login-form button[type=submit]", "backgroundColor") == BOOTSTRAP_PRIMARY
    assert computed(page, "body", "backgroundColor") == APP_BACKGROUND

    # htmx and Bootstrap JS ran, with the CSP-safe htmx settings from the meta tag and app.js.
    config = page.evaluate(
        "() => ({htmx: typeof window.htmx, bootstrap: typeof window.bootstrap, eval: htmx.config.allowEval,"
        " styles: htmx.config.includeIndicatorStyles, scripts: htmx.config.allowScriptTags})"
    )
    assert config == {
        "htmx": "object",
        "bootstrap": "object",
        "eval": False,
        "styles": False,
        "scripts": False,
    }
    assert page.locator("head style").count() == 0, "nothing injected an inline <style> (CSP)"

    loaded = [
        r["name"]
        for r in page.evaluate("() => performance.getEntriesByType('resource').map(e => ({name: e.name}))")
    ]
    assert any(url.endswith("/static/vendor/bootstrap/bootstrap.min.css") for url in loaded)
    assert any(url.endswith("/static/vendor/htmx/htmx.min.js") for url in loaded)
    assert browser_log.console_errors == [], browser_log.http_errors


def test_admin_logs_in_sees_navigation_and_logs_out(page, make_user, browser_log):
    admin = make_user("admin", "e2e-admin")

    log_in(page, admin.username)

    nav = page.locator("nav.navbar")
    expect(nav.get_by_role("link", name="Audit")).to_be_visible()  # admin-only entry
    user_menu = page.locator("#user-menu")
    expect(user_menu).to_contain_text("admin")

    # The dropdown needs Bootstrap's JS; the logout form posts with its CSRF token.
    user_menu.click()
    page.locator("#logout").click()
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.locator("#user-menu")).to_have_count(0)

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))  # the session is really gone
    assert browser_log.console_errors == [], browser_log.http_errors


def test_htmx_requests_carry_the_csrf_header(page, make_user):
    viewer = make_user("viewer", "e2e-viewer")
    log_in(page, viewer.username)
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")

    # A POST through htmx without a form token: accepted only because app.js adds X-CSRFToken.
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/logout")) as info:
        # htmx.ajax returns a promise; evaluate waits for the request to finish.
        page.evaluate("() => htmx.ajax('POST', '/logout', {target: 'body', swap: 'none'})")
    assert info.value.headers.get("x-csrftoken") == token

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
