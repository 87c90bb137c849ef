"""`prodpanel users …`: local accounts."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.audit.services import record
from app.auth.models import User
from app.auth.roles import ROLES
from app.auth.services import AccountError, create_local_user, find_local_user, set_password
from app.auth.sessions import end_sessions_of
from app.extensions import db

users = AppGroup("users", help="Local accounts.")


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--name", "display_name", default="", help="Display name.")
@click.password_option(help="Password (asked for when omitted).")
def users_add(username: str, role: str, display_name: str, password: str) -> None:
    """Create a local account."""
    try:
        user = create_local_user(username, password, role=role, display_name=display_name)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    record("user.created", target=user.username, details={"role": role, "via": "cli"}, user=None)
    db.session.commit()
    click.echo(f"Created {user.username} ({role}).")


@users.command("passwd")
@click.argument("username")
@click.password_option(help="New password (asked for when omitted).")
def users_passwd(username: str, password: str) -> None:
    """Set a local account's password."""
    user = find_local_user(username)
    if user is None:
        raise click.ClickException(f"no local user '{username}'")
    try:
        set_password(user, password)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    record("user.password_set", target=username, details={"via": "cli"}, user=None)
    db.session.commit()
    click.echo(f"Password of {username} changed.")


@users.command("list")
def users_list() -> None:
    """List all users."""
    rows = db.session.scalars(select(User).order_by(User.username)).all()
    click.echo(f"{'username':<24} {'role':<8} {'active':<6} {'source':<10} display name")
    for u in rows:
        source = "local" if u.is_local else "iam"
        click.echo(
            f"{u.username:<24} {u.role:<8} {'yes' if u.active else 'no':<6} {source:<10} {u.display_name}"
        )


@users.command("disable")
@click.argument("username")
def users_disable(username: str) -> None:
    """Disable an account: it can no longer log in and its sessions end."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"no user '{username}'")
    user.active = False
    end_sessions_of(user.id)
    record("user.disabled", target=username, details={"via": "cli"}, user=None)
    db.session.commit()
    click.echo(f"{username} disabled.")
