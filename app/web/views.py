"""Home page, health check and error pages."""

import logging

from flask import Blueprint, jsonify, render_template
from werkzeug.exceptions import HTTPException

from app.api.problems import from_http_error, wants_problem
from app.api.problems import internal_error as api_internal_error
from app.auth.current import logged_in_user
from app.auth.decorators import login_required
from app.inputs import BadInput
from app.stats.dashboard import dashboard
from app.tasks.services import recent_bunches
from app.tokens.services import panda_token_line
from app.web.services import health_report

bp = Blueprint("web", __name__)
log = logging.getLogger(__name__)


@bp.get("/")
@login_required
def index():
    """The dashboard: active tasks, running bunches and chains, alerts, upcoming launches,
    reachability, the token line and the recent bunches."""
    user = logged_in_user()
    return render_template(
        "web/index.html", dash=dashboard(user), bunches=recent_bunches(), token_line=panda_token_line(user)
    )


@bp.get("/healthz")
def healthz():
    """Database reachability, migration state and whatever other checks the domains registered."""
    report = health_report()
    ok = all(part.get("ok") for part in report.values())
    return jsonify(status="ok" if ok else "degraded", **report), 200 if ok else 503


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException):
    if wants_problem():
        return from_http_error(exc)
    code = exc.code or 500
    if code == 400 and "CSRF" in (exc.description or ""):
        message = (
            "The form expired or was sent from elsewhere. Reload the page and try again; nothing was changed."
        )
    elif isinstance(exc, BadInput):
        message = f"The request was not understood: {exc.description}."
    else:
        message = {
            400: "The request was not understood.",
            403: "You do not have permission to do this.",
            404: "There is nothing here.",
            405: "This action is not allowed here.",
            429: "Too many requests; wait a moment and try again.",
        }.get(code, exc.name)
    return render_template("errors/error.html", code=code, title=exc.name, message=message), code


@bp.app_errorhandler(Exception)
def internal_error(exc: Exception):
    log.exception("unhandled error")  # the request's work is rolled back (app/transaction.py)
    if wants_problem():
        return api_internal_error()
    return render_template(
        "errors/error.html",
        code=500,
        title="Internal error",
        message="Something went wrong on our side; it was logged.",
    ), 500
