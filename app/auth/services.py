"""Local accounts, log-in/log-out and the first-start admin. Services flush; callers commit."""

import logging
import secrets
import sys
import threading
from collections import deque
from datetime import timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import g, session
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from app import clock
from app.auth.models import LOCAL_ISSUER, LocalPassword, User
from app.auth.roles import ROLES
from app.config import get_settings
from app.extensions import db
from app.paths import write_private_file

log = logging.getLogger(__name__)

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
    if user.is_local and user.username == INITIAL_ADMIN:
        _forget_initial_password_on_commit()


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


INITIAL_ADMIN = "admin"
INITIAL_PASSWORD_FILE = "initial_admin_password"  # in the instance folder until that password changes


def ensure_admin() -> tuple[str, str] | None:
    """On first start (no users at all) create 'admin' with a random password; return the credentials once."""
    if db.session.scalar(select(func.count()).select_from(User)):
        return None
    password = secrets.token_urlsafe(12)
    create_local_user(INITIAL_ADMIN, password, role="admin", display_name="Administrator")
    return INITIAL_ADMIN, password


def hand_over_initial_password(username: str, password: str, instance_dir: Path) -> None:
    """Give the first-start administrator's password to the operator: on the terminal when standard
    output is one; otherwise (a service manager, a pipe, a log collector) never into the output but
    into instance/initial_admin_password, 0600, named in the log and deleted when it is changed."""
    if sys.stdout.isatty():
        print(f"First start: created administrator '{username}' with password: {password}")
        print(f"This password is shown only once; change it with `prodpanel users passwd {username}`.")
        sys.stdout.flush()
        return
    path = instance_dir / INITIAL_PASSWORD_FILE
    write_private_file(path, password + "\n")
    log.warning(
        "First start: created administrator '%s'; its password is in %s (readable by this user only, "
        "deleted when the password is changed: prodpanel users passwd %s)", username, path, username,
    )  # fmt: skip


# The file goes only once the new password is committed: a rolled-back change leaves it in place.
_FORGET_AT_COMMIT = "prodpanel_forget_initial_password"


def _forget_initial_password_on_commit() -> None:
    path = get_settings().instance_dir / INITIAL_PASSWORD_FILE
    if path.exists():
        db.session.info[_FORGET_AT_COMMIT] = path


@event.listens_for(Session, "after_commit")
def _forget_initial_password(session: Session) -> None:
    path = session.info.pop(_FORGET_AT_COMMIT, None)
    if path is not None:
        path.unlink(missing_ok=True)


@event.listens_for(Session, "after_rollback")
def _keep_initial_password(session: Session) -> None:
    session.info.pop(_FORGET_AT_COMMIT, None)


class LoginRateLimiter:
    """Counts failed logins in a sliding window, in memory, per process: per (client address, username)
    and, given `per_address`, per client address whatever the usernames, so that one address cannot
    make a password check for every name on a list. A success clears only its own username's count."""

    _SWEEP_AT = 1024

    def __init__(self, attempts: int, window_s: int, per_address: int | None = None) -> None:
        self.attempts = attempts
        self.per_address = per_address
        self.window = timedelta(seconds=window_s)
        self._failures: dict[tuple[str, str | None], deque] = {}  # (address, None): the address's count
        self._lock = threading.Lock()

    def _budgets(self, address: str, username: str) -> list[tuple[tuple[str, str | None], int]]:
        budgets: list[tuple[tuple[str, str | None], int]] = [((address, username.lower()), self.attempts)]
        if self.per_address is not None:
            budgets.append(((address, None), self.per_address))
        return budgets

    def _recent(self, key: tuple[str, str | None]) -> deque:
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
            return any(len(self._recent(key)) >= limit for key, limit in self._budgets(address, username))

    def failed(self, address: str, username: str) -> None:
        with self._lock:
            if len(self._failures) >= self._SWEEP_AT:
                self._sweep()
            for key, _ in self._budgets(address, username):
                self._failures[key] = self._recent(key)
                self._failures[key].append(clock.now())

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._failures.pop((address, username.lower()), None)
