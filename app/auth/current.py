"""The user of the current request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import g

if TYPE_CHECKING:
    from app.auth.models import User


def current_user() -> User | None:
    """The logged-in, active User, or None."""
    return g.get("user")


def logged_in_user() -> User:
    """The logged-in user, in a view behind `login_required` or `role_required` (which make sure
    there is one)."""
    user = current_user()
    if user is None:
        raise RuntimeError("no logged-in user: the view lacks login_required or role_required")
    return user
