"""The application factory: configuration, extensions, blueprints. No network, threads or queries.

Imported from `app` on first use of `app.create_app` (see app/__init__.py)."""

from datetime import timedelta

from flask import Flask, g, request
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from app import extensions
from app.actions.views import bp as actions_bp
from app.api.views import bp as api_bp
from app.audit.views import bp as audit_bp
from app.auth.current import current_user
from app.auth.iam import bp as iam_bp
from app.auth.roles import role_at_least
from app.auth.services import LoginRateLimiter, load_user_from_session, password_gate
from app.auth.sessions import init_sessions
from app.auth.views import bp as auth_bp
from app.chains.views import bp as chains_bp
from app.config import Settings, load_settings
from app.inputs import IdConverter
from app.launches.views import bp as launches_bp
from app.monitoring.views import bp as monitoring_bp
from app.panda.calllog import init_call_log
from app.panda.services import make_client
from app.panda.views import bp as panda_bp
from app.paths import instance_dir, resource_root
from app.prodrequests.views import bp as prodrequests_bp
from app.stats.views import bp as stats_bp
from app.sync.services import FINAL, sync_status
from app.tasks.views import bp as tasks_bp
from app.tokens.views import bp as tokens_bp
from app.transaction import TransactionalFlask
from app.version import VERSION
from app.web.nav import visible_nav
from app.web.security import init_security
from app.web.views import bp as web_bp

# One line per domain; the order is the order of their URL rules.
BLUEPRINTS = (
    web_bp, auth_bp, iam_bp, tokens_bp, audit_bp, panda_bp, tasks_bp, monitoring_bp, actions_bp, chains_bp, launches_bp,
    prodrequests_bp, stats_bp, api_bp,
)  # fmt: skip


def engine_options(settings: Settings) -> dict:
    """Sized with the web and job threads (Settings.db_pool_size); the overflow absorbs bursts. No
    pre-ping: a connection the server ended is seen on checkout without a round trip (app/db.py)."""
    options: dict = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_pool_size}
    if settings.sqlalchemy_url.startswith("postgresql"):
        # PostgreSQL's JIT compiles any plan whose estimate passes jit_above_cost: 20-40 ms of
        # compiling for the pages' queries that read a few hundred rows in a few ms. Set at connect
        # (in the startup packet): no statement, no round trip.
        options["connect_args"] = {"options": "-c jit=off"}
    return options


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings(instance_dir())
    root = resource_root()
    app = TransactionalFlask(  # one transaction per request: app/transaction.py
        __name__,
        instance_path=str(settings.instance_dir),
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
    )
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.sqlalchemy_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.server.base_url.startswith("https://"),
        SESSION_COOKIE_NAME="prodpanel_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.auth.session_max_hours),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
    )
    extensions.db.init_app(app)
    extensions.csrf.init_app(app)
    extensions.panda_clients.init_app(app, make_client)
    init_security(app)
    init_sessions(app)  # server-side sessions replace the signed cookie (app/auth/sessions.py)
    init_call_log(app)  # PanDA calls are stored once a request or a job's run is over
    app.extensions["login_limiter"] = LoginRateLimiter(
        "local", settings.auth.login_attempts, settings.auth.login_window_s,
        settings.auth.login_attempts_per_address,
    )  # fmt: skip
    app.extensions.setdefault("health_checks", {})
    app.url_map.converters["int"] = IdConverter  # before the blueprints' rules are built
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

    @app.before_request
    def load_user() -> Response | None:
        g.user = load_user_from_session()
        g.api_token = g.api_local = None  # set by the API's authentication (app/api/auth.py)
        return password_gate(g.user, request.endpoint)  # a password someone else chose is changed first

    @app.context_processor
    def shell_context() -> dict:
        user = current_user()
        return {
            "current_user": user,
            "has_role": lambda role: role_at_least(user, role),  # templates' one role check
            "nav_items": visible_nav(user),
            "csrf_token": generate_csrf,
            "settings": settings,
            "app_version": VERSION,
            "panda_sync": sync_status,  # called by the pages that show PanDA states (one query then)
            "panda_final": FINAL,
        }

    return app
