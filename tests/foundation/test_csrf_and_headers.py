import re

import pytest

from tests.conftest import TEST_PASSWORD
from tests.helpers import post_form


def test_login_without_csrf_token_is_rejected(client, make_user):
    make_user("viewer", "frank")
    response = client.post("/login", data={"username": "frank", "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302  # not logged in


def test_logout_without_csrf_token_is_rejected(client, login_as):
    login_as("viewer")
    response = client.post("/logout")
    assert response.status_code == 400
    assert "Reload the page" in response.get_data(as_text=True)
    assert client.get("/").status_code == 200  # still logged in


def test_csrf_header_is_accepted_for_htmx(client, login_as):
    login_as("viewer")
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)
    assert client.post("/logout", headers={"X-CSRFToken": token}).status_code == 302


def _url_for_rule(rule) -> str:
    url = rule.rule
    for arg in rule.arguments:
        converter = rule._converters[arg].__class__.__name__
        url = re.sub(rf"<[^>]*{arg}>", "1" if "Integer" in converter else "x", url)
    return url


@pytest.mark.parametrize("logged_in", [False, True])
def test_security_headers_on_every_route(app, client, login_as, logged_in):
    if logged_in:
        login_as("admin")
    checked = 0
    for rule in app.url_map.iter_rules():
        method = "GET" if "GET" in rule.methods else sorted(rule.methods - {"OPTIONS", "HEAD"})[0]
        url = _url_for_rule(rule) if rule.endpoint != "static" else "/static/css/app.css"
        response = client.open(url, method=method)
        headers = response.headers
        csp = headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, url
        assert "frame-ancestors 'none'" in csp, url
        assert headers.get("X-Content-Type-Options") == "nosniff", url
        assert headers.get("Referrer-Policy") == "same-origin", url
        assert headers.get("X-Request-ID"), url
        if rule.endpoint != "static":
            assert headers.get("Cache-Control") == "no-store", url
        response.close()
        checked += 1
    assert checked >= 5


def test_session_cookie_flags(client, make_user):
    make_user("viewer", "gina")
    response = post_form(client, "/login", {"username": "gina", "password": TEST_PASSWORD})
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback


def test_session_cookie_secure_over_tls(client, make_user):
    make_user("viewer", "hank")
    token = re.search(
        r'name="csrf-token" content="([^"]+)"',
        client.get("/login", base_url="https://localhost").get_data(as_text=True),
    ).group(1)
    response = client.post(
        "/login",
        data={"username": "hank", "password": TEST_PASSWORD, "csrf_token": token},
        base_url="https://localhost",
        headers={"Referer": "https://localhost/login"},
    )
    assert response.status_code == 302
    assert "Secure" in response.headers.get("Set-Cookie", "")
    assert response.headers.get("Strict-Transport-Security")


def test_error_pages_leak_nothing(app, client):
    @app.get("/boom-test")
    def boom():
        raise RuntimeError("secret internal detail /etc/passwd")

    response = client.get("/boom-test")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "secret internal detail" not in body and "Traceback" not in body
    assert "Something went wrong" in body
    assert client.get("/no-such-page").status_code == 404


def test_request_id_is_echoed_when_well_formed(client):
    assert client.get("/login", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    assert client.get("/login", headers={"X-Request-ID": "bad id<>"}).headers["X-Request-ID"] != "bad id<>"
