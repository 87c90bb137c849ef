"""Personal API tokens and who may call what: tokens are created and revoked on the token page
(shown once, stored hashed), scoped read/write, expire; the browser's session needs its CSRF token;
roles are the UI's; refusals are problem documents; audit entries name the token."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select

from app.api.models import ApiToken
from app.audit.models import AuditEvent
from tests.api.conftest import Api
from tests.helpers import csrf_token, post_form

PROBLEM = "application/problem+json"


def test_token_page_creates_a_token_shown_once_and_stored_hashed(client, login_as, db):
    login_as("manager")
    page = post_form(
        client, "/tokens/api", {"name": "nightly", "scope": "read", "days": "7"}, token_page="/tokens/"
    )
    assert page.status_code == 200
    secret = re.search(r'id="new-api-token-value">([^<]+)<', page.get_data(as_text=True)).group(1)
    row = db.session.scalar(select(ApiToken))
    assert row.name == "nightly" and row.scope == "read"
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str([getattr(row, c.name) for c in ApiToken.__table__.columns])
    again = client.get("/tokens/").get_data(as_text=True)
    assert "nightly" in again and secret not in again  # listed, never shown again
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json["token"]["name"] == "nightly" and me.json["role"] == "manager"


def test_token_form_errors_are_shown_per_field(client, login_as):
    login_as("viewer")
    page = post_form(
        client, "/tokens/api", {"name": "", "scope": "admin", "days": "5000"}, token_page="/tokens/"
    )
    assert page.status_code == 400
    assert "new-api-token" not in page.get_data(as_text=True)


def test_revoked_and_expired_tokens_are_refused(client, login_as, make_token, db, clock):
    user, secret = make_token(days=1)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    clock.advance(days=2)
    expired = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert expired.status_code == 401 and expired.mimetype == PROBLEM and "expired" in expired.json["detail"]
    assert expired.headers["WWW-Authenticate"].startswith("Bearer")
    user = login_as("manager")
    _, other = make_token(user=user)
    row = db.session.scalar(select(ApiToken).order_by(ApiToken.id.desc()))
    assert post_form(client, f"/tokens/api/{row.id}/revoke", token_page="/tokens/").status_code == 302
    refused = client.get("/api/v1/me", headers={"Authorization": f"Bearer {other}"})
    assert refused.status_code == 401 and "revoked" in refused.json["detail"]


def test_a_user_cannot_revoke_someone_elses_token(client, login_as, make_token, db):
    _, secret = make_token("manager")
    row = db.session.scalar(select(ApiToken))
    login_as("admin")
    assert post_form(client, f"/tokens/api/{row.id}/revoke", token_page="/tokens/").status_code == 404
    assert Api(client, secret).get("/api/v1/me").status_code == 200


def test_malformed_and_unknown_tokens_are_refused(client, make_token):
    _, secret = make_token()
    for header in ("Basic abc", "Bearer ", "Bearer nonsense", "Bearer " + secret[:-2] + "xx"):
        response = client.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.mimetype == PROBLEM and response.json["status"] == 401
    assert client.get("/api/v1/me").status_code == 401  # neither token nor session


def test_a_disabled_users_token_is_refused(client, make_token, db):
    user, secret = make_token()
    user.active = False
    db.session.commit()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_read_token_reads_but_cannot_write(api):
    reader = api("manager", "read")
    assert reader.get("/api/v1/tasks").status_code == 200
    refused = reader.post("/api/v1/tasks/preview", json={})
    assert refused.status_code == 403 and refused.json["type"].endswith("read_only_token")


def test_roles_are_the_uis(api, db):
    viewer = api("viewer")
    assert viewer.get("/api/v1/tasks").status_code == 200
    refused = viewer.post("/api/v1/tasks/preview", json={})
    assert refused.status_code == 403 and "manager" in refused.json["detail"]
    assert viewer.get("/api/v1/audit").status_code == 403
    assert api("manager").get("/api/v1/audit").status_code == 403
    assert api("admin").get("/api/v1/audit").status_code == 200
    denied = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "access.denied")).all()
    assert {e.target for e in denied} >= {"/api/v1/tasks/preview", "/api/v1/audit"}
    assert all("api_token" in e.details for e in denied)  # the refusal names the token used


def test_session_cookie_works_and_needs_csrf_for_writes(client, login_as):
    login_as("manager")
    assert client.get("/api/v1/me").json["token"] is None
    without = client.post("/api/v1/tasks/preview", json={})
    assert without.status_code == 400 and without.mimetype == PROBLEM and "CSRF" in without.json["detail"]
    token = csrf_token(client, "/tasks/")
    with_csrf = client.post("/api/v1/tasks/preview", json={}, headers={"X-CSRFToken": token})
    assert with_csrf.status_code == 422  # past authentication: the empty definition is invalid


def test_audit_entries_name_the_token(api, db):
    admin = api("admin")
    admin.get("/api/v1/audit")
    created = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_token.create"))
    assert created.details["scope"] == "write"
    # An action through the API: the refused preview of admin-only fields is audited with the token.
    manager = api("manager")
    manager.post("/api/v1/tasks/preview", json={"priority": 5})
    refused = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "task.admin_fields_refused"))
    assert refused.details["api_token"].startswith("manager-write (#")


def test_unknown_api_paths_and_methods_answer_with_problems(api):
    manager = api("manager")
    missing = manager.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.mimetype == PROBLEM
    wrong = manager.client.delete("/api/v1/tasks", headers={"Authorization": f"Bearer {manager.token}"})
    assert wrong.status_code == 405 and wrong.mimetype == PROBLEM and "GET" in wrong.headers["Allow"]
