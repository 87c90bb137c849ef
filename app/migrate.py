"""Schema migrations: Alembic driven from code, so they also run from the frozen binary.

`serve` calls upgrade_on_start(): on SQLite it first copies the database with SQLite's backup API into
instance/backups/; on PostgreSQL it holds an advisory lock while upgrading; it refuses to run when the
database is newer than this code.
"""

import sqlite3
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from app import clock
from app.paths import create_private_file, ensure_private_dir

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_ADVISORY_LOCK_ID = 0x5D_50A7  # arbitrary, fixed: "SPD panel"


class MigrationError(RuntimeError):
    pass


# Search structures outside the models (migration 0016): SQLite's FTS5 table of task names (and its
# shadow tables), PostgreSQL's trigram index. Comparisons with the models leave them out.
NOT_MODELLED = ("task_name_fts", "ix_task_name_trgm")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's include_name: False for the objects of NOT_MODELLED."""
    return not (name or "").startswith(NOT_MODELLED)


@dataclass(frozen=True)
class State:
    current: str | None
    head: str


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


@cache  # the scripts ship with the code: read them once per process (/healthz asks every time)
def head() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise MigrationError(f"migrations have {len(heads)} heads; expected one")
    return heads[0]


def state(bind: Engine | Connection) -> State:
    """The database's revision and the code's head; read on `bind` when it is a connection (the
    health check reads on the request's own: no second connection and transaction)."""
    if isinstance(bind, Connection):
        return State(MigrationContext.configure(bind).get_current_revision(), head())
    with bind.connect() as conn:
        return State(MigrationContext.configure(conn).get_current_revision(), head())


def _check_not_newer(current: str | None) -> None:
    if current is None:
        return
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise MigrationError(
            f"the database is at revision {current}, which this version of prodpanel does not know: "
            "it was upgraded by a newer version. Run that version, or restore a backup from instance/backups/."
        )


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as conn:
        _check_not_newer(MigrationContext.configure(conn).get_current_revision())
        command.upgrade(alembic_config(conn), revision)


def backup_sqlite(engine: Engine, backups_dir: Path, current: str | None) -> Path:
    """Copy the live SQLite database with the backup API (consistent even under WAL)."""
    ensure_private_dir(backups_dir)
    target = backups_dir / f"{clock.now():%Y%m%dT%H%M%SZ}-{current or 'empty'}.sqlite3"
    create_private_file(target)  # 0600 before a byte is copied
    source = sqlite3.connect(engine.url.database or ":memory:")
    try:
        with sqlite3.connect(target) as dest:
            source.backup(dest)
        dest.close()
    finally:
        source.close()
    return target


def upgrade_on_start(engine: Engine, instance_dir: Path) -> Path | None:
    """Bring the schema to head; returns the backup made (SQLite, when there was something to upgrade)."""
    current = state(engine).current
    _check_not_newer(current)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
            try:
                conn.commit()
                with conn.begin():
                    _check_not_newer(MigrationContext.configure(conn).get_current_revision())
                    command.upgrade(alembic_config(conn), "head")
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _ADVISORY_LOCK_ID})
                conn.commit()
        return None
    backup = None
    if current is not None and current != head():
        backup = backup_sqlite(engine, instance_dir / "backups", current)
    upgrade(engine)
    return backup
