"""The API in a real browser: a personal token created on the token page (shown once, then listed,
then revoked), and the docs page rendering the OpenAPI document with the vendored Swagger UI under
the CSP (the ``page`` fixture fails on any violation, script error or request leaving loopback)."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_create_use_and_revoke_a_token(page, make_user, live_server):
    user = make_user("manager")
    log_in(page, user.username)
    page.goto("/tokens/")
    form = page.locator("#api-token-form")
    form.get_by_label("Name").fill("nightly SIM")
    form.get_by_label("Scope").select_option("write")
    form.get_by_label("Valid for (days)").fill("30")
    form.get_by_role("button", name="Create token").click()
    token = page.locator("#new-api-token-value").inner_text().strip()
    assert token.startswith("ppt_")
    reply = page.request.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.ok and reply.json()["token"]["name"] == "nightly SIM"
    page.goto("/tokens/")
    expect(page.locator("#new-api-token")).to_have_count(0)  # shown once
    row = page.locator("#api-token-list tr", has_text="nightly SIM")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("#api-token-list tr", has_text="nightly SIM")).to_contain_text("revoked")
    refused = page.request.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status == 401


def test_docs_page_renders_the_document(page, make_user):
    log_in(page, make_user("viewer").username)
    page.goto("/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("SPD production panel API")
    operations = page.locator(".swagger-ui .opblock-summary-path")
    expect(operations.first).to_be_visible()
    assert operations.count() >= 20
    expect(page.locator(".swagger-ui")).to_contain_text(re.compile(r"/tasks/\{task_id\}/actions/\{name\}"))
