"""The application factory: configuration, extensions, blueprints. No network, threads or queries."""

from datetime import timedelta
from importlib import import_module

from flask import Flask, g
from flask_wtf.csrf import generate_csrf

from app import extensions
from app.auth.current import current_user
from app.auth.roles import role_at_least
from app.auth.services import LoginRateLimiter, load_user_from_session
from app.auth.sessions import init_sessions
from app.blueprints import BLUEPRINTS
from app.config import Settings, load_settings
from app.paths import instance_dir, resource_root
from app.web.nav import visible_nav
from app.web.security import init_security

VERSION = "0.1.0"  # also the package version (pyproject reads it)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings(instance_dir())
    root = resource_root()
    app = Flask(
        __name__,
        instance_path=str(settings.instance_dir),
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
    )
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.sqlalchemy_url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
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
    init_security(app)
    init_sessions(app)  # server-side sessions replace the signed cookie (app/auth/sessions.py)
    app.extensions["login_limiter"] = LoginRateLimiter(
        settings.auth.login_attempts, settings.auth.login_window_s, settings.auth.login_attempts_per_address
    )
    app.extensions.setdefault("health_checks", {})

    for spec in BLUEPRINTS:
        module, attr = spec.split(":")
        app.register_blueprint(getattr(import_module(module), attr))

    @app.before_request
    def load_user() -> None:
        g.user = load_user_from_session()

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
        }

    return app
