"""PanDA pages: the global interaction log and the per-task log fragment; the /healthz PanDA check."""

from datetime import UTC, datetime, timedelta

from flask import Blueprint, current_app, render_template, request

from app.auth.decorators import login_required, role_required
from app.extensions import db
from app.panda.models import OUTCOMES
from app.panda.services import CallFilters, call_methods, calls_for_task, calls_query, panda_alive

bp = Blueprint("panda", __name__, url_prefix="/panda")

PER_PAGE = 50


@bp.record_once
def _register_health_check(state) -> None:
    """/healthz (app.web.views) runs every registered check; PanDA reachability is ours."""
    state.app.extensions.setdefault("health_checks", {})["panda"] = lambda: panda_alive(
        current_app.config["SETTINGS"]
    )


def _date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


@bp.get("/calls")
@role_required("manager")
def calls():
    """Every exchange with PanDA, newest first, with filters and paging."""
    args = {
        k: request.args.get(k, "").strip() for k in ("method", "outcome", "user", "task_id", "since", "until")
    }
    errors: list[str] = []
    since, until = _date(args["since"]), _date(args["until"])
    for key, value in (("since", since), ("until", until)):
        if args[key] and value is None:
            errors.append(f"{key}: use YYYY-MM-DD")
    task_id = None
    if args["task_id"]:
        if args["task_id"].isdigit():
            task_id = int(args["task_id"])
        else:
            errors.append("task id: a number")
    if args["outcome"] and args["outcome"] not in OUTCOMES:
        errors.append(f"outcome: one of {', '.join(OUTCOMES)}")
        args["outcome"] = ""
    filters = CallFilters(
        method=args["method"],
        outcome=args["outcome"],
        user=args["user"],
        task_id=task_id,
        since=since,
        until=until + timedelta(days=1) if until else None,
    )
    page = db.paginate(calls_query(filters), per_page=PER_PAGE, error_out=False)
    return render_template(
        "panda/calls.html", page=page, args=args, errors=errors, outcomes=OUTCOMES, methods=call_methods()
    )


@bp.get("/tasks/<int:task_id>/calls")
@login_required
def task_calls(task_id: int):
    """The per-task fragment (htmx target inside the task page; paging swaps it in place)."""
    page = calls_for_task(task_id, page=request.args.get("page", 1, type=int))
    return render_template("panda/_task_calls.html", page=page, task_id=task_id)
