"""static/js/app.js helpers in a real browser, under the panel's real CSP.

A test page is served on the live server's origin through Playwright routing (same origin, the
app's Content-Security-Policy header), loading the real static files from the live server, so the
helpers are exercised exactly as on the panel's pages without depending on any domain's templates.
"""

import pytest
from playwright.sync_api import expect

from app.web.security import CSP

pytestmark = pytest.mark.e2e

PAGE = """<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<meta name="csrf-token" content="test-token">
<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false}'>
<title>helpers</title>
<link rel="stylesheet" href="/static/vendor/bootstrap/bootstrap.min.css">
<link rel="stylesheet" href="/static/css/app.css">
<script src="/static/vendor/htmx/htmx.min.js" defer></script>
<script src="/static/vendor/bootstrap/bootstrap.bundle.min.js" defer></script>
<script src="/static/js/app.js" defer></script>
</head><body>
<div id="flash-messages">
  <div class="alert alert-success" id="auto" data-autodismiss="200">Saved.</div>
  <div class="alert alert-danger" id="sticky">Stays.</div>
</div>
<form method="post" action="/__e2e/submitted" id="bulk">
  <table class="table"><thead><tr>
    <th><input type="checkbox" id="all" data-select-all="task_id" aria-label="all"></th><th>Task</th>
  </tr></thead><tbody>
    <tr><td><input type="checkbox" name="task_id" value="1" id="t1"></td><td>one</td></tr>
    <tr><td><input type="checkbox" name="task_id" value="2" id="t2"></td><td>two</td></tr>
    <tr><td><input type="checkbox" name="task_id" value="3" id="t3"></td><td>three</td></tr>
  </tbody></table>
  <button type="submit" id="abort" data-confirm="Abort the selected tasks?" data-requires-selection="task_id">Abort</button>
</form>
<button id="load" hx-get="/__e2e/fragment" hx-target="#slot">load</button>
<button id="boom" hx-post="/__e2e/boom" hx-swap="none" data-confirm="Really?">boom</button>
<div id="slot"></div>
<time id="when" datetime="2026-11-28T09:05:00Z" data-local>2026-11-28T09:05:00Z</time>
</body></html>"""

FRAGMENT = (
    '<div class="alert alert-info" id="swapped" data-autodismiss="200">Swapped.</div>'
    '<time id="when2" datetime="2026-01-02T03:04:00+00:00" data-local>raw</time>'
)


@pytest.fixture
def helpers_page(page):
    """The page above at /__e2e/helpers; records the requests the routes answered."""
    seen = []

    def answer(route, request):
        seen.append((request.method, request.url.rsplit("/", 1)[-1], request.headers.get("x-csrftoken")))
        name = request.url.rsplit("/", 1)[-1]
        headers = {"Content-Security-Policy": CSP, "Content-Type": "text/html; charset=utf-8"}
        if name == "boom":
            route.fulfill(status=500, headers=headers, body="boom")
        else:
            body = {"helpers": PAGE, "fragment": FRAGMENT}.get(name, "submitted")
            route.fulfill(status=200, headers=headers, body=body)

    page.route("**/__e2e/*", answer)
    page.goto("/__e2e/helpers")
    page.wait_for_load_state()
    page.seen = seen
    return page


def test_select_all_toggles_rows_and_shows_partial_selection(helpers_page):
    page = helpers_page
    master, abort = page.locator("#all"), page.locator("#abort")
    expect(abort).to_be_disabled()  # nothing selected yet

    master.check()
    for box in ("#t1", "#t2", "#t3"):
        expect(page.locator(box)).to_be_checked()
    expect(abort).to_be_enabled()

    page.locator("#t2").uncheck()
    assert page.locator("#all").evaluate("el => [el.checked, el.indeterminate]") == [False, True]

    master.click()  # from indeterminate, a click selects everything again …
    for box in ("#t1", "#t2", "#t3"):
        expect(page.locator(box)).to_be_checked()
    master.click()  # … and the next one clears the selection
    for box in ("#t1", "#t2", "#t3"):
        expect(page.locator(box)).not_to_be_checked()
    expect(abort).to_be_disabled()


def test_confirm_cancel_keeps_the_page_and_accept_submits(helpers_page):
    page = helpers_page
    page.locator("#t1").check()
    messages = []

    page.once("dialog", lambda d: (messages.append(d.message), d.dismiss()))
    page.locator("#abort").click()
    assert messages == ["Abort the selected tasks?"]
    assert not any(name == "submitted" for _m, name, _t in page.seen)
    expect(page).to_have_url(page.url)

    page.once("dialog", lambda d: d.accept())
    with page.expect_navigation():
        page.locator("#abort").click()
    assert page.url.endswith("/__e2e/submitted")


def test_confirm_also_guards_htmx_requests(helpers_page):
    page = helpers_page
    page.once("dialog", lambda d: d.dismiss())
    page.locator("#boom").click()
    page.locator("#load").click()  # a later request proves the cancelled one would have been seen
    expect(page.locator("#swapped")).to_have_count(1)
    assert [name for _m, name, _t in page.seen if name == "boom"] == []


def test_htmx_error_is_reported_and_csrf_header_sent(helpers_page):
    page = helpers_page
    page.once("dialog", lambda d: d.accept())
    page.locator("#boom").click()
    expect(page.locator("#flash-messages .alert-danger", has_text="HTTP 500")).to_be_visible()
    assert ("POST", "boom", "test-token") in page.seen


def test_flash_autodismiss_and_local_times_also_in_swapped_content(helpers_page):
    page = helpers_page
    expect(page.locator("#auto")).to_have_count(0)  # gone after 200 ms (expect polls)
    expect(page.locator("#sticky")).to_be_visible()
    expect(page.locator("#when")).to_have_text("2026-11-28 09:05")  # the context runs in UTC
    expect(page.locator("#when")).to_have_attribute("title", "2026-11-28 09:05:00 UTC")

    page.locator("#load").click()
    expect(page.locator("#when2")).to_have_text("2026-01-02 03:04")
    expect(page.locator("#swapped")).to_have_count(0)
