import re
import stat

from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.services import ensure_admin, find_local_user
from tests.conftest import TEST_PASSWORD
from tests.helpers import post_form


def events(db, action):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_anonymous_is_sent_to_login_with_relative_next(client):
    response = client.get("/audit/?action=login")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/audit/")


def test_login_ok_redirects_and_is_audited(client, make_user, db):
    user = make_user("viewer", "alice")
    response = post_form(
        client, "/login", {"username": "alice", "password": TEST_PASSWORD, "next": "/audit/"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/audit/"
    [event] = events(db, "login.ok")
    assert event.user_id == user.id and event.request_id and event.client_address == "127.0.0.1"
    assert client.get("/").status_code == 200
    assert db.session.get(type(user), user.id).last_login_at is not None


def test_wrong_password_is_refused_and_audited(client, make_user, db):
    make_user("viewer", "bob")
    response = post_form(client, "/login", {"username": "bob", "password": "wrong-password!"})
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)
    assert 'value="bob"' in response.get_data(as_text=True)  # what was typed stays in the form
    [event] = events(db, "login.failed")
    assert event.target == "bob" and event.outcome == "failed"
    assert client.get("/").status_code == 302


def test_unknown_user_gets_the_same_message(client):
    response = post_form(client, "/login", {"username": "nobody", "password": "whatever-password"})
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)


def test_login_is_rate_limited(client, make_user, app, db):
    make_user("viewer", "carol")
    attempts = app.config["SETTINGS"].auth.login_attempts
    for _ in range(attempts):
        assert (
            post_form(client, "/login", {"username": "carol", "password": "bad-password-x"}).status_code
            == 401
        )
    blocked = post_form(client, "/login", {"username": "carol", "password": TEST_PASSWORD})
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.get_data(as_text=True)
    assert events(db, "login.failed")[-1].outcome == "rate-limited"


def test_one_address_gets_a_budget_of_password_checks_whatever_the_usernames(
    client, make_user, app, db, monkeypatch
):
    from argon2 import PasswordHasher

    make_user("viewer", "erin")
    budget = app.config["SETTINGS"].auth.login_attempts_per_address
    assert budget < 30
    checks = []
    real_verify = PasswordHasher.verify
    monkeypatch.setattr(PasswordHasher, "verify", lambda *a: checks.append(1) or real_verify(*a))

    statuses = [
        post_form(client, "/login", {"username": f"user{i}", "password": "guessed-password"}).status_code
        for i in range(30)
    ]
    assert statuses == [401] * budget + [429] * (30 - budget)
    assert len(checks) == budget  # the refused ones cost no password check
    # The address's budget holds for a real account too, while another address is unaffected.
    assert post_form(client, "/login", {"username": "erin", "password": TEST_PASSWORD}).status_code == 429
    other = {"environ_base": {"REMOTE_ADDR": "192.0.2.7"}}
    assert (
        post_form(client, "/login", {"username": "erin", "password": TEST_PASSWORD}, **other).status_code
        == 302
    )
    assert [e.outcome for e in events(db, "login.failed")].count("rate-limited") == 30 - budget + 1


def test_rate_limit_window_passes(client, make_user, app, clock):
    make_user("viewer", "dave")
    settings = app.config["SETTINGS"].auth
    for _ in range(settings.login_attempts):
        post_form(client, "/login", {"username": "dave", "password": "bad-password-x"})
    clock.advance(settings.login_window_s + 1)
    assert post_form(client, "/login", {"username": "dave", "password": TEST_PASSWORD}).status_code == 302


def test_open_redirect_is_impossible(client, make_user):
    make_user("viewer", "erin")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        response = post_form(
            client, "/login", {"username": "erin", "password": TEST_PASSWORD, "next": target}
        )
        assert response.headers["Location"] == "/", target
        post_form(client, "/logout", token_page="/")


def test_logout_ends_session_and_is_audited(client, login_as, db):
    user = login_as("manager")
    response = post_form(client, "/logout", token_page="/")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302
    [event] = events(db, "logout")
    assert event.user_id == user.id


def test_logout_needs_post(client, login_as):
    login_as("viewer")
    assert client.get("/logout").status_code == 405


def test_roles_guard_admin_pages_and_denials_are_audited(client, login_as, db):
    login_as("manager")
    response = client.get("/audit/")
    assert response.status_code == 403
    assert "You do not have permission" in response.get_data(as_text=True)
    [event] = events(db, "access.denied")
    assert event.target == "/audit/" and event.details == {"needed": "admin"}


def test_admin_sees_audit(app, client, login_as, make_user):
    # A preceding action writes an audit row: a manager is refused the audit page.
    manager = make_user("manager", "carol")
    other = app.test_client()
    post_form(other, "/login", {"username": "carol", "password": TEST_PASSWORD})
    assert other.get("/audit/").status_code == 403

    login_as("admin")
    response = client.get("/audit/?action=access.denied")
    assert response.status_code == 200
    rows = re.findall(r"<tr>(.*?)</tr>", response.get_data(as_text=True).split("<tbody>", 1)[1], re.S)
    assert len(rows) == 1
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[0], re.S)]
    assert cells[1:5] == [manager.username, "access.denied", "/audit/", "denied"]


def test_disabled_user_is_logged_out_at_once(client, login_as, db):
    user = login_as("viewer")
    user.active = False
    db.session.commit()
    assert client.get("/").status_code == 302
    assert (
        post_form(client, "/login", {"username": user.username, "password": TEST_PASSWORD}).status_code == 401
    )


def test_first_start_admin_is_created_once(app, db):
    credentials = ensure_admin()
    db.session.commit()
    assert credentials is not None and credentials[0] == "admin" and len(credentials[1]) >= 12
    assert find_local_user("admin").role == "admin"
    assert ensure_admin() is None


def test_local_accounts_can_be_switched_off(settings_factory, migrated_sqlite, make_user):
    import shutil

    from app import create_app

    settings = settings_factory(auth={"local_accounts": False})
    shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    app = create_app(settings)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert "Local accounts are switched off" in page and 'name="password"' not in page


def test_rate_limiter_counts_in_the_database_and_forgets_old_failures(app, db, clock):
    from sqlalchemy import func, select

    from app.auth.models import LoginFailure
    from app.auth.services import LoginRateLimiter

    limiter = LoginRateLimiter("test", attempts=2, window_s=60, per_address=3)
    limiter.failed("10.0.0.1", "X")
    assert not limiter.blocked("10.0.0.1", "x")
    limiter.failed("10.0.0.1", "y")
    db.session.commit()
    # Another process's limiter (same name, same database) sees the same counts.
    other = LoginRateLimiter("test", attempts=2, window_s=60, per_address=3)
    assert not other.blocked("10.0.0.1", "x") and not other.blocked("10.0.0.2", "x")
    other.failed("10.0.0.1", "x")
    assert limiter.blocked("10.0.0.1", "x")  # two for (address, x)
    assert limiter.blocked("10.0.0.1", "z")  # three for the address, whatever the name
    assert not LoginRateLimiter("another", attempts=2, window_s=60).blocked("10.0.0.1", "x")
    limiter.succeeded("10.0.0.1", "x")
    assert limiter.blocked("10.0.0.1", "x")  # a success clears its username's count, not the address's
    assert not LoginRateLimiter("test", attempts=2, window_s=60).blocked("10.0.0.1", "x")
    clock.advance(61)
    limiter.failed("10.1.1.1", "y")
    assert not limiter.blocked("10.0.0.1", "z")
    assert db.session.scalar(select(func.count()).select_from(LoginFailure)) == 2  # only the new ones


def test_initial_password_file_is_private_and_goes_when_a_new_password_is_committed(app, db, capsys):
    from app.auth.services import hand_over_initial_password, set_password

    credentials = ensure_admin()
    db.session.commit()
    hand_over_initial_password(*credentials, app.config["SETTINGS"].instance_dir)  # pytest: no terminal
    assert credentials[1] not in capsys.readouterr().out
    path = app.config["SETTINGS"].instance_dir / "initial_admin_password"
    assert path.read_text() == credentials[1] + "\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    admin = find_local_user("admin")

    set_password(admin, "rolled-back-password")
    db.session.rollback()
    db.session.commit()
    assert path.exists(), "a change that was rolled back keeps the file"
    set_password(admin, "the-new-admin-password")
    assert path.exists()
    db.session.commit()
    assert not path.exists()
