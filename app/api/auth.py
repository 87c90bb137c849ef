"""Who calls the API: a personal token (``Authorization: Bearer``) or the browser's session cookie
(then unsafe methods need the session's CSRF token in ``X-CSRFToken``, as the UI's forms do). Roles
are the UI's (``app.auth.roles``); a read token may only read."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import g, request
from sqlalchemy import select

from app.api import tokens
from app.api.problems import ApiProblem
from app.audit.services import record_now
from app.auth.current import current_user
from app.auth.models import User
from app.auth.roles import role_at_least
from app.extensions import csrf, db

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Set by the `prodpanel` command's in-process calls (app/api/remote.py: LocalPanel) to the account it
# acts as; a WSGI environ key that no HTTP request can set (waitress turns headers into HTTP_*).
LOCAL_USER_KEY = "prodpanel.local_user"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="prodpanel"'}


def unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, "Unauthorized", detail, "unauthorized", headers=_CHALLENGE)


def authenticate() -> None:
    """The blueprint's before-request hook: sets ``g.user`` (and ``g.api_token``) or refuses."""
    local = request.environ.get(LOCAL_USER_KEY)
    if local is not None:
        user = db.session.scalar(select(User).where(User.username == local))
        if user is None or not user.active:
            raise unauthorized(f"no active account named {local!r} on this panel")
        g.user, g.api_local = user, True
        return
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthorized("use 'Authorization: Bearer <token>' with a personal API token")
        try:
            token = tokens.authenticate(value.strip())
        except tokens.TokenRefused as exc:
            raise unauthorized(str(exc)) from None
        g.user, g.api_token = token.user, token
        if request.method not in SAFE_METHODS and token.scope != "write":
            raise ApiProblem(403, "Forbidden", "this API token is read-only", "read_only_token")
        return
    if current_user() is None:
        raise unauthorized("log in, or send a personal API token as 'Authorization: Bearer <token>'")
    if request.method not in SAFE_METHODS:
        csrf.protect()  # the browser's session: the same CSRF check as the UI's forms


def role(needed: str) -> Callable[[Callable], Callable]:
    """Refuse callers below `needed` (403, audited as the UI's ``role_required`` does)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not role_at_least(current_user(), needed):
                record_now("access.denied", target=request.path, outcome="denied", details={"needed": needed})
                raise ApiProblem(403, "Forbidden", f"needs the {needed} role", "forbidden")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def is_admin() -> bool:
    return role_at_least(current_user(), "admin")
