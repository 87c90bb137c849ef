"""Personal API tokens: created and revoked on the token page, checked for each API request.

A token reads ``ppt_<lookup>_<secret>``; the lookup finds the row, the sha256 of the whole token is
compared in constant time. The token itself is returned once, by ``create_token``, and never stored,
logged or shown again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import clock
from app.api.models import SCOPES, ApiToken
from app.audit.services import record
from app.auth.models import User
from app.config import get_settings
from app.extensions import db

PREFIX = "ppt_"
NAME_MAX = 100
# last_used_at is written at most this often per token (in its own transaction: reads stay reads).
USE_RESOLUTION = timedelta(minutes=5)


class TokenInputError(ValueError):
    """A field of the new-token form is wrong: field -> message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class TokenRefused(Exception):
    """The bearer token is unknown, malformed, expired or revoked (the reason is safe to show)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    row: ApiToken
    secret: str  # the token itself: shown once


def create_token(user: User, name: str, scope: str, days: int | None) -> NewToken:
    """A new token of `user` (flushed, audited); raises TokenInputError naming the wrong fields."""
    limits = get_settings().api
    name = (name or "").strip()
    errors: dict[str, str] = {}
    if not name or len(name) > NAME_MAX:
        errors["name"] = f"give the token a name (at most {NAME_MAX} characters)"
    if scope not in SCOPES:
        errors["scope"] = f"must be one of {', '.join(SCOPES)}"
    days = limits.token_days if days is None else days
    if not 1 <= days <= limits.token_max_days:
        errors["days"] = f"must be between 1 and {limits.token_max_days}"
    if errors:
        raise TokenInputError(errors)
    lookup = secrets.token_hex(6)
    secret = f"{PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    now = clock.now()
    row = ApiToken(user_id=user.id, name=name, lookup=lookup, secret_hash=_hash(secret), scope=scope,
                   created_at=now, expires_at=now + timedelta(days=days))  # fmt: skip
    db.session.add(row)
    db.session.flush()
    record("api_token.create", target=name, user=user,
           details={"token_id": row.id, "scope": scope, "expires_at": row.expires_at.isoformat()})  # fmt: skip
    return NewToken(row, secret)


def tokens_of(user: User) -> list[ApiToken]:
    """The user's tokens, newest first (revoked and expired ones too, marked so)."""
    query = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    return list(db.session.scalars(query))


def revoke_token(user: User, token_id: int) -> ApiToken | None:
    """Revoke one of the user's own tokens (None: no such token of theirs); audited."""
    row = db.session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        return None
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        db.session.flush()
        record("api_token.revoke", target=row.name, user=user, details={"token_id": row.id})
    return row


def authenticate(token: str) -> ApiToken:
    """The usable token `token` names, its user active; raises TokenRefused."""
    parts = token.split("_") if token.startswith(PREFIX) else []
    if len(parts) < 3 or not parts[1]:
        raise TokenRefused("not a prodpanel API token")
    row = db.session.scalar(select(ApiToken).where(ApiToken.lookup == parts[1]))
    if row is None or not hmac.compare_digest(row.secret_hash, _hash(token)):
        raise TokenRefused("unknown API token")
    now = clock.now()
    if row.revoked_at is not None:
        raise TokenRefused("this API token was revoked")
    if row.expires_at <= now:
        raise TokenRefused("this API token has expired: create a new one on the token page")
    if not row.user.active:
        raise TokenRefused("the token's account is disabled")
    if row.last_used_at is None or now - row.last_used_at >= USE_RESOLUTION:
        _note_use(row.id, now)
    return row


def _note_use(token_id: int, now: object) -> None:
    with Session(db.engine) as session:
        session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
        session.commit()
