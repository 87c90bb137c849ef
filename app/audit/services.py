"""The one place that writes audit events."""

from typing import Any

from flask import g, has_request_context, request
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app import clock
from app.audit.models import AuditEvent
from app.extensions import db

_ANONYMOUS = object()


def record(
    action: str,
    *,
    target: str | None = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
    user: Any = _ANONYMOUS,
    session: Session | None = None,
) -> AuditEvent:
    """Append an audit event (flushed, committed by the caller). `user` defaults to the request's user;
    `session` defaults to the request's (the token vault passes its own, which it commits itself)."""
    if user is _ANONYMOUS:
        user = g.get("user") if has_request_context() else None
    event = AuditEvent(
        at=clock.now(),
        user_id=getattr(user, "id", None),
        username=getattr(user, "username", "") or "",
        action=action,
        target=(target or "")[:300],
        outcome=outcome,
        request_id=g.get("request_id", "") if has_request_context() else "",
        client_address=(request.remote_addr or "") if has_request_context() else "",
        details=details or {},
    )
    session = session or db.session
    session.add(event)
    session.flush()
    return event


def audit_query(
    *, action: str = "", username: str = "", outcome: str = "", target: str = "", since=None, until=None
) -> Select:
    """Events matching the filters, newest first."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    if username:
        query = query.where(AuditEvent.username == username)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    if target:
        query = query.where(AuditEvent.target.contains(target))
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    return query


def known_outcomes() -> list[str]:
    """The outcomes recorded so far, for the filter's choices."""
    return list(db.session.scalars(select(AuditEvent.outcome).distinct().order_by(AuditEvent.outcome)))
