"""Request pages: the filtered list, one request with its chains, tasks and progress, the
reconciliation report, the task and chain definitions prefilled from a request and the path options
of their forms.

Reads only: requests come from the in-memory cache (`current`), tasks and chains from the database.
A task counts for its own request, else for its chain's (``request_of``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import selectinload

from app.chains import constraints
from app.chains import services as chain_services
from app.chains.models import Chain, ChainStep
from app.chains.specs import ChainDefinition
from app.config import Settings, get_settings
from app.extensions import db
from app.prodrequests import catalog, current
from app.prodrequests.client import Snapshot
from app.prodrequests.errors import RequestNotFound, RequestsServiceError
from app.prodrequests.schema import STATUSES, ProductionRequest
from app.tasks import naming
from app.tasks import services as task_services
from app.tasks.models import Task, TaskBunch
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
    found = current.cached().find(int(text)) if text.isdigit() else None
    return describe(found) if found else None


# --- progress --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskOutput:
    events: int  # events generated
    output_bytes: int | None  # None: not known


def task_output(task: Task) -> TaskOutput:
    """What one task produced, from what the PanDA sync stored (app/sync).

    Once the sync has accounted the final task (its job descriptions read): the events its finished
    jobs processed, for a generation task (processing steps, such as a chain's RECO, read events a
    generation task made and add none), and the output size of any task. Before that, a generation
    task that PanDA reports `done` (every job succeeded) counts its planned events, and the size is
    not known yet.
    """
    generation = bool(task.spec.get("total_events"))  # processing steps have no events of their own
    if task.accounted_at is not None:
        return TaskOutput((task.events_processed or 0) if generation else 0, task.output_bytes)
    planned = task.spec.get("total_events") or 0
    return TaskOutput(planned if task.panda_status == "done" else 0, None)


def _settled(task: Task) -> bool:
    """Nothing more will come from this task: PanDA finished with it, or it never reached PanDA and
    its last launch failed or was cancelled."""
    if task.panda_status in FINAL_PANDA_STATUSES:
        return True
    launch = task.latest_launch
    return task.panda_task_id is None and launch is not None and launch.status in ("failed", "cancelled")


@dataclass(frozen=True)
class RequestProgress:
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


def progress(requested: int, tasks: list[Task], chains: int = 0) -> RequestProgress:
    """Events requested vs produced by `tasks` (chain tasks included: a chain's generation steps
    produce, its processing steps only keep the request active until they end)."""
    outputs = [task_output(t) for t in tasks]
    sizes = [o.output_bytes for o in outputs if o.output_bytes is not None]
    return RequestProgress(
        requested=requested,
        planned=sum(t.spec.get("total_events") or 0 for t in tasks),
        produced=sum(o.events for o in outputs),
        output_bytes=sum(sizes) if sizes else None,
        tasks=len(tasks),
        active=sum(not _settled(t) for t in tasks),
        chains=chains,
    )


def _tasks_query() -> Select:
    return select(Task).options(selectinload(Task.launches), selectinload(Task.bunch)).order_by(Task.id)


def _chain_requests() -> dict[int, int]:
    """Bunch id -> the request of the chain the bunch is a step of: the first of the chain's steps
    that names a request (chains whose steps name none are left out)."""
    rows = db.session.execute(
        select(ChainStep.chain_id, ChainStep.bunch_id, TaskBunch.definition["request_id"].as_integer())
        .join(TaskBunch, TaskBunch.id == ChainStep.bunch_id)
        .order_by(ChainStep.chain_id, ChainStep.position)
    ).all()
    first: dict[int, int] = {}
    for chain_id, _, request_id in rows:
        if request_id is not None:
            first.setdefault(chain_id, request_id)
    return {bunch_id: first[chain_id] for chain_id, bunch_id, _ in rows if chain_id in first}


def bunches_inheriting_request(request_id: int) -> list[int]:
    """The bunches of the chains that count for `request_id` (their tasks count unless they name another)."""
    return [bunch for bunch, owner in _chain_requests().items() if owner == request_id]


def request_of(task: Task, chain_requests: dict[int, int]) -> int | None:
    """The request `task` counts for: its own, else its chain's (`chain_requests`: ``_chain_requests()``)."""
    own = task.spec.get("request_id")
    return own if own is not None else chain_requests.get(task.bunch_id)


def tasks_for_request(request_id: int) -> list[Task]:
    """The panel's tasks made for a request: those naming it, and those of its chains naming none."""
    inherited = bunches_inheriting_request(request_id)
    own = Task.spec["request_id"].as_integer()
    query = _tasks_query().where(or_(own == request_id, and_(own.is_(None), Task.bunch_id.in_(inherited))))
    return list(db.session.scalars(query))


def chains_for_request(request_id: int) -> list[Chain]:
    """The chains with a step that names the request, oldest first, their steps and tasks loaded."""
    naming_it = (
        select(ChainStep.chain_id)
        .join(TaskBunch, TaskBunch.id == ChainStep.bunch_id)
        .where(TaskBunch.definition["request_id"].as_integer() == request_id)
    )
    query = (
        select(Chain)
        .where(Chain.id.in_(naming_it))
        .options(selectinload(Chain.steps).selectinload(ChainStep.bunch).selectinload(TaskBunch.tasks))
        .order_by(Chain.id)
    )
    return list(db.session.scalars(query))


# --- one request -----------------------------------------------------------------------------------


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
    tasks: list[Task]
    chain_of: dict[int, Chain]  # bunch id -> the chain it is a step of (for the tasks table)
    progress: RequestProgress | None  # None without the request (the requested events are unknown)


def _request_chain(chain: Chain) -> RequestChain:
    summary = chain_services.launch_summary(chain)
    return RequestChain(
        chain,
        " → ".join(s.step for s in chain.steps),
        summary["tasks"],
        summary["in_panda"],
        summary["finished"],
    )


def request_view(request_id: int) -> RequestView:
    """A request with its chains, tasks and progress; they are shown even when the service is down."""
    found, error, not_found = None, "", False
    try:
        found = current.fetch_request(request_id)
    except RequestNotFound as exc:
        error, not_found = exc.message, True
    except RequestsServiceError as exc:
        error = exc.message
    chains = chains_for_request(request_id)
    tasks = tasks_for_request(request_id)
    chain_of = {step.bunch_id: chain for chain in chains for step in chain.steps}
    shown = progress(found.events_requested, tasks, len(chains)) if found else None
    return RequestView(
        request_id, found, error, not_found, current.cached(),
        [_request_chain(c) for c in chains], tasks, chain_of, shown,
    )  # fmt: skip


# --- reconciliation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reconciliation:
    snapshot: Snapshot
    without_tasks: list[ProductionRequest]  # rejected requests are not listed
    orphan_tasks: list[tuple[Task, str]]  # (task, why it has no request)
    short: list[tuple[ProductionRequest, RequestProgress]]


def reconciliation() -> Reconciliation:
    """Requests without tasks, tasks without a (known) request, requests whose production fell short;
    a chain's task counts for its chain's request when it names none itself."""
    snapshot = current.snapshot()
    by_request: dict[int, list[Task]] = {}
    orphans: list[tuple[Task, str]] = []
    known = {r.id for r in snapshot.requests}
    chain_requests = _chain_requests()
    for task in db.session.scalars(_tasks_query()):
        request_id = request_of(task, chain_requests)
        if request_id is None:
            orphans.append((task, "no request"))
            continue
        by_request.setdefault(request_id, []).append(task)
        if snapshot.fetched_at is not None and request_id not in known:
            orphans.append((task, f"request {request_id} is not on the requests service"))
    newest_first = sorted(snapshot.requests, key=lambda r: r.id, reverse=True)
    without = [r for r in newest_first if r.id not in by_request and r.status != "rejected"]
    short = [
        (r, p)
        for r in newest_first
        if r.id in by_request and (p := progress(r.events_requested, by_request[r.id])).short
    ]
    return Reconciliation(snapshot, without, orphans, short)


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
    if text.isdigit() and int(text) > 0 and current.service_url():
        try:
            found = current.fetch_request(int(text))
        except RequestsServiceError as exc:
            error = exc.message
    settings = get_settings()
    return PathOptions(
        describe(found) if found else None,
        error,
        catalog.suggestions("container", found, settings)[:MAX_PATH_OPTIONS],
        catalog.suggestions("exec", found, settings)[:MAX_PATH_OPTIONS],
    )
