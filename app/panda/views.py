"""PanDA pages: the global interaction log and one task's log (a fragment inside the task page);
the /healthz PanDA check."""

from flask import Blueprint, current_app, render_template, request

from app.auth.decorators import role_required
from app.extensions import seek_paginate
from app.inputs import cursor_arg
from app.panda.forms import CallFilterForm
from app.panda.models import OUTCOMES
from app.panda.services import (
    CALL_KEYS,
    CallFilters,
    call_methods,
    calls_for_task,
    calls_query,
    last_panda_health,
)

bp = Blueprint("panda", __name__, url_prefix="/panda")

PER_PAGE = 50


@bp.record_once
def _register_health_check(state) -> None:
    """/healthz (app.web.views) runs every registered check; PanDA reachability is ours."""
    state.app.extensions.setdefault("health_checks", {})["panda"] = lambda: last_panda_health(
        current_app._get_current_object()  # type: ignore[attr-defined]
    )


@bp.get("/calls")
@role_required("manager")
def calls():
    """Every exchange with PanDA, newest first, with filters and paging."""
    form = CallFilterForm(request.args)
    filters = CallFilters(
        method=form.value("method") or "", outcome=form.value("outcome") or "", user=form.value("user") or "",
        task_id=form.value("task_id"), since=form.value("since"), until=form.value("until"),
    )  # fmt: skip
    page = seek_paginate(calls_query(filters), CALL_KEYS, per_page=PER_PAGE)  # newest first
    return render_template(
        "panda/calls.html", page=page, args=form.typed(), errors=form.messages(), outcomes=OUTCOMES,
        methods=call_methods(),
    )  # fmt: skip


@bp.get("/tasks/<int:task_id>/calls")
@role_required("manager")
def task_calls(task_id: int):
    """One task's calls: the fragment for htmx (paging inside the task page), else a whole page."""
    page = calls_for_task(task_id, cursor_arg("after"), cursor_arg("before"))
    template = "panda/_task_calls.html" if request.headers.get("HX-Request") else "panda/task_calls.html"
    return render_template(template, page=page, task_id=task_id)
