"""The user of the current request."""

from flask import g


def current_user():
    """The logged-in, active User, or None."""
    return g.get("user")
