"""Accounts and logins: local accounts, the local and the SPD-IAM login, log-out, the first-start
admin, the login rate limits. Services flush; the request (or the CLI command) commits."""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from authlib.integrations.base_client.errors import OAuthError
from flask import Response, current_app, g, redirect, session, url_for
from joserfc.errors import BadSignatureError, JoseError
from sqlalchemy import delete, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session
from werkzeug.wrappers import Response as BaseResponse

from app import clock
from app.audit.services import record
from app.auth.models import LOCAL_ISSUER, LocalPassword, LoginFailure, User
from app.auth.roles import ROLES, normalize_groups, role_for_groups
from app.auth.sessions import end_sessions_of
from app.config import Settings, get_settings
from app.extensions import db
from app.paths import write_private_file
from app.tokens.models import UserToken
from app.tokens.oidc import TRANSPORT_ERRORS
from app.tokens.vault import store_tokens
from app.web.security import safe_next

log = logging.getLogger(__name__)

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so timing does not reveal valid
    usernames; made at the first login, not at import (hashing costs every command 0.2 s and 64 MiB)."""
    return _hasher.hash("not-a-real-password")


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


def set_password(user: User, password: str, *, must_change: bool = False) -> None:
    """Set a local account's password; `must_change`: its next login must choose another one first
    (a password someone else chose: the first-start administrator's, one an admin set)."""
    _check_password(password)
    user.must_change_password = must_change
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
    stored = user.password.hash if user is not None and user.password is not None else _dummy_hash()
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
    session.regenerate()  # type: ignore[attr-defined]  # a new id; the pre-login row is dropped (sessions.py)
    session["uid"] = user.id
    session.permanent = True
    user.last_login_at = clock.now()
    g.user = user
    db.session.flush()


def log_out() -> None:
    session.end()  # type: ignore[attr-defined]  # ServerSession: clears the data, deletes the row
    g.user = None


@dataclass(frozen=True)
class LocalLogin:
    user: User | None  # None: refused
    refusal: str = ""  # "rate-limited" or "failed"


def log_in_locally(username: str, password: str, address: str) -> LocalLogin:
    """A local account's login, through the rate limit per client address and username; audited.
    On success the session starts anew."""
    limiter: LoginRateLimiter = current_app.extensions["login_limiter"]
    if limiter.blocked(address, username):
        record("login.failed", target=username, outcome="rate-limited", user=None)
        return LocalLogin(None, "rate-limited")
    user = authenticate(username, password)
    if user is None:
        limiter.failed(address, username)
        record("login.failed", target=username, outcome="failed", user=None)
        return LocalLogin(None, "failed")
    limiter.succeeded(address, username)
    log_in(user)
    record("login.ok", target=user.username, details={"method": "local"}, user=user)
    return LocalLogin(user)


def sign_out(user: User) -> None:
    """The user's log-out: audited; the session ends."""
    record("logout", target=user.username, user=user)
    log_out()


def load_user_from_session() -> User | None:
    """The active user named by the session, or None (a disabled user, or a local account while local
    accounts are switched off, is logged out at once)."""
    uid = session.get("uid")
    if uid is None:
        return None
    user = getattr(session, "user", None)  # read with the session's row (app/auth/sessions.py)
    if user is None or user.id != uid:
        user = db.session.get(User, uid)
    if user is None or not user.active or (user.is_local and not get_settings().auth.local_accounts):
        log_out()
        return None
    return user


INITIAL_ADMIN = "admin"
INITIAL_PASSWORD_FILE = "initial_admin_password"  # in the instance folder until that password changes


def ensure_admin() -> tuple[str, str] | None:
    """On first start (no users at all) create 'admin' with a random password; return the credentials once.

    Two servers starting at once on an empty database both see no users: the one whose insert comes
    second meets the other's admin (unique username) and leaves it be."""
    if db.session.scalar(select(func.count()).select_from(User)):
        return None
    password = secrets.token_urlsafe(12)
    try:
        with db.session.begin_nested():
            admin = create_local_user(INITIAL_ADMIN, password, role="admin", display_name="Administrator")
            admin.must_change_password = True  # the first login sets its own (and the password file goes)
    except (IntegrityError, AccountError):  # the other server's admin, committed or not yet
        return None
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
    """Counts failed logins in a sliding window, per (client address, username) and, given
    `per_address`, per client address whatever the usernames, so that one address cannot make a
    password check for every name on a list. A success clears only its own username's count.

    The counts are rows of `login_failure` under this limiter's `name`, written with the request's
    session: every `serve` process counts against the same budget. Each failure deletes the limiter's
    rows that left the window, so the table stays as small as the window's failures."""

    def __init__(self, name: str, attempts: int, window_s: int, per_address: int | None = None) -> None:
        self.name = name
        self.attempts = attempts
        self.per_address = per_address
        self.window = timedelta(seconds=window_s)

    def _budgets(self, address: str, username: str) -> list[tuple[tuple[str, str], int]]:
        budgets = [((address[:64], username.lower()[:150]), self.attempts)]
        if self.per_address is not None:
            budgets.append(((address[:64], ""), self.per_address))  # "": the address's own count
        return budgets

    def _recent(self, address: str, username: str) -> int:
        since = clock.now() - self.window
        return db.session.scalar(
            select(func.count()).where(
                LoginFailure.limiter == self.name, LoginFailure.address == address,
                LoginFailure.username == username, LoginFailure.at >= since,
            )  # fmt: skip
        ) or 0

    def blocked(self, address: str, username: str) -> bool:
        return any(self._recent(*key) >= limit for key, limit in self._budgets(address, username))

    def failed(self, address: str, username: str) -> None:
        now = clock.now()
        db.session.execute(
            delete(LoginFailure).where(LoginFailure.limiter == self.name, LoginFailure.at < now - self.window)
        )
        for (addr, name), _ in self._budgets(address, username):
            db.session.add(LoginFailure(limiter=self.name, address=addr, username=name, at=now))
        db.session.flush()

    def succeeded(self, address: str, username: str) -> None:
        (addr, name), _ = self._budgets(address, username)[0]
        db.session.execute(
            delete(LoginFailure).where(
                LoginFailure.limiter == self.name, LoginFailure.address == addr, LoginFailure.username == name
            )
        )


# ---- SPD-IAM login ------------------------------------------------------------------------
# Authorization code + PKCE through authlib's Flask client (app/auth/iam_client.py, registered by
# app/auth/iam.py). The callback first checks that its `state` belongs to a login started in this
# browser; authlib then checks PKCE and the ID token (signature through the JWKS, `iss` from
# discovery, `aud` = our client id, `exp`, `nonce`). On top of that the discovery document's issuer
# must equal the configured issuer exactly, and so must the `iss` parameter of the authorization
# response (RFC 9207) when the provider sends one. Users are the pair (iss, sub); the groups claim
# decides the role through `iam.role_map` on every login and on every token refresh that carries it.

# app.extensions keys, set when IAM login is configured: login starts, and failed callbacks.
IAM_START_LIMITER = "iam_start_limiter"
IAM_FAILURE_LIMITER = "iam_failure_limiter"
_IAM = "iam"  # the limiters' "username": IAM logins are counted per client address only
UNKNOWN_STATE = (
    "this answer does not belong to a login started in this browser (unknown state); start the login again"
)
ACCESS_ENDED = "your SPD-IAM groups no longer give access to this panel"


class LoginRefused(Exception):
    """The SPD-IAM login does not go through; the message says why, for the user."""


def _refused(reason: str, *, target: str = "", details: dict[str, Any] | None = None) -> LoginRefused:
    """The refusal, audited."""
    record("login.failed", target=target or "iam", outcome="failed",
           details={"method": "iam", "reason": reason, **(details or {})}, user=None)  # fmt: skip
    return LoginRefused(reason)


def iam_rate_limited(address: str, step: str) -> bool:
    """True (audited) when `address` may not take this step of the SPD-IAM login now.

    step "start": every login start counts (each costs a discovery call and a state entry in the
    session), against the generous `iam.login_start_limit`. step "callback": only failed callbacks
    count (`complete_iam_login` counts them), against `iam.login_rate_limit`; successful logins
    never do, so that many users behind one NAT or proxy do not lock each other out.
    """
    limiter: LoginRateLimiter | None = current_app.extensions.get(
        IAM_START_LIMITER if step == "start" else IAM_FAILURE_LIMITER
    )
    if limiter is None:
        return False
    if not limiter.blocked(address, _IAM):
        if step == "start":
            limiter.failed(address, _IAM)  # counts the attempt
        return False
    record("login.failed", target=_IAM, outcome="rate-limited", details={"method": "iam", "step": step},
           user=None)  # fmt: skip
    return True


def begin_iam_login(client: Any, next_url: str | None) -> Response:
    """The redirect to SPD-IAM's authorization endpoint, once its discovery document names the
    configured issuer; raises LoginRefused (audited) otherwise."""
    settings = get_settings()
    try:
        # Read afresh: a cached copy would send the browser to an IAM that is down.
        metadata = client.reload_server_metadata()
    except TRANSPORT_ERRORS as exc:
        log.warning("SPD-IAM discovery failed: %s", type(exc).__name__)
        raise _refused("SPD-IAM cannot be reached; try again later") from None
    if metadata.get("issuer") != settings.iam.issuer:
        raise _refused(
            "the provider's issuer does not match the configured issuer",
            details={"issuer": str(metadata.get("issuer"))[:200]},
        )
    session["iam_next"] = safe_next(next_url)
    extra = {"prompt": settings.iam.login_prompt} if settings.iam.login_prompt else {}
    return client.authorize_redirect(url_for("iam.callback", _external=True), **extra)


def complete_iam_login(client: Any, args: Mapping[str, str], address: str) -> str:
    """Finish the SPD-IAM login: validate the answer, (iss, sub) → user, tokens → vault, a new
    session. Returns where to go next; raises LoginRefused (audited, and counted against the
    client address's budget of failed callbacks)."""
    try:
        return _complete_iam_login(client, args, get_settings())
    except LoginRefused:
        limiter: LoginRateLimiter | None = current_app.extensions.get(IAM_FAILURE_LIMITER)
        if limiter is not None:
            limiter.failed(address, _IAM)
        raise


def _complete_iam_login(client: Any, args: Mapping[str, str], settings: Settings) -> str:
    state = args.get("state") or ""
    # Before anything else: an answer to no login of this browser is refused with one fixed message,
    # whatever else it carries (its text is neither shown nor audited).
    if not state or client.framework.get_state_data(session, state) is None:
        raise _refused(UNKNOWN_STATE)
    if args.get("error"):
        client.framework.clear_state_data(session, state)
        code = "".join(c for c in args["error"] if c.isalnum() or c in "_.-")[:60] or "an error"
        raise _refused(f"SPD-IAM answered {code}")
    iss_param = args.get("iss")
    if iss_param is not None and iss_param != settings.iam.issuer:
        raise _refused(
            "the authorization response came from another issuer", details={"iss": iss_param[:200]}
        )
    token = _token_response(client, settings)
    claims = dict(token.get("userinfo") or {})
    if not claims.get("sub") or claims.get("iss") != settings.iam.issuer:
        raise _refused("the ID token is missing or names another issuer")
    try:
        user, groups = provision_user(claims, settings)
    except LoginRefused as exc:  # refused before anything was written
        raise _refused(str(exc), target=str(claims.get("preferred_username") or claims["sub"])) from None
    store_tokens(
        user, "login", token, issuer=settings.iam.issuer, client_id=settings.iam.client_id, groups=groups
    )
    next_url = session.get("iam_next") or url_for("web.index")
    log_in(user)
    session["login_method"] = "iam"
    record("login.ok", target=user.username, details={"method": "iam", "role": user.role}, user=user)
    return safe_next(next_url)


_LOGOUT_STATE = "iam_logout_state"


def iam_logout_redirect(client: Any) -> str | None:
    """Where to send the browser for SPD-IAM's own logout (RP-initiated), or None when IAM offers
    no end-session endpoint. Its `state` comes back with IAM's answer (`returned_from_iam_logout`)."""
    try:
        endpoint = client.load_server_metadata().get("end_session_endpoint")
    except TRANSPORT_ERRORS:
        endpoint = None
    if not endpoint:
        return None
    session[_LOGOUT_STATE] = state = secrets.token_urlsafe(24)
    params = {
        "client_id": get_settings().iam.client_id,
        "post_logout_redirect_uri": url_for("iam.signed_out", _external=True),
        "state": state,
    }
    return f"{endpoint}?{urlencode(params)}"


def returned_from_iam_logout(state: str | None) -> bool:
    """True when this browser comes back from the SPD-IAM logout the panel sent it to."""
    expected = session.pop(_LOGOUT_STATE, None)
    return bool(state and expected and secrets.compare_digest(state, expected))


def _token_response(client: Any, settings: Settings) -> dict[str, Any]:
    """The token endpoint's answer to the authorization code, its ID token checked."""
    try:
        # authlib checks `aud` only through `azp` by default (aud "x" + azp "<us>" would pass), and
        # `iss` only when discovery has one: spell both out (OIDC Core 3.1.3.7, ASVS 10.5.3/10.5.4).
        return client.authorize_access_token(
            claims_options={
                "iss": {"essential": True, "values": [settings.iam.issuer]},
                "aud": {"essential": True, "values": [settings.iam.client_id]},
                "exp": {"essential": True},
                "sub": {"essential": True},
            }
        )
    except OAuthError as exc:
        raise _refused(f"{exc.error or 'oauth error'}".replace("_", " ")) from None
    except BadSignatureError:
        raise _refused("the ID token's signature does not match SPD-IAM's published keys") from None
    except JoseError as exc:
        detail = f"{exc.error}: {exc.description}" if exc.description else exc.error
        raise _refused(f"the ID token was refused ({detail})") from None
    except TRANSPORT_ERRORS as exc:
        raise _refused(f"the token request failed ({type(exc).__name__})") from None


def _unique_username(wanted: str) -> str:
    base = "".join(c for c in wanted if c.isalnum() or c in "._-")[:140] or "iam-user"
    candidate, n = base, 1
    while db.session.scalar(select(User.id).where(User.username == candidate)) is not None:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def provision_user(claims: dict[str, Any], settings: Settings) -> tuple[User, list[str]]:
    """Find or create the user (iss, sub) and apply name, email and role from the claims; flushes.

    Raises LoginRefused when the account is disabled, or when no group maps to a role (an existing
    user's access then ends: `follow_groups`).
    """
    iss, sub = str(claims["iss"]), str(claims["sub"])
    groups = normalize_groups(claims.get(settings.iam.groups_claim))
    role = role_for_groups(groups, settings.iam.role_map)
    user = db.session.scalar(select(User).where(User.iss == iss, User.sub == sub))
    if role is None:
        if user is not None:  # a user who had access: it ends everywhere
            follow_groups(user, groups, settings, via="iam-login")
        raise LoginRefused(
            f"your SPD-IAM account is in none of the groups this panel accepts ({', '.join(settings.iam.role_map)})"
        )
    if user is None:
        user = User(
            username=_unique_username(str(claims.get("preferred_username") or sub)),
            iss=iss,
            sub=sub,
            role=role,
            active=True,
        )
        db.session.add(user)
        db.session.flush()
        record(
            "user.created", target=user.username, details={"iss": iss, "role": role, "via": "iam"}, user=user
        )
    elif not user.active:
        raise LoginRefused("your panel account is disabled")
    else:
        follow_groups(user, groups, settings, via="iam-login")
    user.display_name = str(claims.get("name") or user.display_name or user.username)[:200]
    user.email = str(claims.get("email") or user.email or "")[:254]
    db.session.flush()
    return user, groups


def follow_groups(
    user: User,
    groups: list[str],
    settings: Settings,
    *,
    via: str,
    store: Session | scoped_session[Any] | None = None,
) -> str | None:
    """Give the IAM user the role its groups map to now; a change is audited. When no group maps
    any more, access ends: every session of the user ends (at its next request) and every stored
    grant needs a re-login (scheduled launches stop too). Flushes `store` (default: the app's).
    Returns the role, or None when access ended."""
    target: Session | scoped_session[Any] = store or db.session
    role = role_for_groups(groups, settings.iam.role_map)
    if role == user.role:
        return role
    details: dict[str, Any] = {"from": user.role, "to": role, "groups": groups[:20], "via": via}
    if role is None:
        details["sessions_ended"] = end_sessions_of(user.id, target)
        for grant in target.scalars(select(UserToken).where(UserToken.user_id == user.id)):
            grant.needs_relogin, grant.last_error = True, ACCESS_ENDED
    else:
        user.role = role
    record("user.role_changed", target=user.username, details=details, user=user, session=target)
    target.flush()
    return role


def end_user_sessions(user: User) -> int:
    """An admin ends every session of `user` (they must log in again); audited. Returns how many."""
    count = end_sessions_of(user.id)
    record("session.ended_by_admin", target=user.username, details={"sessions": count})
    return count


# ---- accounts in the UI ------------------------------------------------------------------------
# Every change is audited; admins manage local accounts (IAM users' roles follow their groups).

# Where a user who must change their password may still go (the gate in `password_gate`).
_OPEN_WHILE_CHANGING = frozenset({"auth.password", "auth.logout", "static", "web.healthz"})


def password_gate(user: User | None, endpoint: str | None) -> BaseResponse | None:
    """Send a user who must change their password to that page first (nothing else is served)."""
    if user is None or not user.must_change_password or endpoint in _OPEN_WHILE_CHANGING:
        return None
    return redirect(url_for("auth.password"))


def verify_password(user: User, password: str) -> bool:
    if user.password is None:
        return False
    try:
        return _hasher.verify(user.password.hash, password)
    except (VerificationError, InvalidHashError):
        return False


def change_own_password(user: User, current: str, new: str, repeated: str) -> None:
    """A local user's own password change; every other session of theirs ends and this one starts
    anew. Raises AccountError (nothing changed); audited."""
    if not user.is_local:
        raise AccountError("password: your password is managed by SPD-IAM")
    if not verify_password(user, current):
        record("user.password_change_failed", target=user.username, outcome="failed")
        raise AccountError("current password: wrong password")
    if new != repeated:
        raise AccountError("repeat: the two new passwords differ")
    if new == current:
        raise AccountError("new password: choose a password other than the current one")
    try:
        set_password(user, new)
    except AccountError as exc:
        raise AccountError(f"new {exc}") from None
    end_sessions_of(user.id)
    log_in(user)
    record("user.password_changed", target=user.username, details={"by": "self"})


def _active_admins() -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(User.role == "admin", User.active)) or 0


def _keep_an_admin(target: User, *, leaves: bool) -> None:
    if leaves and target.role == "admin" and target.active and _active_admins() <= 1:
        raise AccountError("the panel must keep one active administrator")


def admin_add_user(admin: User, username: str, display_name: str, role: str, password: str) -> User:
    """A local account an admin creates; its first login must choose a new password. Audited."""
    user = create_local_user(username, password, role=role, display_name=display_name.strip())
    user.must_change_password = True
    record("user.created", target=user.username, details={"role": role, "via": "admin"}, user=admin)
    db.session.flush()
    return user


def admin_set_role(admin: User, target: User, role: str) -> None:
    """Change a local account's role (an IAM user's follows their groups). Audited."""
    if not target.is_local:
        raise AccountError("role: an SPD-IAM user's role follows their IAM groups (iam.role_map)")
    if role not in ROLES:
        raise AccountError(f"role: must be one of {', '.join(ROLES)}")
    if role == target.role:
        return
    _keep_an_admin(target, leaves=role != "admin")
    record("user.role_changed", target=target.username, details={"from": target.role, "to": role, "via": "admin"}, user=admin)
    target.role = role
    db.session.flush()


def admin_set_active(admin: User, target: User, active: bool) -> int:
    """Enable or disable an account; disabling ends its sessions at once (returns how many). Audited."""
    if target.id == admin.id and not active:
        raise AccountError("you cannot disable your own account")
    if target.active == active:
        return 0
    _keep_an_admin(target, leaves=not active)
    target.active = active
    ended = 0 if active else end_sessions_of(target.id)
    record("user.enabled" if active else "user.disabled", target=target.username,
           details={"via": "admin", **({} if active else {"sessions_ended": ended})}, user=admin)  # fmt: skip
    db.session.flush()
    return ended


def admin_set_password(admin: User, target: User, password: str) -> None:
    """An admin sets a local account's password; its next login must choose another. Audited."""
    if not target.is_local:
        raise AccountError("password: an SPD-IAM user has no panel password")
    set_password(target, password, must_change=True)
    end_sessions_of(target.id)
    record("user.password_set", target=target.username, details={"via": "admin"}, user=admin)
