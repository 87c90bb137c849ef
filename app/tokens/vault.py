"""The vault's building blocks: the keyring, sealing, the vault's own database sessions, the per-user
refresh locks, storing a token response, and SPD-IAM outages.

`app.tokens.services` (the vault's API) and `app.tokens.sandbox` build on these.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.auth.models import User
from app.config import Settings, get_settings
from app.extensions import db
from app.tokens.crypto import KEYRING_FILE, Keyring, VaultKeyError, load_keyring
from app.tokens.jwtutil import expiry, unverified_claims
from app.tokens.models import UserToken

# A token sent with less than this left might expire before PanDA checks it.
MIN_VALIDITY_S = 15
# While SPD-IAM is down, the vault calls it at most this often (per issuer, per app).
RETRY_AFTER_S = 30

_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()
REFRESH_LOCK_FILE = "token_refresh.lock"  # in the instance folder: one locked byte per user id
_lock_files: dict[str, int] = {}  # path -> this process's descriptor of it, open while the process lives


@contextmanager
def lock_for(user_id: int) -> Iterator[None]:
    """One refresh at a time for a user (IAM rotates refresh tokens: a second refresh with the same
    one would fail and could end the grant). A lock per user in this process; on SQLite also the
    user's byte of instance/token_refresh.lock (an fcntl record lock) against the other `serve`
    processes. On PostgreSQL the refresh reads its row FOR UPDATE, which holds the others off."""
    with _locks_guard:
        lock = _locks.setdefault(user_id, threading.Lock())
    with lock:
        settings = get_settings()
        if not settings.sqlalchemy_url.startswith("sqlite"):
            yield
            return
        fd = _lock_file(settings.instance_dir / REFRESH_LOCK_FILE)
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, user_id)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, user_id)


def _lock_file(path: Path) -> int:
    """The process's descriptor of a lock file. Never closed: closing any descriptor of a file drops
    every record lock the process holds on it."""
    with _locks_guard:
        fd = _lock_files.get(str(path))
        if fd is None:
            fd = _lock_files[str(path)] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        return fd


@dataclass(frozen=True)
class Outage:
    """SPD-IAM has not answered since `since`; the last call to it was at `last_attempt`."""

    since: datetime
    last_attempt: datetime

    @property
    def retry_at(self) -> datetime:
        return self.last_attempt + timedelta(seconds=RETRY_AFTER_S)


_outages_lock = threading.Lock()


def _outages() -> dict[str, Outage]:
    return current_app.extensions.setdefault("iam_outages", {})  # issuer -> outage, per app


def outage(issuer: str) -> Outage | None:
    """The issuer's current outage, or None while it answers."""
    with _outages_lock:
        return _outages().get(issuer)


def note_call(issuer: str, answered: bool) -> None:
    """Remember how a call to the issuer went (any answer, even a refusal, ends an outage)."""
    now = clock.now()
    with _outages_lock:
        outages = _outages()
        if answered:
            outages.pop(issuer, None)
        else:
            outages[issuer] = Outage(outages[issuer].since if issuer in outages else now, now)


def keyring() -> Keyring:
    """The instance's token keyring, loaded again whenever instance/token_keys.json changed (`prodpanel
    keys rotate` runs in another process: every `serve` process must seal with the new current key
    before `keys prune` drops the old one)."""
    settings = get_settings()
    stamp = _keyring_stamp(settings.instance_dir)
    cached: tuple[Keyring, tuple[int, int] | None] | None = current_app.extensions.get("token_keyring")
    if cached is None or cached[1] != stamp:
        cached = (load_keyring(settings.token_key, settings.instance_dir), stamp)
        current_app.extensions["token_keyring"] = cached
    return cached[0]


def forget_keyring() -> None:
    """Load the keyring again at its next use (after this process changed the keys)."""
    current_app.extensions.pop("token_keyring", None)


def _keyring_stamp(instance_dir: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(instance_dir / KEYRING_FILE)
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_size


def purpose(row: UserToken, kind: str) -> str:
    return f"{row.source}:{kind}"


def seal(row: UserToken, kind: str, value: str | None) -> None:
    setattr(
        row,
        f"{kind}_sealed",
        None if value is None else keyring().seal(value, user_id=row.user_id, purpose=purpose(row, kind)),
    )


def unseal(row: UserToken, kind: str) -> str | None:
    blob = getattr(row, f"{kind}_sealed")
    if blob is None:
        return None
    try:
        return keyring().open(blob, user_id=row.user_id, purpose=purpose(row, kind))
    except VaultKeyError:
        if Keyring.key_id_of(blob) in keyring().keys:
            raise
        # Sealed with a key this process does not know yet (token_keys.json replaced within its clock tick).
        forget_keyring()
        return keyring().open(blob, user_id=row.user_id, purpose=purpose(row, kind))


@contextmanager
def vault_session() -> Iterator[Session]:
    """A database session of the vault's own: its commits never commit the caller's work."""
    with Session(db.engine, expire_on_commit=False) as session:
        yield session


def leeway(settings: Settings, lifetime: timedelta | None) -> timedelta:
    """How long before its expiry a token is refreshed: `iam.refresh_leeway_s`, but never more than
    half the token's lifetime (else a token shorter than the leeway would be refreshed at every use)."""
    configured = timedelta(seconds=settings.iam.refresh_leeway_s)
    return configured if lifetime is None else min(configured, lifetime / 2)


def lifetime(token: str | None) -> timedelta | None:
    """A JWT's lifetime (`exp` - `iat`, both stamped by its issuer), or None when it does not say."""
    claims = unverified_claims(token or "")
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, int | float) and isinstance(iat, int | float) and exp > iat:
        return timedelta(seconds=exp - iat)
    return None


def fresh(expires_at: datetime | None, settings: Settings, token_lifetime: timedelta | None = None) -> bool:
    """True while a token expiring at `expires_at` is usable (more than the refresh leeway left)."""
    return expires_at is not None and expires_at - clock.now() > leeway(settings, token_lifetime)


def still_valid(expires_at: datetime | None) -> bool:
    """True while a token can still be sent, with time to spare for the request to reach PanDA."""
    return expires_at is not None and expires_at - clock.now() > timedelta(seconds=MIN_VALIDITY_S)


def store_tokens(
    user: User,
    source: str,
    response: dict[str, Any],
    *,
    issuer: str,
    client_id: str,
    groups: list[str] | None = None,
) -> UserToken:
    """Save a token response (login or device link) for `user`, replacing that source's grant; flushes."""
    row = db.session.scalar(select(UserToken).where(UserToken.user_id == user.id, UserToken.source == source))
    if row is None:
        row = UserToken(user_id=user.id, source=source)
        db.session.add(row)
    now = clock.now()
    row.issuer, row.client_id = issuer, client_id
    row.obtained_at = now
    row.needs_relogin = False
    row.last_error = ""
    row.refresh_count = 0
    row.last_refresh_at = None
    row.exchanged_token_sealed, row.exchanged_token_expires_at = None, None
    row.refresh_token_sealed, row.refresh_token_expires_at = None, None
    # PanDA's answer about the previous tokens says nothing about these.
    row.panda_checked_at, row.panda_is_production, row.panda_check_message = None, None, ""
    if groups is not None:
        row.groups = list(groups)
    apply_response(row, response, now)
    row.subject = str(unverified_claims(response.get("id_token", "")).get("sub", row.subject or ""))
    db.session.flush()
    return row


def apply_response(row: UserToken, response: dict[str, Any], now: datetime) -> None:
    """Seal the tokens of a token-endpoint response into the row; keep the old refresh token if none came."""
    settings = get_settings()
    if response.get("refresh_token"):
        seal(row, "refresh_token", response["refresh_token"])
        row.refresh_token_expires_at = expiry(response["refresh_token"]) or (
            row.obtained_at + timedelta(days=settings.iam.refresh_token_days)
        )
    if response.get("id_token"):
        seal(row, "id_token", response["id_token"])
        row.id_token_expires_at = expiry(response["id_token"])
    if response.get("access_token"):
        seal(row, "access_token", response["access_token"])
        expires_in = response.get("expires_in")
        row.access_token_expires_at = (
            now + timedelta(seconds=int(expires_in))
            if isinstance(expires_in, int | float)
            else expiry(response["access_token"])
        )
    if response.get("scope"):
        row.scope = str(response["scope"])[:500]
