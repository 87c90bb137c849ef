"""Task pages: list, form (new / clone / relaunch), preview, create, bunch progress, task page, manifest."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

from app.actions import edit as editing
from app.auth.current import logged_in_user
from app.auth.decorators import role_required
from app.auth.roles import role_at_least
from app.config import get_settings
from app.extensions import db
from app.inputs import as_id, cursor_arg, db_int, id_list
from app.launches import dispatcher
from app.launches import services as launches
from app.launches.schedule import NOW, Schedule, ScheduleRefused
from app.launches.schedule import check as check_schedule
from app.monitoring import services as monitoring
from app.prodrequests import services as prodrequests
from app.prodrequests.errors import RequestsServiceError
from app.stats.estimate import estimate
from app.sync import services as sync
from app.tasks import services, specs
from app.tasks.forms import ActionForm, ManifestUploadForm, TaskForm
from app.tasks.models import Task, TaskBunch
from app.tasks.specs import TaskDefinition

bp = Blueprint("tasks", __name__, url_prefix="/tasks")


def _is_admin() -> bool:
    return role_at_least(logged_in_user(), "admin")


def _form(definition: TaskDefinition | None = None) -> TaskForm:
    """The task form; prefilled from `definition` with a fresh submission key."""
    form = TaskForm().configure(get_settings())
    form.configure_schedule(logged_in_user())
    if definition is not None:
        form.fill(definition)
        form.idempotency_key.data = services.new_idempotency_key()
    return form


def _render_form(form: TaskForm, *, status: int = 200, **context: Any):
    settings = get_settings()
    kinds = {}
    template = services.task_template(settings)
    for step in settings.tasks.step_types:
        kinds[step] = template.kind(step) if step in template.steps else "?"
    if context.get("clone_info") is None:  # after a preview or an error: still say what was cloned
        source = _clone_source(form)
        context["clone_info"] = source and _clone_info(_source_label(source), single=isinstance(source, Task))
    return (
        render_template(
            "tasks/form.html", form=form, is_admin=_is_admin(), step_kinds=kinds,
            suggestion=services.suggest_production().format(services.naming_rules()), **context,
        ),
        status,
    )  # fmt: skip


def _refused_admin_fields(form: TaskForm, **context: Any):
    """Non-admins may not send the admin-only fields: refuse the whole request (audited)."""
    refused = services.refuse_admin_fields(request.form, is_admin=_is_admin(), target=request.path)
    if not refused:
        return None
    return _render_form(
        form, status=403, form_errors=[f"only admins may set: {', '.join(refused)}; nothing was saved"], **context
    )


@bp.get("/")
@role_required("viewer")
def index():
    """The current tasks table (app/monitoring): filters, sort and position all in the query string."""
    view = monitoring.table_view("tasks", request.args, logged_in_user())
    return render_template("monitoring/tasks.html", view=view, upload=ManifestUploadForm())


@bp.get("/new")
@role_required("manager")
def new():
    after = db.session.get(TaskBunch, request.args.get("after", type=db_int) or 0)
    definition, follows = services.new_definition(request.args.get("step"), after)
    clone_info = _next_step_info(follows, definition.step) if follows else None
    return _render_form(_form(definition), clone_info=clone_info)


@bp.get("/clone")
@role_required("manager")
def clone():
    """A prefilled form from a task (``?task=<id>``) or a whole bunch (``?bunch=<id>``)."""
    source: Task | TaskBunch
    if request.args.get("task"):
        source = db.get_or_404(Task, request.args.get("task", 0, type=db_int))
    elif request.args.get("bunch"):
        source = db.get_or_404(TaskBunch, request.args.get("bunch", 0, type=db_int))
    else:
        abort(400)
    form = _form(services.clone_definition(source))
    (form.cloned_from_task if isinstance(source, Task) else form.cloned_from_bunch).data = str(source.id)
    return _render_form(form, clone_info=_clone_info(_source_label(source), single=isinstance(source, Task)))


def _source_label(source: Task | TaskBunch) -> str:
    return source.name if isinstance(source, Task) else f"bunch {source.base_name} ({source.size} tasks)"


def _clone_info(label: str, *, single: bool = False, title: str = "") -> dict[str, Any]:
    """What the form copied and what it reset, shown above it (``single``: one task of a bunch)."""
    copied, reset, note = _shown(specs.CLONE_COPIED), specs.CLONE_RESET, ""
    if single:
        copied = tuple(name for name in copied if name not in ("bunch_size", "initial_offset"))
        reset = (*reset, "bunch_size", "initial_offset")
        note = "One task: tasks to launch is 1 and the initial offset is the offset this task used."
    return {
        "title": title,
        "source": label,
        "copied": copied,
        "reset": reset,
        "reset_runtime": services.CLONE_RESET_RUNTIME,
        "note": note,
    }


def _next_step_info(source: TaskBunch, step: str) -> dict[str, Any]:
    """What the form for the next step of `source` copied from it and what it reset."""
    return {
        "title": f"{step} for bunch {source.base_name}",
        "source": f"bunch {source.base_name}",
        "copied": _shown(specs.NEXT_STEP_COPIED),
        "reset": specs.NEXT_STEP_RESET_FIELDS,
        "reset_runtime": services.CLONE_RESET_RUNTIME,
        "note": f"Same production, step {step}; task i reads the output of task i of {source.base_name}.",
    }


def _shown(names: tuple[str, ...]) -> tuple[str, ...]:
    """The fields the user sees: admin-only ones are neither shown to nor accepted from managers."""
    return names if _is_admin() else tuple(name for name in names if name not in specs.ADMIN_FIELDS)


@bp.get("/from-request/<int:request_id>")
@role_required("manager")
def from_request(request_id: int):
    """A form prefilled from a production request (names, physics tag via the path, events, paths)."""
    try:
        definition, prefill = prodrequests.task_prefill(request_id)
    except RequestsServiceError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("prodrequests.detail", request_id=request_id))
    return _render_form(_form(definition), from_request=prefill)


@bp.get("/<int:task_id>/relaunch")
@role_required("manager")
def relaunch(task_id: int):
    """Relaunch from the task's submission manifest: a prefilled form for a new task."""
    task = db.get_or_404(Task, task_id)
    definition = services.relaunch_definition(task)
    if definition is None:
        flash("This task has no submission manifest yet.", "warning")
        return redirect(url_for("tasks.detail", task_id=task.id))
    form = _form(definition)
    form.cloned_from_task.data = str(task.id)
    info = _clone_info(f"manifest of {task.name}", single=True, title="Relaunch from a manifest")
    return _render_form(form, clone_info=info)


@bp.post("/relaunch")
@role_required("manager")
def relaunch_upload():
    """Relaunch from an uploaded manifest file: a prefilled form for a new task (nothing saved yet)."""
    upload = ManifestUploadForm()
    if not upload.validate_on_submit():
        flash("; ".join(upload.manifest.errors) or "The form expired; reload the page.", "danger")
        return redirect(url_for("tasks.index"))
    try:
        relaunch = services.definition_from_manifest_file(upload.manifest.data)
    except services.NotAManifest as exc:
        flash(str(exc), "danger")
        return redirect(url_for("tasks.index"))
    form = _form(relaunch.definition)
    form.cloned_from_task.data = str(relaunch.source.id) if relaunch.source else ""
    label = f"manifest file {upload.manifest.data.filename or 'manifest'}"
    return _render_form(form, clone_info=_clone_info(label, single=True, title="Relaunch from a manifest"))


def _definition_from_post(form: TaskForm) -> TaskDefinition | None:
    if not form.validate_on_submit():
        form.overrides_value()  # report JSON errors together with the rest
        form.schedule_value()
        return None
    definition = form.to_definition()
    if form.schedule_value() is None:
        return None
    if definition is not None and not definition.output_dataset:
        definition = services.complete_definition(definition)
        # Shown beside the field, not written into it: an empty field keeps following the task name
        # and the execution path when the user corrects them.
        form.built_dataset = definition.output_dataset
    return definition


@bp.post("/preview")
@role_required("manager")
def preview():
    form = _form()
    refused = _refused_admin_fields(form)
    if refused:
        return refused
    definition = _definition_from_post(form)
    if definition is None:
        return _render_form(form, status=400)
    try:
        plan = services.plan_bunch(definition, logged_in_user(), is_admin=_is_admin())
        check_schedule(form.schedule_value() or NOW, logged_in_user())  # as Create will: time, parent, token
    except (services.ValidationFailed, ScheduleRefused) as exc:
        return _render_form(form, status=400, form_errors=form.apply_errors(exc.errors))
    return _render_form(form, preview=services.preview(plan), warnings=plan.warnings, estimate=estimate(definition))


@bp.post("/create")
@role_required("manager")
def create():
    form = _form()
    refused = _refused_admin_fields(form)
    if refused:
        return refused
    try:
        result = services.submit_bunch(_definition_from_post(form), (form.idempotency_key.data or "").strip(), logged_in_user(),
                                       is_admin=_is_admin(), cloned_from=_clone_source(form),
                                       schedule=form.schedule_value() or NOW)  # fmt: skip
    except services.ValidationFailed as exc:
        return _render_form(form, status=400, form_errors=form.apply_errors(exc.errors))
    except services.FormReused as exc:
        form.idempotency_key.data = services.new_idempotency_key()  # the next press creates another bunch
        return _render_form(form, status=409, form_errors=[str(exc)])
    _flash_created(result, form.schedule_value() or NOW)
    return redirect(url_for("tasks.bunch", bunch_id=result.bunch.id))


def _flash_created(result: services.CreateResult, schedule: Schedule) -> None:
    if result.created:  # a repeated POST just shows the bunch
        going = "submitting to PanDA" if not schedule.later else f"launching {schedule.describe()} (see Launches)"
        flash(f"Saved {result.bunch.size} task(s); {going}.", "success")
        for warning in result.warnings:
            flash(warning, "warning")


def _clone_source(form: TaskForm) -> Task | TaskBunch | None:
    if (task_id := as_id(form.cloned_from_task.data)) is not None:
        return db.session.get(Task, task_id)
    if (bunch_id := as_id(form.cloned_from_bunch.data)) is not None:
        return db.session.get(TaskBunch, bunch_id)
    return None


@bp.get("/bunch/<int:bunch_id>")
@role_required("viewer")
def bunch(bunch_id: int):
    """A bunch: counts and progress over all its tasks, its tasks a page at a time (?after= / ?before=)."""
    bunch = db.first_or_404(services.bunch_header(bunch_id))
    page = services.bunch_tasks_page(bunch.id, cursor_arg("after"), cursor_arg("before"))
    template = services.task_template()
    kinds = {step: template.kind(step) for step in get_settings().tasks.step_types if step in template.steps}
    return render_template(
        "tasks/bunch.html", bunch=bunch, progress=services.bunch_progress(bunch), action_form=ActionForm(),
        dispatching=dispatcher.dispatching(bunch.id), step_kinds=kinds, bunch_kind=kinds.get(bunch.step),
        page=page, rows=sync.rows_of(page.tasks, bunch.id, page.positions), undecided=services.undecided_in_bunch(bunch.id),
        relations=services.bunch_relations(bunch),
    )  # fmt: skip


@bp.get("/bunch/<int:bunch_id>/progress")
@role_required("viewer")
def bunch_progress(bunch_id: int):
    """The progress fragment polled by the bunch page (htmx): the counts, and the rows of the page shown."""
    bunch = db.first_or_404(services.bunch_header(bunch_id))
    return render_template(
        "tasks/_progress.html", bunch=bunch, progress=services.bunch_progress(bunch),
        page=services.bunch_tasks_page(bunch.id, cursor_arg("after"), cursor_arg("before")),
        action_form=ActionForm(), dispatching=dispatcher.dispatching(bunch.id),
    )  # fmt: skip


@bp.get("/panda")
@role_required("viewer")
def panda_states():
    """The polled in-place refresh of rows' PanDA state (task list: ?ids=1,2; bunch page: ?bunch=)."""
    ids = id_list(request.args.get("ids", ""))
    first, last = cursor_arg("first"), cursor_arg("last")  # the bunch page's rows shown (bunch indexes)
    positions = (first, last) if first is not None and last is not None else None
    rows = sync.panda_rows(ids, request.args.get("bunch", type=db_int), positions)
    return render_template("tasks/_panda_states.html", rows=rows)


@bp.post("/bunch/<int:bunch_id>/resend")
@role_required("manager")
def resend(bunch_id: int):
    bunch = db.get_or_404(TaskBunch, bunch_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    count = launches.resend_failed_and_dispatch(bunch, logged_in_user())
    flash(f"Resending {count} failed task(s)." if count else "No failed tasks to resend.", "info")
    return redirect(url_for("tasks.bunch", bunch_id=bunch.id))


@bp.post("/bunch/<int:bunch_id>/dispatch")
@role_required("manager")
def dispatch(bunch_id: int):
    """Restart dispatching (pending rows, unknown outcomes) after a restart of the panel."""
    bunch = db.get_or_404(TaskBunch, bunch_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    dispatcher.dispatch_soon(reconcile=True)
    flash("Dispatching resumed.", "info")
    return redirect(url_for("tasks.bunch", bunch_id=bunch.id))


@bp.post("/<int:task_id>/mark-not-submitted")
@role_required("manager")
def mark_not_submitted(task_id: int):
    """After checking PanDA by hand: the unanswered submit did not arrive; send the task again."""
    task = db.get_or_404(Task, task_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    launch = launches.mark_not_submitted_and_dispatch(task, logged_in_user())
    if launch is None:
        flash("Nothing to do: the task is not waiting for a decision.", "info")
    else:
        flash(f"{task.name} marked not in PanDA; sending attempt {launch.attempt}.", "warning")
    return redirect(_back(task))


@bp.post("/<int:task_id>/adopt")
@role_required("manager")
def adopt(task_id: int):
    """After checking PanDA by hand: the unanswered submit did arrive, as this PanDA task id."""
    task = db.get_or_404(Task, task_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    panda_id = request.form.get("panda_task_id", type=db_int)
    if not panda_id or panda_id <= 0:
        flash("Enter the PanDA task id (a number).", "danger")
        return redirect(_back(task))
    error = launches.adopt(task, panda_id, logged_in_user())
    flash(error or f"{task.name} is PanDA task {panda_id}.", "danger" if error else "success")
    return redirect(_back(task))


@bp.post("/<int:task_id>/look-up")
@role_required("manager")
def look_up(task_id: int):
    """Look the task's unanswered submit up in PanDA now, instead of waiting for the background pass."""
    task = db.get_or_404(Task, task_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    flash(f"{task.name}: {launches.look_up_now(launches.undecided_of([task]), logged_in_user())}.", "info")
    return redirect(_back(task))


@bp.post("/bunch/<int:bunch_id>/look-up")
@role_required("manager")
def look_up_bunch(bunch_id: int):
    """Look every unanswered submit of the bunch up in PanDA now (one listing per owner)."""
    bunch = db.get_or_404(TaskBunch, bunch_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    flash(f"Looked up: {launches.look_up_now(launches.undecided_of(bunch.tasks), logged_in_user())}.", "info")
    return redirect(url_for("tasks.bunch", bunch_id=bunch.id))


def _back(task: Task) -> str:
    """Where a decision about a task's submit returns: the bunch page when it was made there."""
    if request.form.get("back") == "bunch":
        return url_for("tasks.bunch", bunch_id=task.bunch_id, _anchor="unanswered")
    return url_for("tasks.detail", task_id=task.id)


@bp.get("/<int:task_id>")
@role_required("viewer")
def detail(task_id: int):
    """The task as stored: definition, launches, manifest, relations (PanDA is not called here)."""
    task = db.get_or_404(Task, task_id)
    page = services.task_page(task, with_calls=role_at_least(logged_in_user(), "manager"))
    return render_template("tasks/detail.html", page=page, task=task, action_form=ActionForm())


@bp.get("/<int:task_id>/panda")
@role_required("viewer")
def panda_detail(task_id: int):
    """The task page's PanDA state (polled while the task is active); stored state only."""
    task = db.get_or_404(Task, task_id)
    return render_template("tasks/_panda_detail.html", task=task, history=sync.status_history(task))


@bp.post("/<int:task_id>/refresh")
@role_required("manager")
def refresh(task_id: int):
    """ "Sync this task now": read the task from PanDA with its owner's token and store it."""
    task = db.get_or_404(Task, task_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    notice = sync.sync_task_now(task)
    flash(notice.message, notice.category)
    return redirect(url_for("tasks.detail", task_id=task.id))


@bp.get("/naming")
@role_required("viewer")
def naming():
    """The naming conventions as configured, with examples built by the naming module."""
    return render_template("tasks/naming.html", guide=services.naming_guide())


@bp.get("/<int:task_id>/manifest.json")
@role_required("viewer")
def manifest(task_id: int):
    task = db.get_or_404(Task, task_id)
    launch = task.submitted_launch or task.latest_launch
    if launch is None or not launch.manifest:
        abort(404)
    return Response(
        json.dumps(launch.manifest, indent=2, sort_keys=True),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{task.name}.manifest.json"'},
    )


@bp.get("/bunch/<int:bunch_id>/edit")
@role_required("manager")
def edit(bunch_id: int):
    """A bunch scheduled and not yet submitted, in the task form to edit like a new one."""
    bunch = db.first_or_404(services.bunch_for_page(bunch_id))
    reason = editing.not_editable_reason(bunch)
    if reason:
        flash(f"{bunch.base_name} is {reason}.", "warning")
        return redirect(url_for("tasks.bunch", bunch_id=bunch.id))
    return _render_form(_form(editing.definition_of(bunch)), editing=bunch)


@bp.post("/bunch/<int:bunch_id>/edit")
@role_required("manager")
def save_edit(bunch_id: int):
    """With `preview`: each task's difference from what is saved; else the changes saved."""
    bunch, form = db.get_or_404(TaskBunch, bunch_id), _form()
    refused = _refused_admin_fields(form, editing=bunch)
    if refused:
        return refused
    definition = _definition_from_post(form)
    if definition is None:
        return _render_form(form, status=400, editing=bunch)
    try:
        if request.form.get("preview"):
            items = editing.preview_edit(bunch, definition, logged_in_user(), is_admin=_is_admin())
            return _render_form(form, editing=bunch, preview=items)
        changed = editing.save_edit(bunch, definition, logged_in_user(), is_admin=_is_admin())
    except services.ValidationFailed as exc:
        return _render_form(form, status=400, editing=bunch, form_errors=form.apply_errors(exc.errors))
    return _saved_edit(bunch, changed)


def _saved_edit(bunch: TaskBunch, changed: list[str]):
    flash(f"{bunch.base_name} saved ({', '.join(changed) or 'nothing changed'}); its launches stay as scheduled.", "success")
    return redirect(url_for("tasks.bunch", bunch_id=bunch.id))
