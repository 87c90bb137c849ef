"""A real OpenID provider (node `oidc-provider` 9.13.2, configured like INDIGO IAM) on loopback.

Registered in tests/conftest.py through `pytest_plugins`. The session fixture `oidc_op` starts
tests/oidc_op/server.mjs on a free 127.0.0.1 port and waits for its discovery document.

Users (login name = user name; ANY password is accepted):
  alice  groups spd, spd/production                      -> manager
  carol  groups spd, spd/production, spd/production/admin -> admin
  bob    groups spd                                       -> viewer
  mallory no groups                                      -> refused
Clients: `panel` (confidential, secret PANEL_SECRET; auth code, refresh, device code, token exchange;
any loopback port is a valid redirect because it is a "native" client) and `panda` (public, device
flow, like PanDA's own IAM client).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests.helpers import free_port, wait_until

OP_DIR = Path(__file__).resolve().parent / "oidc_op"
PANEL_CLIENT_ID = "panel"
PANEL_SECRET = "panel-test-secret-0123456789"
PANDA_CLIENT_ID = "panda"
ID_TOKEN_TTL = 600  # IAM's default; tests move the panel's clock instead of waiting

USERS = {
    "alice": {"name": "Alice Manager", "groups": ["spd", "spd/production"]},
    "carol": {"name": "Carol Admin", "groups": ["spd", "spd/production", "spd/production/admin"]},
    "bob": {"name": "Bob Viewer", "groups": ["spd"]},
    "mallory": {"name": "Mallory", "groups": []},
}


def op_config() -> dict:
    return {
        "users": USERS,
        "clients": [
            {
                "client_id": PANEL_CLIENT_ID,
                "client_secret": PANEL_SECRET,
                "application_type": "native",
                "redirect_uris": ["http://127.0.0.1/auth/iam/callback"],
                "post_logout_redirect_uris": ["http://127.0.0.1/auth/iam/signed-out"],
            },
            {
                "client_id": PANDA_CLIENT_ID,
                "token_endpoint_auth_method": "none",
                "application_type": "native",
                "grant_types": ["refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
                "response_types": [],
                "redirect_uris": [],
            },
        ],
        "ttl": {"IdToken": ID_TOKEN_TTL},
        "rotate_refresh_tokens": True,
    }


@dataclass
class OidcOp:
    """Handle on the running provider, with helpers that drive its login pages over HTTP."""

    issuer: str
    process: subprocess.Popen
    log_path: Path
    client_id: str = PANEL_CLIENT_ID
    client_secret: str = PANEL_SECRET
    panda_client_id: str = PANDA_CLIENT_ID
    users: dict = field(default_factory=lambda: USERS)

    @property
    def metadata(self) -> dict:
        return requests.get(self.issuer + ".well-known/openid-configuration", timeout=5).json()

    def stats(self) -> dict:
        """Counts of successful grants by type (`refresh` = refresh-token grants) and of key-set
        reads (`jwks`)."""
        return requests.get(self.issuer + "_test/stats", timeout=5).json()

    def tamper_next_id_token(self, **claims) -> None:
        """Make the next ID token the provider issues carry these claim values (None removes one)."""
        requests.post(
            self.issuer + "_test/tamper-next-id-token", data=json.dumps(claims), timeout=5
        ).raise_for_status()

    def revoke(self, token: str, hint: str = "refresh_token") -> None:
        """RFC 7009 revocation as the panel client (revoking a refresh token ends the whole grant)."""
        resp = requests.post(
            self.metadata["revocation_endpoint"],
            data={"token": token, "token_type_hint": hint},
            auth=(self.client_id, self.client_secret),
            timeout=5,
        )
        resp.raise_for_status()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def port(self) -> int:
        return int(self.issuer.rstrip("/").rsplit(":", 1)[1])

    def pause(self) -> None:
        """An outage: the process stops answering (connections are accepted, then time out) and
        keeps its grants for when it goes on (`resume`)."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    # ---- driving the devInteractions pages with `requests` ------------------------------
    def sign_in(self, browser: requests.Session, page: requests.Response, username: str) -> requests.Response:
        """From the provider's login page, log in as `username` and consent; return the last response
        (a redirect to the relying party, not followed)."""
        resp = page
        for _ in range(6):
            action, fields = _form(resp.text)
            if "login" in fields or 'name="login"' in resp.text:
                fields.update(login=username, password="any-password")
            resp = browser.post(urljoin(resp.url, action), data=fields, allow_redirects=False)
            while resp.status_code in (302, 303):
                target = urljoin(resp.url, resp.headers["Location"])
                if not target.startswith(self.issuer):
                    return resp  # back to the relying party
                resp = browser.get(target, allow_redirects=False)
        raise AssertionError(f"the provider did not redirect back after login: {resp.status_code} {resp.url}")

    def approve_device_code(self, user_code: str, username: str) -> None:
        """Play the user on the device-verification page: enter the code, log in, consent."""
        b = requests.Session()
        resp = b.get(self.issuer + "device")
        action, fields = _form(resp.text)
        fields["user_code"] = user_code
        resp = b.post(urljoin(resp.url, action), data=fields, allow_redirects=True)
        for _ in range(6):
            if "Sign-in Success" in resp.text or "success" in resp.url:
                return
            action, fields = _form(resp.text)
            if 'name="login"' in resp.text:
                fields.update(login=username, password="any-password")
            resp = b.post(urljoin(resp.url, action), data=fields, allow_redirects=True)
        raise AssertionError(f"device approval did not finish: {resp.url}\n{resp.text[:500]}")


def _form(text: str) -> tuple[str, dict[str, str]]:
    match = re.search(r'<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>', text, re.S)
    if not match:
        raise AssertionError(f"no form on the provider page:\n{text[:800]}")
    fields = {}
    for tag in re.findall(r"<input[^>]*>", match.group(2)):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    return html.unescape(match.group(1)), fields


def start_op(
    tmp_dir: Path, config: dict, extra_env: dict | None = None, deadline_s: float = 20.0, port: int = 0
) -> OidcOp:
    """Start server.mjs on a loopback port (default: a free one) and wait for discovery; fail with a
    clear message."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed: the OpenID provider tests need Node 20+ (run `make test`)", pytrace=False
        )
    if not (OP_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        pytest.fail(
            f"{OP_DIR}/node_modules is missing: run `make test` (or `make oidc-deps`) to install oidc-provider",
            pytrace=False,
        )
    port = port or free_port()
    issuer = f"http://127.0.0.1:{port}/"
    log_path = tmp_dir / f"oidc-op-{port}.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OP_PORT": str(port),
        "OP_TEST_HOOKS": "1",
        "OP_CONFIG_JSON": json.dumps(config),
        **(extra_env or {}),
    }
    log = open(log_path, "ab")  # noqa: SIM115 - stays open for the child's lifetime (a restart appends)
    proc = subprocess.Popen([node, "server.mjs"], cwd=OP_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    op = OidcOp(issuer=issuer, process=proc, log_path=log_path)

    def discovery_ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"the OpenID provider exited with {proc.returncode}:\n{op.log()}", pytrace=False)
        try:
            return (
                requests.get(issuer + ".well-known/openid-configuration", timeout=1).json()["issuer"]
                == issuer
            )
        except (requests.RequestException, ValueError, KeyError):
            return False

    try:
        wait_until(
            discovery_ready, timeout=deadline_s, interval=0.1, message="the OpenID provider's discovery"
        )
    except AssertionError:
        stop_op(op)
        pytest.fail(f"the OpenID provider did not answer within {deadline_s}s:\n{op.log()}", pytrace=False)
    return op


def stop_op(op: OidcOp) -> None:
    if op.process.poll() is None:
        op.resume()  # a paused process would not handle SIGTERM
    op.process.terminate()
    try:
        op.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        op.process.kill()
        op.process.wait(timeout=10)


@pytest.fixture(scope="session")
def oidc_op(tmp_path_factory) -> Iterator[OidcOp]:
    """The running provider (one per test session)."""
    op = start_op(tmp_path_factory.mktemp("oidc-op"), op_config())
    yield op
    stop_op(op)


# ---- a panel configured against the provider ----------------------------------------------


def build_iam_app(
    settings_factory, migrated_sqlite, oidc_op: OidcOp, server_name: str | None = "127.0.0.1", **overrides
):
    """A test app whose IAM section points at `oidc_op` (PanDA URL set: not sandbox mode).

    Keyword arguments override settings sections like settings_factory's (dicts are merged into
    the iam/panda/auth sections).
    """
    from flask import g

    from app import create_app

    iam = {"issuer": oidc_op.issuer, "client_id": oidc_op.client_id, "client_secret": oidc_op.client_secret}
    iam.update(overrides.pop("iam", {}))
    panda = {"url": "http://127.0.0.1:9/"}
    panda.update(overrides.pop("panda", {}))
    settings = settings_factory(iam=iam, panda=panda, **overrides)
    shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    application = create_app(settings)
    application.config["TESTING"] = True
    if server_name:  # the test client's host, so that callback URLs are on loopback (not for live servers)
        application.config["SERVER_NAME"] = server_name

    @application.before_request
    def _fresh_csrf_cache() -> None:
        # The test keeps one app context for all requests, so `g` outlives a request; Flask-WTF
        # caches the CSRF token in `g` and would hand out a token of the pre-login session.
        g.pop("csrf_token", None)

    return application


def iam_login(client, op: OidcOp, username: str, *, next_url: str = "", tamper: dict | None = None):
    """Log the Flask test client in through the provider's pages; returns the callback's response."""
    start = client.get("/auth/iam/login" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start.get_data(as_text=True)[:300]
    location = start.headers["Location"]
    assert location.startswith(op.issuer), location
    browser = requests.Session()
    page = browser.get(location)
    if tamper:
        op.tamper_next_id_token(**tamper)
    back = op.sign_in(browser, page, username)
    return client.get(back.headers["Location"])
