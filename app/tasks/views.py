"""Task pages: list, form (new / clone / relaunch), preview, create, bunch progress, task page, manifest."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError, OperationalError

from app.audit.services import record
from app.auth.current import current_user
from app.auth.decorators import role_required
from app.auth.roles import role_at_least
from app.config import get_settings
from app.extensions import db
from app.prodrequests import services as prodrequests
from app.prodrequests.errors import RequestsServiceError
from app.tasks import dispatcher, naming, services
from app.tasks.forms import ActionForm, ManifestUploadForm, TaskForm
from app.tasks.models import LAUNCH_STATUSES, Task, TaskBunch
from app.tasks.specs import TaskDefinition

bp = Blueprint("tasks", __name__, url_prefix="/tasks")


def _is_admin() -> bool:
    return role_at_least(current_user(), "admin")


def _form() -> TaskForm:
    return TaskForm().configure(get_settings())


def _blank_definition(step: str) -> TaskDefinition:
    settings = get_settings()
    cfg = settings.tasks
    production = services.suggest_production()
    task_name = naming.TaskName(production, step).format(services.naming_rules())
    return TaskDefinition(
        step=step, task_name=task_name, bunch_size=1, output_dataset="", total_events=None,
        events_per_job=None, cloud=cfg.clouds[0] if cfg.clouds else "",
        data_disk=cfg.data_disks[0] if cfg.data_disks else "", request_id=None, skip_scout=False,
        initial_offset=0, exec_path="", container_path="",
    )  # fmt: skip


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


@bp.get("/")
@role_required("viewer")
def index():
    args = {key: request.args.get(key, "").strip() for key in ("q", "step", "launch", "sort", "order")}
    args = {key: value for key, value in args.items() if value}
    filters = services.TaskFilters(**args)
    page = db.paginate(services.tasks_query(filters), per_page=50, error_out=False)
    return render_template(
        "tasks/index.html", page=page, filters=filters, args=args, steps=get_settings().tasks.step_types,
        launch_statuses=LAUNCH_STATUSES, upload=ManifestUploadForm(),
    )  # fmt: skip


@bp.get("/new")
@role_required("manager")
def new():
    form = _form()
    step = request.args.get("step") or get_settings().tasks.step_types[0]
    if step not in get_settings().tasks.step_types:
        step = get_settings().tasks.step_types[0]
    clone_info = None
    source = db.session.get(TaskBunch, request.args.get("after", type=int) or 0)
    template = services.task_template()
    if source is not None and step in template.steps and template.kind(step) == "processing":
        form.fill(services.next_step_definition(source, step))
        clone_info = {
            "title": f"{step} for bunch {source.base_name}",
            "source": f"bunch {source.base_name}",
            "copied": ("bunch_size", "cloud", "data_disk", "request_id", "exec_path", "container_path",
                       "memory_mb", "walltime_s", "max_attempts"),
            "reset": ("task_name", "output_dataset", "parent_task", "total_events", "events_per_job",
                      "files_per_job", "initial_offset"),
            "reset_runtime": services.CLONE_RESET_RUNTIME,
            "note": f"Same production, step {step}; task i reads the output of task i of {source.base_name}.",
        }  # fmt: skip
    else:
        form.fill(_blank_definition(step))
    form.idempotency_key.data = services.new_idempotency_key()
    return _render_form(form, clone_info=clone_info)


@bp.get("/clone")
@role_required("manager")
def clone():
    """A prefilled form from a task (``?task=<id>``) or a whole bunch (``?bunch=<id>``)."""
    source: Task | TaskBunch | None
    if request.args.get("task"):
        source = db.get_or_404(Task, request.args.get("task", type=int))
    elif request.args.get("bunch"):
        source = db.get_or_404(TaskBunch, request.args.get("bunch", type=int))
    else:
        abort(400)
    form = _form()
    form.fill(services.clone_definition(source))
    form.idempotency_key.data = services.new_idempotency_key()
    label = _source_label(source)
    if isinstance(source, Task):
        form.cloned_from_task.data = str(source.id)
    else:
        form.cloned_from_bunch.data = str(source.id)
    return _render_form(form, clone_info=_clone_info(label, single=isinstance(source, Task)))


def _source_label(source: Task | TaskBunch) -> str:
    return source.name if isinstance(source, Task) else f"bunch {source.base_name} ({source.size} tasks)"


def _clone_info(label: str, *, single: bool = False, title: str = "") -> dict[str, Any]:
    """What the form copied and what it reset, shown above it (``single``: one task of a bunch)."""
    copied, reset, note = services.CLONE_COPIED, services.CLONE_RESET, ""
    if not _is_admin():  # admin-only fields are neither shown to nor accepted from managers
        copied = tuple(name for name in copied if name not in services.ADMIN_FIELDS)
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


@bp.get("/from-request/<int:request_id>")
@role_required("manager")
def from_request(request_id: int):
    """A form prefilled from a production request (names, physics tag via the path, events, paths)."""
    try:
        definition, prefill = prodrequests.task_prefill(request_id)
    except RequestsServiceError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("prodrequests.detail", request_id=request_id))
    form = _form()
    form.fill(definition)
    form.idempotency_key.data = services.new_idempotency_key()
    return _render_form(form, from_request=prefill)


@bp.get("/<int:task_id>/relaunch")
@role_required("manager")
def relaunch(task_id: int):
    """Relaunch from the task's submission manifest: a prefilled form for a new task."""
    task = db.get_or_404(Task, task_id)
    launch = task.submitted_launch or task.latest_launch
    if launch is None or not launch.manifest:
        flash("This task has no submission manifest yet.", "warning")
        return redirect(url_for("tasks.detail", task_id=task.id))
    form = _form()
    form.fill(services.definition_from_manifest(launch.manifest))
    form.idempotency_key.data = services.new_idempotency_key()
    form.cloned_from_task.data = str(task.id)
    return _render_form(
        form,
        clone_info=_clone_info(f"manifest of {task.name}", single=True, title="Relaunch from a manifest"),
    )


@bp.post("/relaunch")
@role_required("manager")
def relaunch_upload():
    """Relaunch from an uploaded manifest file: a prefilled form for a new task (nothing saved yet)."""
    upload = ManifestUploadForm()
    if not upload.validate_on_submit():
        flash("; ".join(upload.manifest.errors) or "The form expired; reload the page.", "danger")
        return redirect(url_for("tasks.index"))
    filename = upload.manifest.data.filename or "manifest"
    try:
        manifest = json.loads(upload.manifest.data.read(2_000_000))
        definition = services.definition_from_manifest(manifest)
    except (ValueError, KeyError, TypeError, AttributeError, naming.NamingError) as exc:
        flash(f"{filename} is not a submission manifest of this panel ({exc.__class__.__name__}).", "danger")
        return redirect(url_for("tasks.index"))
    form = _form()
    form.fill(definition)
    form.idempotency_key.data = services.new_idempotency_key()
    return _render_form(
        form,
        clone_info=_clone_info(f"manifest file {filename}", single=True, title="Relaunch from a manifest"),
    )


def _definition_from_post(form: TaskForm) -> TaskDefinition | None:
    if not form.validate_on_submit():
        form.overrides_value()  # report JSON errors together with the rest
        return None
    definition = form.to_definition()
    if definition is not None and not definition.output_dataset:
        definition = services.complete_definition(definition)
        # Shown beside the field, not written into it: an empty field keeps following the task name
        # and the execution path when the user corrects them.
        form.built_dataset = definition.output_dataset
    return definition


def _refuse_admin_fields(form: TaskForm):
    """Non-admins may not send the admin-only fields: refuse the whole request (audited)."""
    if _is_admin():
        return None
    sent = [name for name in services.ADMIN_FIELDS if (request.form.get(name) or "").strip()]
    if not sent:
        return None
    record("task.admin_fields_refused", target=request.path, outcome="denied", details={"fields": sent})
    db.session.commit()
    return _render_form(
        form, status=403, form_errors=[f"only admins may set: {', '.join(sent)}; nothing was saved"]
    )


@bp.post("/preview")
@role_required("manager")
def preview():
    form = _form()
    refused = _refuse_admin_fields(form)
    if refused:
        return refused
    definition = _definition_from_post(form)
    if definition is None:
        return _render_form(form, status=400)
    try:
        plan = services.plan_bunch(definition, current_user(), is_admin=_is_admin())
    except services.ValidationFailed as exc:
        return _render_form(form, status=400, form_errors=form.apply_errors(exc.errors))
    items = services.preview(plan)
    return _render_form(form, preview=items, warnings=plan.warnings)


@bp.post("/create")
@role_required("manager")
def create():
    form = _form()
    refused = _refuse_admin_fields(form)
    if refused:
        return refused
    key = (request.form.get("idempotency_key") or "").strip()
    definition = _definition_from_post(form)
    existing = services.bunch_by_key(key) if key else None
    if existing is not None:
        if definition is None or definition.to_dict() == existing.definition:
            # A repeated POST (double click, refresh, resend): show what the first one created.
            return redirect(url_for("tasks.bunch", bunch_id=existing.id))
        # The same form, changed after it created a bunch (back button): never drop the new values
        # silently; a fresh key makes the next press create another bunch.
        form.idempotency_key.data = services.new_idempotency_key()
        message = (
            f"This form already created {existing.base_name} and was changed since. Nothing new was saved; "
            "press Create task again to create another bunch with these values."
        )
        return _render_form(form, status=409, form_errors=[message])
    if definition is None:
        return _render_form(form, status=400)
    user = current_user()
    for attempt in range(3):
        try:
            bunch, created = services.create_bunch(
                definition, user, key, is_admin=_is_admin(), cloned_from=_clone_source(form)
            )
            db.session.commit()
            break
        except services.ValidationFailed as exc:
            db.session.rollback()
            winner = services.bunch_by_key(key)
            if winner is not None:  # a concurrent POST with this key committed while we validated
                return redirect(url_for("tasks.bunch", bunch_id=winner.id))
            return _render_form(form, status=400, form_errors=form.apply_errors(exc.errors))
        except (services.ConcurrentCreate, IntegrityError, OperationalError):
            # A concurrent POST (same key or same names) won: in a fresh transaction we find its
            # bunch by key, or the validation names what was taken.
            db.session.rollback()
            if attempt == 2:
                raise
    if created:
        dispatcher.start_background_dispatch(current_app._get_current_object(), bunch.id)
        flash(f"Saved {bunch.size} task(s); submitting to PanDA.", "success")
        for warning in getattr(bunch, "warnings", []):
            flash(warning, "warning")
    return redirect(url_for("tasks.bunch", bunch_id=bunch.id))


def _clone_source(form: TaskForm) -> Task | TaskBunch | None:
    if (form.cloned_from_task.data or "").isdigit():
        return db.session.get(Task, int(form.cloned_from_task.data))
    if (form.cloned_from_bunch.data or "").isdigit():
        return db.session.get(TaskBunch, int(form.cloned_from_bunch.data))
    return None


@bp.get("/bunch/<int:bunch_id>")
@role_required("viewer")
def bunch(bunch_id: int):
    bunch = db.get_or_404(TaskBunch, bunch_id)
    progress = services.bunch_progress(bunch)
    template = services.task_template()
    kinds = {step: template.kind(step) for step in get_settings().tasks.step_types if step in template.steps}
    return render_template(
        "tasks/bunch.html", bunch=bunch, progress=progress, action_form=ActionForm(),
        dispatching=dispatcher.is_dispatching(bunch.id), step_kinds=kinds, bunch_kind=kinds.get(bunch.step),
    )  # fmt: skip


@bp.get("/bunch/<int:bunch_id>/progress")
@role_required("viewer")
def bunch_progress(bunch_id: int):
    """The progress fragment polled by the bunch page (htmx)."""
    bunch = db.get_or_404(TaskBunch, bunch_id)
    return render_template(
        "tasks/_progress.html", bunch=bunch, progress=services.bunch_progress(bunch),
        action_form=ActionForm(), dispatching=dispatcher.is_dispatching(bunch.id),
    )  # fmt: skip


@bp.post("/bunch/<int:bunch_id>/resend")
@role_required("manager")
def resend(bunch_id: int):
    bunch = db.get_or_404(TaskBunch, bunch_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    launches = services.resend_failed(bunch, current_user())
    db.session.commit()
    if launches:
        dispatcher.start_background_dispatch(current_app._get_current_object(), bunch.id)
        flash(f"Resending {len(launches)} failed task(s).", "info")
    else:
        flash("No failed tasks to resend.", "info")
    return redirect(url_for("tasks.bunch", bunch_id=bunch.id))


@bp.post("/bunch/<int:bunch_id>/dispatch")
@role_required("manager")
def dispatch(bunch_id: int):
    """Restart dispatching (pending rows, unknown outcomes) after a restart of the panel."""
    bunch = db.get_or_404(TaskBunch, bunch_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    started = dispatcher.start_background_dispatch(current_app._get_current_object(), bunch.id)
    flash("Dispatching resumed." if started else "This bunch is being dispatched already.", "info")
    return redirect(url_for("tasks.bunch", bunch_id=bunch.id))


@bp.post("/<int:task_id>/mark-not-submitted")
@role_required("manager")
def mark_not_submitted(task_id: int):
    """After checking PanDA by hand: the unanswered submit did not arrive; send the task again."""
    task = db.get_or_404(Task, task_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    launch = services.mark_not_submitted(task, current_user())
    db.session.commit()
    if launch is None:
        flash("Nothing to do: the task is not waiting for a decision.", "info")
    else:
        dispatcher.start_background_dispatch(current_app._get_current_object(), task.bunch_id)
        flash(f"{task.name} marked not in PanDA; sending attempt {launch.attempt}.", "warning")
    return redirect(url_for("tasks.detail", task_id=task.id))


@bp.post("/<int:task_id>/adopt")
@role_required("manager")
def adopt(task_id: int):
    """After checking PanDA by hand: the unanswered submit did arrive, as this PanDA task id."""
    task = db.get_or_404(Task, task_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    panda_id = request.form.get("panda_task_id", type=int)
    if not panda_id or panda_id <= 0:
        flash("Enter the PanDA task id (a number).", "danger")
        return redirect(url_for("tasks.detail", task_id=task.id))
    client = dispatcher.make_client(interactive=True)
    try:
        error = dispatcher.adopt_by_id(task, panda_id, current_user(), client)
    finally:
        client.close()
    record("task.adopt", target=task.name, outcome="ok" if error is None else "refused",
           details={"panda_task_id": panda_id, "error": error})  # fmt: skip
    db.session.commit()
    flash(error or f"{task.name} is PanDA task {panda_id}.", "danger" if error else "success")
    return redirect(url_for("tasks.detail", task_id=task.id))


@bp.get("/<int:task_id>")
@role_required("viewer")
def detail(task_id: int):
    task = db.get_or_404(Task, task_id)
    info, panda_error = None, None
    if task.panda_task_id is not None:
        info, panda_error = _read_panda(task)
    from app.panda.services import calls_for_task

    calls = calls_for_task(task.panda_task_id, page=1) if task.panda_task_id is not None else None
    launch = task.submitted_launch or task.latest_launch
    return render_template(
        "tasks/detail.html", task=task, info=info, panda_error=panda_error, launch=launch,
        manifest_json=json.dumps(launch.manifest, indent=2, sort_keys=True) if launch and launch.manifest else None,
        definition_json=json.dumps(task.bunch.definition, indent=2, sort_keys=True),
        params_json=services.pretty(task.params), calls=calls,
        siblings=[t for t in task.bunch.tasks if t.id != task.id], action_form=ActionForm(),
        needs_decision=bool(launch and launch.status == "unknown" and launch.error == dispatcher.INCONCLUSIVE),
    )  # fmt: skip


def _read_panda(task: Task):
    """The task's status and counters, read from PanDA now; the stored status on failure."""
    from app.panda.errors import PandaError, PandaNotFound

    client = dispatcher.make_client(interactive=True)
    try:
        info = client.get_detailed_info(current_user(), task.panda_task_id)
    except PandaNotFound:
        return None, "PanDA has not picked the task up yet (JEDI registers a new task within minutes)."
    except PandaError as exc:
        return None, str(exc)
    except Exception as exc:  # no token for this user, etc.: show why, keep the page
        return None, getattr(exc, "reason", None) or str(exc) or exc.__class__.__name__
    finally:
        client.close()
    from app import clock

    task.panda_status = info.status
    task.panda_checked_at = clock.now()
    db.session.commit()
    return info, None


@bp.get("/<int:task_id>/manifest.json")
@role_required("viewer")
def manifest(task_id: int):
    task = db.get_or_404(Task, task_id)
    launch = task.submitted_launch or task.latest_launch
    if launch is None or not launch.manifest:
        abort(404)
    body = json.dumps(launch.manifest, indent=2, sort_keys=True)
    filename = f"{task.name}.manifest.json"
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
