"""The statistics and error-summary pages (read only, from the summaries the sync keeps)."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from app.auth.decorators import role_required
from app.stats import errors, services

bp = Blueprint("statistics", __name__, url_prefix="/statistics")


def bad_request(message: str) -> ResponseReturnValue:
    """A parameter the page cannot use: 400 with what is wrong (never a 500)."""
    return render_template("errors/error.html", code=400, title="Bad request", message=message), 400


@bp.get("/")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Totals, evolution per week and month, splits; `?since=YYYY-MM-DD` compares with a date."""
    try:
        page = services.statistics(services.parse_since(request.args.get("since")))
    except services.BadParameter as exc:
        return bad_request(str(exc))
    return render_template("stats/index.html", page=page)


@bp.get("/errors")
@role_required("viewer")
def error_summary() -> ResponseReturnValue:
    """Failed jobs by normalised error: overall, or `?task=`, `?bunch=`, `?chain=` (ids)."""
    try:
        scope = errors.Scope(
            **{f"{k}_id": int(request.args[k]) for k in ("task", "bunch", "chain") if request.args.get(k)}
        )
    except ValueError:
        return bad_request("task, bunch and chain must be ids (whole numbers)")
    return render_template("stats/errors.html", scope=scope, groups=errors.error_groups(scope))
