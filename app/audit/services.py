"""The one place that writes audit events."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from flask import g, has_request_context, request
from sqlalchemy import ColumnElement, Select, select, text
from sqlalchemy.orm import Session, scoped_session

from app import clock
from app.audit.models import AuditEvent
from app.extensions import db

if TYPE_CHECKING:
    from app.auth.models import User


class _RequestUser:
    """The default of `record(user=...)`: the user of the current request, if any."""


REQUEST_USER = _RequestUser()


def record(
    action: str,
    *,
    target: str | None = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
    user: User | None | _RequestUser = REQUEST_USER,
    session: Session | scoped_session[Any] | None = None,
) -> AuditEvent:
    """Append an audit event (flushed, committed with the caller's work). `user` defaults to the
    request's user; `session` to the request's (the token vault passes its own)."""
    if isinstance(user, _RequestUser):
        user = g.get("user") if has_request_context() else None
    token = g.get("api_token") if has_request_context() else None
    if token is not None:  # an API call: say which personal token acted
        details = {**(details or {}), "api_token": f"{token.name} (#{token.id})"}
    elif has_request_context() and g.get("api_local"):
        details = {**(details or {}), "via": "prodpanel command on the panel's host"}
    event = AuditEvent(
        at=clock.now(),
        user_id=user.id if user else None,
        username=user.username if user else "",
        action=action,
        target=(target or "")[:300],
        outcome=outcome,
        request_id=g.get("request_id", "") if has_request_context() else "",
        client_address=(request.remote_addr or "") if has_request_context() else "",
        details=details or {},
    )
    target_session = session or db.session
    target_session.add(event)
    target_session.flush()
    return event


def record_now(action: str, **kwargs: Any) -> None:
    """Append an audit event in a transaction of its own, committed at once: it stays when the
    request's work is rolled back (a refusal that ends in an error response)."""
    with Session(db.engine) as session:
        record(action, session=session, **kwargs)
        session.commit()


AUDIT_KEYS = (AuditEvent.at, AuditEvent.id)  # the trail's order (descending: newest first), for keyset paging


def audit_query(
    *,
    action: str = "",
    username: str = "",
    outcome: str = "",
    target: str = "",
    since: date | None = None,
    until: date | None = None,
) -> Select[AuditEvent]:
    """Events matching the filters (`since` and `until` are whole UTC days, both included), newest first."""
    query = select(AuditEvent).order_by(*(key.desc() for key in AUDIT_KEYS))
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    if username:
        query = query.where(AuditEvent.username == username)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    if target:
        query = query.where(AuditEvent.target.contains(target))
    return query.where(*within_days(AuditEvent.at, since, until))


def day_start(day: date) -> datetime:
    """Midnight UTC of `day`."""
    return datetime.combine(day, time(), tzinfo=UTC)


def within_days(column: Any, since: date | None, until: date | None) -> list[ColumnElement[bool]]:
    """Conditions keeping `column` within the whole UTC days `since`..`until`, both included (either
    may be None; the calendar's last day has no day after it, so it sets no upper bound)."""
    conditions = []
    if since:
        conditions.append(column >= day_start(since))
    if until and until < date.max:
        conditions.append(column < day_start(until + timedelta(days=1)))
    return conditions


# A loose index scan: each outcome is the smallest one after the previous, one index seek each, where
# DISTINCT read every event (SQLite and PostgreSQL).
_OUTCOMES = text(
    "WITH RECURSIVE o(v) AS (SELECT min(outcome) FROM audit_event UNION ALL "
    "SELECT (SELECT min(outcome) FROM audit_event WHERE outcome > o.v) FROM o WHERE o.v IS NOT NULL) "
    "SELECT v FROM o WHERE v IS NOT NULL"
)


def known_outcomes() -> list[str]:
    """The outcomes recorded so far, in order, for the filter's choices."""
    return list(db.session.scalars(_OUTCOMES))
