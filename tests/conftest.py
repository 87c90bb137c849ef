"""Fixtures shared by every test: settings, app, client, runner, db, login_as, clock, loopback guard,
and fresh PostgreSQL databases (pg_database_url empty, migrated_pg_url at head)."""

import dataclasses
import ipaddress
import secrets
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from flask import Flask, g
from sqlalchemy import Engine, create_engine

from app import clock as app_clock
from app import create_app, migrate
from app.config import Settings, load_settings
from app.extensions import db as _db
from app.panda.calllog import flush_call_log
from tests.helpers import post_form

TEST_PASSWORD = "correct-horse-battery"

pytest_plugins = ["tests.oidc_fixture"]  # oidc_op: the real OpenID provider (IAM engineer)

# ---------------------------------------------------------------- network guard


def _is_loopback(address) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any test that opens a connection outside loopback: tests never reach other machines."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(real):
        def connect(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
                raise AssertionError(f"test tried to connect outside loopback: {address!r}")
            return real(self, address)

        return connect

    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))


# ---------------------------------------------------------------- settings and app


@pytest.fixture
def settings_factory(tmp_path):
    """Settings for a fresh instance folder; keyword arguments replace fields or whole sections:
    settings_factory(panda={"url": "http://127.0.0.1:1"}, database_url="...")."""

    def make(instance_dir: Path | None = None, **overrides) -> Settings:
        folder = instance_dir or tmp_path / "instance"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as the panel makes it
        settings = load_settings(folder, env={})
        changes = {}
        for key, value in overrides.items():
            current = getattr(settings, key)
            changes[key] = (
                dataclasses.replace(current, **value)
                if isinstance(value, dict) and dataclasses.is_dataclass(current)
                else value
            )
        return dataclasses.replace(settings, **changes)

    return make


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """An SQLite database upgraded to head once per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "prodpanel.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """URL of a freshly created, empty PostgreSQL database on the machine's server, dropped afterwards."""
    name = f"prodpanel_test_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is needed on 127.0.0.1:5432 (trust auth, database 'test'); run `make test`: {exc}"
        )
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        # FORCE: a connection the test left open (a pool, a thread) must not keep the database alive.
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_engine(request, tmp_path) -> Iterator[Engine]:
    """An engine on an empty database, once SQLite (in tmp_path) and once a fresh PostgreSQL one: for
    what must hold on both, such as a migration up, down and up again."""
    url = (
        f"sqlite:///{tmp_path / 'db.sqlite3'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database_url")
    )
    engine = create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def migrated_pg_url(pg_database_url) -> str:
    """URL of a fresh PostgreSQL database upgraded to head."""
    engine = create_engine(pg_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    return pg_database_url


def panel_for_test(panel: Settings | Flask) -> Iterator[Flask]:
    """The panel for a test (built from settings, or given built: in sandbox mode, against the OpenID
    provider…): TESTING, its app context pushed for the whole test; after it the PanDA calls it
    recorded stored, the session and the engine's connections closed (the body of every `app`
    fixture)."""
    application = panel if isinstance(panel, Flask) else create_app(panel)
    application.config["TESTING"] = True

    @application.before_request
    def _fresh_csrf_cache() -> None:
        # The fixture keeps one app context for the whole test, so `g` outlives each request and
        # Flask-WTF would reuse a CSRF token cached there from before a login (the session is new).
        g.pop("csrf_token", None)

    with application.app_context():
        yield application
        flush_call_log(10)  # now, while the database is there (a PostgreSQL one is dropped next)
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def pg_app(settings_factory, migrated_pg_url):
    """The panel on a fresh migrated PostgreSQL database; a PostgreSQL test module takes it as its
    `app` (`def app(pg_app): return pg_app`)."""
    yield from panel_for_test(settings_factory(database_url=migrated_pg_url))


@pytest.fixture
def app(settings_factory, migrated_sqlite):
    settings = settings_factory()
    shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    yield from panel_for_test(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db(app):
    """The Flask-SQLAlchemy extension bound to the test app (use db.session)."""
    return _db


@pytest.fixture
def make_user(db):
    from app.auth.services import create_local_user

    counter = iter(range(1, 10_000))

    def make(role: str = "manager", username: str | None = None, password: str = TEST_PASSWORD):
        user = create_local_user(username or f"{role}{next(counter)}", password, role=role)
        db.session.commit()
        return user

    return make


@pytest.fixture
def login_as(client, make_user):
    """Create a user with `role` and log the test client in through the real login form."""

    def login(role: str = "manager", username: str | None = None):
        user = make_user(role, username)
        response = post_form(client, "/login", {"username": user.username, "password": TEST_PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return user

    return login


class FrozenClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float = 0, **delta) -> datetime:
        self.current += timedelta(seconds=seconds, **delta)
        return self.current

    def set(self, value: datetime) -> None:
        self.current = value


@pytest.fixture
def clock():
    """Freeze app.clock.now() at 2026-01-15 12:00 UTC; `clock.advance(seconds)` moves it."""
    frozen = FrozenClock(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    app_clock.set_source(frozen)
    yield frozen
    app_clock.set_source(None)
