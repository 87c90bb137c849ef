"""One transaction per request, as Indico's `RH.process`: views and services only flush; the
request's work is committed once, after the view returned, and rolled back when it raised.

On PostgreSQL a GET or HEAD request reads outside a transaction until its first statement that may
write or lock (`begin_lazily`): a page that only reads then pays no BEGIN and COMMIT round trips. The
transaction opened then holds the rest of the request, committed or rolled back as any other. This is
what SQLite's driver does anyway (it begins before the first write), and under PostgreSQL's READ
COMMITTED the reads see nothing else in a transaction (each statement takes its own snapshot).

Background jobs and CLI commands commit themselves (a job per item). Work that must wait until the
data is committed, such as dispatching the launches a request created, registers with `after_commit`.
Writes that must survive the request's rollback (the denial audit, the server-side session, the
token vault) go through sessions of their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from flask import Flask, Response, request
from flask import typing as ft
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction

from app.extensions import db

_CALLBACKS = "prodpanel_after_commit"
_LAZY = "prodpanel_begin_lazily"  # a Connection's execution option: BEGIN before the first write
_READS = ("SELECT", "WITH")
# Words after which a SELECT or WITH statement may write or lock (FOR UPDATE, FOR SHARE, writable
# CTEs, advisory locks, sequences): it then runs in the transaction. A false alarm only costs a BEGIN.
_MAY_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE|SHARE|pg_advisory\w*|nextval|setval|pg_notify)\b", re.I)  # fmt: skip


class TransactionalFlask(Flask):
    """Flask with the request's transaction boundary."""

    def preprocess_request(self) -> ft.ResponseReturnValue | None:
        begin_lazily()
        return super().preprocess_request()

    def handle_user_exception(self, e: Exception) -> Any:
        # A view or before-request hook raised: none of its work is kept, unless the error says the
        # work so far is its record (an API refusal whose audit event the UI's page would commit).
        if not getattr(e, "keeps_work", False):
            db.session.rollback()
            begin_lazily()  # the error page reads its user again (the rollback expired it)
        return super().handle_user_exception(e)

    def handle_exception(self, e: Exception) -> Response:
        db.session.rollback()
        return super().handle_exception(e)

    def process_response(self, response: Response) -> Response:
        # Before the after-request hooks and the session cookie: a commit that fails becomes the
        # error page, and the session's own write never waits for this transaction's locks.
        db.session.commit()
        return super().process_response(response)


def begin_lazily() -> None:
    """PostgreSQL, a GET or HEAD request: run its reads on `db.session` outside a transaction, until a
    statement that may write or lock opens one (`_begin_before_writing`). SQLAlchemy puts the
    connection back as it was when it returns to the pool."""
    if (
        request.method in ("GET", "HEAD")
        and db.engine.dialect.name == "postgresql"
        and not db.session().in_transaction()
    ):
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT", _LAZY: True})


@event.listens_for(Engine, "before_cursor_execute")
def _begin_before_writing(conn: Connection, cursor, statement: str, parameters, context, executemany) -> None:
    if not conn.get_execution_options().get(_LAZY):
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is None or not dbapi.autocommit:
        return  # begun already
    # A server-side cursor (a streamed result) lives in a transaction too.
    if getattr(cursor, "name", None) or not _only_reads(statement):
        # psycopg sends BEGIN before this statement; SQLAlchemy's commit and rollback at the
        # request's end then reach the server (in autocommit mode they would do nothing).
        dbapi.autocommit = False


@lru_cache(maxsize=1024)
def _only_reads(statement: str) -> bool:
    """Whether a statement only reads, by its text: kept per statement (the compiled statements are
    reused), since the search through a long SELECT cost more than sending it."""
    return statement.lstrip()[:6].upper().startswith(_READS) and not _MAY_WRITE.search(statement)


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the current transaction of `db.session` commits; never if it rolls back."""
    db.session.info.setdefault(_CALLBACKS, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_callbacks(session: Session) -> None:
    for callback in session.info.pop(_CALLBACKS, []):
        callback()


@event.listens_for(Session, "after_soft_rollback")
def _drop_callbacks(session: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:  # a savepoint's rollback leaves the transaction going
        session.info.pop(_CALLBACKS, None)
