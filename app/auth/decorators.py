"""View decorators that enforce login and roles; refusals are audited."""

from collections.abc import Callable
from functools import wraps

from flask import abort, redirect, request, url_for

from app.audit.services import record
from app.auth.current import current_user
from app.auth.roles import role_at_least
from app.extensions import db


def login_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapped(*args, **kwargs):
        if current_user() is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


def role_required(role: str) -> Callable[[Callable], Callable]:
    """Refuse (403, audited) users below `role`; send anonymous users to the login page."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not role_at_least(user, role):
                record("access.denied", target=request.path, outcome="denied", details={"needed": role})
                db.session.commit()
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
