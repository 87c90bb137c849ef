"""Local accounts, log-in/log-out and the first-start admin. Services flush; callers commit."""

import secrets
import threading
from collections import deque
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import g, session
from sqlalchemy import func, select

from app import clock
from app.auth.models import LOCAL_ISSUER, LocalPassword, User
from app.auth.roles import ROLES
from app.config import get_settings
from app.extensions import db

_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so timing does not reveal valid usernames.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class AccountError(ValueError):
    """Bad input for an account operation; the message is shown to the operator."""


def find_local_user(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.iss == LOCAL_ISSUER, User.username == username))


def create_local_user(username: str, password: str, role: str = "viewer", display_name: str = "") -> User:
    """Create an active local account."""
    username = username.strip()
    if (
        not username
        or len(username) > 150
        or not username.replace(".", "").replace("-", "").replace("_", "").isalnum()
    ):
        raise AccountError("username: use letters, digits, '.', '-' or '_' (at most 150)")
    if role not in ROLES:
        raise AccountError(f"role: must be one of {', '.join(ROLES)}")
    if db.session.scalar(select(User).where(User.username == username)):
        raise AccountError(f"username: '{username}' already exists")
    _check_password(password)
    user = User(
        username=username, display_name=display_name or username, role=role, iss=LOCAL_ISSUER, sub=username
    )
    user.password = LocalPassword(hash=_hasher.hash(password))
    db.session.add(user)
    db.session.flush()
    return user


def set_password(user: User, password: str) -> None:
    _check_password(password)
    if user.password is None:
        user.password = LocalPassword(hash=_hasher.hash(password))
    else:
        user.password.hash = _hasher.hash(password)
        user.password.changed_at = clock.now()
    db.session.flush()


def _check_password(password: str) -> None:
    if len(password) < 10:
        raise AccountError("password: at least 10 characters")


def authenticate(username: str, password: str) -> User | None:
    """The active local user with this password, or None. Constant work whether or not the user exists."""
    user = find_local_user(username)
    stored = user.password.hash if user is not None and user.password is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.password is None or not user.active:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password.hash = _hasher.hash(password)
    return user


def log_in(user: User) -> None:
    """Start a fresh session for `user` (a new session, so a pre-login session id is never reused)."""
    session.clear()
    session.regenerate()  # a new session id; the pre-login row is dropped (app/auth/sessions.py)
    session["uid"] = user.id
    session.permanent = True
    user.last_login_at = clock.now()
    g.user = user
    db.session.flush()


def log_out() -> None:
    session.end()  # clears the data and deletes the row
    g.user = None


def load_user_from_session() -> User | None:
    """The active user named by the session, or None (a disabled user, or a local account while local
    accounts are switched off, is logged out at once)."""
    uid = session.get("uid")
    if uid is None:
        return None
    user = db.session.get(User, uid)
    if user is None or not user.active or (user.is_local and not get_settings().auth.local_accounts):
        log_out()
        return None
    return user


def ensure_admin() -> tuple[str, str] | None:
    """On first start (no users at all) create 'admin' with a random password; return the credentials once."""
    if db.session.scalar(select(func.count()).select_from(User)):
        return None
    password = secrets.token_urlsafe(12)
    create_local_user("admin", password, role="admin", display_name="Administrator")
    return "admin", password


class LoginRateLimiter:
    """Counts failed logins per (client address, username) in a sliding window; in memory, per process."""

    _SWEEP_AT = 1024

    def __init__(self, attempts: int, window_s: int) -> None:
        self.attempts = attempts
        self.window = timedelta(seconds=window_s)
        self._failures: dict[tuple[str, str], deque] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque:
        cutoff = clock.now() - self.window
        failures = self._failures.get(key, deque())
        while failures and failures[0] < cutoff:
            failures.popleft()
        return failures

    def _sweep(self) -> None:
        """Forget keys whose failures have all left the window, so memory stays bounded."""
        for key in [k for k in self._failures if not self._recent(k)]:
            del self._failures[key]

    def blocked(self, address: str, username: str) -> bool:
        with self._lock:
            return len(self._recent((address, username.lower()))) >= self.attempts

    def failed(self, address: str, username: str) -> None:
        with self._lock:
            if len(self._failures) >= self._SWEEP_AT:
                self._sweep()
            key = (address, username.lower())
            self._failures[key] = self._recent(key)
            self._failures[key].append(clock.now())

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._failures.pop((address, username.lower()), None)
