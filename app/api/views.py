"""/api/v1/: thin JSON views over the UI's services (app/api/services.py); errors are problem
documents (app/api/problems.py), callers are authenticated by app/api/auth.py."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue

from app.actions.models import BulkAction
from app.api import openapi, records, services
from app.api.auth import authenticate, is_admin, role
from app.api.problems import ApiProblem, FieldError, invalid, problem_response
from app.auth.current import logged_in_user
from app.chains import schema
from app.chains.models import Chain
from app.extensions import csrf
from app.launches.models import Launch
from app.tasks.models import Task, TaskBunch

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # bearer tokens need none; browser sessions are checked in `authenticate`
PUBLIC = ("api.openapi_document", "api.docs")  # what a reader of the API needs before a token


@bp.before_request
def _authenticate() -> None:
    if request.endpoint not in PUBLIC:
        authenticate()


@bp.errorhandler(ApiProblem)
def _problem(exc: ApiProblem) -> ResponseReturnValue:
    return problem_response(exc)


def _body():
    return request.get_json(silent=True) if request.is_json else None


def _created(record: dict, created: bool, location: str) -> ResponseReturnValue:
    return jsonify(record), 201 if created else 200, {"Location": location}


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    return jsonify(openapi.document())


@bp.get("/docs")
def docs() -> ResponseReturnValue:
    """The OpenAPI document, readable (Swagger UI, vendored)."""
    return render_template("api/docs.html")


@bp.get("/me")
@role("viewer")
def me() -> ResponseReturnValue:
    user = logged_in_user()
    return jsonify(username=user.username, role=user.role, token=services.current_token())


# --- tasks --------------------------------------------------------------------------------------------


@bp.get("/tasks")
@role("viewer")
def tasks_list() -> ResponseReturnValue:
    return jsonify(services.tasks_list(request.args))


@bp.get("/tasks/successful")
@role("viewer")
def tasks_successful() -> ResponseReturnValue:
    """The successful tasks' table: done and finished tasks, their filter, the totals row."""
    return jsonify(services.tasks_list(request.args, "successful"))


@bp.get("/tasks/counts")
@role("viewer")
def tasks_counts() -> ResponseReturnValue:
    """Counts per PanDA status of what the task list's other filters match."""
    return jsonify(services.status_counts(request.args))


@bp.get("/tasks/<int:task_id>")
@role("viewer")
def task_get(task_id: int) -> ResponseReturnValue:
    return jsonify(records.task_detail(services.get_or_404(Task, task_id, "task", *records.TASK_DETAIL)))


@bp.post("/tasks/preview")
@role("manager")
def tasks_preview() -> ResponseReturnValue:
    return jsonify(
        services.preview_tasks(_body(), logged_in_user(), is_admin=is_admin(), target=request.path)
    )


@bp.post("/tasks")
@role("manager")
def tasks_create() -> ResponseReturnValue:
    """Launched now, or as ``?at=…``, ``?after_task=…``, ``?at_percent=…`` say."""
    record, created = services.create_tasks(_body(), logged_in_user(), is_admin=is_admin(), when=request.args,
                                            key=request.headers.get("Idempotency-Key", ""), target=request.path)  # fmt: skip
    return _created(record, created, url_for("api.bunch_get", bunch_id=record["id"]))


@bp.get("/tasks/<int:task_id>/clone")
@role("manager")
def task_clone(task_id: int) -> ResponseReturnValue:
    return jsonify(services.clone_definition(services.get_or_404(Task, task_id, "task")))


@bp.get("/tasks/<int:task_id>/relaunch")
@role("manager")
def task_relaunch(task_id: int) -> ResponseReturnValue:
    return jsonify(services.relaunch_definition(services.get_or_404(Task, task_id, "task")))


@bp.post("/tasks/<int:task_id>/actions/<name>")
@role("viewer")
def task_action(task_id: int, name: str) -> ResponseReturnValue:
    """Role and status are checked by the action matrix, as on the task page."""
    task = services.get_or_404(Task, task_id, "task")
    return jsonify(services.act(task, name, _body(), logged_in_user()))


@bp.post("/tasks/<int:task_id>/modify")
@role("viewer")
def task_modify(task_id: int) -> ResponseReturnValue:
    """Change what PanDA can change in a submitted task (``preview``: the difference only)."""
    task = services.get_or_404(Task, task_id, "task")
    return jsonify(services.modify_task(task, _body(), logged_in_user()))


@bp.get("/bunches/<int:bunch_id>")
@role("viewer")
def bunch_get(bunch_id: int) -> ResponseReturnValue:
    return jsonify(services.bunch_detail(services.get_or_404(TaskBunch, bunch_id, "bunch"), request.args))


@bp.post("/bunches/<int:bunch_id>/edit")
@role("manager")
def bunch_edit(bunch_id: int) -> ResponseReturnValue:
    """A bunch not sent yet, given a new definition (``preview``: the differences only)."""
    bunch = services.get_or_404(TaskBunch, bunch_id, "bunch")
    return jsonify(services.edit_bunch(bunch, _body(), logged_in_user(), is_admin=is_admin(), target=request.path))


@bp.get("/bunches/<int:bunch_id>/clone")
@role("manager")
def bunch_clone(bunch_id: int) -> ResponseReturnValue:
    return jsonify(services.clone_definition(services.get_or_404(TaskBunch, bunch_id, "bunch")))


# --- failed launches, unanswered submits, PanDA now ------------------------------------------------------


@bp.post("/bunches/<int:bunch_id>/resend")
@role("manager")
def bunch_resend(bunch_id: int) -> ResponseReturnValue:
    """A new launch for each task of the bunch whose launch failed."""
    return jsonify(services.resend_bunch(services.get_or_404(TaskBunch, bunch_id, "bunch"), logged_in_user()))


@bp.post("/bunches/<int:bunch_id>/look-up")
@role("manager")
def bunch_look_up(bunch_id: int) -> ResponseReturnValue:
    """Look every unanswered submit of the bunch up in PanDA now."""
    bunch = services.get_or_404(TaskBunch, bunch_id, "bunch")
    return jsonify(services.look_up(list(bunch.tasks), logged_in_user()))


@bp.post("/tasks/<int:task_id>/look-up")
@role("manager")
def task_look_up(task_id: int) -> ResponseReturnValue:
    """Look the task's unanswered submit up in PanDA now."""
    return jsonify(services.look_up([services.get_or_404(Task, task_id, "task")], logged_in_user()))


@bp.post("/tasks/<int:task_id>/not-submitted")
@role("manager")
def task_not_submitted(task_id: int) -> ResponseReturnValue:
    """The unanswered submit did not arrive (checked by hand): send the task again."""
    return jsonify(services.mark_not_submitted(services.get_or_404(Task, task_id, "task"), logged_in_user()))


@bp.post("/tasks/<int:task_id>/adopt")
@role("manager")
def task_adopt(task_id: int) -> ResponseReturnValue:
    """The unanswered submit did arrive, as ``panda_task_id`` (checked by hand)."""
    return jsonify(services.adopt(services.get_or_404(Task, task_id, "task"), _body(), logged_in_user()))


@bp.post("/tasks/<int:task_id>/refresh")
@role("manager")
def task_refresh(task_id: int) -> ResponseReturnValue:
    """Read the task from PanDA now and store what it says."""
    return jsonify(services.refresh_task(services.get_or_404(Task, task_id, "task")))


@bp.post("/actions/bulk")
@role("viewer")
def bulk_start() -> ResponseReturnValue:
    """The matrix filters the selection; the bulk job sends the rest (poll the Location)."""
    record = services.start_bulk(_body(), logged_in_user())
    return jsonify(record), 202, {"Location": url_for("api.bulk_get", bulk_id=record["id"])}


@bp.get("/actions/bulk/<int:bulk_id>")
@role("viewer")
def bulk_get(bulk_id: int) -> ResponseReturnValue:
    return jsonify(services.bulk_record(services.get_or_404(BulkAction, bulk_id, "bulk action")))


@bp.post("/actions/bulk/<int:bulk_id>/retry")
@role("viewer")
def bulk_retry(bulk_id: int) -> ResponseReturnValue:
    """The same action on the tasks whose command PanDA could not be reached for (a new bulk action)."""
    record = services.retry_bulk(services.get_or_404(BulkAction, bulk_id, "bulk action"), logged_in_user())
    return jsonify(record), 202, {"Location": url_for("api.bulk_get", bulk_id=record["id"])}


# --- chains -------------------------------------------------------------------------------------------


def _chain_document():
    """A chain document: JSON (application/json) or YAML/JSON text (any other content type)."""
    text = None if request.is_json else request.get_data(as_text=True)
    return services.chain_definition(_body(), text)


@bp.get("/chains")
@role("viewer")
def chains_list() -> ResponseReturnValue:
    return jsonify(services.chains_list(request.args))


@bp.post("/chains/preview")
@role("manager")
def chains_preview() -> ResponseReturnValue:
    return jsonify(services.preview_chain(_chain_document(), logged_in_user(), is_admin=is_admin()))


@bp.post("/chains")
@role("manager")
def chains_create() -> ResponseReturnValue:
    """Launched now, or as ``?at=…``, ``?after_task=…``, ``?at_percent=…`` say."""
    record, created = services.create_chain(_chain_document(), logged_in_user(), is_admin=is_admin(),
                                            key=request.headers.get("Idempotency-Key", ""), when=request.args)  # fmt: skip
    return _created(record, created, url_for("api.chain_get", chain_id=record["id"]))


@bp.get("/chains/<int:chain_id>")
@role("viewer")
def chain_get(chain_id: int) -> ResponseReturnValue:
    return jsonify(services.chain_detail(services.get_or_404(Chain, chain_id, "chain"), request.args))


@bp.get("/chains/<int:chain_id>/definition")
@role("viewer")
def chain_definition(chain_id: int) -> ResponseReturnValue:
    """The chain's document (``?format=yaml`` for YAML), as the chain page exports it."""
    chain = services.get_or_404(Chain, chain_id, "chain")
    fmt = request.args.get("format", "json")
    if fmt not in schema.FORMATS:
        raise invalid([FieldError("format", "must be yaml or json")])
    return schema.dumps(chain.definition, fmt), 200, {"Content-Type": f"application/{fmt}; charset=utf-8"}


@bp.get("/chains/<int:chain_id>/clone")
@role("manager")
def chain_clone(chain_id: int) -> ResponseReturnValue:
    return jsonify(services.chain_clone(services.get_or_404(Chain, chain_id, "chain")))


@bp.post("/chains/<int:chain_id>/sweep")
@role("manager")
def chain_sweep(chain_id: int) -> ResponseReturnValue:
    """One chain per value of a parameter (``preview``: the variants and their problems only)."""
    chain = services.get_or_404(Chain, chain_id, "chain")
    result, created = services.chain_sweep(chain, _body(), logged_in_user(), is_admin=is_admin())
    return jsonify(result), 201 if created else 200


@bp.post("/chains/<int:chain_id>/steps/<int:position>/resend")
@role("manager")
def chain_step_resend(chain_id: int, position: int) -> ResponseReturnValue:
    """A new launch for each task of the step whose launch failed; later steps resume after them."""
    chain = services.get_or_404(Chain, chain_id, "chain")
    return jsonify(services.resend_chain_step(chain, position, logged_in_user()))


@bp.post("/chains/<int:chain_id>/refresh")
@role("manager")
def chain_refresh(chain_id: int) -> ResponseReturnValue:
    """Read the chain's unfinished tasks from PanDA now."""
    return jsonify(services.refresh_chain(services.get_or_404(Chain, chain_id, "chain")))


@bp.post("/chains/<int:chain_id>/actions/<name>")
@role("viewer")
def chain_action(chain_id: int, name: str) -> ResponseReturnValue:
    """The action on every task of the chain, as a bulk action (poll the Location)."""
    chain = services.get_or_404(Chain, chain_id, "chain")
    record = services.chain_tasks_action(chain, name, _body(), logged_in_user())
    return jsonify(record), 202, {"Location": url_for("api.bulk_get", bulk_id=record["id"])}


# --- launches, requests, audit ----------------------------------------------------------------------


@bp.get("/launches")
@role("viewer")
def launches_list() -> ResponseReturnValue:
    return jsonify(services.launches_list(request.args))


@bp.post("/launches/<int:launch_id>/cancel")
@role("manager")
def launch_cancel(launch_id: int) -> ResponseReturnValue:
    """A manager cancels their own pending launches, an admin anyone's (``whole_bunch``: its bunch's)."""
    launch = services.get_or_404(Launch, launch_id, "launch")
    return jsonify(services.cancel_launch(launch, _body() or {}, logged_in_user()))


@bp.post("/launches/<int:launch_id>/reschedule")
@role("manager")
def launch_reschedule(launch_id: int) -> ResponseReturnValue:
    launch = services.get_or_404(Launch, launch_id, "launch")
    return jsonify(services.reschedule_launch(launch, _body() or {}, logged_in_user()))


@bp.get("/requests")
@role("viewer")
def requests_list() -> ResponseReturnValue:
    return jsonify(services.requests_list(request.args))


@bp.post("/requests/refresh")
@role("viewer")
def requests_refresh() -> ResponseReturnValue:
    return jsonify(services.refresh_requests())


@bp.get("/requests/<int:request_id>")
@role("viewer")
def request_get(request_id: int) -> ResponseReturnValue:
    return jsonify(services.request_detail(request_id, request.args))


@bp.get("/requests/<int:request_id>/task-definition")
@role("manager")
def request_task_definition(request_id: int) -> ResponseReturnValue:
    """A task definition prefilled from the request (its generation step)."""
    return jsonify(services.request_task_definition(services.valid_id(request_id, "request")))


@bp.get("/requests/<int:request_id>/chain-definition")
@role("manager")
def request_chain_definition(request_id: int) -> ResponseReturnValue:
    """A chain document prefilled from the request (generation and processing steps)."""
    return jsonify(services.request_chain_definition(services.valid_id(request_id, "request")))


@bp.get("/statistics")
@role("viewer")
def statistics() -> ResponseReturnValue:
    return jsonify(services.statistics(request.args))


@bp.get("/statistics/errors")
@role("viewer")
def error_summary() -> ResponseReturnValue:
    return jsonify(services.error_summary(request.args))


@bp.get("/statistics/notifications")
@role("viewer")
def notifications() -> ResponseReturnValue:
    return jsonify(services.notifications(logged_in_user()))


@bp.post("/statistics/notifications")
@role("viewer")
def notifications_save() -> ResponseReturnValue:
    """Receive my alerts by e-mail and/or on the team's webhook."""
    return jsonify(services.notifications(logged_in_user(), _body() or {}))


@bp.get("/audit")
@role("admin")
def audit_list() -> ResponseReturnValue:
    return jsonify(services.audit_list(request.args))
