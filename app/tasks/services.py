"""Task services: validation, planning (names, offsets, parameters), preview, creation, cloning.

Services take plain data, flush and never commit (the request commits). Sending the launches to
PanDA is ``app.launches.dispatcher``.
"""

from __future__ import annotations

import difflib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from sqlalchemy import Select, case, func, literal, select, true, union_all
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import QueryableAttribute, aliased, defer, joinedload, selectinload
from werkzeug.datastructures import FileStorage

from app import clock
from app.audit.services import record
from app.auth.models import User
from app.config import Settings, TaskSettings, get_settings
from app.extensions import SeekPage, db
from app.inputs import MAX_DOCUMENT_CHARS, parse_document
from app.launches import schedule as launch_schedule
from app.launches.dispatcher import dispatch_soon
from app.launches.models import Launch
from app.launches.services import new_launch
from app.launches.states import LaunchStatus
from app.panda import taskparams
from app.panda.services import calls_for_task
from app.prodrequests.checks import definition_warnings
from app.sync.models import TaskStatusChange
from app.sync.services import status_history
from app.tasks import naming
from app.tasks.models import Task, TaskBunch
from app.tasks.specs import ADMIN_FIELDS, TaskDefinition, TaskSpec, expand_bunch, next_step

# Cloning also resets what PanDA and the dispatcher recorded about the source.
CLONE_RESET_RUNTIME = ("PanDA task ids", "PanDA status", "launches and manifests")
_SITE_RE = re.compile(r"[A-Za-z0-9_.\-]+")


class ValidationFailed(Exception):
    """Field-level errors: ``errors`` maps a form field name to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class ConcurrentCreate(Exception):
    """Another request created a bunch with this key or these names meanwhile: roll back, look again."""

    def __init__(self, idempotency_key: str) -> None:
        super().__init__(idempotency_key)
        self.idempotency_key = idempotency_key


@dataclass(frozen=True)
class PlannedTask:
    """One task of a bunch before it is saved: its spec, parameters and parent."""

    index: int
    spec: TaskSpec
    params: dict[str, Any]
    parent: Task | None = None


@dataclass
class Plan:
    definition: TaskDefinition
    tasks: list[PlannedTask] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- configuration ---------------------------------------------------------------------------------


def naming_rules(settings: Settings | None = None) -> naming.NamingRules:
    settings = settings or get_settings()
    return naming.NamingRules.from_settings(settings.tasks)


@lru_cache(maxsize=8)
def _template_cached(path: str, mtime: float) -> taskparams.TaskTemplate:
    return taskparams.load_template(path or None)


def task_template(settings: Settings | None = None) -> taskparams.TaskTemplate:
    """The task-parameter template: SPD defaults merged with the instance's ``template_file``."""
    settings = settings or get_settings()
    path = settings.tasks.template_file
    if path and not Path(path).is_absolute():
        path = str(Path(settings.instance_dir) / path)
    try:
        mtime = Path(path).stat().st_mtime if path else 0.0
    except OSError as exc:
        raise taskparams.TemplateError(f"tasks.template_file {path} cannot be read: {exc}") from exc
    return _template_cached(path, mtime)


def step_kind(step: str, settings: Settings | None = None) -> str:
    return task_template(settings).kind(step)


# --- validation ------------------------------------------------------------------------------------


def _under_roots(path: str, roots: list[str]) -> bool:
    if not path.startswith("/") or ".." in PurePosixPath(path).parts:
        return False
    return any(path.rstrip("/").startswith(root.rstrip("/") + "/") for root in roots)


def validate_definition(
    definition: TaskDefinition,
    *,
    is_admin: bool,
    settings: Settings | None = None,
    check_parent: bool = True,
    editing: TaskBunch | None = None,
) -> tuple[dict[str, list[str]], list[str]]:
    """Check every rule of the task form; returns (field errors, warnings). Touches the DB only to
    check name uniqueness and the parent task (``check_parent=False``: a chain checks a later step,
    whose parent is the chain's previous step, not saved yet; ``editing``: the bunch being edited,
    whose own names are not taken)."""
    settings = settings or get_settings()
    cfg: TaskSettings = settings.tasks
    rules = naming_rules(settings)
    errors: dict[str, list[str]] = {}
    warnings: list[str] = []

    def err(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    d = definition
    if not is_admin:
        for name in ADMIN_FIELDS:
            value = getattr(d, name)
            if value not in (None, "", {}):
                err(name, "only admins may set this field")

    if d.step not in cfg.step_types:
        err("step", f"step type must be one of {', '.join(cfg.step_types)}")
        return errors, warnings
    try:
        kind = step_kind(d.step, settings)
    except taskparams.TemplateError as exc:
        err("step", str(exc))
        return errors, warnings

    if not 1 <= d.bunch_size <= cfg.max_bunch_size:
        err("bunch_size", f"tasks to launch must be between 1 and {cfg.max_bunch_size}")

    if kind == "generation":
        if d.total_events is None or d.total_events <= 0:
            err("total_events", "total events must be greater than 0")
        elif d.total_events > cfg.max_total_events:
            err("total_events", f"total events must be at most {cfg.max_total_events:,} per task")
        if d.events_per_job is None or d.events_per_job <= 0:
            err("events_per_job", "events per job must be greater than 0")
        elif d.events_per_job > cfg.max_events_per_job:
            err("events_per_job", f"events per job must be at most {cfg.max_events_per_job:,}")
        elif d.total_events and 0 < d.total_events <= cfg.max_total_events:
            jobs = _jobs_per_task(d.total_events, d.events_per_job)
            if jobs > cfg.max_jobs_per_task:
                fewest = _jobs_per_task(d.total_events, cfg.max_jobs_per_task)
                err("events_per_job", f"this makes {jobs:,} jobs per task, at most {cfg.max_jobs_per_task:,} are "
                    f"allowed: raise events per job to {fewest:,} or more")  # fmt: skip
            elif d.events_per_job > d.total_events:
                err(
                    "events_per_job",
                    f"events per job ({d.events_per_job}) must not exceed total events ({d.total_events})",
                )
            elif d.total_events % d.events_per_job:
                last = d.total_events % d.events_per_job
                warnings.append(
                    f"total events ({d.total_events}) are not a multiple of events per job "
                    f"({d.events_per_job}): each task runs {-(-d.total_events // d.events_per_job)} jobs, "
                    f"the last one with {last} events"
                )
        # Fields of the other kind of step would be silently ignored: say so instead.
        if d.files_per_job is not None:
            err("files_per_job", f"files per job is for processing steps; {d.step} generates its events")
        if d.parent_task:
            err("parent_task", f"a parent task is for processing steps; {d.step} reads no input")
    else:
        if d.files_per_job is not None and d.files_per_job <= 0:
            err("files_per_job", "files per job must be greater than 0")
        for name, label in (("total_events", "total events"), ("events_per_job", "events per job")):
            if getattr(d, name) is not None:
                err(name, f"{label} is for generation steps; {d.step} reads its parent's files")

    if d.initial_offset < 0:
        err("initial_offset", "initial offset must be 0 or more")
    limits = {"memory_mb": ("memory", cfg.max_memory_mb, "MB"), "walltime_s": ("walltime", cfg.max_walltime_s, "s")}  # fmt: skip
    for name, (label, most, unit) in limits.items():
        value = getattr(d, name)
        if value is not None and value <= 0:
            err(name, f"{label} must be greater than 0")
        elif value is not None and value > most:
            err(name, f"{label} must be at most {most:,} {unit}")
    if d.files_per_job is not None and d.files_per_job > cfg.max_jobs_per_task:
        err("files_per_job", f"files per job must be at most {cfg.max_jobs_per_task:,}")
    if d.max_attempts is not None and not 1 <= d.max_attempts <= 100:
        err("max_attempts", "max attempts must be between 1 and 100")
    if d.priority is not None and not 0 <= d.priority <= 10000:
        err("priority", "priority must be between 0 and 10000")
    if d.site and not _SITE_RE.fullmatch(d.site):
        err("site", "site must be a PanDA queue name (letters, digits, '_', '-', '.')")
    if d.working_group and not _SITE_RE.fullmatch(d.working_group):
        err("working_group", "working group may contain only letters, digits, '_', '-', '.'")
    if "taskName" in d.template_overrides:
        err(
            "template_overrides",
            "template overrides may not change taskName (names are checked by the panel)",
        )

    if d.cloud not in cfg.clouds:
        err("cloud", f"cloud must be one of {', '.join(cfg.clouds)}")
    if d.data_disk not in cfg.data_disks:
        err("data_disk", f"data disk must be one of {', '.join(cfg.data_disks)}")
    if d.request_id is not None and not re.fullmatch(cfg.request_id_regex, str(d.request_id)):
        err("request_id", "request id must be a positive number, as on spd-requests (e.g. 42)")

    roots = ", ".join(cfg.cvmfs_roots)
    tag: str | None = None
    if not _under_roots(d.exec_path, cfg.cvmfs_roots):
        err("exec_path", f"path to execution files must be an absolute path under {roots}")
    else:
        try:
            tag = naming.physics_tag_from_path(d.exec_path, rules)
        except naming.NamingError as exc:
            err("exec_path", exc.message)
    if not _under_roots(d.container_path, cfg.cvmfs_roots):
        err("container_path", f"path to container must be an absolute path under {roots}")
    elif not re.fullmatch(cfg.container_regex, d.container_path):
        err("container_path", f"path to container must be an image matching {cfg.container_regex}")

    task_name = dataset = None
    try:
        task_name = naming.parse_task_name(d.task_name, rules)
        if task_name.index is not None:
            err("task_name", "enter the task name without the bunch index: members get .1 … .N")
            task_name = None
        elif task_name.step != d.step:
            err("task_name", f"step {task_name.step} does not match step type {d.step}")
            task_name = None
    except naming.NamingError as exc:
        err("task_name", exc.message)
    try:
        if not d.output_dataset.strip():
            raise naming.NamingError(
                "dataset",
                "enter the output dataset name, or a valid task name and execution path to build it",
            )
        dataset = naming.parse_dataset_name(d.output_dataset, rules)
    except naming.NamingError as exc:
        err("output_dataset", exc.message)
    if task_name and dataset:
        try:
            naming.check_consistency(task_name, dataset, d.step, tag, rules)
        except naming.NamingError as exc:
            err("output_dataset", exc.message)

    if not errors and task_name and dataset:
        _check_unique(d, rules, err, editing)
    if kind == "processing" and "task_name" not in errors and check_parent:
        _check_parent(d, rules, err, warnings.append)
    warnings += definition_warnings(d)  # unknown request, paths missing from the path catalog
    return errors, warnings


def _jobs_per_task(total_events: int, events_per_job: int) -> int:
    return -(-total_events // events_per_job)


def _member_names(d: TaskDefinition, rules: naming.NamingRules) -> tuple[list[str], list[str]]:
    base = naming.parse_task_name(d.task_name, rules)
    ds = naming.parse_dataset_name(d.output_dataset, rules)
    names = [naming.bunch_task_name(base, i, d.bunch_size).format(rules) for i in range(1, d.bunch_size + 1)]
    datasets = [naming.bunch_dataset_name(ds, i).format(rules) for i in range(1, d.bunch_size + 1)]
    return names, datasets


def _check_unique(
    d: TaskDefinition, rules: naming.NamingRules, err: Callable[[str, str], None], editing: TaskBunch | None = None
) -> None:
    names, datasets = _member_names(d, rules)
    others = Task.bunch_id != editing.id if editing is not None else true()
    taken = db.session.scalar(select(Task.name).where(Task.name.in_(names), others).limit(1))
    other_bunches = TaskBunch.id != editing.id if editing is not None else true()
    if taken:
        err("task_name", f"task name {taken} is already used")
    elif db.session.scalar(
        select(TaskBunch.id).where(TaskBunch.base_name == d.task_name.strip(), other_bunches).limit(1)
    ):
        err("task_name", f"{d.task_name} is already used by another bunch; choose the next production number")
    taken = db.session.scalar(select(Task.output_dataset).where(Task.output_dataset.in_(datasets), others).limit(1))
    if taken:
        err("output_dataset", f"output dataset {taken} is already used")


def default_parent_name(d: TaskDefinition, rules: naming.NamingRules, settings: Settings) -> str | None:
    """By convention a processing step reads the generation step of the same production."""
    base = naming.parse_task_name(d.task_name, rules)
    template = task_template(settings)
    for step in settings.tasks.step_types:
        if step in template.steps and template.kind(step) == "generation":
            return naming.TaskName(base.production, step).format(rules)
    return None


def resolve_parents(d: TaskDefinition, settings: Settings | None = None) -> list[Task | None]:
    """Parent of each bunch member: ``<parent>.<i>`` when such a bunch member exists, else ``<parent>``."""
    settings = settings or get_settings()
    rules = naming_rules(settings)
    parent_name = (d.parent_task or "").strip() or default_parent_name(d, rules, settings)
    if not parent_name:
        return [None] * d.bunch_size
    members = [parent_name + rules.bunch_suffix.format(n=i) for i in range(1, d.bunch_size + 1)]
    # One query for the bare name and every member name (a bunch may have 1000 members).
    found = {
        t.name: t for t in db.session.scalars(select(Task).where(Task.name.in_([parent_name, *members])))
    }
    return [found.get(member) or found.get(parent_name) for member in members]


def _check_parent(
    d: TaskDefinition, rules: naming.NamingRules, err: Callable[[str, str], None], warn: Callable[[str], None]
) -> None:
    settings = get_settings()
    shown = (d.parent_task or "").strip() or default_parent_name(d, rules, settings) or "(none)"
    parent_bunch = db.session.scalar(select(TaskBunch).where(TaskBunch.base_name == shown))
    if parent_bunch is not None and parent_bunch.size > 1 and parent_bunch.size != d.bunch_size:
        err("bunch_size", f"tasks to launch ({d.bunch_size}) must match the {parent_bunch.size} tasks of "
                          f"parent bunch {shown}: task i reads the output of {shown}.i")  # fmt: skip
        return
    parents = resolve_parents(d, settings)
    if any(p is None for p in parents):
        err("parent_task", f"parent task {shown} does not exist in the panel")
        return
    absent = sorted({p.name for p in parents if p is not None and p.panda_task_id is None})
    if absent:
        listed = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        warn(f"{len(absent)} parent task(s) have not reached PanDA yet ({listed}): their {d.step} tasks "
             "wait until they do (resend the failed ones on the parent's bunch page).")  # fmt: skip


# --- planning, preview ----------------------------------------------------------------------------


def plan_bunch(
    definition: TaskDefinition,
    user: User,
    *,
    is_admin: bool,
    settings: Settings | None = None,
    editing: TaskBunch | None = None,
) -> Plan:
    """Validate and expand a definition into tasks with their exact PanDA parameters (nothing saved;
    ``editing``: the not yet submitted bunch this definition replaces)."""
    settings = settings or get_settings()
    errors, warnings = validate_definition(definition, is_admin=is_admin, settings=settings, editing=editing)
    if errors:
        raise ValidationFailed(errors)
    rules = naming_rules(settings)
    template = task_template(settings)
    parents: list[Task | None] = [None] * definition.bunch_size
    if template.kind(definition.step) == "processing":
        parents = resolve_parents(definition, settings)
    specs = expand_bunch(
        definition,
        rules,
        user_name=user.name,
        input_datasets=[p.output_dataset if p else None for p in parents],
    )
    plan = Plan(definition, warnings=warnings)
    for i, (spec, parent) in enumerate(zip(specs, parents, strict=True), start=1):
        try:
            params = taskparams.build_task_params(spec, template)
        except taskparams.TemplateError as exc:
            raise ValidationFailed({"step": [str(exc)]}) from exc
        plan.tasks.append(PlannedTask(i, spec, params, parent))
    return plan


def pretty(params: dict[str, Any]) -> str:
    return json.dumps(params, indent=2, sort_keys=True)


def previous_task(production: str, before_id: int | None = None) -> Task | None:
    """The most recent saved task of a production (optionally created before task ``before_id``)."""
    query = select(Task).where(Task.production == production)
    if before_id is not None:
        query = query.where(Task.id < before_id)
    return db.session.scalar(query.order_by(Task.id.desc()).limit(1))


def params_diff(old: dict[str, Any] | None, new: dict[str, Any], old_label: str, new_label: str) -> str:
    if old is None:
        return ""
    lines = difflib.unified_diff(
        pretty(old).splitlines(), pretty(new).splitlines(), old_label, new_label, lineterm="", n=1
    )
    return "\n".join(lines)


@dataclass(frozen=True)
class PreviewItem:
    name: str
    params_json: str
    diff: str
    diff_against: str | None


def preview(plan: Plan) -> list[PreviewItem]:
    """The parameters of each task and their diff: a task reading a parent's output against that
    parent; the first other task against the previous saved task of the production, the next ones
    against the task before them."""
    rules = naming_rules()
    items: list[PreviewItem] = []
    production = naming.parse_task_name(plan.definition.task_name, rules).production.format(rules)
    saved = previous_task(production)
    prev_name, prev_params = (saved.name, saved.params) if saved else (None, None)
    for planned in plan.tasks:
        name = planned.spec.task_name
        against = (planned.parent.name, planned.parent.params) if planned.parent else (prev_name, prev_params)
        items.append(PreviewItem(name, pretty(planned.params), params_diff(against[1], planned.params, against[0] or "", name),
                                 against[0]))  # fmt: skip
        prev_name, prev_params = name, planned.params
    return items


# --- creation -------------------------------------------------------------------------------------


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def bunch_by_key(key: str) -> TaskBunch | None:
    return db.session.scalar(select(TaskBunch).where(TaskBunch.idempotency_key == key))


class CreateResult(NamedTuple):
    bunch: TaskBunch
    created: bool  # False: the key had created this bunch already (a repeated POST)
    warnings: list[str]  # the definition's warnings, shown once after creation (not stored)


def create_bunch(
    definition: TaskDefinition,
    user: User,
    idempotency_key: str,
    *,
    is_admin: bool,
    schedule: launch_schedule.Schedule = launch_schedule.NOW,
    cloned_from: Task | TaskBunch | None = None,
    after_parent_done: bool = False,
) -> CreateResult:
    """Save the definition, its tasks and one pending launch per task (the outbox), launched as
    ``schedule`` says (refused with a field message when it cannot work); flushes.
    ``after_parent_done``: the launches wait until each task's parent is done in PanDA (chains).

    A key already used returns the existing bunch and creates nothing, so double clicks, refreshes
    and repeated POSTs are harmless; the unique constraint settles races (``ConcurrentCreate``: roll
    back and call again, then the winner's bunch is found; ``submit_bunch`` does that).
    """
    if not idempotency_key or len(idempotency_key) > 64:
        raise ValidationFailed({"form": ["the form has no submission key; reload it and submit again"]})
    existing = bunch_by_key(idempotency_key)
    if existing is not None:
        return CreateResult(existing, False, [])
    plan = plan_bunch(definition, user, is_admin=is_admin)
    try:
        launch_schedule.check(schedule, user)
    except launch_schedule.ScheduleRefused as exc:
        raise ValidationFailed(exc.errors) from exc
    launch_schedule.remember_zone(user, schedule.zone)
    rules = naming_rules()
    now = clock.now()
    production = naming.parse_task_name(definition.task_name, rules).production.format(rules)
    source_bunch = cloned_from.bunch if isinstance(cloned_from, Task) else cloned_from
    try:
        with db.session.begin_nested():
            bunch = TaskBunch(
                idempotency_key=idempotency_key,
                base_name=definition.task_name.strip(),
                step=definition.step,
                size=definition.bunch_size,
                definition=definition.to_dict(),
                comment=definition.comment,
                created_by_id=user.id,
                created_at=now,
                cloned_from_id=source_bunch.id if source_bunch else None,
            )
            db.session.add(bunch)
            db.session.flush()
            source_tasks = {t.bunch_index: t for t in source_bunch.tasks} if source_bunch else {}
            if isinstance(cloned_from, Task):
                source_tasks = {1: cloned_from}
            for planned in plan.tasks:
                source = source_tasks.get(planned.index)
                task = Task(
                    bunch_id=bunch.id,
                    bunch_index=planned.index,
                    name=planned.spec.task_name,
                    output_dataset=planned.spec.output_dataset,
                    step=definition.step,
                    production=production,
                    spec=asdict(planned.spec),
                    params=planned.params,
                    parent_id=planned.parent.id if planned.parent else None,
                    cloned_from_id=source.id if source else None,
                    created_at=now,
                    created_by_id=user.id,
                    request_id=planned.spec.request_id,
                )
                db.session.add(task)
                db.session.flush()
                launch_schedule.apply(new_launch(task, 1, user, now, after_parent_done=after_parent_done), schedule)
            db.session.flush()
    except (IntegrityError, OperationalError) as exc:
        # A concurrent request with the same key (or the same names) got there first. Our transaction
        # may not see its row yet (snapshot), so the caller rolls back and looks again.
        raise ConcurrentCreate(idempotency_key) from exc
    record(
        "task.create", target=bunch.base_name, details={"bunch_id": bunch.id, "size": bunch.size}, user=user
    )
    return CreateResult(bunch, True, plan.warnings)


class FormReused(Exception):
    """The form's key already created a bunch, and the form was changed since (the back button)."""


def submit_bunch(
    definition: TaskDefinition | None,
    idempotency_key: str,
    user: User,
    *,
    is_admin: bool,
    cloned_from: Task | TaskBunch | None = None,
    schedule: launch_schedule.Schedule = launch_schedule.NOW,
) -> CreateResult:
    """The task form's "Create": save the bunch (``create_bunch``, launched as ``schedule`` says) and
    dispatch it once committed.

    ``definition`` is None when the form has errors (they are on the form). A key that created a
    bunch before returns that bunch, unless the form changed since: then ``FormReused``, so that new
    values are never dropped silently. A request racing this one with the same key or the same
    names loses cleanly: this one finds the winner's bunch, or the validation names what was taken.
    """
    existing = bunch_by_key(idempotency_key) if idempotency_key else None
    if existing is not None:
        if definition is None or definition.to_dict() == existing.definition:
            return CreateResult(existing, False, [])
        raise FormReused(
            f"This form already created {existing.base_name} and was changed since. Nothing new was saved; "
            "press Create task again to create another bunch with these values."
        )
    if definition is None:
        raise ValidationFailed({})
    for attempt in range(3):
        try:
            result = create_bunch(
                definition, user, idempotency_key, is_admin=is_admin, cloned_from=cloned_from, schedule=schedule
            )
            break
        except ValidationFailed:
            # The rollback discards only this request's reads (nothing was written yet); a concurrent
            # POST with this key may have committed its bunch while we validated.
            db.session.rollback()
            winner = bunch_by_key(idempotency_key)
            if winner is not None:
                return CreateResult(winner, False, [])
            raise
        except (ConcurrentCreate, IntegrityError, OperationalError):
            # A concurrent POST (same key or same names) won. Our transaction may not see its rows yet
            # (a snapshot), so start a fresh one: we find its bunch by key, or the validation names
            # what was taken.
            db.session.rollback()
            if attempt == 2:
                raise
    if result.created:
        dispatch_soon()
    return result


# --- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BunchProgress:
    total: int
    submitted: int
    pending: int
    sending: int
    failed: int
    unknown: int  # sent without an answer: the dispatcher looks them up by name
    needs_decision: int  # PanDA cannot tell whether they arrived: a manager decides

    @property
    def done(self) -> bool:
        """Nothing left that the dispatcher settles by itself."""
        return self.pending == 0 and self.sending == 0 and self.unknown == 0


# A bunch's tasks with their launches, loaded in two statements whatever the bunch's size: the bunch
# page, its progress fragment, the home page and the chain page show each task's latest launch.
# The specs, JEDI parameters and manifests are not shown there and are the largest columns.
TASKS_WITH_LAUNCHES = selectinload(TaskBunch.tasks).options(
    defer(Task.spec), defer(Task.params), selectinload(Task.launches).defer(Launch.manifest)
)


def bunch_for_page(bunch_id: int) -> Select[TaskBunch]:
    """The bunch page's bunch: its tasks, their launches, its creator and its source."""
    return (
        select(TaskBunch)
        .where(TaskBunch.id == bunch_id)
        .options(TASKS_WITH_LAUNCHES, joinedload(TaskBunch.created_by), joinedload(TaskBunch.cloned_from))
    )


def bunch_header(bunch_id: int) -> Select[TaskBunch]:
    """The bunch page's bunch without its tasks (they are paged: `bunch_tasks_page`)."""
    return (
        select(TaskBunch)
        .where(TaskBunch.id == bunch_id)
        .options(joinedload(TaskBunch.created_by), joinedload(TaskBunch.cloned_from))
    )


BUNCH_ROWS = 50  # tasks per page of the bunch page


@dataclass(frozen=True)
class BunchRows:
    tasks: list[Task]
    before: int | None  # the cursor of the previous page (its tasks come before this bunch index)
    after: int | None  # the cursor of the next page (its tasks come after this bunch index)

    @property
    def positions(self) -> tuple[int, int] | None:
        """The first and last bunch index shown (the PanDA poller refreshes those rows only)."""
        return (self.tasks[0].bunch_index, self.tasks[-1].bunch_index) if self.tasks else None


def bunch_tasks_page(
    bunch_id: int, after: int | None = None, before: int | None = None, size: int | None = None
) -> BunchRows:
    """One page of a bunch's tasks by position, with their launches: a seek on the unique
    (bunch_id, bunch_index) index, so a page costs the same at the start and end of a 1 000-task bunch.
    `after`: the tasks after that index (the next page); else `before`: those before it (previous)."""
    size = size or BUNCH_ROWS
    query = (
        select(Task)
        .where(Task.bunch_id == bunch_id)
        .options(defer(Task.spec), defer(Task.params), selectinload(Task.launches).defer(Launch.manifest))
        .limit(size + 1)
    )
    if after is None and before is not None:
        tasks = list(db.session.scalars(query.where(Task.bunch_index < before).order_by(Task.bunch_index.desc())))
        more = len(tasks) > size
        tasks = tasks[:size][::-1]
        return BunchRows(tasks, tasks[0].bunch_index if more and tasks else None, tasks[-1].bunch_index if tasks else None)
    if after is not None:
        query = query.where(Task.bunch_index > after)
    tasks = list(db.session.scalars(query.order_by(Task.bunch_index)))
    more = len(tasks) > size
    tasks = tasks[:size]
    first = tasks[0].bunch_index if after is not None and tasks and tasks[0].bunch_index > 1 else None
    return BunchRows(tasks, first, tasks[-1].bunch_index if more else None)


def undecided_in_bunch(bunch_id: int, limit: int = BUNCH_ROWS) -> list[Launch]:
    """The bunch's submits PanDA never answered (latest launch unknown or awaiting a decision, no
    PanDA id), the first `limit` by position; the page shows their number from `bunch_progress`."""
    # Each task's latest launch id read by index per task (as bunch_progresses does: a join on the
    # latest id is planned by PostgreSQL as a hash of the whole launch table). The ids are read first,
    # by the bunch's index, "no PanDA id" checked here: given that condition SQLite walked every task
    # without a PanDA id (80 ms at 1M tasks) instead of the bunch's.
    latest = select(Launch.id).where(Launch.task_id == Task.id).order_by(Launch.id.desc()).limit(1).scalar_subquery()
    rows = db.session.execute(select(Task.panda_task_id, latest).where(Task.bunch_id == bunch_id))
    latest_ids = [launch_id for panda_id, launch_id in rows if panda_id is None and launch_id is not None]
    return list(
        db.session.scalars(
            select(Launch)
            .join(Task, Launch.task_id == Task.id)
            .where(Launch.id.in_(latest_ids), Launch.status.in_([LaunchStatus.UNKNOWN, LaunchStatus.NEEDS_DECISION]))
            .options(defer(Launch.manifest), joinedload(Launch.task).defer(Task.spec).defer(Task.params))
            .order_by(Task.bunch_index)
            .limit(limit)
        )
    )  # fmt: skip


def bunch_progresses(bunch_ids: list[int]) -> dict[int, BunchProgress]:
    """How many of each bunch's tasks are in PanDA, and where the latest launch of each other one is:
    counted in one statement (no task is loaded), whatever the number and size of the bunches."""
    S = LaunchStatus
    # The latest launch's status read per task (a join on the latest id was planned by PostgreSQL as a
    # hash of the whole launch table).
    latest = select(Launch.status).where(Launch.task_id == Task.id).order_by(Launch.id.desc()).limit(1).scalar_subquery()
    state = case((Task.panda_task_id.is_not(None), S.SUBMITTED.value), else_=func.coalesce(latest, S.PENDING.value))
    rows = db.session.execute(
        select(Task.bunch_id, state, func.count())
        .select_from(Task)
        .where(Task.bunch_id.in_(bunch_ids))
        .group_by(Task.bunch_id, state)
    )
    counts: dict[int, dict[str, int]] = {bunch_id: {} for bunch_id in bunch_ids}
    for bunch_id, status, n in rows:
        counts[bunch_id][str(status)] = n
    return {
        bunch_id: BunchProgress(
            sum(c.values()), c.get(S.SUBMITTED, 0), c.get(S.PENDING, 0), c.get(S.SENDING, 0), c.get(S.FAILED, 0),
            c.get(S.UNKNOWN, 0), c.get(S.NEEDS_DECISION, 0),
        )  # fmt: skip
        for bunch_id, c in counts.items()
    }


def bunch_progress(bunch: TaskBunch) -> BunchProgress:
    """``bunch_progresses`` of one bunch."""
    return bunch_progresses([bunch.id])[bunch.id]


@dataclass(frozen=True)
class BunchRelations:
    reads: list[TaskBunch]  # bunches whose tasks are the parents of this bunch's tasks (SIM for a RECO)
    read_by: list[TaskBunch]  # bunches whose tasks are children of this bunch's tasks (RECO for a SIM)


def bunch_relations(bunch: TaskBunch) -> BunchRelations:
    """The bunches this bunch reads from and the bunches reading it, through the tasks' parents."""
    parent, child = aliased(Task), aliased(Task)
    # Distinct ids, then the bunches: PostgreSQL cannot compare the JSON definition a DISTINCT over
    # whole bunch rows would compare.
    reads = select(parent.bunch_id).join(child, child.parent_id == parent.id).where(child.bunch_id == bunch.id)
    read_by = select(child.bunch_id).join(parent, child.parent_id == parent.id).where(parent.bunch_id == bunch.id)

    def bunches(ids: Select) -> list[TaskBunch]:
        return list(db.session.scalars(select(TaskBunch).where(TaskBunch.id.in_(ids)).order_by(TaskBunch.id)))

    return BunchRelations(bunches(reads), bunches(read_by))


def recent_bunches(limit: int = 8) -> list[tuple[TaskBunch, BunchProgress]]:
    """The newest bunches with their launch progress (home page)."""
    bunches = db.session.scalars(select(TaskBunch).order_by(TaskBunch.id.desc()).limit(limit)).all()
    progress = bunch_progresses([bunch.id for bunch in bunches])
    return [(bunch, progress[bunch.id]) for bunch in bunches]


def suggest_production(campaign: str = "", settings: Settings | None = None) -> naming.ProductionId:
    """The next free production number of this year (from the panel's own tasks).

    Two index seeks on ``task.production`` instead of parsing every name: the highest number in
    text order (numbers are zero-padded to ``number_digits``), then a check for longer numbers
    (after 999 comes 1000, which sorts before 999 as text) one at a time, as they follow in turn.
    """
    settings = settings or get_settings()
    rules = naming_rules(settings)
    year = clock.now().year
    series = naming.ProductionId(campaign, year, 0).format(rules)[: -rules.number_digits]  # "PROD2026-"
    highest = db.session.scalar(
        select(Task.production)
        .where(Task.production > series, Task.production < series + ":")  # ":" follows "9"
        .order_by(Task.production.desc())
        .limit(1)
    )
    number = int(highest[len(series) :]) if highest and highest[len(series) :].isdigit() else 0
    following = naming.ProductionId(campaign, year, number + 1)
    while db.session.scalar(select(Task.id).where(Task.production == following.format(rules)).limit(1)):
        following = replace(following, number=following.number + 1)
    return following


def complete_definition(d: TaskDefinition, settings: Settings | None = None) -> TaskDefinition:
    """Fill an empty output dataset name from the conventions: default scope, the physics tag of the
    execution path, the task name's production and step, version 1 (left empty when those are wrong,
    so that validation names the real culprit)."""
    if d.output_dataset.strip():
        return d
    settings = settings or get_settings()
    rules = naming_rules(settings)
    try:
        task = naming.parse_task_name(d.task_name, rules)
        tag = naming.physics_tag_from_path(d.exec_path, rules)
    except naming.NamingError:
        return d
    dataset = naming.DatasetName(settings.tasks.default_scope, tag, task.production, task.step, 1)
    return replace(d, output_dataset=dataset.format(rules))


def clone_definition(source: Task | TaskBunch) -> TaskDefinition:
    """The source's definition with names moved to the next free production number.

    Copied: ``specs.CLONE_COPIED``; reset: ``specs.CLONE_RESET`` (names, parent, comment) and runtime fields.
    """
    bunch = source.bunch if isinstance(source, Task) else source
    original = TaskDefinition.from_dict(bunch.definition)
    changes: dict[str, Any] = {"comment": ""}
    if isinstance(source, Task):  # one task: a bunch of one, at the offset that task used
        changes.update(bunch_size=1, initial_offset=source.spec.get("offset", original.initial_offset))
    return _renumbered(original, original.output_dataset, **changes)


def _renumbered(definition: TaskDefinition, output_dataset: str, **changes: Any) -> TaskDefinition:
    """The definition under the next free production number of its campaign (dataset version 1),
    without a parent task, with ``changes`` applied (cloning and relaunching share this)."""
    rules = naming_rules()
    old = naming.parse_task_name(definition.task_name, rules)
    production = suggest_production(old.production.campaign)
    dataset = naming.parse_dataset_name(output_dataset, rules)
    return replace(
        definition,
        task_name=naming.TaskName(production, old.step).format(rules),
        output_dataset=replace(dataset, production=production, version=1).format(rules),
        parent_task=None,
        **changes,
    )


def next_step_definition(source: TaskBunch, step: str) -> TaskDefinition:
    """A processing step (e.g. RECO) for a generation bunch: same production, size and placement,
    reading the source's outputs task by task (``parent_task`` = the source's base name)."""
    return next_step(TaskDefinition.from_dict(source.definition), step, naming_rules())


def definition_from_manifest(manifest: dict[str, Any]) -> TaskDefinition:
    """Relaunch from a manifest: its definition, as a single task with the next production number."""
    definition = TaskDefinition.from_dict(manifest["definition"])
    return _renumbered(
        definition,
        manifest.get("output_dataset") or definition.output_dataset,
        bunch_size=1,
        initial_offset=int(manifest.get("offset", definition.initial_offset)),
        comment=f"relaunch of {manifest.get('task_name', '')}",
    )


# --- the task form's starting points --------------------------------------------------------------


def blank_definition(step: str) -> TaskDefinition:
    """A new task of `step` under the next free production number, placed on the first cloud/disk."""
    cfg = get_settings().tasks
    task_name = naming.TaskName(suggest_production(), step).format(naming_rules())
    return TaskDefinition(
        step=step, task_name=task_name, bunch_size=1, output_dataset="", total_events=None,
        events_per_job=None, cloud=cfg.clouds[0] if cfg.clouds else "",
        data_disk=cfg.data_disks[0] if cfg.data_disks else "", request_id=None, skip_scout=False,
        initial_offset=0, exec_path="", container_path="",
    )  # fmt: skip


def new_definition(step: str | None, after: TaskBunch | None) -> tuple[TaskDefinition, TaskBunch | None]:
    """The "New task" form's definition: `step` (default: the first step type), as the next step of
    the bunch `after` when that step processes another's output; else blank. Returns the definition
    and the bunch it follows (None when blank)."""
    steps = get_settings().tasks.step_types
    chosen = step if step in steps else steps[0]
    template = task_template()
    if after is not None and chosen in template.steps and template.kind(chosen) == "processing":
        return next_step_definition(after, chosen), after
    return blank_definition(chosen), None


def relaunch_definition(task: Task) -> TaskDefinition | None:
    """A new single task from the task's submission manifest (None: it has none yet)."""
    launch = task.submitted_launch or task.latest_launch
    if launch is None or not launch.manifest:
        return None
    return definition_from_manifest(launch.manifest)


class NotAManifest(ValueError):
    """An uploaded file is not a submission manifest of this panel (the message says which file)."""


class Relaunch(NamedTuple):
    definition: TaskDefinition
    source: Task | None  # the manifest's task when it is in this panel: stored as cloned_from


def definition_from_manifest_file(file: FileStorage) -> Relaunch:
    """Relaunch from an uploaded manifest file: its definition as a new single task (nothing saved),
    and the task it was made from when that task is in this panel."""
    filename = file.filename or "manifest"
    try:
        manifest = parse_document(json.loads, file.read(MAX_DOCUMENT_CHARS + 1))
        definition = definition_from_manifest(manifest)
    except (ValueError, KeyError, TypeError, AttributeError, naming.NamingError) as exc:
        raise NotAManifest(
            f"{filename} is not a submission manifest of this panel ({exc.__class__.__name__})."
        ) from None
    source = db.session.scalar(select(Task).where(Task.name == str(manifest.get("task_name", ""))))
    return Relaunch(definition, source)


def refuse_admin_fields(sent: Mapping[str, str], *, is_admin: bool, target: str) -> list[str]:
    """The admin-only fields a non-admin sent to `target` (they refuse the whole request; audited)."""
    if is_admin:
        return []
    refused = [name for name in ADMIN_FIELDS if (sent.get(name) or "").strip()]
    if refused:
        record("task.admin_fields_refused", target=target, outcome="denied", details={"fields": refused})
    return refused


# --- the task page --------------------------------------------------------------------------------


RELATED_SHOWN = 50  # children, clones and bunch siblings on the task page


@dataclass(frozen=True)
class Related:
    """The first ``RELATED_SHOWN`` tasks related to a task one way (rows of id and name only)."""

    tasks: list[Any]  # rows with .id and .name (no ORM objects: the page only links them)
    more: bool  # there are others beyond these


def _related(*queries: tuple[Select, QueryableAttribute[Any]]) -> list[Related]:
    """The `Related` of each (query, its order), in one statement: a UNION ALL of each query's first
    rows (sorted here again: a union keeps no order)."""
    parts = []
    for part, (query, order) in enumerate(queries):
        first = query.with_only_columns(Task.id, Task.name, order.label("o")).order_by(order)
        sub = first.limit(RELATED_SHOWN + 1).subquery()
        parts.append(select(literal(part).label("part"), sub.c.id, sub.c.name, sub.c.o))
    found: list[list[Any]] = [[] for _ in queries]
    for row in sorted(db.session.execute(union_all(*parts)), key=lambda r: (r.part, r.o)):
        found[row.part].append(row)
    return [Related(rows[:RELATED_SHOWN], len(rows) > RELATED_SHOWN) for rows in found]


@dataclass(frozen=True)
class TaskPage:
    """What the task page shows: stored state only (the sync and "Sync this task now" read PanDA)."""

    task: Task
    launch: Launch | None  # the launch that submitted it, else the latest attempt
    manifest_json: str | None
    definition_json: str
    params_json: str
    children: Related
    clones: Related
    siblings: Related
    history: list[TaskStatusChange]  # its PanDA statuses as the sync saw them
    calls: SeekPage | None  # the PanDA log of the task (for managers)

    @property
    def needs_decision(self) -> bool:
        return self.launch is not None and self.launch.status == LaunchStatus.NEEDS_DECISION

    @property
    def undecided(self) -> bool:
        """PanDA never answered its submit: a manager may look it up now, adopt an id or confirm absence."""
        return self.launch is not None and self.launch.status in (LaunchStatus.UNKNOWN, LaunchStatus.NEEDS_DECISION)


def task_page(task: Task, *, with_calls: bool) -> TaskPage:
    """The task page's content; related tasks come a page at a time, whatever the size of the bunch."""
    launch = task.submitted_launch or task.latest_launch
    manifest = launch.manifest if launch else None
    children, clones, siblings = _related(
        (select(Task).where(Task.parent_id == task.id), Task.id),
        (select(Task).where(Task.cloned_from_id == task.id), Task.id),
        (select(Task).where(Task.bunch_id == task.bunch_id, Task.id != task.id), Task.bunch_index),
    )
    return TaskPage(
        task=task,
        launch=launch,
        manifest_json=json.dumps(manifest, indent=2, sort_keys=True) if manifest else None,
        definition_json=json.dumps(task.bunch.definition, indent=2, sort_keys=True),
        params_json=pretty(task.params),
        children=children,
        clones=clones,
        siblings=siblings,
        history=status_history(task),
        calls=calls_for_task(task.panda_task_id) if with_calls and task.panda_task_id is not None else None,
    )


# --- the naming convention page --------------------------------------------------------------------


@dataclass(frozen=True)
class NamingExample:
    what: str
    rule: str  # the configured pattern or rule
    example: str  # built by app.tasks.naming from that rule


def naming_guide(settings: Settings | None = None) -> list[NamingExample]:
    """The naming conventions as configured, each with an example built by the naming module itself
    (so the page cannot disagree with what the forms enforce)."""
    settings = settings or get_settings()
    cfg, rules = settings.tasks, naming_rules(settings)
    production = suggest_production("", settings)
    prefixes = [p for p in rules.campaign_prefixes if p]
    steps = rules.step_types
    base = naming.TaskName(production, steps[0])
    exec_path = f"{cfg.cvmfs_roots[0].rstrip('/')}/production/MC/minbias-P8-spdroot417-dev.10GeV.V01"
    try:
        tag = naming.physics_tag_from_path(exec_path, rules)
    except naming.NamingError as exc:
        tag = f"(no tag: {exc.message})"
    dataset = naming.DatasetName(cfg.default_scope, tag, production, steps[0], 1)
    members = [naming.bunch_task_name(base, i, 3).format(rules) for i in (1, 2, 3)]
    return [
        NamingExample("Production id", f"<campaign prefix>{rules.production_prefix}<yyyy>-<{'n' * rules.number_digits}>; "
                      f"campaign prefixes: {', '.join(prefixes) or 'none'} (or none)", production.format(rules)),
        *(NamingExample("Production id in a campaign", f"prefix {p}", replace(production, campaign=p).format(rules))
          for p in prefixes),
        NamingExample("Task name", rules.task_name_pattern, ", ".join(naming.TaskName(production, s).format(rules) for s in steps)),
        NamingExample("Bunch members (tasks to launch = 3)", f"task name + {rules.bunch_suffix}", ", ".join(members)),
        NamingExample("Physics tag", f"last component of the execution path without {rules.tag_strip_regex}",
                      f"{exec_path} → {tag}"),
        NamingExample("Output dataset", f"{rules.dataset_pattern}; scope matches {rules.scope_regex}", dataset.format(rules)),
        NamingExample("Bunch member i's dataset", "version + i − 1",
                      ", ".join(naming.bunch_dataset_name(dataset, i).format(rules) for i in (1, 2, 3))),
        NamingExample("Chain steps", "one production id and physics tag for all steps; step i+1's task j reads step i's task j",
                      " → ".join(naming.TaskName(production, s).format(rules) for s in steps)),
        NamingExample("Paths", f"under {', '.join(cfg.cvmfs_roots)}; containers match {cfg.container_regex}",
                      f"{cfg.cvmfs_roots[0].rstrip('/')}/images/spdroot-dev-4.1.7.sif"),
    ]  # fmt: skip
