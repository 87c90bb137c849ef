"""Requests pages: list, one request, refresh, reconciliation, the task form's path options and the
admins' path catalog."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from app import clock
from app.auth.current import logged_in_user
from app.auth.decorators import role_required
from app.inputs import as_id, page_number
from app.prodrequests import catalog, services
from app.prodrequests.forms import CatalogEntryForm
from app.tasks.forms import ActionForm
from app.web.security import safe_next

bp = Blueprint("prodrequests", __name__, url_prefix="/requests")
# The request field the forms send for ranking: the task form's, or a step's of the chain form.
_REQUEST_FIELD = re.compile(r"request_id|steps-\d+-request_id")


@bp.app_template_global("request_label")
def request_label(value: object) -> str | None:
    return services.request_label(value)


@bp.app_template_filter("ago")
def ago(moment: datetime | None) -> str:
    """ "3 min ago" (for the age of cached data)."""
    if moment is None:
        return "never"
    seconds = max(0, int((clock.now() - moment).total_seconds()))
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''} ago"
    return "just now"


@bp.get("/")
@role_required("viewer")
def index():
    filters = services.RequestFilters(
        status=request.args.get("status", "").strip(), group=request.args.get("group", "").strip()
    )
    listing = services.request_list(filters, page_number())
    return render_template(
        "prodrequests/index.html", listing=listing, filters=filters, action_form=ActionForm()
    )


@bp.post("/refresh")
@role_required("viewer")
def refresh():
    if not ActionForm().validate_on_submit():
        abort(400)
    snapshot = services.refresh()
    if snapshot.error is None:
        flash(f"{len(snapshot.requests)} requests read from the requests service.", "success")
    else:
        flash(snapshot.error.message, "danger")
    return redirect(safe_next(request.form.get("next") or url_for("prodrequests.index")))


@bp.get("/<int:request_id>")
@role_required("viewer")
def detail(request_id: int):
    view = services.request_view(request_id, after=as_id(request.args.get("after")) or 0)
    return (
        render_template("prodrequests/detail.html", view=view, action_form=ActionForm()),
        404 if view.not_found else 200,
    )


@bp.get("/reconcile")
@role_required("viewer")
def reconcile():
    return render_template(
        "prodrequests/reconcile.html", report=services.reconciliation(), action_form=ActionForm()
    )


@bp.get("/paths")
@role_required("viewer")
def path_options():
    """The datalists of the task and chain forms (htmx), ranked for the request in the request field
    sent (its help text, the request's title, is replaced too)."""
    field = next((name for name in request.args if _REQUEST_FIELD.fullmatch(name)), "request_id")
    options = services.path_options(request.args.get(field, ""))
    return render_template("prodrequests/_path_options.html", options=options, help_id=f"{field}-help")


@bp.get("/catalog")
@role_required("admin")
def catalog_page():
    return _render_catalog(CatalogEntryForm())


def _render_catalog(form: CatalogEntryForm, status: int = 200):
    return (
        render_template(
            "prodrequests/catalog.html", entries=catalog.entries(), form=form, action_form=ActionForm()
        ),
        status,
    )


@bp.post("/catalog")
@role_required("admin")
def catalog_add():
    form = CatalogEntryForm()
    if not form.validate_on_submit():
        return _render_catalog(form, 400)
    try:
        entry = catalog.add_entry(form.kind.data, form.path.data, form.note.data or "", logged_in_user())
    except catalog.EntryRefused as exc:
        form.apply_errors(exc.errors)
        return _render_catalog(form, 400)
    flash(f"Added {entry.path}.", "success")
    return redirect(url_for("prodrequests.catalog_page"))


@bp.post("/catalog/<int:entry_id>/delete")
@role_required("admin")
def catalog_delete(entry_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    entry = catalog.delete_entry(entry_id, logged_in_user())
    if entry is None:
        abort(404)
    flash(f"Removed {entry.path}.", "info")
    return redirect(url_for("prodrequests.catalog_page"))


@bp.post("/catalog/rescan")
@role_required("admin")
def catalog_rescan():
    if not ActionForm().validate_on_submit():
        abort(400)
    flash(catalog.rescan().summary, "success")
    return redirect(url_for("prodrequests.catalog_page"))
