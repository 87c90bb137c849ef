"""Request pages: the filtered list, one request with its chains, tasks and progress, the
reconciliation report, the task and chain definitions prefilled from a request and the path options
of their forms.

Reads only: requests come from the in-memory cache (`current`), tasks and chains from the database.
A task counts for its own request, else for its chain's: ``Task.request_id`` holds the one it counts for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import defer, selectinload

from app.chains import constraints
from app.chains import services as chain_services
from app.chains.models import Chain, ChainStep
from app.chains.specs import ChainDefinition
from app.config import Settings, get_settings
from app.extensions import capped, capped_text, count_cap, db
from app.inputs import as_id
from app.launches.models import Launch
from app.prodrequests import catalog, current
from app.prodrequests.client import Snapshot
from app.prodrequests.errors import RequestNotFound, RequestsServiceError
from app.prodrequests.schema import STATUSES, ProductionRequest
from app.tasks import naming
from app.tasks import services as task_services
from app.tasks.models import Task
from app.tasks.specs import TaskDefinition

# PanDA's final task statuses (DESIGN §5); a task in one of them adds no more events.
FINAL_PANDA_STATUSES = frozenset({"done", "finished", "failed", "broken", "aborted"})
MAX_PATH_OPTIONS = 200  # per kind in the task form's datalists


class ListPagination(Pagination):
    """Flask-SQLAlchemy's pagination (the `pagination` macro) over a plain list."""

    def _query_items(self) -> list[Any]:
        start = (self.page - 1) * self.per_page
        return self._query_args["items"][start : start + self.per_page]

    def _query_count(self) -> int:
        return len(self._query_args["items"])


# --- the list --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestFilters:
    status: str = ""
    group: str = ""

    def args(self) -> dict[str, str]:
        """The filters as query arguments (the empty ones left out)."""
        return {k: v for k, v in (("status", self.status), ("group", self.group)) if v}


@dataclass(frozen=True)
class RequestList:
    snapshot: Snapshot
    page: ListPagination
    statuses: list[str]  # offered in the status filter
    groups: list[str]  # offered in the group filter


def request_list(filters: RequestFilters, page: int) -> RequestList:
    """One page of the requests matching `filters`, newest first, with the filters' choices."""
    snapshot = current.snapshot()
    chosen = [
        r
        for r in sorted(snapshot.requests, key=lambda r: r.id, reverse=True)
        if (not filters.status or r.status == filters.status)
        and (not filters.group or r.physics_group == filters.group)
    ]
    statuses = [*STATUSES, *sorted({r.status for r in snapshot.requests} - set(STATUSES))]
    groups = sorted({r.physics_group for r in snapshot.requests if r.physics_group})
    pagination = ListPagination(
        page=max(page, 1), per_page=get_settings().requests.page_size, error_out=False, items=chosen
    )
    return RequestList(snapshot, pagination, statuses, groups)


def refresh() -> Snapshot:
    """Ask the service again now, whatever the cache's age."""
    return current.snapshot(force=True)


def describe(found: ProductionRequest) -> str:
    """A request as the task form's request field names it."""
    return f"{found.label} ({found.status.replace('_', ' ')}, {found.physics_group or 'no group'})"


def request_label(value: Any) -> str | None:
    """The cached description of request `value` (an id, or the form's text); None when not cached.
    Never asks the service, so pages that show it never wait for it."""
    text = str(value or "").strip()
    request_id = as_id(text)
    found = current.cached().find(request_id) if request_id is not None else None
    return describe(found) if found else None


# --- production accounting -------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestProduction:
    """What a request's tasks produced against what it asked for (the request page's "Progress" and
    the reconciliation's short requests); not `app.stats.progress`, which estimates when tasks end."""

    requested: int
    planned: int  # events of the request's generation tasks in the panel
    produced: int
    output_bytes: int | None  # None until the sync has accounted a task
    tasks: int
    active: int  # tasks that may still add events
    chains: int = 0

    @property
    def percent(self) -> float:
        return min(100.0, 100.0 * self.produced / self.requested) if self.requested else 0.0

    @property
    def output_tb(self) -> float | None:
        return None if self.output_bytes is None else self.output_bytes / 1e12

    @property
    def short(self) -> bool:
        """Every task is settled and they produced fewer events than requested."""
        return self.tasks > 0 and self.active == 0 and self.produced < self.requested


def production_accounting(requested: int, where: ColumnElement[bool], chains: int = 0) -> RequestProduction:
    """The production accounting of the tasks `where` selects: events requested vs produced, summed
    in the database (chain tasks included: a chain's generation steps produce, its processing steps
    only keep the request active until they end). A task is settled when PanDA finished with it, or when it never reached PanDA and
    its last launch failed or was cancelled.

    What one task produced, from what the PanDA sync stored (app/sync): once the sync has accounted
    the final task (its job descriptions read), the events its finished jobs processed for a
    generation task (processing steps read events a generation task made and add none), and the
    output size of any task. Before that, a generation task that PanDA reports `done` (every job
    succeeded) counts its planned events, and the size is not known yet."""
    planned = func.coalesce(Task.spec["total_events"].as_integer(), 0)
    produced = case(
        (
            Task.accounted_at.is_not(None),
            case((planned != 0, func.coalesce(Task.events_processed, 0)), else_=0),
        ),
        (Task.panda_status == "done", planned),
        else_=0,
    )
    # The task's last launch, read through its index for the tasks not in PanDA only (a grouped
    # max over the request's launches made PostgreSQL read the whole launch table).
    last_status = (
        select(Launch.status).where(Launch.task_id == Task.id).order_by(Launch.id.desc()).limit(1).scalar_subquery()
    )
    settled = or_(
        Task.panda_status.in_(FINAL_PANDA_STATUSES),
        and_(Task.panda_task_id.is_(None), last_status.in_(("failed", "cancelled"))),
    )
    row = db.session.execute(
        select(func.count(Task.id), func.sum(planned), func.sum(produced),
               func.sum(case((Task.accounted_at.is_not(None), Task.output_bytes))),
               func.count(case((settled, None), else_=1)))
        .where(where)
    ).one()  # fmt: skip
    count, planned_sum, produced_sum, output, active = row
    return RequestProduction(
        requested=requested, planned=int(planned_sum or 0), produced=int(produced_sum or 0),
        output_bytes=None if output is None else int(output), tasks=int(count), active=int(active), chains=chains,
    )  # fmt: skip


def _naming_chains(request_id: int) -> Select:
    """The ids of the chains with a step whose tasks count for the request (through the indexed
    ``Task.request_id``)."""
    bunches = select(Task.bunch_id).where(Task.request_id == request_id).distinct()
    return select(ChainStep.chain_id).where(ChainStep.bunch_id.in_(bunches))


def request_clause(request_id: int) -> ColumnElement[bool]:
    """SQL: the panel's tasks made for a request: those naming it, and those of its chains naming none
    (``Task.request_id`` holds the chain's for them)."""
    return Task.request_id == request_id


def tasks_for_request(
    request_id: int, *, after: int = 0, limit: int | None = None, where: ColumnElement[bool] | None = None
) -> list[Task]:
    """The panel's tasks made for a request (``request_clause``, or `where` when the caller has it
    already: it costs a statement), by id: those after task id `after`, at most `limit` of them."""
    query = (
        select(Task)
        .options(selectinload(Task.bunch), defer(Task.params))
        .where(request_clause(request_id) if where is None else where, Task.id > after)
        .order_by(Task.id)
        .limit(limit)
    )
    return list(db.session.scalars(query))


def chains_for_request(request_id: int) -> list[Chain]:
    """The chains with a step that names the request, oldest first, their steps loaded."""
    query = (
        select(Chain)
        .where(Chain.id.in_(_naming_chains(request_id)))
        .options(selectinload(Chain.steps))
        .order_by(Chain.id)
    )
    return list(db.session.scalars(query))


# --- one request -----------------------------------------------------------------------------------

TASKS_SHOWN = 100  # the request page lists its tasks this many at a time (by id, after the last shown)


@dataclass(frozen=True)
class RequestChain:
    chain: Chain
    steps: str  # "SIM → RECO"
    tasks: int
    in_panda: int
    finished: int


@dataclass(frozen=True)
class RequestView:
    request_id: int
    request: ProductionRequest | None  # None: not found, or the service failed (`error` says)
    error: str
    not_found: bool
    snapshot: Snapshot
    chains: list[RequestChain]
    tasks: list[Task]  # at most TASKS_SHOWN, after task id `after`
    chain_of: dict[int, Chain]  # bunch id -> the chain it is a step of (for the tasks table)
    progress: RequestProduction | None  # None without the request (the requested events are unknown)
    after: int = 0
    next_after: int | None = None  # the `after` of the next tasks (None: these were the last)
    task_count: int = 0


def request_view(request_id: int, after: int = 0) -> RequestView:
    """A request with its chains, progress and a page of its tasks (those after task id `after`);
    they are shown even when the service is down."""
    found, error, not_found = None, "", False
    try:
        found = current.fetch_request(request_id)
    except RequestNotFound as exc:
        error, not_found = exc.message, True
    except RequestsServiceError as exc:
        error = exc.message
    chains = chains_for_request(request_id)
    summaries = chain_services.launch_summaries([c.id for c in chains])
    shown_chains = [RequestChain(c, " → ".join(s.step for s in c.steps), **summaries[c.id]) for c in chains]
    where = request_clause(request_id)
    tasks = tasks_for_request(request_id, after=after, limit=TASKS_SHOWN + 1, where=where)
    more = len(tasks) > TASKS_SHOWN
    tasks = tasks[:TASKS_SHOWN]
    chain_of = {step.bunch_id: chain for chain in chains for step in chain.steps}
    total = production_accounting(found.events_requested if found else 0, where, len(chains))
    return RequestView(
        request_id, found, error, not_found, current.cached(), shown_chains, tasks, chain_of,
        total if found else None, after, tasks[-1].id if more else None, total.tasks,
    )  # fmt: skip


# --- reconciliation --------------------------------------------------------------------------------

ORPHANS_SHOWN = 200  # tasks without a (known) request listed; the count stops at COUNT_CAP


class OrphanTask(NamedTuple):
    """What the report shows of a task without a (known) request: read as these columns only, not
    as a whole task (its JSON spec and dates decoded for every listed row)."""

    id: int
    name: str
    panda_status: str | None
    request_id: int | None


@dataclass(frozen=True)
class Reconciliation:
    snapshot: Snapshot
    without_tasks: list[ProductionRequest]  # rejected requests are not listed
    orphan_tasks: list[tuple[OrphanTask, str]]  # (task, why it has no request), at most ORPHANS_SHOWN
    short: list[tuple[ProductionRequest, RequestProduction]]
    orphan_count: int = 0  # capped at COUNT_CAP + 1

    @property
    def orphan_count_text(self) -> str:
        return capped_text(self.orphan_count)


def reconciliation() -> Reconciliation:
    """Requests without tasks, tasks without a (known) request, requests whose production fell short;
    a chain's task counts for its chain's request when it names none itself (``Task.request_id``
    holds it). Read through the indexed ``Task.request_id``: the tasks without a request are listed
    up to ORPHANS_SHOWN and counted up to COUNT_CAP, the progress of each request the service lists
    is summed in the database."""
    snapshot = current.snapshot()
    known = [r.id for r in snapshot.requests]
    reasons: list[ColumnElement[bool]] = [Task.request_id.is_(None)]
    if snapshot.fetched_at is not None:
        reasons.append(and_(Task.request_id.is_not(None), Task.request_id.not_in(known)))
    orphans: list[tuple[OrphanTask, str]] = []
    orphan_count = 0
    for where in reasons:
        query = select(*(getattr(Task, name) for name in OrphanTask._fields)).where(where)
        for row in db.session.execute(query.order_by(Task.id).limit(ORPHANS_SHOWN)):
            task = OrphanTask(*row)
            why = (
                "no request" if task.request_id is None
                else f"request {task.request_id} is not on the requests service"
            )  # fmt: skip
            orphans.append((task, why))
        orphan_count += db.session.scalar(capped(select(Task.id).where(where))) or 0
    orphans.sort(key=lambda item: item[0].id)
    with_tasks = set(db.session.scalars(select(Task.request_id).where(Task.request_id.in_(known)).distinct()))
    newest_first = sorted(snapshot.requests, key=lambda r: r.id, reverse=True)
    without = [r for r in newest_first if r.id not in with_tasks and r.status != "rejected"]
    short = [
        (r, p)
        for r in newest_first
        if r.id in with_tasks and (p := production_accounting(r.events_requested, request_clause(r.id))).short
    ]
    return Reconciliation(snapshot, without, orphans[:ORPHANS_SHOWN], short, min(orphan_count, count_cap() + 1))


# --- the task and chain forms ----------------------------------------------------------------------


@dataclass(frozen=True)
class RequestPrefill:
    """What the task or chain form took from a request (shown above the form)."""

    request: ProductionRequest
    exec_choice: catalog.Suggestion | None
    container_choice: catalog.Suggestion | None


def _generation_step(settings: Settings) -> str:
    template = task_services.task_template(settings)
    steps = settings.tasks.step_types
    return next((s for s in steps if s in template.steps and template.kind(s) == "generation"), steps[0])


def _request_comment(found: ProductionRequest) -> str:
    return f"{found.label} ({found.physics_group}; requested by {found.requester})"


def _generation_definition(
    found: ProductionRequest, settings: Settings
) -> tuple[TaskDefinition, RequestPrefill]:
    """A generation task for `found`: the next production's names, the requested events, and the best
    paths for it (its own, else the catalog's with its physics tag / software version). The physics
    tag comes with the execution path; when no path matches, it is written into the output dataset
    name, so that the path the user then chooses is checked against it."""
    step = _generation_step(settings)
    execs = catalog.suggestions("exec", found, settings)
    containers = catalog.suggestions("container", found, settings)
    # A path with another physics tag would name the datasets wrongly: leave the field to the user.
    exec_choice = execs[0] if execs and execs[0].rank <= 2 else None
    container_choice = containers[0] if containers and containers[0].rank <= 3 else None
    cfg = settings.tasks
    rules = task_services.naming_rules(settings)
    production = task_services.suggest_production(settings=settings)
    dataset = ""
    if exec_choice is None and found.physics_tag:
        try:
            tag = naming.check_physics_tag(found.physics_tag)
            dataset = naming.DatasetName(cfg.default_scope, tag, production, step, 1).format(rules)
        except naming.NamingError:
            dataset = ""  # a tag the conventions refuse: the user's execution path will name one
    definition = TaskDefinition(
        step=step,
        task_name=naming.TaskName(production, step).format(rules),
        bunch_size=1,
        output_dataset=dataset,
        total_events=found.events_requested or None,
        events_per_job=None,
        cloud=cfg.clouds[0] if cfg.clouds else "",
        data_disk=cfg.data_disks[0] if cfg.data_disks else "",
        request_id=found.id,
        skip_scout=False,
        initial_offset=0,
        exec_path=exec_choice.path if exec_choice else "",
        container_path=container_choice.path if container_choice else "",
        comment=_request_comment(found),
    )
    return definition, RequestPrefill(found, exec_choice, container_choice)


def task_prefill(request_id: int) -> tuple[TaskDefinition, RequestPrefill]:
    """A task definition for a request (``_generation_definition``). Raises `RequestsServiceError`s."""
    settings = get_settings()
    return _generation_definition(current.fetch_request(request_id), settings)


def chain_prefill(request_id: int) -> tuple[ChainDefinition, RequestPrefill]:
    """A chain for a request: the first processing type, a name from the production and the physics
    tag, the generation step as ``task_prefill`` makes it, and the processing step the chain form
    adds after it (``constraints.next_step``). Raises `RequestsServiceError`s."""
    settings = get_settings()
    found = current.fetch_request(request_id)
    first, prefill = _generation_definition(found, settings)
    first = dataclasses.replace(first, comment="")  # a step's comment is the chain's
    ctx = chain_services.context(is_admin=False, settings=settings)
    steps = [first]
    if constraints.PROCESSING in ctx.kinds.values():
        steps.append(constraints.next_step(first, ctx))
    production = naming.parse_task_name(first.task_name, ctx.rules).production.format(ctx.rules)
    name = f"{production} {found.physics_tag or f'request {found.id}'}"
    chain = ChainDefinition(
        name=name[: constraints.MAX_NAME_LENGTH],
        processing_type=settings.chains.processing_types[0],
        steps=tuple(steps),
        comment=_request_comment(found),
    )
    return chain, prefill


@dataclass(frozen=True)
class PathOptions:
    """The datalists of the task and chain forms, for the request typed in a request field."""

    label: str | None  # the request's description (None: no request, or it could not be read)
    error: str  # why the request could not be read ("" when it was, or when none was given)
    containers: list[catalog.Suggestion]
    execs: list[catalog.Suggestion]


def path_options(request_text: str) -> PathOptions:
    found, error = None, ""
    text = request_text.strip()
    request_id = as_id(text)
    if request_id and current.service_url():
        try:
            found = current.fetch_request(request_id)
        except RequestsServiceError as exc:
            error = exc.message
    settings = get_settings()
    return PathOptions(
        describe(found) if found else None,
        error,
        catalog.suggestions("container", found, settings)[:MAX_PATH_OPTIONS],
        catalog.suggestions("exec", found, settings)[:MAX_PATH_OPTIONS],
    )
