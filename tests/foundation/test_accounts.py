"""Accounts in the UI: the first-start administrator must choose a password first (its file goes
then), everyone changes their own, admins add, disable and re-role local accounts (an IAM user's
role is read-only), every change is audited, and destructive token buttons ask first."""

from __future__ import annotations

from html import unescape

from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.services import ensure_admin, find_local_user, hand_over_initial_password
from tests.conftest import TEST_PASSWORD
from tests.helpers import post_form


def events(db, action: str) -> list[AuditEvent]:
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


def text(response) -> str:
    return " ".join(unescape(response.get_data(as_text=True)).split())


def log_in(client, username: str, password: str = TEST_PASSWORD):
    return post_form(client, "/login", {"username": username, "password": password})


def test_the_first_start_administrator_must_choose_a_password_first(app, client, db):
    username, password = ensure_admin()
    db.session.commit()
    instance = app.config["SETTINGS"].instance_dir
    hand_over_initial_password(username, password, instance)  # no terminal here: the file
    assert (instance / "initial_admin_password").exists()
    assert log_in(client, "admin", password).status_code == 302
    for page in ("/", "/tasks/", "/admin/users", "/audit/"):
        response = client.get(page)
        assert response.status_code == 302 and response.headers["Location"] == "/account/password", page
    form = client.get("/account/password")
    assert "chosen for you at the panel's first start" in text(form)
    same = post_form(client, "/account/password", {"current": password, "new": password, "repeat": password},
                     token_page="/account/password")  # fmt: skip
    assert same.status_code == 400 and "choose a password other than the current one" in text(same)
    changed = post_form(client, "/account/password",
                        {"current": password, "new": "admins-own-secret", "repeat": "admins-own-secret"},
                        token_page="/account/password")  # fmt: skip
    assert changed.status_code == 302
    assert not (instance / "initial_admin_password").exists()
    assert client.get("/audit/").status_code == 200
    db.session.expire_all()
    assert not find_local_user("admin").must_change_password
    [event] = events(db, "user.password_changed")
    assert event.username == "admin" and event.details == {"by": "self"}


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app, db, make_user):
    user = make_user("viewer", "vera")
    here, elsewhere = app.test_client(), app.test_client()
    log_in(here, "vera")
    log_in(elsewhere, "vera")
    wrong = post_form(here, "/account/password", {"current": "not-my-password", "new": "x" * 12, "repeat": "x" * 12},
                      token_page="/account/password")  # fmt: skip
    assert wrong.status_code == 400 and "wrong password" in text(wrong)
    assert events(db, "user.password_change_failed")[0].username == "vera"
    differ = post_form(here, "/account/password", {"current": TEST_PASSWORD, "new": "a" * 12, "repeat": "b" * 12},
                       token_page="/account/password")  # fmt: skip
    assert differ.status_code == 400 and "the two new passwords differ" in text(differ)
    short = post_form(here, "/account/password", {"current": TEST_PASSWORD, "new": "short", "repeat": "short"},
                      token_page="/account/password")  # fmt: skip
    assert short.status_code == 400 and "at least 10 characters" in text(short)
    ok = post_form(here, "/account/password", {"current": TEST_PASSWORD, "new": "veras-new-password", "repeat": "veras-new-password"},
                   token_page="/account/password")  # fmt: skip
    assert ok.status_code == 302
    assert here.get("/").status_code == 200  # this session continues
    assert elsewhere.get("/").status_code == 302  # the other one has ended
    assert log_in(app.test_client(), "vera", "veras-new-password").status_code == 302
    assert user.id == find_local_user("vera").id


def test_the_users_page_lists_role_source_last_login_tokens_and_sessions(client, login_as, db):
    iam = User(username="irina", display_name="Irina", role="manager", iss="https://iam.example", sub="abc")
    db.session.add(iam)
    db.session.commit()
    admin = login_as("admin")
    page = text(client.get("/admin/users"))
    assert f"{admin.username}" in page and "irina" in page and "SPD-IAM" in page and "from IAM groups" in page
    assert "never" in page  # irina's last login
    assert client.get("/admin/users").get_data(as_text=True).count('aria-label="role of') == 1  # the local account's


def test_admins_add_change_role_disable_and_enable_local_accounts(client, login_as, db, app):
    admin = login_as("admin")
    bad = post_form(client, "/admin/users", {"username": "bad name", "role": "viewer", "password": "long-enough-pw"},
                    token_page="/admin/users")  # fmt: skip
    assert bad.status_code == 400 and "use letters, digits" in text(bad) and 'value="bad name"' in bad.get_data(as_text=True)
    added = post_form(client, "/admin/users", {"username": "nina", "display_name": "Nina", "role": "viewer",
                      "password": "ninas-first-password"}, token_page="/admin/users")  # fmt: skip
    assert added.status_code == 302
    nina = find_local_user("nina")
    assert nina.role == "viewer" and nina.must_change_password
    assert events(db, "user.created")[-1].details == {"role": "viewer", "via": "admin"}

    nina_client = app.test_client()
    log_in(nina_client, "nina", "ninas-first-password")
    assert nina_client.get("/tasks/").headers["Location"] == "/account/password"

    post_form(client, f"/admin/users/{nina.id}/role", {"role": "manager"}, token_page="/admin/users")
    db.session.expire_all()
    assert find_local_user("nina").role == "manager"
    assert events(db, "user.role_changed")[-1].details == {"from": "viewer", "to": "manager", "via": "admin"}

    disabled = post_form(client, f"/admin/users/{nina.id}/active", {"active": "0"}, token_page="/admin/users")
    assert disabled.status_code == 302
    db.session.expire_all()
    assert not find_local_user("nina").active
    assert nina_client.get("/account/password").status_code == 302  # her open session has ended
    assert log_in(nina_client, "nina", "ninas-first-password").status_code == 401
    assert events(db, "user.disabled")[-1].username == admin.username
    post_form(client, f"/admin/users/{nina.id}/active", {"active": "1"}, token_page="/admin/users")
    db.session.expire_all()
    assert find_local_user("nina").active and events(db, "user.enabled")


def test_the_rules_an_admin_cannot_break(client, login_as, db):
    admin = login_as("admin")
    iam = User(username="igor", role="viewer", iss="https://iam.example", sub="igor")
    db.session.add(iam)
    db.session.commit()
    refused = post_form(client, f"/admin/users/{iam.id}/role", {"role": "admin"}, token_page="/admin/users")
    assert refused.status_code == 302
    assert "follows their IAM groups" in text(client.get("/admin/users"))
    db.session.expire_all()
    assert db.session.get(User, iam.id).role == "viewer"
    post_form(client, f"/admin/users/{admin.id}/active", {"active": "0"}, token_page="/admin/users")
    assert "you cannot disable your own account" in text(client.get("/admin/users"))
    post_form(client, f"/admin/users/{admin.id}/role", {"role": "viewer"}, token_page="/admin/users")
    assert "must keep one active administrator" in text(client.get("/admin/users"))
    db.session.expire_all()
    assert db.session.get(User, admin.id).role == "admin" and db.session.get(User, admin.id).active


def test_only_admins_manage_accounts(client, login_as, make_user):
    other = make_user("viewer", "olga")
    login_as("manager")
    assert client.get("/admin/users").status_code == 403
    assert post_form(client, f"/admin/users/{other.id}/active", {"active": "0"}, token_page="/").status_code == 403
    assert post_form(client, "/admin/users", {"username": "x1", "role": "admin", "password": "p" * 12},
                     token_page="/").status_code == 403  # fmt: skip


def test_an_admin_sets_a_password_that_must_be_changed(client, login_as, make_user, app, db):
    login_as("admin")
    user = make_user("viewer", "pavel")
    pavel = app.test_client()
    log_in(pavel, "pavel")
    post_form(client, f"/admin/users/{user.id}/password", {"password": "reset-by-admin-1"}, token_page="/admin/users")
    assert pavel.get("/").status_code == 302  # his sessions ended
    log_in(pavel, "pavel", "reset-by-admin-1")
    assert pavel.get("/").headers["Location"] == "/account/password"
    assert events(db, "user.password_set")[-1].details == {"via": "admin"}


def test_destructive_token_buttons_ask_first(client, login_as, make_user):
    make_user("viewer", "dora")
    login_as("admin")
    own = client.get("/tokens/").get_data(as_text=True)
    assert 'id="delete-tokens" data-confirm="Delete your stored tokens?' in unescape(own)
    everyone = unescape(client.get("/tokens/all").get_data(as_text=True))
    assert 'data-confirm="End every session of' in everyone
    users = unescape(client.get("/admin/users").get_data(as_text=True))
    assert 'id="disable-dora" data-confirm="Disable dora? Their 0 open session(s) end at once' in users
