"""One transaction per request, as Indico's `RH.process`: views and services only flush; the
request's work is committed once, after the view returned, and rolled back when it raised.

Background jobs and CLI commands commit themselves (a job per item). Work that must wait until the
data is committed, such as dispatching the launches a request created, registers with `after_commit`.
Writes that must survive the request's rollback (the denial audit, the server-side session, the
token vault) go through sessions of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from app.extensions import db

_CALLBACKS = "prodpanel_after_commit"


class TransactionalFlask(Flask):
    """Flask with the request's transaction boundary."""

    def handle_user_exception(self, e: Exception) -> Any:
        # A view or before-request hook raised: none of its work is kept, unless the error says the
        # work so far is its record (an API refusal whose audit event the UI's page would commit).
        if not getattr(e, "keeps_work", False):
            db.session.rollback()
        return super().handle_user_exception(e)

    def handle_exception(self, e: Exception) -> Response:
        db.session.rollback()
        return super().handle_exception(e)

    def process_response(self, response: Response) -> Response:
        # Before the after-request hooks and the session cookie: a commit that fails becomes the
        # error page, and the session's own write never waits for this transaction's locks.
        db.session.commit()
        return super().process_response(response)


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
