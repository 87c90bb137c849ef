"""Browser-test fixtures: Playwright (sync API) driving Debian's Chromium against a live server.

- ``browser`` (session): one headless Chromium from /usr/bin/chromium. Playwright's own browser
  downloads are never used (no ``playwright install``); ``make test`` installs the Debian package.
- ``live_server`` (per test): waitress serving the test ``app`` fixture on 127.0.0.1 on a free port
  in a daemon thread of this process, so a test can still use ``db``, ``clock`` and monkeypatch.
  Yields the base URL.
- ``page`` (per test): a fresh browser context (no cookies shared between tests) whose relative
  URLs resolve against ``live_server``. It records console errors, uncaught page errors, CSP
  violations and requests that leave loopback in ``browser_log``; at teardown the test fails if
  there was any CSP violation, uncaught JavaScript error or non-loopback request. A screenshot is
  saved when the test itself failed.
- ``log_in(page, username)`` (a function): logs in through the real /login form.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, expect, sync_playwright
from waitress.server import create_server

from app.runtime import start_scheduler
from tests.conftest import TEST_PASSWORD

CHROMIUM = Path(os.environ.get("PRODPANEL_CHROMIUM", "/usr/bin/chromium"))

# Headless Chromium that stays off the network: no sandbox (CI runs as root), no GPU, no
# background update/sync/QUIC traffic (blocked here anyway, and it would slow start-up down).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Anything not on loopback goes to a dead proxy and fails at once (Chromium never proxies
    # loopback); the page fixture still reports such requests as test failures.
    "--proxy-server=http://127.0.0.1:9",
]

DEFAULT_TIMEOUT_MS = 10_000
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class BrowserLog:
    """What the browser reported while a test ran (see the ``page`` fixture)."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    http_errors: list[str] = field(default_factory=list)  # "404 GET http://…" (console text has no URL)

    def problems(self) -> list[str]:
        """Findings that fail any browser test, whatever it asserts itself."""
        return (
            [f"CSP violation: {v}" for v in self.csp_violations]
            + [f"uncaught JavaScript error: {e}" for e in self.page_errors]
            + [f"request outside loopback: {u}" for u in self.external_requests]
        )


# Chromium reports CSP blocks on the console ("Refused to load/execute/apply … because it violates
# the following Content Security Policy directive …"); the init script below catches the DOM event
# as well, for violations that do not reach the console.
_CSP_CONSOLE = re.compile(r"Content Security Policy", re.IGNORECASE)
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__prodpanelReportCsp(
    `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile || e.documentURI}:${e.lineNumber}`
  );
});
"""


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: browser tests drive Debian's Chromium. Run `make test` "
            "(its e2e-deps step installs it: apt-get install -y chromium). Never `playwright install`.",
            pytrace=False,
        )
    browser = playwright_instance.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


class LiveServer:
    """waitress serving a WSGI app on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, wsgi_app, threads: int = 4) -> None:
        self._server = create_server(wsgi_app, host="127.0.0.1", port=0, threads=threads)
        self.url = f"http://127.0.0.1:{self._server.effective_port}"
        self._thread = threading.Thread(target=self._server.run, name="e2e-live-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        server = self._server

        def close_everything() -> None:
            # Runs in the server thread (via the trigger): closing every channel, the listening
            # socket and the trigger empties the asyncore map, which ends server.run().
            for channel in list(server._map.values()):
                channel.close()

        server.trigger.pull_trigger(close_everything)
        self._thread.join(timeout=10)
        server.task_dispatcher.shutdown(timeout=5)
        if self._thread.is_alive():
            raise RuntimeError("the e2e live server did not stop within 10 s")


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """Base URL of ``app`` served by waitress on loopback for the duration of one test, with the
    background jobs running as under `prodpanel serve` (launches go out through the dispatch job)."""
    server = LiveServer(app)
    server.start()
    stop_jobs = start_scheduler(app)
    yield server.url
    stop_jobs()
    server.stop()


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets the page fixture know at teardown whether the test body failed (for the screenshot).
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def page(
    browser: Browser, live_server: str, browser_log: BrowserLog, request, tmp_path: Path
) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.expose_function("__prodpanelReportCsp", lambda text: browser_log.csp_violations.append(text))
    context.add_init_script(_CSP_LISTENER)

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location.get("url") if message.location else ""
        text = f"{message.text} [{where}]" if where else message.text
        if _CSP_CONSOLE.search(text):
            browser_log.csp_violations.append(text)
        browser_log.console_errors.append(text)

    def on_request(req) -> None:
        parts = urlsplit(req.url)
        if parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname not in LOOPBACK_HOSTS:
            browser_log.external_requests.append(req.url)

    def on_response(response) -> None:
        if response.status >= 400:
            browser_log.http_errors.append(f"{response.status} {response.request.method} {response.url}")

    context.on("console", on_console)
    context.on("response", on_response)
    context.on("request", on_request)
    page = context.new_page()
    page.on("pageerror", lambda error: browser_log.page_errors.append(str(error)))
    yield page

    if request.node.stash.get(_CALL_FAILED, False):
        shot = tmp_path / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"e2e screenshot: {shot} (last URL {page.url})")
    context.close()
    problems = browser_log.problems()
    if problems:
        pytest.fail("browser reported:\n  " + "\n  ".join(problems), pytrace=False)


def log_in(page: Page, username: str) -> None:
    """Log in through the real /login form (password tests.conftest.TEST_PASSWORD)."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile(r"/login"))
    page.wait_for_load_state()  # deferred scripts (htmx, app.js) have run
