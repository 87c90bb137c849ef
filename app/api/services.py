"""What the API's views call: JSON in, the UI's services in the middle, JSON records out. Input is
checked by the UI's own forms and services (the task form's fields, the chain document's schema and
constraints, the action matrix), and their messages come back field by field."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from flask import g
from sqlalchemy import Select, select
from sqlalchemy.orm import defer
from werkzeug.datastructures import MultiDict

from app.actions import bulk as bulk_services
from app.actions import edit as edit_services
from app.actions import modify
from app.actions import services as actions
from app.actions.matrix import Action
from app.actions.models import BulkAction
from app.actions.selection import FILTER_FIELDS, BadSelection, selection_from
from app.api import records
from app.api.problems import ApiProblem, FieldError, field_errors, invalid
from app.audit.forms import AuditFilterForm
from app.audit.services import AUDIT_KEYS, audit_query
from app.auth.models import User
from app.chains import schema
from app.chains import services as chains
from app.chains.forms import SweepForm
from app.chains.models import Chain
from app.chains.specs import ChainDefinition, Problem
from app.config import get_settings
from app.extensions import count_cap, db
from app.extensions import seek as seek_rows
from app.inputs import as_id
from app.launches import listing as launch_listing
from app.launches import schedule as launch_schedule
from app.launches import services as launch_services
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.monitoring import tables as monitoring_tables
from app.monitoring.filters import BadFilter, TaskFilter
from app.monitoring.records import task_records
from app.prodrequests import services as prodrequests
from app.prodrequests.errors import RequestNotFound, RequestsServiceError
from app.stats import alerts
from app.stats import errors as stats_errors
from app.stats import services as stats
from app.sync import services as sync_services
from app.tasks import services as tasks
from app.tasks.forms import TaskForm
from app.tasks.models import Task, TaskBunch
from app.tasks.specs import DEFINITION_FIELDS, TaskDefinition

ID_MAX = 2**31 - 1  # ids and page numbers beyond a 32-bit integer name nothing (and overflow SQLite)
PAGE_MAX = 100_000


# --- paging -----------------------------------------------------------------------------------------


def _positive(args: Mapping[str, str], name: str, default: int, high: int = ID_MAX) -> int:
    raw = str(args.get(name) or "").strip()
    if not raw:
        return default
    number = as_id(raw)  # not isdigit() + int(): '²' is a digit int() refuses
    if number is None or not 1 <= number <= high:
        raise invalid([FieldError(name, f"must be a whole number from 1 to {high}")])
    return number


def page(
    query: Select,
    args: Mapping[str, str],
    record: Callable[[Any], dict[str, Any]] | None = None,
    *,
    many: Callable[[list[Any]], list[dict[str, Any]]] | None = None,
    seek: tuple[Sequence[Any], bool] | None = None,
) -> dict[str, Any]:
    """One page of `query` (``page``, ``per_page``), each row made a record by `record` (or all at once
    by `many`); ``next_page`` is null on the last page. Counting the whole set is left out on purpose:
    lists can be large, one more row tells whether there is more.

    With `seek` (the query's order: its keys, the last one the id, and whether they descend), the
    reply's ``next_after`` is the last row's id while there is more, and ``after`` (instead of
    ``page``) reads the page after that row by keyset: at any depth the cost of the first page, where
    ``page`` reads every row it skips."""
    limits = get_settings().api
    per_page = _positive(args, "per_page", limits.page_size, limits.max_page_size)
    numbered = _positive(args, "page", 1, PAGE_MAX)
    number: int | None = numbered
    if seek is not None and str(args.get("after") or "").strip():
        if str(args.get("page") or "").strip():
            raise invalid([FieldError("after", "give page or after, not both")])
        keys, descending = seek
        rows, _, following = seek_rows(query, keys, per_page=per_page, descending=descending,
                                       after=_positive(args, "after", 0))  # fmt: skip
        number, more = None, following is not None
    else:
        rows = list(db.session.scalars(query.offset((numbered - 1) * per_page).limit(per_page + 1)))
        more = len(rows) > per_page
        rows = rows[:per_page]
    assert (record is None) != (many is None)
    listing = {
        "items": many(rows) if many is not None else [record(row) for row in rows],  # type: ignore[misc]
        "page": number, "per_page": per_page, "next_page": number + 1 if more and number else None,
    }  # fmt: skip
    if seek is not None:
        listing["next_after"] = rows[-1].id if more else None
    return listing


def page_of_list(
    items: list[Any], args: Mapping[str, str], record: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """`page` over a list already in memory (the requests service's cached list)."""
    limits = get_settings().api
    number = _positive(args, "page", 1, PAGE_MAX)
    per_page = _positive(args, "per_page", limits.page_size, limits.max_page_size)
    start = (number - 1) * per_page
    chunk = items[start : start + per_page]
    more = len(items) > start + per_page
    return {"items": [record(i) for i in chunk], "page": number, "per_page": per_page,
            "next_page": number + 1 if more else None}  # fmt: skip


def get_or_404(model: type, object_id: int, what: str, *options: Any) -> Any:
    """The row, with what `options` load along (e.g. records.TASK_DETAIL), or a 404 problem."""
    row = db.session.get(model, object_id, options=options) if 0 < object_id <= ID_MAX else None
    if row is None:
        raise ApiProblem(404, "Not found", f"no {what} {object_id}", "not_found")
    return row


def valid_id(object_id: int, what: str) -> int:
    """An id of a path, or 404 beyond what ids can be."""
    if not 0 < object_id <= ID_MAX:
        raise ApiProblem(404, "Not found", f"no {what} {object_id}", "not_found")
    return object_id


def current_token() -> dict[str, Any] | None:
    """The personal token of this request (None: the browser's session)."""
    token = g.get("api_token")
    return records.token_record(token) if token is not None else None


# --- when a launch goes ---------------------------------------------------------------------------------

SCHEDULE_FIELDS = ("at", "after_task", "at_percent")


def schedule_from(values: Mapping[str, Any], user: User) -> launch_schedule.Schedule:
    """A launch schedule from ``at`` (ISO 8601; without an offset: in the user's time zone, else UTC),
    ``after_task`` (a task name or PanDA task id) and ``at_percent`` (of its jobs done); none: now."""
    errors: list[FieldError] = []
    at, after, percent = None, None, None
    raw_at = str(values.get("at") or "").strip()
    if raw_at:
        try:
            parsed = datetime.fromisoformat(raw_at.replace("Z", "+00:00"))
            at = (
                parsed.astimezone(UTC)
                if parsed.tzinfo
                else launch_schedule.to_utc(parsed, user.time_zone or "UTC")
            )
        except (ValueError, launch_schedule.ScheduleRefused):
            errors.append(FieldError("at", "an ISO 8601 date and time, e.g. 2026-12-01T08:00:00Z"))
    name = str(values.get("after_task") or "").strip()
    if name:
        after = None if name.isdigit() and int(name) > ID_MAX else launch_schedule.find_task(name)
        if after is None:
            errors.append(FieldError("after_task", f"no task named {name!r} or with PanDA id {name}"))
    raw_percent = values.get("at_percent")
    if raw_percent not in (None, ""):
        if not str(raw_percent).isdigit() or after is None and not name:
            errors.append(FieldError("at_percent", "a whole percentage, with after_task"))
        else:
            percent = int(str(raw_percent))
    if errors:
        raise invalid(errors)
    return launch_schedule.Schedule(at, after, percent)


_API_NAMES = {"launch_at": "at"}  # the forms' field names the API calls otherwise


def _field_problem(errors: Mapping[str, list[str]]) -> ApiProblem:
    """The services' field errors (a schedule's ``launch_at`` … under the API's ``at`` …)."""
    return invalid([FieldError(_API_NAMES.get(k, k), m) for k, messages in errors.items() for m in messages])


# --- tasks ------------------------------------------------------------------------------------------

TASK_EXTRA_FIELDS = ("idempotency_key", "cloned_from_task", "cloned_from_bunch")


def tasks_list(args: Mapping[str, str], table: str = "tasks") -> dict[str, Any]:
    """A task table (``tasks``: the task list; ``successful``: done and finished tasks, with the totals
    row summed over every match) with its filter (app/monitoring/filters.py) and sort keys."""
    user = g.get("user")
    shown = monitoring_tables.TABLES[table]
    try:
        task_filter = TaskFilter.from_args(
            args, user_id=user.id if user else None, steps=get_settings().tasks.step_types
        )
        query = monitoring_tables.ordered(
            select(Task).options(defer(Task.spec), defer(Task.params))
            .where(*monitoring_tables.conditions(shown, task_filter)),
            str(args.get("sort") or shown.default_sort),
            str(args.get("order") or "desc"),
            shown,
        )  # fmt: skip
    except BadFilter as exc:
        raise invalid([FieldError("query", str(exc))], str(exc)) from None
    listing = page(query, args, many=task_records)
    if shown is monitoring_tables.SUCCESSFUL_TABLE:
        sums = monitoring_tables.totals(shown, task_filter)
        listing["totals"] = {"tasks": sums["tasks"], "events_per_job": sums["events_per_job"],
                             **{name: sums[key] for key, name in monitoring_tables.TOTALS_FIELDS.items()}}  # fmt: skip
    return listing


def status_counts(args: Mapping[str, str]) -> dict[str, Any]:
    """The task list's counts per PanDA status of what its other filters match (capped, as the table's
    counts are; statuses without tasks left out)."""
    user = g.get("user")
    try:
        task_filter = TaskFilter.from_args(
            args, user_id=user.id if user else None, steps=get_settings().tasks.step_types
        )
    except BadFilter as exc:
        raise invalid([FieldError("query", str(exc))], str(exc)) from None
    counts = monitoring_tables.status_counts(monitoring_tables.CURRENT, task_filter)
    return {"counts": [{"status": name, "count": count} for name, count in counts],
            "cap": count_cap()}  # fmt: skip


def _form_value(name: str, value: Any) -> str | None:
    """A JSON value as the task form would receive it (None: not sent)."""
    if value is None or value is False:
        return None
    if value is True:
        return "y"
    if name == "template_overrides" and isinstance(value, dict):
        return json.dumps(value) if value else None
    if isinstance(value, str | int | float):
        return str(value)
    raise invalid([FieldError(name, "must be a string, a number or a boolean")])


def body_object(body: Any, what: str = "the body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid([FieldError("body", f"{what} must be a JSON object")], f"{what} must be a JSON object")
    return body


def task_definition(body: Any, *, is_admin: bool, target: str) -> TaskDefinition:
    """The definition a JSON object states, checked by the task form's fields (as in the UI: the
    admin-only fields refuse the request for others, audited)."""
    body = body_object(body)
    unknown = sorted(set(body) - set(DEFINITION_FIELDS) - set(TASK_EXTRA_FIELDS))
    if unknown:
        raise invalid([FieldError(name, "unknown field") for name in unknown])
    sent = {
        name: v
        for name, value in body.items()
        if name in DEFINITION_FIELDS and (v := _form_value(name, value)) is not None
    }
    refused = tasks.refuse_admin_fields(sent, is_admin=is_admin, target=target)
    if refused:
        raise ApiProblem(403, "Forbidden", f"only admins may set: {', '.join(refused)}; nothing was saved", "forbidden",
                         [FieldError(name, "only admins may set this field") for name in refused], keeps_work=True)  # fmt: skip
    form = TaskForm(formdata=MultiDict(sent), meta={"csrf": False}).configure(get_settings())
    valid = form.validate()
    definition = form.to_definition() if valid else None
    if definition is None:
        form.overrides_value()  # its JSON error is reported with the rest
        raise invalid(field_errors({name: list(errors) for name, errors in form.errors.items() if errors}))
    return tasks.complete_definition(definition)


def _planned(planned: tasks.PlannedTask, item: tasks.PreviewItem) -> dict[str, Any]:
    return {
        "name": planned.spec.task_name, "output_dataset": planned.spec.output_dataset,
        "parent": planned.parent.name if planned.parent else None, "params": planned.params,
        "diff": item.diff, "diff_against": item.diff_against,
    }  # fmt: skip


def preview_tasks(body: Any, user: User, *, is_admin: bool, target: str) -> dict[str, Any]:
    """What "Preview" shows: every task's exact PanDA parameters and its difference (nothing saved)."""
    definition = task_definition(body, is_admin=is_admin, target=target)
    try:
        plan = tasks.plan_bunch(definition, user, is_admin=is_admin)
    except tasks.ValidationFailed as exc:
        raise invalid(field_errors(exc.errors)) from None
    items = tasks.preview(plan)
    return {"definition": definition.to_dict(), "warnings": plan.warnings,
            "tasks": [_planned(p, i) for p, i in zip(plan.tasks, items, strict=True)]}  # fmt: skip


def _clone_source(body: Mapping[str, Any]) -> Task | TaskBunch | None:
    for name, model in (("cloned_from_task", Task), ("cloned_from_bunch", TaskBunch)):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise invalid([FieldError(name, "must be an id (a whole number)")])
            return get_or_404(model, value, name.removeprefix("cloned_from_"))
    return None


def create_tasks(
    body: Any, user: User, *, is_admin: bool, key: str, target: str, when: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """The task form's "Create": save the bunch and launch it as `when` says (now by default) once
    committed. A repeated key returns the bunch it created (``created`` False) unless the definition
    changed (409)."""
    definition = task_definition(body, is_admin=is_admin, target=target)
    schedule = schedule_from(when, user)
    key = str(body.get("idempotency_key") or key or tasks.new_idempotency_key())
    try:
        result = tasks.submit_bunch(
            definition, key, user, is_admin=is_admin, cloned_from=_clone_source(body), schedule=schedule
        )
    except tasks.ValidationFailed as exc:
        raise _field_problem(exc.errors) from None
    except tasks.FormReused as exc:
        raise ApiProblem(409, "Conflict", str(exc), "idempotency_key_reused") from None
    return {**records.bunch_record(result.bunch), "warnings": result.warnings}, result.created


def clone_definition(source: Task | TaskBunch) -> dict[str, Any]:
    """The UI's clone: the source's definition under the next free production number, to be edited
    and sent to ``POST /tasks`` with ``cloned_from_task`` or ``cloned_from_bunch``."""
    key = "cloned_from_task" if isinstance(source, Task) else "cloned_from_bunch"
    return {**tasks.clone_definition(source).to_dict(), key: source.id}


def relaunch_definition(task: Task) -> dict[str, Any]:
    """The task page's "relaunch from the manifest": a new single task's definition, from what was
    sent to PanDA, to be edited and sent to ``POST /tasks`` with ``cloned_from_task``."""
    definition = tasks.relaunch_definition(task)
    if definition is None:
        raise ApiProblem(409, "Conflict", f"{task.name} has no submission manifest yet", "no_manifest")
    return {**definition.to_dict(), "cloned_from_task": task.id}


def edit_bunch(bunch: TaskBunch, body: Any, user: User, *, is_admin: bool, target: str) -> dict[str, Any]:
    """The bunch page's "edit": a bunch whose launches all still wait, given a new definition (its
    size kept); with ``preview`` true each task's difference only, else saved (the launches stay as
    scheduled)."""
    values = dict(body_object(body))
    preview = values.pop("preview", False) is True
    reason = edit_services.not_editable_reason(bunch)
    if reason:
        raise ApiProblem(409, "Conflict", f"{bunch.base_name} is {reason}", "not_editable")
    definition = task_definition(values, is_admin=is_admin, target=target)
    try:
        if preview:
            items = edit_services.preview_edit(bunch, definition, user, is_admin=is_admin)
            return {"changed": [], "tasks": [{"name": i.name, "diff": i.diff, "diff_against": i.diff_against}
                                             for i in items]}  # fmt: skip
        changed = edit_services.save_edit(bunch, definition, user, is_admin=is_admin)
    except tasks.ValidationFailed as exc:
        raise _field_problem(exc.errors) from None
    return {"changed": changed, "tasks": []}


def bunch_detail(bunch: TaskBunch, args: Mapping[str, str]) -> dict[str, Any]:
    """The bunch page: its record, launch progress (the whole bunch's) and tasks: every one, or with
    ``after`` (a bunch index, 0 for the start) the next BUNCH_ROWS by position and ``next_after``."""
    counts = tasks.bunch_progress(bunch)
    progress = {**asdict(counts), "done": counts.done}
    if not str(args.get("after") or "").strip():
        bunch = db.session.scalars(tasks.bunch_for_page(bunch.id)).one()  # the tasks' launches in one statement
        return {**records.bunch_record(bunch), "progress": progress, "tasks": task_records(bunch.tasks), "next_after": None}
    after = _positive(args, "after", 0) if str(args.get("after")).strip() != "0" else 0
    rows = tasks.bunch_tasks_page(bunch.id, after=after)
    return {**records.bunch_record(bunch), "progress": progress, "tasks": task_records(rows.tasks), "next_after": rows.after}


# --- actions ----------------------------------------------------------------------------------------


SINGLE_ACTIONS = tuple(a for a in Action if a is not Action.MODIFY)  # a modification has its own route


def action_of(name: str) -> Action:
    if name not in SINGLE_ACTIONS:
        raise ApiProblem(
            404, "Not found", f"no action {name!r} (modify: POST /tasks/{{id}}/modify)", "not_found"
        )
    return Action(name)


def _refused(exc: actions.ActionRefused) -> ApiProblem:
    status = exc.verdict.http_status
    return ApiProblem(
        status, "Forbidden" if status == 403 else "Conflict", exc.verdict.reason, "action_refused"
    )


def act(task: Task, name: str, body: Any, user: User) -> dict[str, Any]:
    """One action on one task, as the task page's action form does it; PanDA's answer is in the command."""
    action = action_of(name)
    try:
        command = actions.act_from_form(task, action, body_object(body), user)
    except actions.InvalidInput as exc:
        raise invalid(field_errors(exc.errors)) from None
    except actions.ActionRefused as exc:
        raise _refused(exc) from None
    return records.command_record(command)


def _change(change: modify.Change) -> dict[str, Any]:
    return {"field": change.field, "label": change.label, "current": change.current, "new": change.new}


def modify_task(task: Task, body: Any, user: User) -> dict[str, Any]:
    """The modification page: with ``preview`` true only the difference, else each change sent to PanDA."""
    values = body_object(body)
    try:
        if values.get("preview") is True:
            return {"changes": [_change(c) for c in modify.plan_changes(task, values, user)], "commands": []}
        commands = modify.modify(task, values, user)
    except actions.InvalidInput as exc:
        raise invalid(field_errors(exc.errors)) from None
    except actions.ActionRefused as exc:
        raise _refused(exc) from None
    return {"changes": [], "commands": [records.command_record(c) for c in commands]}


def bulk_record(bulk: BulkAction) -> dict[str, Any]:
    progress = bulk_services.progress(bulk)
    items = [{"task_id": i.task_id, "outcome": str(i.outcome), "reason": i.reason} for i in progress.items]
    return {**records.bulk_record(bulk, progress.counts), "items": items}


def start_bulk(body: Any, user: User) -> dict[str, Any]:
    """A bulk action: ``action``, the selection (``task_ids``; or ``filter`` with the task list's
    filters; or ``bunch_id``/``chain_id``/``request_id``), ``params`` and ``comment``."""
    body = body_object(body)
    form = MultiDict(_selection_fields(body))
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise invalid([FieldError("params", "must be an object")])
    try:
        action = bulk_services.bulk_action(str(body.get("action") or ""))
        bulk = bulk_services.start(
            selection_from(form), action, {**params, "comment": body.get("comment") or ""}, user
        )
    except actions.InvalidInput as exc:
        raise invalid(field_errors(exc.errors)) from None
    except actions.ActionRefused as exc:
        raise _refused(exc) from None
    except BadSelection as exc:
        raise invalid([FieldError("selection", str(exc))]) from None
    except ValueError as exc:
        raise invalid([FieldError("action", str(exc))]) from None
    return bulk_record(bulk)


def retry_bulk(bulk: BulkAction, user: User) -> dict[str, Any]:
    """The bulk page's "retry the failed ones": the same action, parameters and comment on the tasks
    whose command PanDA could not be reached for or did not answer (a new bulk action)."""
    retry = bulk_services.retry_form(bulk)
    try:
        started = bulk_services.start(retry["selection"], bulk_services.bulk_action(bulk.action), retry["values"], user,
                                      retry_of=bulk.id)  # fmt: skip
    except actions.InvalidInput as exc:
        raise invalid(field_errors(exc.errors)) from None
    except actions.ActionRefused as exc:
        raise _refused(exc) from None
    except BadSelection as exc:
        raise ApiProblem(409, "Conflict", str(exc), "nothing_to_retry") from None
    return bulk_record(started)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= ID_MAX


def _values(value: Any) -> list[str]:
    """A filter value of a JSON body as query-string values (a list repeats its key)."""
    values = value if isinstance(value, list) else [value]
    return ["true" if v is True else "" if v is False or v is None else str(v) for v in values]


def _selection_fields(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The bulk form's fields for the selection a JSON body names."""
    if "task_ids" in body:
        ids = body["task_ids"]
        if not isinstance(ids, list) or not all(_is_id(i) for i in ids):
            raise invalid([FieldError("task_ids", "must be a list of task ids")])
        return [("scope", "ids"), *(("task_id", str(i)) for i in ids)]
    if "filter" in body:
        filters = body_object(body["filter"], "filter")
        pairs = [(k, v) for k in FILTER_FIELDS if k in filters for v in _values(filters[k])]
        return [("scope", "filter"), *pairs]
    for scope in ("bunch", "chain", "request"):
        if f"{scope}_id" in body:
            if not _is_id(body[f"{scope}_id"]):
                raise invalid([FieldError(f"{scope}_id", f"must be a {scope} id")])
            return [("scope", scope), ("target_id", str(body[f"{scope}_id"]))]
    raise invalid(
        [FieldError("selection", "name the tasks: task_ids, filter, bunch_id, chain_id or request_id")]
    )


# --- failed launches and unanswered submits (the task, bunch and chain pages' buttons) -------------


def resend_bunch(bunch: TaskBunch, user: User) -> dict[str, Any]:
    """The bunch page's "resend failed": a new launch for each task whose launch failed."""
    return {"changed": launch_services.resend_failed_and_dispatch(bunch, user)}


def resend_chain_step(chain: Chain, position: int, user: User) -> dict[str, Any]:
    """The chain page's "resend failed" of one step; later steps waiting for them resume."""
    if position not in {step.position for step in chain.steps}:
        raise ApiProblem(404, "Not found", f"chain {chain.id} has no step {position}", "not_found")
    return {"changed": chains.resend_failed_step(chain, position, user)}


def _undecided(task: Task) -> ApiProblem:
    return ApiProblem(
        409, "Conflict", f"{task.name} is not waiting for a decision about its submit", "not_undecided"
    )


def mark_not_submitted(task: Task, user: User) -> dict[str, Any]:
    """After checking PanDA by hand: the unanswered submit did not arrive; the next attempt is sent."""
    launch = launch_services.mark_not_submitted_and_dispatch(task, user)
    if launch is None:
        raise _undecided(task)
    return records.launch_record(launch)


def adopt(task: Task, body: Any, user: User) -> dict[str, Any]:
    """After checking PanDA by hand: the unanswered submit arrived as ``panda_task_id`` (PanDA, asked
    with the caller's token, must confirm the name)."""
    panda_id = body_object(body).get("panda_task_id")
    if not isinstance(panda_id, int) or not _is_id(panda_id):
        raise invalid([FieldError("panda_task_id", "the PanDA task id, a whole number")])
    error = launch_services.adopt(task, panda_id, user)
    if error:
        raise ApiProblem(409, "Conflict", error, "not_adopted", keeps_work=True)  # the refusal is audited
    return records.launch_record(task.latest_launch) if task.latest_launch else {}


def look_up(tasks: list[Task], user: User) -> dict[str, Any]:
    """Look the tasks' unanswered submits up in PanDA now, instead of waiting for the background pass."""
    return {"result": launch_services.look_up_now(launch_services.undecided_of(tasks), user)}


def refresh_task(task: Task) -> dict[str, Any]:
    """ "Sync this task now": read it from PanDA with its owner's token and store what PanDA says."""
    notice = sync_services.sync_task_now(task)
    return {"message": notice.message, "category": notice.category}


def refresh_chain(chain: Chain) -> dict[str, Any]:
    notice = chains.refresh_from_panda(chain)
    return {"message": notice.message, "category": notice.category}


# --- chains -----------------------------------------------------------------------------------------


def chains_list(args: Mapping[str, str]) -> dict[str, Any]:
    listing = page(chains.chains_query(), args, lambda chain: chain)
    task_ids = chains.step_task_ids([s.bunch_id for chain in listing["items"] for s in chain.steps])
    return {**listing, "items": [records.chain_record(chain, task_ids) for chain in listing["items"]]}


def _problems(problems: list[Problem]) -> ApiProblem:
    return invalid(
        [FieldError(_API_NAMES.get(p.field, p.field), p.text, p.step) for p in problems],
        "the chain definition has problems",
    )


def chain_definition(body: Any, text: str | None) -> ChainDefinition:
    """The chain a document describes (a JSON object, or YAML/JSON text), checked against the schema."""
    try:
        document = schema.loads(text) if text is not None else body
        return schema.from_document(document)
    except schema.SchemaError as exc:
        raise _problems(exc.problems) from None


def _step_plan(step: chains.StepPlan) -> dict[str, Any]:
    return {
        "position": step.position, "step": step.definition.step, "kind": step.kind,
        "events_per_task": step.events_per_task,
        "tasks": [{**asdict(t), "params": json.loads(t.params_json), "params_json": None} for t in step.tasks],
    }  # fmt: skip


def preview_chain(definition: ChainDefinition, user: User, *, is_admin: bool) -> dict[str, Any]:
    """The chain form's preview: every task of every step with its exact parameters (nothing saved)."""
    try:
        plan = chains.plan_chain(definition, user, is_admin=is_admin)
    except chains.ChainInvalid as exc:
        raise _problems(exc.problems) from None
    return {"definition": schema.to_document(plan.chain), "warnings": plan.warnings,
            "task_count": plan.task_count, "steps": [_step_plan(s) for s in plan.steps]}  # fmt: skip


def create_chain(
    definition: ChainDefinition, user: User, *, is_admin: bool, key: str, when: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Save the chain and launch its first step as `when` says once committed (later steps wait for
    their parents)."""
    schedule = schedule_from(when, user)
    try:
        result = chains.submit_chain(
            definition, key or chains.new_idempotency_key(), user, is_admin=is_admin, schedule=schedule
        )
    except chains.ChainInvalid as exc:
        raise _problems(exc.problems) from None
    except chains.FormReused as exc:
        raise ApiProblem(409, "Conflict", str(exc), "idempotency_key_reused") from None
    return {**records.chain_record(result.chain), "warnings": result.warnings}, result.created


def chain_detail(chain: Chain, args: Mapping[str, str]) -> dict[str, Any]:
    """The chain with every task of each step, or with ``tasks=first`` the first 50 of each (as the
    chain page shows them; each step's ``bunch_id`` pages on: ``GET /bunches/{id}?after=50``)."""
    shown = str(args.get("tasks") or "all")
    if shown not in ("all", "first"):
        raise invalid([FieldError("tasks", "all or first")])
    view = chains.chain_page(chain, all_rows=shown == "all")
    rows = [r for s in view.steps for r in s.rows]
    by_id = {record["id"]: record for record in task_records([r.task for r in rows])}
    steps = [{"position": s.step.position, "step": s.step.step, "bunch_id": s.bunch.id, "kind": s.kind,
              "states": s.states, "tasks": [{**by_id[r.task.id], "state": r.state, "reason": r.reason}
                                           for r in s.rows]} for s in view.steps]  # fmt: skip
    return {**records.chain_record(chain), "definition": chain.definition, "steps": steps}


def chain_tasks_action(chain: Chain, name: str, body: Any, user: User) -> dict[str, Any]:
    """An action on every task of the chain: a bulk action (the matrix filters the tasks)."""
    return start_bulk({**body_object(body), "action": action_of(name).value, "chain_id": chain.id}, user)


def chain_sweep(source: Chain, body: Any, user: User, *, is_admin: bool) -> tuple[dict[str, Any], bool]:
    """The chain page's sweep: the source with ``parameter`` varied over ``values``, one chain per
    value under its own production; ``preview`` lists the variants and their problems (nothing saved),
    else every variant is created and launched, or none when any has a problem."""
    body = body_object(body)
    values = body.get("values")
    if not isinstance(values, list) or not all(isinstance(v, str | int | float) for v in values):
        raise invalid([FieldError("values", 'a list of values, e.g. ["10GeV", "27GeV"]')])
    form = SweepForm(formdata=MultiDict({"parameter": str(body.get("parameter") or ""),
                                         "values": "\n".join(str(v) for v in values)}), meta={"csrf": False})  # fmt: skip
    if not form.validate():
        raise invalid(field_errors({k: list(v) for k, v in form.errors.items()}))
    if body.get("preview") is True:
        variants = chains.sweep(source, form.parameter.data, form.value_list(), is_admin=is_admin)
        return {"variants": [{"value": v.value, "problems": v.problems,
                              "definition": schema.to_document(v.chain) if v.chain else None} for v in variants]}, False  # fmt: skip
    key = str(body.get("idempotency_key") or chains.new_idempotency_key())[:40]
    try:
        created = chains.create_sweep(
            source, form.parameter.data, form.value_list(), user, key, is_admin=is_admin
        )
    except chains.ChainInvalid as exc:
        raise _problems(exc.problems) from None
    return {"chains": [records.chain_record(c) for c in created]}, True


def chain_clone(chain: Chain) -> dict[str, Any]:
    return schema.to_document(chains.clone_definition(chain))


# --- launches, requests, audit ------------------------------------------------------------------------


def launches_list(args: Mapping[str, str]) -> dict[str, Any]:
    """The Launches page's list (``state``: upcoming, running, done, failed, cancelled; ``owner``);
    ``status``, ``task_id`` and ``bunch_id`` narrow it further."""
    state, status = str(args.get("state") or ""), str(args.get("status") or "")
    if state and state not in launch_listing.STATES:
        raise invalid([FieldError("state", f"must be one of {', '.join(launch_listing.STATES)}")])
    if status and status not in set(LaunchStatus):
        raise invalid([FieldError("status", f"must be one of {', '.join(LaunchStatus)}")])
    filters = launch_listing.LaunchFilters(state or None, str(args.get("owner") or "") or None)
    query = launch_listing.launches_query(filters)
    if status:
        query = query.where(Launch.status == status)
    for name, column in (("task_id", Launch.task_id), ("bunch_id", Task.bunch_id)):  # the query joins Task
        if args.get(name):
            query = query.where(column == _positive(args, name, 0))
    return page(query, args, records.launch_record, seek=launch_listing.launch_order(filters))


def _launches(launch: Launch, whole_bunch: Any) -> list[Launch]:
    if not isinstance(whole_bunch, bool):
        raise invalid([FieldError("whole_bunch", "true or false")])
    return launch_schedule.targets(launch, whole_bunch)


def cancel_launch(launch: Launch, body: Any, user: User) -> dict[str, Any]:
    """Cancel a pending launch (``whole_bunch``: every pending launch of its bunch): it never runs."""
    try:
        count = launch_schedule.cancel(_launches(launch, body_object(body).get("whole_bunch", False)), user)
    except launch_schedule.NotAllowed as exc:
        raise ApiProblem(403, "Forbidden", str(exc), "forbidden") from None
    if not count:
        raise ApiProblem(
            409, "Conflict", f"the launch of {launch.task.name} is no longer pending", "not_pending"
        )
    return {"changed": count}


def reschedule_launch(launch: Launch, body: Any, user: User) -> dict[str, Any]:
    """Give a pending launch (``whole_bunch``: its bunch's) a new schedule: ``at``, ``after_task``,
    ``at_percent``; none of them: now."""
    values = body_object(body)
    try:
        count = launch_schedule.reschedule(_launches(launch, values.get("whole_bunch", False)),
                                           schedule_from(values, user), user)  # fmt: skip
    except launch_schedule.NotAllowed as exc:
        raise ApiProblem(403, "Forbidden", str(exc), "forbidden") from None
    except launch_schedule.ScheduleRefused as exc:
        raise _field_problem(exc.errors) from None
    if not count:
        raise ApiProblem(
            409, "Conflict", f"the launch of {launch.task.name} is no longer pending", "not_pending"
        )
    return {"changed": count}


def requests_list(args: Mapping[str, str]) -> dict[str, Any]:
    found = prodrequests.request_list(
        prodrequests.RequestFilters(str(args.get("status") or ""), str(args.get("group") or "")), 1
    )
    shown = found.page._query_args["items"]
    listing = page_of_list(shown, args, lambda r: r.to_json())
    return {**listing, "service_error": found.snapshot.error.message if found.snapshot.error else None}


def _prefill_problem(exc: RequestsServiceError) -> ApiProblem:
    if isinstance(exc, RequestNotFound):
        return ApiProblem(404, "Not found", exc.message, "not_found")
    # 424, not 502: the panel is fine, the service it depends on is not (a 5xx is kept for the panel's own faults).
    return ApiProblem(424, "Failed dependency", exc.message, "requests_service")


def request_task_definition(request_id: int) -> dict[str, Any]:
    """The task form as "New task from this request" fills it (to complete and send to ``POST /tasks``)."""
    try:
        definition, _ = prodrequests.task_prefill(request_id)
    except RequestsServiceError as exc:
        raise _prefill_problem(exc) from None
    return definition.to_dict()


def request_chain_definition(request_id: int) -> dict[str, Any]:
    """The chain document as "New chain from this request" fills it (to complete and send to ``POST /chains``)."""
    try:
        chain, _ = prodrequests.chain_prefill(request_id)
    except RequestsServiceError as exc:
        raise _prefill_problem(exc) from None
    return schema.to_document(chain)


def refresh_requests() -> dict[str, Any]:
    """The Requests page's "Refresh": ask the requests service again now, whatever the cache's age."""
    snapshot = prodrequests.refresh()
    return {"count": len(snapshot.requests), "service_error": snapshot.error.message if snapshot.error else None}


def request_detail(request_id: int, args: Mapping[str, str]) -> dict[str, Any]:
    """A request with its chains, progress and its tasks' ids, TASKS_SHOWN at a time (``after``)."""
    if not 0 < request_id <= ID_MAX:
        raise ApiProblem(404, "Not found", f"no request {request_id}", "not_found")
    after = _positive(args, "after", 0) if str(args.get("after") or "").strip() != "0" else 0
    view = prodrequests.request_view(request_id, after)
    if view.not_found and not view.tasks and not view.chains:
        raise ApiProblem(404, "Not found", view.error or f"no request {request_id}", "not_found")
    progress = view.progress
    return {
        "id": request_id, "request": view.request.to_json() if view.request else None, "service_error": view.error or None,
        "chain_ids": [c.chain.id for c in view.chains], "task_ids": [t.id for t in view.tasks],
        "task_count": view.task_count, "next_after": view.next_after,
        "progress": None if progress is None else {**dataclasses.asdict(progress), "percent": progress.percent},
    }  # fmt: skip


def notifications(user: User, body: Any = None) -> dict[str, Any]:
    """The user's opt-in to their alerts by e-mail and on the team's webhook (``body``: the choices to
    save; a choice left out stays as it was)."""
    current = alerts.preference(user)
    choices = {"email": bool(current.email), "webhook": bool(current.webhook)}
    if body is not None:
        values = body_object(body)
        wrong = [FieldError(k, "true or false") for k in ("email", "webhook") if k in values and not isinstance(values[k], bool)]
        unknown = [FieldError(k, "unknown field") for k in sorted(set(values) - set(choices))]
        if wrong or unknown:
            raise invalid(wrong + unknown)
        choices.update({k: values[k] for k in choices if k in values})
        alerts.save_preference(user, **choices)
    return choices


def _totals(totals: stats.Totals) -> dict[str, Any]:
    return {**asdict(totals), "output_tb": totals.output_tb, "walltime_h": totals.walltime_h}


def _rows(rows: list[stats.Row]) -> list[dict[str, Any]]:
    return [{"label": r.label, "totals": _totals(r.totals), "filter": r.link} for r in rows]


def statistics(args: Mapping[str, str]) -> dict[str, Any]:
    """The statistics page: totals, per week and month, splits; ``since`` (YYYY-MM-DD) compares."""
    try:
        page = stats.statistics(stats.parse_since(args.get("since")))
    except stats.BadParameter as exc:
        raise invalid([FieldError("since", str(exc))]) from None
    return {
        "since": page.since.isoformat() if page.since else None, "total": _totals(page.total),
        "since_total": _totals(page.since_total) if page.since_total else None,
        "weeks": _rows(page.weeks), "months": _rows(page.months),
        "splits": {title: _rows(rows) for title, rows in page.splits.items()},
    }  # fmt: skip


def error_summary(args: Mapping[str, str]) -> dict[str, Any]:
    """Failed jobs grouped by normalised error: overall, or of a ``task``, ``bunch`` or ``chain``."""
    scope = stats_errors.Scope(
        **{f"{k}_id": _positive(args, k, 0) for k in ("task", "bunch", "chain") if args.get(k)}
    )
    groups = stats_errors.error_groups(scope)
    return {"groups": [{**{k: getattr(g, k) for k in ("source", "code", "message", "example", "jobs", "tasks")},
                        "memory": g.memory, "affected": [asdict(a) for a in g.affected]} for g in groups]}  # fmt: skip


def audit_list(args: Mapping[str, str]) -> dict[str, Any]:
    """The audit page's list with its filters (``action``, ``user``, ``outcome``, ``target``, ``since``, ``until``)."""
    form = AuditFilterForm(args if isinstance(args, MultiDict) else MultiDict(args))
    wrong = [
        FieldError(f.name, f"{f.label.text}: {f.description or 'wrong value'}") for f in form if f.errors
    ]
    if wrong:
        raise invalid(wrong)
    query = audit_query(action=form.value("action") or "", username=form.value("user") or "",
                        outcome=form.value("outcome") or "", target=form.value("target") or "",
                        since=form.value("since"), until=form.value("until"))  # fmt: skip
    return page(query, args, records.audit_record, seek=(AUDIT_KEYS, True))
