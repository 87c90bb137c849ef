"""The task tables' pages besides the current tasks (``tasks.index``): the successful tasks, the
counts per status (loaded into either table), the column chooser and the exports."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from app.actions.matrix import STATUSES
from app.auth.current import logged_in_user
from app.auth.decorators import role_required
from app.launches.states import LaunchStatus
from app.monitoring import services
from app.monitoring.filters import NO_STATUS, BadFilter
from app.monitoring.tables import PAGE_SIZES, SUCCESSFUL
from app.web.security import safe_next

bp = Blueprint("monitoring", __name__, url_prefix="/tasks")


@bp.app_context_processor
def _table_constants() -> dict:
    return {
        "page_sizes": PAGE_SIZES, "statuses": [*STATUSES, NO_STATUS], "successful_statuses": SUCCESSFUL,
        "launch_states": [s.value for s in LaunchStatus],
    }  # fmt: skip


@bp.app_template_filter("count_text")
def count_text(value: int | None) -> str:
    return f"{value:,}".replace(",", " ") if value is not None else "—"


@bp.app_template_filter("gb")
def gb(value: int | None) -> str:
    return f"{value / 1e9:.2f}" if value is not None else "—"


@bp.app_template_filter("hours")
def hours(seconds: int | None) -> str:
    return f"{seconds / 3600:.1f} h" if seconds is not None else "—"


@bp.app_template_filter("percent")
def percent(value: float | None) -> str:
    return f"{value:.1f} %" if value is not None else "—"


@bp.app_template_filter("moment")
def moment(value: str | None) -> Markup:
    """An ISO time of a record, shown in the browser's zone (static/js/app.js rewrites data-local)."""
    if not value:
        return Markup("—")
    return Markup('<time datetime="{}" data-local>{}</time>').format(value, value[:16].replace("T", " "))


@bp.app_errorhandler(BadFilter)
def bad_filter(exc: BadFilter) -> ResponseReturnValue:
    """A query string a table cannot use: 400 with what is wrong, never a 500."""
    return render_template("errors/error.html", code=400, title="Bad table parameters", message=str(exc)), 400


@bp.get("/successful")
@role_required("viewer")
def successful() -> ResponseReturnValue:
    """Done and finished tasks with their accounting and a totals row."""
    view = services.table_view("successful", request.args, logged_in_user())
    return render_template("monitoring/successful.html", view=view)


@bp.get("/successful/totals")
@role_required("viewer")
def successful_totals() -> ResponseReturnValue:
    """The successful table's totals row (a fragment loaded into its page)."""
    view = services.totals_view(request.args, logged_in_user())
    return render_template("monitoring/_totals.html", view=view)


@bp.get("/counts")
@role_required("viewer")
def counts() -> ResponseReturnValue:
    """The counts per status of a table's filter (a fragment loaded into the table's page)."""
    name = request.args.get("table", "tasks")
    counts = services.status_counts(name, request.args, logged_in_user())
    return render_template("monitoring/_counts.html", counts=counts, table=name)


@bp.get("/rows")
@role_required("viewer")
def rows() -> ResponseReturnValue:
    """The polled in-place refresh of the current table's active rows (out-of-band swaps)."""
    view = services.row_refresh(request.args, logged_in_user())
    return render_template("monitoring/_rows.html", view=view)


@bp.post("/columns")
@role_required("viewer")
def columns() -> ResponseReturnValue:
    """Remember the columns chosen for a table ("Select field")."""
    services.save_columns(request.form.get("table", ""), request.form.getlist("col"), logged_in_user())
    return redirect(safe_next(request.form.get("back")))


@bp.get("/export.<fmt>")
@role_required("viewer")
def export(fmt: str) -> ResponseReturnValue:
    """Every task matching the current table's filter, as CSV or JSON (the API's task records)."""
    return _download(services.export("tasks", fmt, request.args, logged_in_user()))


@bp.get("/successful/export.<fmt>")
@role_required("viewer")
def export_successful(fmt: str) -> ResponseReturnValue:
    """Every task matching the successful table's filter, as CSV or JSON."""
    return _download(services.export("successful", fmt, request.args, logged_in_user()))


def _download(out: services.Export) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{out.filename}"'}
    return Response(out.chunks, mimetype=out.mimetype, headers=headers)
