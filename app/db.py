"""The model base, the constraint naming convention, the SQLite connection settings and the check of a
pooled PostgreSQL connection."""

import contextlib
import select
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, String, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.types import TypeDecorator

from app.paths import create_private_file

# Named constraints let Alembic's batch mode drop and recreate them on SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC (portable across SQLite and PostgreSQL), returns aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use app.clock.now()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class EnumText(TypeDecorator):
    """A StrEnum stored as its value in a VARCHAR column (a CHECK constraint lists the values)."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


class NullsLow(UnaryExpression):
    """An index column whose NULLs come first, as SQLite keeps them: `ended_at NULLS FIRST` on
    PostgreSQL (whose default puts them last), plain `ended_at` on SQLite (whose CREATE INDEX has no
    NULLS clause). A query ordered NULLs-low (ASC NULLS FIRST, DESC NULLS LAST) then walks the index
    on both databases, in the same order."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column, modifier=operators.nulls_first_op)


@compiles(NullsLow, "sqlite")
def _nulls_low_sqlite(element: NullsLow, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.element, **kw)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """WAL for concurrent readers, a busy timeout instead of instant 'database is locked', real FKs."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


@event.listens_for(Engine, "do_connect")
def _private_sqlite_file(dialect, connection_record, cargs, cparams) -> None:
    """Create a new SQLite database file 0600 before SQLite does (it would use the umask's mode)."""
    if dialect.name == "sqlite" and cargs and cargs[0] not in ("", ":memory:") and not cparams.get("uri"):
        with contextlib.suppress(OSError):  # e.g. a missing folder: SQLite's own error says it
            create_private_file(Path(cargs[0]))


@event.listens_for(Pool, "checkout")
def _drop_closed_postgresql_connection(dbapi_connection, connection_record, connection_proxy) -> None:
    """The pool's pre-ping without its round trip (a `SELECT 1` per checkout, two per request).

    A pooled connection is idle: the server sends nothing on it unless it ends it (a restart, a
    terminated backend: an error message, then the end of the stream). Data waiting on its socket, or
    a connection psycopg knows closed, means a dead connection; the pool then connects afresh
    (DisconnectionError makes it retry the checkout). A connection that died silently (a cut
    network) still fails on its first statement, and SQLAlchemy then drops the whole pool."""
    if not type(dbapi_connection).__module__.startswith("psycopg"):
        return
    if dbapi_connection.closed:
        raise DisconnectionError("the PostgreSQL connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        raise DisconnectionError("the PostgreSQL server ended this connection")
