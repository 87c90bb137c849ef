"""Task action pages: one action on one task (its parameters, a comment, a confirmation for the
destructive ones), and bulk actions on a selection (confirmation, progress, retry the failed ones)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from app.actions import bulk as bulk_services
from app.actions import edit, modify, services
from app.actions.forms import FIELDS, ActionForm, ModifyForm
from app.actions.matrix import Action
from app.actions.models import BulkAction
from app.actions.selection import BadSelection
from app.auth.current import current_user, logged_in_user
from app.auth.decorators import role_required
from app.extensions import db
from app.inputs import db_int
from app.tasks.models import Task
from app.web.security import safe_next

bp = Blueprint("actions", __name__)


@bp.app_context_processor
def _task_actions() -> dict:
    """The task page's action panel and the polled "command queued" line (app/actions/services.py)."""
    return {
        "task_actions": lambda task: services.task_panel(task, current_user()),
        "queued_command": services.queued_command,
        "bulk_actions": bulk_services.BULK_ACTIONS,
        "bunch_editable": lambda bunch: edit.not_editable_reason(bunch) is None,
    }


def _action(name: str) -> Action:
    if name not in Action.__members__.values():
        abort(404)
    return Action(name)


def _refused(exc: services.ActionRefused) -> ResponseReturnValue:
    """The matrix's refusal: 403 (the role) or 409 (the task's status) with its reason."""
    code = exc.verdict.http_status
    return render_template("errors/error.html", code=code, title="Not possible", message=exc.verdict.reason), code


def _render(task: Task, action: Action, form: ActionForm, status: int | None = None) -> ResponseReturnValue:
    page = services.action_page(task, action, current_user())
    html = render_template(
        "actions/task_action.html", page=page, form=form, fields=FIELDS.get(action.value, ())
    )
    return html, status or page.http_status


@bp.get("/tasks/<int:task_id>/actions/<name>")
@role_required("viewer")
def confirm(task_id: int, name: str) -> ResponseReturnValue:
    """The action's page: parameters (prefilled from the query, e.g. ?memory_mb=4000), comment, confirmation."""
    return _render(
        db.get_or_404(Task, task_id), _action(name), ActionForm(formdata=request.args, meta={"csrf": False})
    )


@bp.post("/tasks/<int:task_id>/actions/<name>")
@role_required("viewer")
def act(task_id: int, name: str) -> ResponseReturnValue:
    task, action, form = db.get_or_404(Task, task_id), _action(name), ActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        command = services.act_from_form(task, action, form.values(), logged_in_user())
    except services.InvalidInput as exc:
        form.show_errors(exc.errors)
        return _render(task, action, form, 400)
    except services.ActionRefused as exc:
        return _refused(exc)
    note = services.notice(command)
    flash(note.message, note.category)
    return redirect(url_for("tasks.detail", task_id=task.id))


# --- bulk actions ---------------------------------------------------------------------------------


def _render_bulk(
    plan: bulk_services.BulkPlan, form: ActionForm, status: int = 200, retry_of: int | None = None
) -> ResponseReturnValue:
    fields = FIELDS.get(plan.action.value, ())
    html = render_template(
        "actions/bulk_confirm.html", plan=plan, form=form, fields=fields, retry_of=retry_of
    )
    return html, status if plan.role else plan.role.http_status


def _nothing_selected(exc: Exception) -> ResponseReturnValue:
    flash(f"Nothing to act on: {exc}.", "warning")
    return redirect(
        safe_next(request.form.get("back")) if request.form.get("back") else url_for("tasks.index")
    )


@bp.post("/actions/bulk/confirm")
@role_required("viewer")
def bulk_confirm() -> ResponseReturnValue:
    """What a bulk action will do to how many tasks (the matrix filters the selection), with its form."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        plan = bulk_services.plan_from_form(request.form, logged_in_user())
    except (BadSelection, ValueError) as exc:
        return _nothing_selected(exc)
    return _render_bulk(plan, form, retry_of=request.form.get("retry_of", type=db_int))


@bp.post("/actions/bulk")
@role_required("viewer")
def bulk_start() -> ResponseReturnValue:
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        started = bulk_services.start_from_form(request.form, logged_in_user())
    except services.InvalidInput as exc:
        form.show_errors(exc.errors)
        plan = bulk_services.plan_from_form(request.form, logged_in_user())
        return _render_bulk(plan, form, 400, request.form.get("retry_of", type=db_int))
    except services.ActionRefused as exc:
        return _refused(exc)
    except (BadSelection, ValueError) as exc:
        return _nothing_selected(exc)
    return redirect(url_for("actions.bulk", bulk_id=started.id))


@bp.get("/actions/bulk/<int:bulk_id>")
@role_required("viewer")
def bulk(bulk_id: int) -> ResponseReturnValue:
    """A bulk action's progress and per-task results (the fragment alone for the polled refresh)."""
    progress = bulk_services.progress(db.get_or_404(BulkAction, bulk_id))
    template = "actions/_bulk_progress.html" if request.headers.get("HX-Request") else "actions/bulk.html"
    return render_template(template, progress=progress)


@bp.post("/actions/bulk/<int:bulk_id>/retry")
@role_required("viewer")
def bulk_retry(bulk_id: int) -> ResponseReturnValue:
    """ "Retry the failed ones": the confirmation of the same action on the tasks whose command failed."""
    if not ActionForm().validate_on_submit():
        abort(400)
    retry = bulk_services.retry_form(db.get_or_404(BulkAction, bulk_id))
    try:
        plan = bulk_services.plan(retry["selection"], Action(retry["values"]["action"]), logged_in_user())
    except BadSelection as exc:
        return _nothing_selected(exc)
    return _render_bulk(plan, ActionForm(formdata=MultiDict(retry["values"])), retry_of=bulk_id)


# --- modifying a submitted task --------------------------------------------------------------------


def _render_modify(
    task: Task, form: ModifyForm, changes: list | None = None, status: int | None = None
) -> ResponseReturnValue:
    page = modify.modify_page(task, current_user())
    html = render_template("actions/modify.html", page=page, form=form, changes=changes)
    return html, status or (200 if page.allowed else page.allowed.http_status)


@bp.get("/tasks/<int:task_id>/actions/modify")
@role_required("viewer")
def modify_form(task_id: int) -> ResponseReturnValue:
    """What PanDA can change in the submitted task, prefilled with what it has now."""
    task = db.get_or_404(Task, task_id)
    return _render_modify(task, ModifyForm(data=modify.form_values(modify.current_values(task))))


@bp.post("/tasks/<int:task_id>/actions/modify")
@role_required("viewer")
def modify_task(task_id: int) -> ResponseReturnValue:
    """Without `confirmed`: the difference to confirm; with it: each change sent to PanDA."""
    task, form = db.get_or_404(Task, task_id), ModifyForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        if not request.form.get("confirmed"):
            return _render_modify(task, form, modify.plan_changes(task, form.values(), logged_in_user()))
        commands = modify.modify(task, form.values(), logged_in_user())
    except services.InvalidInput as exc:
        form.show_errors(exc.errors)
        return _render_modify(task, form, status=400)
    except services.ActionRefused as exc:
        return _refused(exc)
    for note in map(services.notice, commands):
        flash(note.message, note.category)
    return redirect(url_for("tasks.detail", task_id=task.id))
