"""The statistics and error-summary pages (read only, from the summaries the sync keeps)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from app.auth.current import logged_in_user
from app.auth.decorators import role_required
from app.stats import alerts, errors, progress, services
from app.stats.dashboard import dashboard
from app.stats.forms import NotifyForm

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


PROGRESS = {
    "bunch": progress.bunch_progress,
    "chain": progress.chain_progress,
    "request": progress.request_progress,
}


@bp.get("/progress/<any(bunch, chain, request):kind>/<int:item_id>")
@role_required("viewer")
def progress_panel(kind: str, item_id: int) -> ResponseReturnValue:
    """Events requested vs produced, ETA and stalled tasks of a bunch, chain or request (htmx fragment)."""
    return render_template(
        "stats/_progress.html", progress=PROGRESS[kind](item_id), kind=kind, item_id=item_id
    )


@bp.get("/dashboard")
@role_required("viewer")
def dashboard_panel() -> ResponseReturnValue:
    """The home page's dashboard alone (its in-place refresh)."""
    return render_template("stats/_dashboard.html", dash=dashboard(logged_in_user()))


@bp.get("/notifications")
@role_required("viewer")
def notifications() -> ResponseReturnValue:
    """The user's opt-in to receive their alerts by e-mail and on the team's webhook."""
    form = NotifyForm(obj=alerts.preference(logged_in_user()))
    return render_template("stats/notifications.html", form=form)


@bp.post("/notifications")
@role_required("viewer")
def save_notifications() -> ResponseReturnValue:
    form = NotifyForm()
    if not form.validate_on_submit():
        return bad_request("The form expired; reload the page and try again.")
    alerts.save_preference(logged_in_user(), email=form.email.data, webhook=form.webhook.data)
    flash("Notification choices saved.", "success")
    return redirect(url_for("statistics.notifications"))
