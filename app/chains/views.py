"""Chain pages: list, form (new / clone / import / from a request; rows added, removed and moved with htmx or plain
buttons), preview, create, the chain page with progress, resend, refresh, sweep, export."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

from app.auth.current import logged_in_user
from app.auth.decorators import role_required
from app.auth.roles import role_at_least
from app.chains import schema
from app.chains import services as chains
from app.chains.forms import SWEEP_PARAMETERS, ChainForm, ImportForm, SweepForm, rearranged
from app.chains.models import Chain
from app.chains.specs import LABELS, ChainDefinition, Problem
from app.config import get_settings
from app.extensions import db, seek_paginate
from app.inputs import as_id
from app.launches.schedule import NOW, Schedule, ScheduleRefused
from app.launches.schedule import check as check_schedule
from app.prodrequests import services as prodrequests
from app.prodrequests.errors import RequestsServiceError
from app.tasks.forms import ActionForm

bp = Blueprint("chains", __name__, url_prefix="/chains")


def _is_admin() -> bool:
    return role_at_least(logged_in_user(), "admin")


def _form(definition: ChainDefinition | None = None, *, formdata: Any = None) -> ChainForm:
    """The chain form: from the request (or `formdata`), or prefilled from `definition` with a new key."""
    settings = get_settings()
    form = ChainForm(formdata=formdata) if formdata is not None else ChainForm()
    if definition is not None:
        form.fill(definition, settings)
        form.idempotency_key.data = chains.new_idempotency_key()
    form.configure_schedule(logged_in_user())
    return form.configure(settings)


def _render(form: ChainForm, *, status: int = 200, problems: list[Problem] | None = None, **context: Any):
    leftover = form.apply_problems(problems or [])
    return render_template(
        "chains/form.html", form=form, is_admin=_is_admin(), step_kinds=chains.step_kinds(),
        errors=[*leftover, *form.summary(LABELS)], upload=ImportForm(), **context,
    ), status  # fmt: skip


def _source(form: ChainForm) -> Chain | None:
    chain_id = as_id(form.cloned_from.data)
    return None if chain_id is None else db.session.get(Chain, chain_id)


@bp.get("/")
@role_required("viewer")
def index():
    page = seek_paginate(chains.chains_query(), [Chain.id], per_page=50)  # newest first
    summaries = chains.launch_summaries([c.id for c in page.items])
    return render_template("chains/index.html", page=page, summaries=summaries, upload=ImportForm())


@bp.get("/new")
@role_required("manager")
def new():
    return _render(_form(chains.blank_chain()))


@bp.get("/from-request/<int:request_id>")
@role_required("manager")
def from_request(request_id: int):
    """A chain form prefilled from a production request (its generation step, and the processing
    step derived from it as "Add step" derives it)."""
    try:
        definition, prefill = prodrequests.chain_prefill(request_id)
    except RequestsServiceError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("prodrequests.detail", request_id=request_id))
    return _render(_form(definition), from_request=prefill)


@bp.post("/edit")
@role_required("manager")
def edit():
    """The row buttons without JavaScript: add, remove or move a step, then show the whole form."""
    data = rearranged(request.form, request.form.get("row_action", ""), chains.prefill_row)
    form = _form(formdata=data)
    return _render(form, clone_source=_source(form))


@bp.post("/steps")
@role_required("manager")
def steps():
    """The same row actions for htmx: only the steps fragment comes back."""
    data = rearranged(request.form, request.form.get("row_action", ""), chains.prefill_row)
    return render_template("chains/_steps.html", form=_form(formdata=data), is_admin=_is_admin(),
                           step_kinds=chains.step_kinds())  # fmt: skip


def _parsed(form: ChainForm) -> tuple[ChainDefinition | None, list[Problem]]:
    """The chain the form says; when a field does not parse (its error is beside it) None, with
    the constraints' problems of what did parse, so that every mistake shows at once."""
    valid = form.validate() & (form.schedule_value() is not None)
    definition = form.to_definition()
    if valid and definition is not None:
        return definition, []
    return None, chains.validate_chain(definition, is_admin=_is_admin()).problems if definition else []


@bp.post("/preview")
@role_required("manager")
def preview():
    form = _form()
    definition, problems = _parsed(form)
    if definition is None:
        return _render(form, status=400, problems=problems, clone_source=_source(form))
    try:
        plan = chains.plan_chain(definition, logged_in_user(), is_admin=_is_admin())
        check_schedule(form.schedule_value() or NOW, logged_in_user())  # as Create will: time, parent, token
    except chains.ChainInvalid as exc:
        return _render(form, status=400, problems=exc.problems, clone_source=_source(form))
    except ScheduleRefused as exc:
        form.schedule_errors(exc.errors)
        return _render(form, status=400, clone_source=_source(form))
    return _render(form, plan=plan, warnings=plan.warnings, clone_source=_source(form))


@bp.post("/create")
@role_required("manager")
def create():
    form = _form()
    definition, problems = _parsed(form)
    try:
        result = chains.submit_chain(definition, (form.idempotency_key.data or "").strip(), logged_in_user(),
                                     is_admin=_is_admin(), cloned_from=_source(form), schedule=form.schedule_value() or NOW)  # fmt: skip
    except chains.ChainInvalid as exc:
        return _render(form, status=400, problems=problems + exc.problems, clone_source=_source(form))
    except chains.FormReused as exc:
        form.idempotency_key.data = chains.new_idempotency_key()
        return _render(form, status=409, problems=[Problem(None, "form", str(exc))])
    _flash_created(result, form.schedule_value() or NOW)
    return redirect(url_for("chains.detail", chain_id=result.chain.id))


def _flash_created(result: chains.CreateResult, schedule: Schedule) -> None:
    if result.created:
        n = sum(s.bunch.size for s in result.chain.steps)
        going = "submitting to PanDA" if not schedule.later else f"launching {schedule.describe()} (see Launches)"
        flash(f"Saved chain {result.chain.name}: {len(result.chain.steps)} step(s), {n} task(s); {going}.",
              "success")  # fmt: skip
        for warning in result.warnings:
            flash(warning, "warning")


@bp.get("/<int:chain_id>")
@role_required("viewer")
def detail(chain_id: int):
    """The chain as stored: its steps as a flow, each task's launch, PanDA status and why it waits."""
    chain = db.get_or_404(Chain, chain_id)
    return render_template("chains/detail.html", page=chains.chain_page(chain), action_form=ActionForm(),
                           document=chains.document_json(chain))  # fmt: skip


@bp.get("/<int:chain_id>/progress")
@role_required("viewer")
def progress(chain_id: int):
    """The flow fragment polled by the chain page (htmx); stored state only."""
    chain = db.get_or_404(Chain, chain_id)
    return render_template("chains/_flow.html", page=chains.chain_page(chain), action_form=ActionForm())


@bp.post("/<int:chain_id>/refresh")
@role_required("manager")
def refresh(chain_id: int):
    """Read the chain's running tasks from PanDA now (each with its owner's token) and store them."""
    chain = db.get_or_404(Chain, chain_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    notice = chains.refresh_from_panda(chain)
    flash(notice.message, notice.category)
    return redirect(url_for("chains.detail", chain_id=chain.id))


@bp.post("/<int:chain_id>/steps/<int:position>/resend")
@role_required("manager")
def resend(chain_id: int, position: int):
    chain = db.get_or_404(Chain, chain_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    count = chains.resend_failed_step(chain, position, logged_in_user())
    flash(f"Resending {count} failed task(s) of step {position}." if count else "No failed launches in this step.",
          "info")  # fmt: skip
    return redirect(url_for("chains.detail", chain_id=chain.id))


@bp.get("/<int:chain_id>/clone")
@role_required("manager")
def clone(chain_id: int):
    """A prefilled chain form: the source's definition under the next free production number."""
    source = db.get_or_404(Chain, chain_id)
    form = _form(chains.clone_definition(source))
    form.cloned_from.data = str(source.id)
    return _render(form, clone_source=source)


@bp.route("/<int:chain_id>/sweep", methods=["GET", "POST"])
@role_required("manager")
def sweep(chain_id: int):
    """Clone with one parameter varied over a list: a table of the chains to create, nothing saved."""
    source = db.get_or_404(Chain, chain_id)
    form = SweepForm()
    if not form.idempotency_key.data:
        form.idempotency_key.data = chains.new_idempotency_key()
    variants = None
    if form.validate_on_submit():
        variants = chains.sweep(source, form.parameter.data, form.value_list(), is_admin=_is_admin())
    return render_template("chains/sweep.html", source=source, form=form, variants=variants,
                           parameters=SWEEP_PARAMETERS), 400 if form.errors else 200  # fmt: skip


@bp.post("/<int:chain_id>/sweep/create")
@role_required("manager")
def sweep_create(chain_id: int):
    source = db.get_or_404(Chain, chain_id)
    form = SweepForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        created = chains.create_sweep(source, form.parameter.data, form.value_list(), logged_in_user(),
                                      form.idempotency_key.data or "", is_admin=_is_admin())  # fmt: skip
    except chains.ChainInvalid as exc:
        flash("Nothing was created: " + "; ".join(p.text for p in exc.problems), "danger")
        return redirect(url_for("chains.sweep", chain_id=source.id))
    flash(f"Created {len(created)} chain(s): {', '.join(c.name for c in created)}.", "success")
    return redirect(url_for("chains.index"))


@bp.get("/<int:chain_id>/export.<fmt>")
@role_required("viewer")
def export(chain_id: int, fmt: str):
    if fmt not in schema.FORMATS:
        abort(404)
    filename, text = chains.export_document(db.get_or_404(Chain, chain_id), fmt)
    mimetype = "application/json" if fmt == "json" else "application/yaml"
    return Response(
        text, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@bp.post("/import")
@role_required("manager")
def import_file():
    """Open an exported chain file (YAML or JSON) in the chain form, checked; nothing saved yet."""
    upload = ImportForm()
    if not upload.validate_on_submit():
        flash("; ".join(upload.document.errors) or "The form expired; reload the page.", "danger")
        return redirect(url_for("chains.index"))
    try:
        definition = chains.import_document(upload.document.data)
    except schema.SchemaError as exc:
        return render_template("chains/import_errors.html", problems=exc.problems, upload=upload), 400
    check = chains.validate_chain(definition, is_admin=_is_admin())
    return _render(_form(definition), problems=check.problems, imported=upload.document.data.filename)
