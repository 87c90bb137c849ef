"""The Launches page: upcoming, running, done, failed and cancelled launches, with cancel, reschedule
and launch now for their owner (an admin for anyone's)."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from app.audit.services import record_now
from app.auth.current import logged_in_user
from app.auth.decorators import role_required
from app.extensions import db, seek_paginate
from app.launches import listing, schedule
from app.launches.forms import LaunchActionForm, LaunchFilterForm, RescheduleForm
from app.launches.models import Launch
from app.web.security import safe_next

bp = Blueprint("launches", __name__, url_prefix="/launches")


@bp.errorhandler(schedule.NotAllowed)
def not_allowed(exc: schedule.NotAllowed) -> ResponseReturnValue:
    record_now("access.denied", target=request.path, outcome="denied", details={"reason": str(exc)})
    return render_template("errors/error.html", code=403, title="Forbidden", message=str(exc)), 403


@bp.app_template_filter("in_zone")
def in_zone(value: datetime, zone: str) -> str:
    """A UTC time as wall-clock time in the user's zone, with the zone's abbreviation."""
    return schedule.in_zone(value, zone).strftime("%Y-%m-%d %H:%M %Z")


@bp.get("/")
@role_required("viewer")
def index() -> ResponseReturnValue:
    bar = LaunchFilterForm(request.args)
    filters = listing.LaunchFilters(state=bar.value("state"), owner=bar.value("owner"))
    keys, descending = listing.launch_order(filters)
    page = seek_paginate(listing.launches_query(filters), keys, per_page=50, descending=descending)
    return render_template(
        "launches/index.html", page=page, bar=bar, args=bar.typed(), counts=listing.state_counts(filters.owner),
        rows=listing.rows_of(page.items, logged_in_user()), action_form=LaunchActionForm(),
    )  # fmt: skip


def _acted(form: LaunchActionForm | RescheduleForm, n: int, message: str) -> ResponseReturnValue:
    if n:
        flash(message, "success")
    else:
        flash("Nothing changed: it is no longer pending (being sent, sent or cancelled already).", "warning")
    return redirect(safe_next(form.next.data) if form.next.data else url_for("launches.index"))


@bp.post("/<int:launch_id>/cancel")
@role_required("manager")
def cancel(launch_id: int) -> ResponseReturnValue:
    launch, form = db.get_or_404(Launch, launch_id), LaunchActionForm()
    if not form.validate_on_submit():
        abort(400)
    n = schedule.cancel(schedule.targets(launch, form.whole_bunch.data), logged_in_user())
    return _acted(form, n, f"Cancelled {n} launch(es): they will not run.")


@bp.post("/<int:launch_id>/now")
@role_required("manager")
def launch_now(launch_id: int) -> ResponseReturnValue:
    launch, form = db.get_or_404(Launch, launch_id), LaunchActionForm()
    if not form.validate_on_submit():
        abort(400)
    n = schedule.reschedule(schedule.targets(launch, form.whole_bunch.data), schedule.NOW, logged_in_user())
    return _acted(form, n, f"Launching {n} task(s) now.")


@bp.route("/<int:launch_id>/reschedule", methods=["GET", "POST"])
@role_required("manager")
def reschedule(launch_id: int) -> ResponseReturnValue:
    """The schedule form for a pending launch (prefilled), and its new schedule saved."""
    launch, user = db.get_or_404(Launch, launch_id), logged_in_user()
    schedule.allowed([launch], user)
    form = RescheduleForm(next=request.args.get("next", "")).configure_schedule(user)
    plan = form.schedule_value() if form.validate_on_submit() else None
    try:
        if plan is not None:
            n = schedule.reschedule(schedule.targets(launch, form.whole_bunch.data), plan, user)
            return _acted(form, n, f"Rescheduled {n} launch(es): {plan.describe()}.")
    except schedule.ScheduleRefused as exc:
        form.schedule_errors(exc.errors)
    if request.method == "GET":
        form.prefill_schedule(launch, form.time_zone.data)
    return render_template("launches/reschedule.html", form=form, launch=launch), 200 if request.method == "GET" else 400
