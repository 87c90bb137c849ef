"""What the benchmarks share: the settings of a seeded instance, the benchmark accounts and their
login, PostgreSQL's admin connection and the statistics after seeding.

Imported as `benchmarks.common` once the script has put the repository on sys.path; the app's own
modules are imported inside the functions (a worker process's memory is measured)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask.testing import FlaskClient

    from app.config import Settings

PASSWORD = "benchmark-password-1"  # of every benchmark account
PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


def settings(instance: Path, database_url: str) -> Settings:
    """The settings of the instance folder (its keys), on the seeded database."""
    from app.config import load_settings

    return dataclasses.replace(load_settings(instance, env={}), database_url=database_url)


def ensure_user(username: str, role: str) -> None:
    """The benchmark account `username` (created unless a cached database has it), ready to log in;
    inside the app's context, committed."""
    from sqlalchemy import select

    from app.auth.models import User
    from app.auth.services import create_local_user
    from app.extensions import db

    if db.session.scalar(select(User.id).where(User.username == username)) is None:
        user = create_local_user(username, PASSWORD, role=role)
        user.must_change_password = False
        db.session.commit()


def csrf_token(html: str) -> str:
    """The CSRF token of a page (its meta tag)."""
    return html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def login(client: FlaskClient, username: str) -> None:
    """Log the in-process client in as a benchmark account."""
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"csrf_token": token, "username": username, "password": PASSWORD})
    assert response.status_code == 302, response.status_code


def pg_admin(sql: str, admin: str = PG_ADMIN) -> list[tuple]:
    """Run one statement on PostgreSQL's admin database (CREATE / DROP DATABASE); its rows."""
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def rebuild_statistics_and_analyze(instance: Path, database_url: str) -> None:
    """After seeding: the statistics' summary rebuilt from the tasks (as after an upgrade), then the
    planner's statistics (ANALYZE) of every table."""
    from sqlalchemy import create_engine

    from app import create_app
    from app.extensions import db
    from app.stats import summary

    app = create_app(settings(instance, database_url))
    with app.app_context():
        summary.rebuild()
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    engine = create_engine(database_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if conn.dialect.name == "postgresql" else "ANALYZE")
    engine.dispose()
