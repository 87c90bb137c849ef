"""Chain services: validation (the constraints plus each step's task rules), preview, creation as
linked bunches with their launches, the chain page, resending a failed step, clone, sweep, export
and import.

A chain is created as one bunch per step, exactly as the task form creates bunches
(``app.tasks.services.create_bunch``): tasks and one launch row each. A later step's tasks are the
children of the previous step's tasks (``Task.parent``); the dispatcher sends each child with its
parent's PanDA id, or holds it until the parent is done (``Launch.after_parent_done``,
``app.launches.gates.parent_gate``). Services flush, never commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Select, case, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import defer, selectinload
from werkzeug.datastructures import FileStorage

from app.audit.services import record
from app.auth.models import User
from app.chains import constraints, schema
from app.chains.constraints import GENERATION, PROCESSING
from app.chains.models import Chain, ChainStep
from app.chains.specs import ChainDefinition, Problem, problem
from app.config import Settings, get_settings
from app.extensions import db, panda_clients
from app.launches.dispatcher import dispatch_soon
from app.launches.gates import PARENT_DONE, PARENT_FAILED
from app.launches.models import Launch
from app.launches.schedule import NOW, Schedule
from app.launches.services import resend_failed
from app.launches.states import LaunchStatus
from app.panda import taskparams
from app.panda.client import PandaApi
from app.panda.errors import PandaError, PandaNotFound
from app.sync.services import Notice, refresh_task
from app.tasks import naming
from app.tasks import services as tasks
from app.tasks.models import Task, TaskBunch
from app.tasks.specs import TaskDefinition, expand_bunch
from app.tokens.errors import TokenUnavailable

FINAL_STATUSES = (*PARENT_DONE, *PARENT_FAILED)


class ChainInvalid(Exception):
    """The chain breaks rules: ``problems`` name step and field; ``chain`` is what was checked."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.text for p in problems))
        self.problems = problems


class ConcurrentCreate(Exception):
    """Another request created a chain with this key or these names meanwhile: roll back, look again."""


class FormReused(Exception):
    """The form's key already created a chain, and the form was changed since (the back button)."""


# --- validation -------------------------------------------------------------------------------------


def context(*, is_admin: bool, settings: Settings | None = None) -> constraints.Context:
    """The constraints' view of the configuration: naming rules and each step type's kind."""
    settings = settings or get_settings()
    template = tasks.task_template(settings)
    kinds = {step: template.kind(step) for step in settings.tasks.step_types if step in template.steps}
    return constraints.Context(
        rules=tasks.naming_rules(settings),
        kinds=kinds,
        processing_types=tuple(settings.chains.processing_types),
        max_steps=settings.chains.max_steps,
        is_admin=is_admin,
        version_regex=settings.catalog.version_regex,
    )


def normalized(chain: ChainDefinition, ctx: constraints.Context, settings: Settings) -> ChainDefinition:
    """The chain as it is checked and stored: empty dataset names built, derived fields filled in."""
    return constraints.derive(
        chain.with_steps([tasks.complete_definition(d, settings) for d in chain.steps]), ctx
    )


@dataclass(frozen=True)
class ChainCheck:
    chain: ChainDefinition  # with empty dataset names built and derived fields filled in
    problems: list[Problem]
    warnings: list[str]


def validate_chain(chain: ChainDefinition, *, is_admin: bool, settings: Settings | None = None) -> ChainCheck:
    """The chain constraints, then each step's own task rules (names taken, paths, placement …);
    a field the constraints already reported is not reported twice."""
    settings = settings or get_settings()
    ctx = context(is_admin=is_admin, settings=settings)
    chain = normalized(chain, ctx, settings)
    problems = constraints.check(chain, ctx)
    reported = {(p.step, p.field) for p in problems}
    warnings: list[str] = []
    for i, d in enumerate(chain.steps, start=1):
        errors, step_warnings = tasks.validate_definition(
            d, is_admin=is_admin, settings=settings, check_parent=False
        )
        for name, messages in errors.items():
            if (i, name) not in reported:
                problems += [problem(chain, i, name, message) for message in messages]
        warnings += [f"step {i} ({d.step}): {w}" for w in step_warnings]
    if chain.name.strip() and db.session.scalar(select(Chain.id).where(Chain.name == chain.name.strip())):
        problems.append(problem(chain, None, "name", f"{chain.name} is already used by another chain"))
    return ChainCheck(chain, problems, warnings)


# --- preview ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedTask:
    name: str
    output_dataset: str
    parent: str | None
    input_dataset: str | None
    params_json: str


@dataclass(frozen=True)
class StepPlan:
    position: int
    definition: TaskDefinition
    kind: str
    events_per_task: int | None  # generated, or read from the step before (derived)
    tasks: list[PlannedTask]


@dataclass(frozen=True)
class ChainPlan:
    chain: ChainDefinition
    steps: list[StepPlan]
    warnings: list[str]

    @property
    def task_count(self) -> int:
        return sum(len(s.tasks) for s in self.steps)


def plan_chain(chain: ChainDefinition, user: User, *, is_admin: bool) -> ChainPlan:
    """Validate the whole chain and expand it into its tasks with their exact PanDA parameters
    (nothing saved, nothing sent); ``ChainInvalid`` lists every problem."""
    settings = get_settings()
    check = validate_chain(chain, is_admin=is_admin, settings=settings)
    if check.problems:
        raise ChainInvalid(check.problems)
    ctx = context(is_admin=is_admin, settings=settings)
    template = tasks.task_template(settings)
    steps: list[StepPlan] = []
    previous: list[tuple[str, str]] = []  # (name, output dataset) of the previous step's tasks
    for i, d in enumerate(check.chain.steps, start=1):
        kind = ctx.kinds[d.step]
        inputs: list[str | None] | None = [ds for _, ds in previous] if kind == PROCESSING else None
        specs = expand_bunch(d, ctx.rules, user_name=user.name, input_datasets=inputs)
        planned = []
        for k, spec in enumerate(specs):
            try:
                params = taskparams.build_task_params(spec, template)
            except taskparams.TemplateError as exc:
                raise ChainInvalid([problem(check.chain, i, "step", str(exc))]) from exc
            parent = previous[k][0] if kind == PROCESSING else None
            planned.append(
                PlannedTask(
                    spec.task_name, spec.output_dataset, parent, spec.input_dataset, tasks.pretty(params)
                )
            )
        events = d.total_events if kind == GENERATION else constraints.derived_events(check.chain, i, ctx)
        steps.append(StepPlan(i, d, kind, events, planned))
        previous = [(t.name, t.output_dataset) for t in planned]
    return ChainPlan(check.chain, steps, check.warnings)


# --- creation ---------------------------------------------------------------------------------------


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def chain_by_key(key: str) -> Chain | None:
    return db.session.scalar(select(Chain).where(Chain.idempotency_key == key))


class CreateResult(NamedTuple):
    chain: Chain
    created: bool  # False: the key had created this chain already (a repeated POST)
    warnings: list[str]


def create_chain(
    chain: ChainDefinition,
    user: User,
    idempotency_key: str,
    *,
    is_admin: bool,
    cloned_from: Chain | None = None,
    schedule: Schedule = NOW,
) -> CreateResult:
    """Validate the whole chain, then save it: the chain, one bunch per step (tasks linked to their
    parents, one pending launch each) and the steps; flushes. A key already used returns its chain.
    The first step is launched as ``schedule`` says; later steps follow their parents (not before
    its time)."""
    if not idempotency_key or len(idempotency_key) > 40:
        raise ChainInvalid(
            [Problem(None, "form", "the form has no submission key; reload it and submit again")]
        )
    existing = chain_by_key(idempotency_key)
    if existing is not None:
        return CreateResult(existing, False, [])
    plan = plan_chain(chain, user, is_admin=is_admin)
    checked = plan.chain
    sources = {s.position: s.bunch for s in cloned_from.steps} if cloned_from else {}
    try:
        with db.session.begin_nested():
            row = Chain(
                idempotency_key=idempotency_key, name=checked.name.strip(), processing_type=checked.processing_type,
                definition=schema.to_document(checked), wait_for_parent_done=checked.wait_for_parent_done,
                comment=checked.comment, created_by_id=user.id, cloned_from_id=cloned_from.id if cloned_from else None,
            )  # fmt: skip
            db.session.add(row)
            db.session.flush()
            for i, d in enumerate(checked.steps, start=1):
                bunch = tasks.create_bunch(
                    dataclasses.replace(d, comment=f"step {i} of chain {row.name}"), user, f"{idempotency_key}.{i}",
                    is_admin=is_admin, cloned_from=sources.get(i), after_parent_done=checked.wait_for_parent_done and i > 1,
                    schedule=schedule if i == 1 else Schedule(at=schedule.at),
                ).bunch  # fmt: skip
                db.session.add(ChainStep(chain_id=row.id, position=i, step=d.step, bunch_id=bunch.id))
            db.session.flush()
    except (tasks.ConcurrentCreate, IntegrityError, OperationalError) as exc:
        raise ConcurrentCreate(idempotency_key) from exc
    except tasks.ValidationFailed as exc:  # a name taken between the check and the save
        raise ChainInvalid(
            [Problem(None, name, f"{name}: {' '.join(m)}") for name, m in exc.errors.items()]
        ) from exc
    record("chain.create", target=row.name, details={"chain_id": row.id, "steps": len(checked.steps),
           "tasks": plan.task_count}, user=user)  # fmt: skip
    return CreateResult(row, True, plan.warnings)


def submit_chain(
    chain: ChainDefinition | None,
    idempotency_key: str,
    user: User,
    *,
    is_admin: bool,
    cloned_from: Chain | None = None,
    schedule: Schedule = NOW,
) -> CreateResult:
    """The chain form's "Create chain": save it (``create_chain``, launched as ``schedule`` says) and dispatch every step once
    committed. ``chain`` is None when the form itself has errors. A key that created a chain before
    returns it, unless the form changed since (``FormReused``); a racing request loses cleanly."""
    existing = chain_by_key(idempotency_key) if idempotency_key else None
    if existing is not None:
        settings = get_settings()
        same = (
            chain is None
            or schema.to_document(normalized(chain, context(is_admin=is_admin), settings))
            == existing.definition
        )
        if same:
            return CreateResult(existing, False, [])
        raise FormReused(
            f"This form already created chain {existing.name} and was changed since. Nothing new was saved; "
            "press Create chain again to create another chain with these values."
        )
    if chain is None:
        raise ChainInvalid([])
    for attempt in range(3):
        try:
            result = create_chain(
                chain, user, idempotency_key, is_admin=is_admin, cloned_from=cloned_from, schedule=schedule
            )
            break
        except ConcurrentCreate:
            db.session.rollback()
            if attempt == 2:
                raise
        except ChainInvalid:
            db.session.rollback()  # nothing was written; a racing POST with this key may have won
            winner = chain_by_key(idempotency_key)
            if winner is not None:
                return CreateResult(winner, False, [])
            raise
    if result.created:
        dispatch_soon()
    return result


# --- the chain page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    task: Task
    launch: Launch | None
    state: str  # PanDA's status once known, else the launch's
    reason: str  # why it waits or failed ("" when nothing to say)


@dataclass(frozen=True)
class StepView:
    step: ChainStep
    bunch: TaskBunch
    kind: str
    events_per_task: int | None
    rows: list[TaskRow]  # the first ROWS_SHOWN tasks of the step (the bunch page lists every one)
    progress: tasks.BunchProgress
    states: dict[str, int]  # how many of the step's tasks are in each state (all of them)
    running_in_panda: int = 0  # tasks in PanDA whose status is not final

    @property
    def finished(self) -> bool:
        return all(state in FINAL_STATUSES for state in self.states)

    @property
    def more(self) -> int:
        """How many of the step's tasks are not in `rows`."""
        return sum(self.states.values()) - len(self.rows)


@dataclass(frozen=True)
class ChainPage:
    chain: Chain
    steps: list[StepView]

    @property
    def finished(self) -> bool:
        return all(s.finished for s in self.steps)

    @property
    def request_ids(self) -> list[int]:
        """The production requests the steps name, in step order."""
        named = (s.bunch.definition.get("request_id") for s in self.steps)
        return list(dict.fromkeys(r for r in named if r is not None))

    @property
    def waiting_for_panda(self) -> bool:
        """Tasks in PanDA whose status is not final: a manager's refresh may tell more."""
        return any(s.running_in_panda for s in self.steps)


def _row(task: Task) -> TaskRow:
    launch = task.submitted_launch or task.latest_launch
    state = task.panda_status or (launch.status if launch else "none")
    reason = ""
    if (
        task.panda_status in PARENT_FAILED
        and task.parent is not None
        and task.parent.panda_status in PARENT_FAILED
    ):
        reason = f"its parent {task.parent.name} ended {task.parent.panda_status}, so PanDA did not run it"
    elif launch is not None and launch.status != LaunchStatus.SUBMITTED:
        reason = launch.error
    return TaskRow(task, launch, state, reason)


ROWS_SHOWN = 50  # tasks per step on the chain page (the step's bunch page pages through every one)


def _step_states(bunch_ids: list[int]) -> dict[int, tuple[dict[str, int], int]]:
    """Per bunch: how many tasks are in each state (``_row``'s: PanDA's status, else the submitted or
    the latest launch's), and how many are in PanDA and not final; counted in one statement."""
    # A submitted launch if the task has one, else its latest: one probe of the task's launches (an
    # EXISTS beside it was planned by PostgreSQL as a hash of every submitted launch in the table).
    launch_state = (
        select(Launch.status)
        .where(Launch.task_id == Task.id)
        .order_by((Launch.status == LaunchStatus.SUBMITTED).desc(), Launch.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    state = func.coalesce(Task.panda_status, launch_state, "none").label("state")
    sent = Task.panda_task_id.is_not(None).label("sent")
    rows = db.session.execute(
        select(Task.bunch_id, state, sent, func.count()).where(Task.bunch_id.in_(bunch_ids)).group_by(Task.bunch_id, state, sent)
    ).all()  # fmt: skip
    out: dict[int, tuple[dict[str, int], int]] = {b: ({}, 0) for b in bunch_ids}
    for bunch_id, name, in_panda, n in rows:
        counts, running = out[bunch_id]
        counts[str(name)] = counts.get(str(name), 0) + n
        out[bunch_id] = (counts, running + (n if in_panda and name not in FINAL_STATUSES else 0))
    return out


def chain_page(chain: Chain, *, all_rows: bool = False) -> ChainPage:
    """The chain as stored: each step's tasks (the first ROWS_SHOWN of each, unless `all_rows`) with their
    launch, PanDA status and why they wait or failed, and every task's state counted per step."""
    # A fixed number of statements, however many steps and tasks: the steps, their first tasks (a
    # window per bunch) with launches and parents, the states and the launch progress (in SQL).
    bunches = selectinload(ChainStep.bunch)
    steps = db.session.scalars(
        select(ChainStep)
        .where(ChainStep.chain_id == chain.id)
        .options(bunches.options(tasks.TASKS_WITH_LAUNCHES) if all_rows else bunches)
        .order_by(ChainStep.position)
    ).all()
    bunch_ids = [step.bunch_id for step in steps]
    by_bunch: dict[int, list[Task]] = {step.bunch_id: list(step.bunch.tasks) if all_rows else [] for step in steps}
    if not all_rows:
        ranked = (
            select(Task.id, func.row_number().over(partition_by=Task.bunch_id, order_by=Task.bunch_index).label("n"))
            .where(Task.bunch_id.in_(bunch_ids))
            .subquery()
        )
        first = db.session.scalars(
            select(Task)
            .where(Task.id.in_(select(ranked.c.id).where(ranked.c.n <= ROWS_SHOWN)))
            .options(
                defer(Task.spec), defer(Task.params), selectinload(Task.launches).defer(Launch.manifest),
                selectinload(Task.parent).load_only(Task.id, Task.name, Task.panda_status),
            )
            .order_by(Task.bunch_id, Task.bunch_index)
        ).all()  # fmt: skip
        for task in first:
            by_bunch[task.bunch_id].append(task)
    states = _step_states(bunch_ids)
    kinds = context(is_admin=False).kinds
    progress = tasks.bunch_progresses(bunch_ids)
    views = []
    generated: int | None = None  # events per task of the last generation step (what later steps read)
    for step in steps:
        bunch = step.bunch
        rows = [_row(t) for t in by_bunch[bunch.id]]
        kind = kinds.get(step.step, "?")
        if kind == GENERATION:
            generated = bunch.definition.get("total_events")
        counts, running = states[bunch.id]
        views.append(StepView(step, bunch, kind, generated, rows, progress[bunch.id], counts, running))
    return ChainPage(chain, views)


def chains_query() -> Select[Chain]:
    """The chains, newest first, with their steps and creators loaded (not the steps' bunches: a list
    shows none of their definitions, the largest column read)."""
    return select(Chain).options(selectinload(Chain.steps), selectinload(Chain.created_by)).order_by(Chain.id.desc())


def step_task_ids(bunch_ids: list[int]) -> dict[int, list[int]]:
    """Bunch id -> the ids of its tasks in bunch order (one query of ids, no task loaded)."""
    out: dict[int, list[int]] = {b: [] for b in bunch_ids}
    rows = db.session.execute(
        select(Task.bunch_id, Task.id).where(Task.bunch_id.in_(bunch_ids)).order_by(Task.bunch_id, Task.bunch_index)
    )
    for bunch_id, task_id in rows:
        out[bunch_id].append(task_id)
    return out


def refresh_from_panda(chain: Chain) -> Notice:
    """Read the chain's unfinished tasks from PanDA now, each with its owner's token (as the sync
    does), and store what PanDA says; the launches that wait for a parent to be done are then looked
    at again."""
    running = [
        t
        for s in chain.steps
        for t in s.bunch.tasks
        if t.panda_task_id and t.panda_status not in FINAL_STATUSES
    ]
    if not running:
        return Notice("Nothing to refresh: no task of this chain is running in PanDA.", "info")
    client = panda_clients(interactive=True)
    try:
        errors = [error for task in running if (error := _read_status(client, task))]
    finally:
        client.close()
    db.session.flush()
    dispatch_soon()
    read = len(running) - len(errors)
    if errors:
        return Notice(f"Read {read} of {len(running)} tasks from PanDA; " + "; ".join(errors[:3]), "warning")
    return Notice(f"Read {read} task(s) from PanDA.", "success")


def _read_status(client: PandaApi, task: Task) -> str | None:
    """Store PanDA's state of `task`; returns what went wrong (None: stored, or not registered yet)."""
    try:
        refresh_task(task, client)
    except PandaNotFound:
        return None  # JEDI registers a new task within minutes
    except (PandaError, TokenUnavailable) as exc:
        return f"{task.name}: {exc}"
    return None


def resend_failed_step(chain: Chain, position: int, user: User) -> int:
    """A new launch for every task of step `position` whose launch failed, nothing else; later steps
    waiting for them resume once they are in PanDA. Returns how many were resent."""
    step = next((s for s in chain.steps if s.position == position), None)
    if step is None:
        return 0
    launches = resend_failed(step.bunch, user)
    if launches:
        record("chain.resend", target=chain.name, details={"chain_id": chain.id, "step": position, "n": len(launches)},
               user=user)  # fmt: skip
        dispatch_soon()
    return len(launches)


# --- clone, sweep ------------------------------------------------------------------------------------


def definition_of(chain: Chain) -> ChainDefinition:
    return schema.from_document(chain.definition)


def renumbered(
    chain: ChainDefinition, production: naming.ProductionId, rules: naming.NamingRules
) -> ChainDefinition:
    """The chain under another production id: task and dataset names moved (dataset versions kept),
    parents left to be derived again, the name's production replaced (or the production appended)."""
    old: str | None = None
    steps = []
    for d in chain.steps:
        try:
            task = naming.parse_task_name(d.task_name, rules)
            old = old or task.production.format(rules)
            task_name = dataclasses.replace(task, production=production).format(rules)
        except naming.NamingError:
            task_name = d.task_name
        try:
            dataset = naming.parse_dataset_name(d.output_dataset, rules)
            output = dataclasses.replace(dataset, production=production).format(rules)
        except naming.NamingError:
            output = d.output_dataset
        steps.append(dataclasses.replace(d, task_name=task_name, output_dataset=output, parent_task=None))
    new = production.format(rules)
    name = chain.name.replace(old, new) if old and old in chain.name else f"{chain.name} {new}".strip()
    return dataclasses.replace(chain, name=name, steps=tuple(steps), comment="")


def _next_production(
    chain: ChainDefinition, rules: naming.NamingRules, offset: int = 0
) -> naming.ProductionId:
    campaign = ""
    if chain.steps:
        with contextlib.suppress(naming.NamingError):
            campaign = naming.parse_task_name(chain.steps[0].task_name, rules).production.campaign
    first = tasks.suggest_production(campaign)
    return dataclasses.replace(first, number=first.number + offset)


def clone_definition(source: Chain) -> ChainDefinition:
    """The source chain under the next free production number (names reset, definition copied)."""
    rules = tasks.naming_rules()
    chain = definition_of(source)
    return renumbered(chain, _next_production(chain, rules), rules)


def blank_chain() -> ChainDefinition:
    """A new chain: one generation step under the next free production number."""
    settings = get_settings()
    ctx = context(is_admin=False, settings=settings)
    first = next((s for s, k in ctx.kinds.items() if k == GENERATION), settings.tasks.step_types[0])
    step = tasks.blank_definition(first)
    production = naming.parse_task_name(step.task_name, ctx.rules).production.format(ctx.rules)
    return ChainDefinition(
        name=production, processing_type=settings.chains.processing_types[0], steps=(step,)
    )


_ENERGY = re.compile(r"\d+(?:\.\d+)?GeV")


def varied(chain: ChainDefinition, parameter: str, value: str, rules: naming.NamingRules) -> ChainDefinition:
    """The chain with one parameter set to `value` in every step; ``ValueError`` says why it cannot."""
    first = chain.steps[0]
    if parameter == "container_path":
        return chain.with_steps([dataclasses.replace(d, container_path=value) for d in chain.steps])
    if parameter == "exec_path":
        exec_path = value
    else:
        folder, _, last = first.exec_path.rstrip("/").rpartition("/")
        tag = naming.physics_tag_from_path(first.exec_path, rules)
        suffix = last[len(tag) :]
        if parameter == "energy":
            energy = value if value.endswith("GeV") else f"{value}GeV"
            if not _ENERGY.fullmatch(energy):
                raise ValueError(f"{value!r} is not an energy such as 27GeV")
            if not _ENERGY.search(tag):
                raise ValueError(f"physics tag {tag} has no energy (…GeV) to vary")
            new_tag = _ENERGY.sub(energy, tag, count=1)
        else:
            new_tag = naming.check_physics_tag(value)
        exec_path = f"{folder}/{new_tag}{suffix}"
    tag = naming.physics_tag_from_path(exec_path, rules)
    steps = []
    for d in chain.steps:
        dataset = naming.parse_dataset_name(d.output_dataset, rules)
        steps.append(
            dataclasses.replace(
                d, exec_path=exec_path, output_dataset=dataclasses.replace(dataset, tag=tag).format(rules)
            )
        )
    return chain.with_steps(steps)


@dataclass(frozen=True)
class Variant:
    value: str
    chain: ChainDefinition | None
    problems: list[str]


def sweep(source: Chain, parameter: str, values: list[str], *, is_admin: bool) -> list[Variant]:
    """One chain per value: the source with `parameter` varied, each under its own next free
    production number, each checked as a new chain would be (nothing saved)."""
    rules = tasks.naming_rules()
    base = definition_of(source)
    variants = []
    for k, value in enumerate(dict.fromkeys(values)):
        try:
            chain = varied(base, parameter, value, rules)
        except (ValueError, naming.NamingError) as exc:
            variants.append(Variant(value, None, [str(getattr(exc, "message", exc))]))
            continue
        chain = renumbered(chain, _next_production(base, rules, offset=k), rules)
        chain = dataclasses.replace(chain, name=f"{chain.name} {value}"[: constraints.MAX_NAME_LENGTH])
        check = validate_chain(chain, is_admin=is_admin)
        variants.append(Variant(value, check.chain, [p.text for p in check.problems]))
    return variants


def create_sweep(
    source: Chain, parameter: str, values: list[str], user: User, idempotency_key: str, *, is_admin: bool
) -> list[Chain]:
    """Create every variant of a sweep, or none: ``ChainInvalid`` when any has a problem."""
    variants = sweep(source, parameter, values, is_admin=is_admin)
    broken = [f"{v.value}: {p}" for v in variants for p in v.problems]
    if broken or not variants:
        raise ChainInvalid([Problem(None, "values", text) for text in broken or ["no values"]])
    created = []
    for k, variant in enumerate(variants):
        assert variant.chain is not None
        result = create_chain(
            variant.chain, user, f"{idempotency_key}.{k}", is_admin=is_admin, cloned_from=source
        )
        if result.created:
            dispatch_soon()
        created.append(result.chain)
    return created


# --- export, import ----------------------------------------------------------------------------------


def export_document(chain: Chain, fmt: str) -> tuple[str, str]:
    """(file name, text) of the chain's definition in `fmt` (yaml or json), in the import schema."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", chain.name).strip("_") or f"chain-{chain.id}"
    return f"{safe}.chain.{fmt}", schema.dumps(chain.definition, fmt)


def import_document(file: FileStorage) -> ChainDefinition:
    """The chain described by an uploaded YAML or JSON file (nothing saved); ``schema.SchemaError``
    lists what does not follow the schema, field by field."""
    raw = file.read(schema.MAX_DOCUMENT_BYTES + 1)
    if len(raw) > schema.MAX_DOCUMENT_BYTES:
        raise schema.SchemaError([Problem(None, "document", "document: larger than 1 MB")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise schema.SchemaError([Problem(None, "document", "document: not UTF-8 text")]) from None
    return schema.from_document(schema.loads(text, file.filename or ""))


def document_json(chain: Chain) -> str:
    return json.dumps(chain.definition, indent=2)


def step_kinds() -> dict[str, str]:
    return dict(context(is_admin=False).kinds)


def prefill_row(previous: dict[str, str]) -> dict[str, str]:
    """The form row of a step added after `previous` (everything derivable prefilled)."""
    return constraints.prefill_next_step(previous, context(is_admin=False))


def launch_summaries(chain_ids: list[int]) -> dict[int, dict[str, int]]:
    """Counts for the chain list, by chain id: tasks, in PanDA, finished (one aggregate query)."""
    rows = db.session.execute(
        select(ChainStep.chain_id, func.count(Task.id), func.count(Task.panda_task_id),
               func.count(case((Task.panda_status.in_(FINAL_STATUSES), 1))))
        .join(Task, Task.bunch_id == ChainStep.bunch_id)
        .where(ChainStep.chain_id.in_(chain_ids))
        .group_by(ChainStep.chain_id)
    ).all()  # fmt: skip
    empty = {"tasks": 0, "in_panda": 0, "finished": 0}
    found = {chain: {"tasks": n, "in_panda": sent, "finished": over} for chain, n, sent, over in rows}
    return {chain: found.get(chain, empty) for chain in chain_ids}
