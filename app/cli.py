"""The `prodpanel` command: serve, config-example, db, routes, shell and the domains' groups.

Commands that need the app run inside its app context (`flask.cli.AppGroup` / `with_appcontext`);
the app is built for the instance folder chosen with `--instance` (before or after the command
name), PRODPANEL_INSTANCE or ./instance. Domain groups (users, keys, panda-sim) live in their
domains and are only registered here.
"""

import importlib
import logging
import os
import signal
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo, routes_command, shell_command

from app.api.cli import COMMANDS as API_COMMANDS
from app.startup import failing_as, refuse

if TYPE_CHECKING:
    from waitress.server import BaseWSGIServer

    from app.config import Settings

# The domains' command groups, imported when they run: `prodpanel --help` loads none of them (nor the
# app), so it answers at once. name -> (module:object, its help line; a test checks they agree).
LAZY_GROUPS = {
    "users": ("app.auth.cli:users", "Local accounts."),
    "stats": ("app.stats.cli:stats", "The statistics' per-day summary."),
    "keys": ("app.tokens.cli:keys", "Token-encryption keys (instance/token_key, instance/token_keys.json)."),
    "panda-sim": ("pandasim.cli:panda_sim", "Run the PanDA simulator (one server version, JEDI lifecycle, OIDC issuer) until Ctrl-C."),
    "requests-sim": ("reqsim.cli:requests_sim", "Run the spd-requests simulator (sample SPD production requests) until Ctrl-C."),
}


class LazyGroup(AppGroup):
    """An AppGroup whose LAZY_GROUPS are imported only when named."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_GROUPS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_GROUPS:
            module, name = LAZY_GROUPS[cmd_name][0].split(":")
            return getattr(importlib.import_module(module), name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_GROUPS:
                rows.append((name, LAZY_GROUPS[name][1]))
            elif (command := super().get_command(ctx, name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _remember_instance(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.ensure_object(ScriptInfo).data["instance"] = value


instance_option = click.option(
    "--instance",
    type=click.Path(file_okay=False),
    expose_value=False,
    callback=_remember_instance,
    help="Instance folder (config, database, keys).",
)


def _remember_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(ScriptInfo).data["debug"] = True


debug_option = click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    callback=_remember_debug,
    help="Show the traceback of a start-up failure (also PRODPANEL_DEBUG=1).",
)


def _load_app(info: ScriptInfo) -> Flask:
    """Settings from the chosen instance folder, then the app; configuration errors end the command."""
    from app import create_app
    from app.config import ConfigError, load_settings
    from app.logsetup import configure_logging
    from app.paths import ensure_private_dir, instance_dir

    with failing_as("instance folder"):
        folder = ensure_private_dir(instance_dir(info.data.get("instance")))
        try:
            settings = load_settings(folder)
        except ConfigError as exc:
            refuse(f"configuration error: {exc}", exc)
    configure_logging(settings.log_level)
    return create_app(settings)


def _database(settings: "Settings") -> AbstractContextManager[None]:
    """Database errors at start name the database (without its password)."""
    from app.config import make_url_safe

    return failing_as(f"database {make_url_safe(settings.sqlalchemy_url)}")


def _migrate(settings: "Settings") -> Path | None:
    from app import migrate
    from app.extensions import db

    try:
        return migrate.upgrade_on_start(db.engine, settings.instance_dir)
    except migrate.MigrationError as exc:
        refuse(str(exc), exc)


@click.group(cls=LazyGroup)
@instance_option
@debug_option
@click.pass_context
def main(ctx: click.Context) -> None:
    """SPD production panel."""
    info = ctx.ensure_object(ScriptInfo)  # FlaskCliRunner (tests) passes one with its app
    info.set_debug_flag = False
    if info.create_app is None:
        info.create_app = lambda: _load_app(info)


@main.command()
@click.option("--host", help="Address to listen on (default from config: 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default from config: 5000; 0 = any free port).")
@click.option("--threads", type=int, help="Worker threads (per process).")
@click.option("--processes", type=click.IntRange(1, 64), help="Processes serving requests (default from config: 1).")
@instance_option
def serve(host: str | None, port: int | None, threads: int | None, processes: int | None) -> None:
    """Migrate the database, then serve the panel with waitress until SIGTERM or Ctrl-C."""
    from app.auth.services import ensure_admin, hand_over_initial_password
    from app.extensions import db
    from app.paths import keep_private
    from app.runtime import start_background, stop_background
    from app.workers import Workers
    from pandasim import StateError

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = app.config["SETTINGS"]
    with failing_as("instance folder"):
        keep_private(settings.instance_dir)
    threads = threads or settings.server.threads
    socket_map: dict = {}  # waitress's loop: the listening socket, its connections, the workers' channels
    server = _listen(app, settings, threads, socket_map, host=host or settings.server.host,
                     port=settings.server.port if port is None else port)  # fmt: skip  # first: a taken port changes nothing
    workers = Workers(app, (processes or settings.server.processes) - 1, threads, socket_map)
    try:
        with _database(settings):
            backup = _migrate(settings)
            credentials = ensure_admin()
            db.session.commit()
    except BaseException:
        server.close()
        raise
    if backup:
        click.echo(f"Database backed up to {backup} before upgrading.")

    def terminate(signum, frame):
        raise SystemExit(0)

    # SIGTERM and Ctrl-C end the server loop the same way; during shutdown they are ignored so that a
    # second signal cannot cut the cleanup (waiting for launches in flight, storing the PanDA log).
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    stoppers = []
    try:
        if credentials:  # before the background jobs, whose log lines could split the password's line
            hand_over_initial_password(*credentials, settings.instance_dir)
        stoppers = start_background(app)
        workers.start()  # after the background services: they tell the workers the simulators' URLs
        url = f"http://{server.effective_host}:{server.effective_port}/"
        processes_text = f", {workers.count + 1} processes" if workers.count else ""
        click.echo(f"prodpanel serving on {url}  (instance: {settings.instance_dir}{processes_text})")
        sys.stdout.flush()
        server.run()  # returns after SIGTERM/Ctrl-C (waitress catches SystemExit and KeyboardInterrupt)
    except SystemExit:
        pass
    except StateError as exc:  # the sandbox simulator's state file cannot be used
        raise click.ClickException(f"sandbox PanDA simulator: {exc}") from exc
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        server.close()
        workers.stop()  # before the background services: their requests may still use the simulators
        stop_background(stoppers)
        click.echo("prodpanel stopped." if not workers.failed else "prodpanel stopped: a worker process failed.")
    # Everything is stored and closed: skip the interpreter's teardown of the app's large heap, which
    # takes seconds on a busy host (a SIGTERM'd serve ends within 5 s; atexit handlers have nothing left).
    sys.stdout.flush()
    logging.shutdown()
    os._exit(1 if workers.failed else 0)


@main.command("serve-worker", hidden=True)
@click.option("--threads", type=int, required=True)
@click.option("--listen-fd", type=int, multiple=True, required=True)
@click.option("--channel-fd", type=int, required=True)
def serve_worker(threads: int, listen_fd: tuple[int, ...], channel_fd: int) -> None:
    """A worker process of `serve --processes N`, started by serve (app/workers.py), never by hand."""
    from app.panda.calllog import flush_call_log
    from app.workers import serve_as_worker

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = app.config["SETTINGS"]
    serve_as_worker(app, list(listen_fd), channel_fd,
                    lambda socks, socket_map: _listen(app, settings, threads, socket_map, sockets=socks))  # fmt: skip
    flush_call_log(3.0)  # the PanDA calls of its last requests
    sys.stdout.flush()
    logging.shutdown()
    os._exit(0)


def _listen(app: Flask, settings: "Settings", threads: int, socket_map: dict, **where: Any) -> "BaseWSGIServer":
    """The waitress server in `socket_map`, on `host` and `port`, or on `sockets` already listening."""
    from waitress import create_server

    proxy = (
        {
            "trusted_proxy": settings.server.trusted_proxy,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
        }
        if settings.server.trusted_proxy
        else {}
    )
    with failing_as(f"cannot listen on {where.get('host')}:{where.get('port')}"):
        return create_server(app, map=socket_map, threads=threads, clear_untrusted_proxy_headers=True,
                             ident="prodpanel", **where, **proxy)  # fmt: skip


@main.command("config-example", with_appcontext=False)
def config_example() -> None:
    """Print instance/config.example.toml: every key with its default and meaning."""
    from app.config import render_example

    click.echo(render_example(), nl=False)


@main.group("db")
def db_group() -> None:
    """Database schema migrations."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Upgrade the schema to the newest revision (SQLite is backed up first)."""
    from app import migrate
    from app.extensions import db

    settings = current_app.config["SETTINGS"]
    with _database(settings):
        backup = _migrate(settings)
    if backup:
        click.echo(f"Backed up to {backup}")
    click.echo(f"Database at revision {migrate.state(db.engine).current}")


@db_group.command("current")
def db_current() -> None:
    """Show the database's revision and the code's head."""
    from app import migrate
    from app.extensions import db

    with _database(current_app.config["SETTINGS"]):
        state = migrate.state(db.engine)
    status = "up to date" if state.current == state.head else "needs upgrade"
    click.echo(f"current: {state.current or '(empty)'}  head: {state.head}  ({status})")


@db_group.command("history", with_appcontext=False)
def db_history() -> None:
    """List the migrations, newest first."""
    from alembic.script import ScriptDirectory

    from app import migrate

    for rev in ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions():
        click.echo(f"{rev.revision}  {rev.doc}")


main.add_command(routes_command)
main.add_command(shell_command)
for command in API_COMMANDS:  # tasks, chain, launches, export, import: through the JSON API
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover - PyInstaller entry point
    main()
