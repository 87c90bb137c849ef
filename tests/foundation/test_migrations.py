"""One head; an empty database upgraded to head matches the models exactly (SQLite and PostgreSQL)."""

import sqlite3
import stat

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

import app.models  # noqa: F401
from app import migrate
from app.db import Base


def test_single_head():
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert len(heads) == 1, f"migrations have several heads: {heads}"


def _diff(engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True, "include_name": migrate.include_name}
        )
        return compare_metadata(context, Base.metadata)


def test_sqlite_upgrade_yields_exactly_the_models(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    migrate.upgrade(engine)
    assert migrate.state(engine).current == migrate.head()
    assert _diff(engine) == []
    engine.dispose()


def test_sqlite_downgrade_to_base_and_up_again(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        from alembic import command

        command.downgrade(migrate.alembic_config(conn), "base")
    with engine.connect() as conn:
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert tables <= {"alembic_version"}
    migrate.upgrade(engine)
    assert _diff(engine) == []
    engine.dispose()


@pytest.fixture
def fresh_pg_database(pg_database_url):
    engine = create_engine(pg_database_url)
    yield engine
    engine.dispose()


def test_postgresql_upgrade_yields_exactly_the_models(fresh_pg_database, tmp_path):
    assert migrate.upgrade_on_start(fresh_pg_database, tmp_path) is None  # no file backup on PostgreSQL
    assert migrate.state(fresh_pg_database).current == migrate.head()
    assert _diff(fresh_pg_database) == []


def test_refuses_a_database_newer_than_the_code(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(migrate.MigrationError, match="upgraded by a newer version"):
        migrate.upgrade_on_start(engine, tmp_path)
    engine.dispose()


def test_sqlite_is_backed_up_before_an_upgrade(tmp_path):
    db_path = tmp_path / "db.sqlite3"
    engine = create_engine(f"sqlite:///{db_path}")
    migrate.upgrade(engine, "0001_foundation")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO user (username, display_name, email, role, active, iss, sub, created_at) "
                "VALUES ('keep', 'Keep', '', 'viewer', 1, 'local', 'keep', '2026-01-01 00:00:00')"
            )
        )
    backup = migrate.upgrade_on_start(engine, tmp_path)
    assert backup is not None and backup.parent == tmp_path / "backups"
    assert "0001_foundation" in backup.name
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    with sqlite3.connect(backup) as copy:
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001_foundation",)
        assert copy.execute("SELECT username FROM user").fetchall() == [("keep",)]
    assert migrate.state(engine).current == migrate.head()
    assert migrate.upgrade_on_start(engine, tmp_path) is None  # already at head: no new backup
    engine.dispose()


def test_sqlite_database_and_its_wal_files_are_created_private(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE t (x)"))
        conn.commit()
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    engine.dispose()
    assert modes == {"p.sqlite3": 0o600, "p.sqlite3-wal": 0o600, "p.sqlite3-shm": 0o600}


def test_sqlite_pragmas(app, db):
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


def test_postgresql_concurrent_starts_migrate_once(fresh_pg_database, tmp_path):
    """Two team members starting the panel at once: the advisory lock lets one migrate, the other waits."""
    import threading

    errors: list[BaseException] = []

    def start() -> None:
        try:
            migrate.upgrade_on_start(fresh_pg_database, tmp_path)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with fresh_pg_database.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    assert migrate.state(fresh_pg_database).current == migrate.head()
