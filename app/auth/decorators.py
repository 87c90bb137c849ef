"""View decorators that enforce login and roles; refusals are audited."""

from collections.abc import Callable
from functools import wraps

from flask import abort, redirect, request, url_for

from app.audit.services import record_now
from app.auth.current import current_user
from app.auth.roles import role_at_least


def login_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapped(*args, **kwargs):
        if current_user() is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


def role_required(role: str) -> Callable[[Callable], Callable]:
    """Refuse (403, audited in its own transaction: the refusal rolls the request back) users below
    `role`; send anonymous users to the login page."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not role_at_least(user, role):
                record_now("access.denied", target=request.path, outcome="denied", details={"needed": role})
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
