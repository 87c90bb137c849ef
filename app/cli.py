"""The `prodpanel` command: serve, db, users (and the domains' own subcommands)."""

import signal
import sys

import click
from flask import Flask
from sqlalchemy import select

from app import create_app, migrate
from app.audit.services import record
from app.auth.models import User
from app.auth.roles import ROLES
from app.auth.services import AccountError, create_local_user, ensure_admin, find_local_user, set_password
from app.auth.sessions import end_sessions_of
from app.config import ConfigError, load_settings
from app.extensions import db
from app.logsetup import configure_logging
from app.paths import ensure_private_dir, instance_dir
from app.tokens.cli import keys
from pandasim.cli import panda_sim
from reqsim.cli import requests_sim


def build_app(ctx: click.Context) -> Flask:
    """Settings from the chosen instance folder, then the app; configuration errors end the command."""
    folder = ensure_private_dir(instance_dir(ctx.obj.get("instance")))
    try:
        settings = load_settings(folder)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
    configure_logging(settings.log_level)
    return create_app(settings)


@click.group()
@click.option(
    "--instance", type=click.Path(file_okay=False), help="Instance folder (config, database, keys)."
)
@click.pass_context
def main(ctx: click.Context, instance: str | None) -> None:
    """SPD production panel."""
    ctx.ensure_object(dict)
    ctx.obj["instance"] = instance


@main.command()
@click.option("--host", help="Address to listen on (default from config: 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default from config: 5000; 0 = any free port).")
@click.option("--threads", type=int, help="Worker threads.")
@click.option("--instance", "instance_opt", type=click.Path(file_okay=False), help="Instance folder.")
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, threads: int | None, instance_opt: str | None
) -> None:
    """Migrate the database, then serve the panel with waitress until SIGTERM or Ctrl-C."""
    from waitress import create_server

    from app.auth.services import hand_over_initial_password
    from app.paths import keep_private
    from app.runtime import start_background, stop_background

    if instance_opt:
        ctx.obj["instance"] = instance_opt
    app = build_app(ctx)
    settings = app.config["SETTINGS"]
    keep_private(settings.instance_dir)
    with app.app_context():
        try:
            backup = migrate.upgrade_on_start(db.engine, settings.instance_dir)
        except migrate.MigrationError as exc:
            raise click.ClickException(str(exc)) from exc
        if backup:
            click.echo(f"Database backed up to {backup} before upgrading.")
        credentials = ensure_admin()
        db.session.commit()
    proxy = (
        {
            "trusted_proxy": settings.server.trusted_proxy,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
        }
        if settings.server.trusted_proxy
        else {}
    )
    server = create_server(
        app,
        host=host or settings.server.host,
        port=settings.server.port if port is None else port,
        threads=threads or settings.server.threads,
        clear_untrusted_proxy_headers=True,
        ident="prodpanel",
        **proxy,
    )

    def terminate(signum, frame):
        raise SystemExit(0)

    # SIGTERM and Ctrl-C end the server loop the same way; during shutdown they are ignored so that a
    # second signal cannot cut the cleanup (waiting for launches in flight, storing the PanDA log).
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    stoppers = []
    try:
        stoppers = start_background(app)
        url = f"http://{server.effective_host}:{server.effective_port}/"
        click.echo(f"prodpanel serving on {url}  (instance: {settings.instance_dir})")
        if credentials:
            hand_over_initial_password(*credentials, settings.instance_dir)
        sys.stdout.flush()
        server.run()  # returns after SIGTERM/Ctrl-C (waitress catches SystemExit and KeyboardInterrupt)
    except SystemExit:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        server.close()
        stop_background(stoppers)
        click.echo("prodpanel stopped.")


@main.command("config-example")
def config_example() -> None:
    """Print instance/config.example.toml: every key with its default and meaning."""
    from app.config import render_example

    click.echo(render_example(), nl=False)


@main.group("db")
def db_group() -> None:
    """Database schema migrations."""


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Upgrade the schema to the newest revision (SQLite is backed up first)."""
    app = build_app(ctx)
    with app.app_context():
        try:
            backup = migrate.upgrade_on_start(db.engine, app.config["SETTINGS"].instance_dir)
        except migrate.MigrationError as exc:
            raise click.ClickException(str(exc)) from exc
        if backup:
            click.echo(f"Backed up to {backup}")
        click.echo(f"Database at revision {migrate.state(db.engine).current}")


@db_group.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Show the database's revision and the code's head."""
    app = build_app(ctx)
    with app.app_context():
        state = migrate.state(db.engine)
        status = "up to date" if state.current == state.head else "needs upgrade"
        click.echo(f"current: {state.current or '(empty)'}  head: {state.head}  ({status})")


@db_group.command("history")
def db_history() -> None:
    """List the migrations, newest first."""
    from alembic.script import ScriptDirectory

    for rev in ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions():
        click.echo(f"{rev.revision}  {rev.doc}")


@main.group()
def users() -> None:
    """Local accounts."""


def _role_option(f):
    return click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)(f)


@users.command("add")
@click.argument("username")
@_role_option
@click.option("--name", "display_name", default="", help="Display name.")
@click.password_option(help="Password (asked for when omitted).")
@click.pass_context
def users_add(ctx: click.Context, username: str, role: str, display_name: str, password: str) -> None:
    """Create a local account."""
    app = build_app(ctx)
    with app.app_context():
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
@click.pass_context
def users_passwd(ctx: click.Context, username: str, password: str) -> None:
    """Set a local account's password."""
    app = build_app(ctx)
    with app.app_context():
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
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """List all users."""
    app = build_app(ctx)
    with app.app_context():
        rows = db.session.scalars(select(User).order_by(User.username)).all()
        click.echo(f"{'username':<24} {'role':<8} {'active':<6} {'source':<10} display name")
        for u in rows:
            source = "local" if u.is_local else "iam"
            click.echo(
                f"{u.username:<24} {u.role:<8} {'yes' if u.active else 'no':<6} {source:<10} {u.display_name}"
            )


@users.command("disable")
@click.argument("username")
@click.pass_context
def users_disable(ctx: click.Context, username: str) -> None:
    """Disable an account: it can no longer log in and its sessions end."""
    app = build_app(ctx)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            raise click.ClickException(f"no user '{username}'")
        user.active = False
        end_sessions_of(user.id)
        record("user.disabled", target=username, details={"via": "cli"}, user=None)
        db.session.commit()
        click.echo(f"{username} disabled.")


main.add_command(panda_sim)
main.add_command(requests_sim)
main.add_command(keys)


if __name__ == "__main__":  # pragma: no cover - PyInstaller entry point
    main()
