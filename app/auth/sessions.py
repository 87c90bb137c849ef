"""Server-side sessions: the cookie carries only a random session id; the data lives in `web_session`.

The table stores the SHA-256 of the id, so a copy of the database does not yield live cookies.
Sessions end after `auth.session_idle_minutes` without a request and `auth.session_max_hours` after
they began (a login always begins a new session with a new id). Ending a row ends the session at
once: logout, an admin's "end sessions", or a disabled account. The interface reads the row with its
user through the request's database session, and writes the table through a session of its own, so it
never commits or rolls back the request's work.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, Request, Response, request
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import JSON, ForeignKey, String, delete, func, select
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.orm import Mapped, Session, mapped_column, scoped_session
from werkzeug.datastructures import CallbackDict

from app import clock
from app.auth.models import User
from app.db import UTCDateTime
from app.extensions import Model, db
from app.transaction import begin_lazily

# Refresh last_seen_at at most this often, so that reading pages does not write on every request.
_TOUCH_EVERY = timedelta(seconds=60)


class WebSession(Model):
    """One browser session."""

    __tablename__ = "web_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's id
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), nullable=True, index=True
    )
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    client_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")


def _own_session() -> Session:
    """The session interface's own database session: its commits never touch the request's work."""
    return Session(db.engine, expire_on_commit=False)


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class ServerSession(CallbackDict, SessionMixin):
    """The session dict of one request, plus what is needed to save it."""

    def __init__(
        self,
        initial: dict | None = None,
        sid: str | None = None,
        row_seen: datetime | None = None,
        user: User | None = None,
    ) -> None:
        def on_update(self_: ServerSession) -> None:
            self_.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid  # None until saved the first time
        self.row_seen = row_seen
        self.user = user  # the row's user, read with it by the request's database session
        self.modified = False
        self.regenerate_requested = False
        self.end_requested = False
        self.expired = False  # the cookie named a session that had timed out

    def regenerate(self) -> None:
        """Give the session a new id at save time (at login), dropping the old row."""
        self.regenerate_requested = True
        self.modified = True

    def end(self) -> None:
        """Delete the session row and forget its data (at logout)."""
        self.clear()
        self.end_requested = True
        self.modified = True


def _limits(app: Flask) -> tuple[timedelta, timedelta]:
    """(idle timeout, absolute timeout) from the `[auth]` settings."""
    auth = app.config["SETTINGS"].auth
    return timedelta(minutes=auth.session_idle_minutes), timedelta(hours=auth.session_max_hours)


def _timed_out(row: WebSession, idle: timedelta, absolute: timedelta) -> bool:
    now = clock.now()
    return now - row.last_seen_at > idle or now - row.created_at > absolute


class ServerSessionInterface(SessionInterface):
    """Flask session interface backed by the `web_session` table."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if not sid or len(sid) > 100:
            return ServerSession()
        if app.static_url_path and request.path.startswith(app.static_url_path + "/"):
            return ServerSession()  # assets need no session: spare the database a read per file
        # Read by the request's own database session, with the user: one statement for both
        # (load_user_from_session takes the user from here). A GET reads outside a
        # transaction on PostgreSQL (app/transaction.py); other requests begin theirs here.
        begin_lazily()
        query = (
            select(WebSession, User)
            .outerjoin(User, User.id == WebSession.user_id)
            .where(WebSession.id == _hash(sid))
            .execution_options(populate_existing=True)  # a test's app context outlives its requests
        )
        found = db.session.execute(query).first()
        if found is not None and not _timed_out(found[0], *_limits(app)):
            row, user = found
            return ServerSession(dict(row.data or {}), sid=sid, row_seen=row.last_seen_at, user=user)
        if found is not None:
            with _own_session() as store:  # ended now, whatever the request does
                store.execute(delete(WebSession).where(WebSession.id == _hash(sid)))
                store.commit()
        session = ServerSession()
        session.expired = True
        return session

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:  # type: ignore[override]
        with _own_session() as store:
            self._save(app, store, session, response)
            store.commit()

    def _save(self, app: Flask, store: Session, session: ServerSession, response: Response) -> None:
        name, domain, path = self.get_cookie_name(app), self.get_cookie_domain(app), self.get_cookie_path(app)
        now = clock.now()
        if session.end_requested or (session.regenerate_requested and session.sid):
            if session.sid:
                store.execute(delete(WebSession).where(WebSession.id == _hash(session.sid)))
            if session.end_requested and not session:
                response.delete_cookie(name, domain=domain, path=path)
                response.vary.add("Cookie")
                return
            session.sid = None
        if session.sid is None and not session:
            if session.expired:
                response.delete_cookie(name, domain=domain, path=path)
            return
        if session.sid is None:
            session.sid = secrets.token_urlsafe(32)
            row = WebSession(
                id=_hash(session.sid),
                created_at=now,
                last_seen_at=now,
                client_address=(request.remote_addr or "")[:64],
                user_agent=request.headers.get("User-Agent", "")[:200],
                data=dict(session),
                user_id=session.get("uid"),
            )
            store.add(row)
            self._set_cookie(app, session, response)
            return
        if session.modified or session.row_seen is None or now - session.row_seen > _TOUCH_EVERY:
            existing = store.get(WebSession, _hash(session.sid))
            if existing is None:  # ended meanwhile (admin, logout elsewhere): do not resurrect it
                response.delete_cookie(name, domain=domain, path=path)
                return
            existing.last_seen_at = now
            if session.modified:
                existing.data = dict(session)
                existing.user_id = session.get("uid")
        if self.should_set_cookie(app, session):
            self._set_cookie(app, session, response)

    def _set_cookie(self, app: Flask, session: ServerSession, response: Response) -> None:
        response.set_cookie(
            self.get_cookie_name(app),
            session.sid or "",
            httponly=self.get_cookie_httponly(app),
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
            domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app),
        )
        response.vary.add("Cookie")


def init_sessions(app: Flask) -> None:
    """Install server-side sessions (replaces Flask's signed-cookie sessions)."""
    app.session_interface = ServerSessionInterface()


def end_sessions_of(user_id: int, store: Session | scoped_session[Any] | None = None) -> int:
    """End every session of a user (admin action, lost access); flushes `store` (default: the
    app's), the caller commits."""
    target: Session | scoped_session[Any] = store or db.session
    result = target.execute(delete(WebSession).where(WebSession.user_id == user_id))
    target.flush()
    return _rowcount(result)


def active_sessions(user_id: int) -> list[WebSession]:
    return list(
        db.session.scalars(
            select(WebSession).where(WebSession.user_id == user_id).order_by(WebSession.created_at)
        )
    )


def session_counts() -> dict[int, int]:
    """How many sessions each user has open (users without any are left out)."""
    rows = db.session.execute(
        select(WebSession.user_id, func.count())
        .where(WebSession.user_id.is_not(None))
        .group_by(WebSession.user_id)
    )
    return {uid: n for uid, n in rows if uid is not None}


def purge_expired(app: Flask, store: Session | None = None) -> int:
    """Delete timed-out sessions (housekeeping); flushes `store` (default: the app's)."""
    idle, absolute = _limits(app)
    now = clock.now()
    target: Session | scoped_session[Any] = store or db.session
    result = target.execute(
        delete(WebSession).where(
            (WebSession.last_seen_at < now - idle) | (WebSession.created_at < now - absolute)
        )
    )
    target.flush()
    return _rowcount(result)


def _rowcount(result: Result[Any]) -> int:
    """Rows a DELETE removed (the result of an UPDATE or DELETE is a CursorResult)."""
    assert isinstance(result, CursorResult)
    return result.rowcount or 0
