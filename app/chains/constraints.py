"""Chain constraints in one place, for the chain form, the API and the tests (DIRAC's ProdValidator
idea: check the whole chain before anything runs).

Each constraint is a function ``(chain, context) -> list[Problem]``; ``CONSTRAINTS`` lists them and
``check`` runs them all. They are pure: no database, no PanDA (the services add what needs the
database, such as names already taken). Every problem names its step and field. ``derive`` fills in
what a later step takes from the one before it; ``prefill_next_step`` builds the form row of a
step added after another, and ``next_step`` the same step as a definition.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from app.chains.specs import ChainDefinition, Problem, problem
from app.config import CatalogSettings
from app.tasks import naming
from app.tasks.specs import NEXT_STEP_COPIED, TaskDefinition

GENERATION, PROCESSING = "generation", "processing"
MAX_NAME_LENGTH = 120


@dataclass(frozen=True)
class Context:
    """What the constraints need from the configuration."""

    rules: naming.NamingRules
    kinds: Mapping[str, str]  # step type -> generation | processing (the task template's kinds)
    processing_types: tuple[str, ...]
    max_steps: int
    is_admin: bool = False
    # The software version in a path's last component (group 1): the path catalog's rule.
    version_regex: str = CatalogSettings().version_regex


Constraint = Callable[[ChainDefinition, Context], list[Problem]]


def _kind(ctx: Context, step: str) -> str | None:
    return ctx.kinds.get(step)


def _production(d: TaskDefinition, rules: naming.NamingRules) -> naming.ProductionId | None:
    try:
        return naming.parse_task_name(d.task_name, rules).production
    except naming.NamingError:
        return None


def _tag(d: TaskDefinition, rules: naming.NamingRules) -> str | None:
    try:
        return naming.parse_dataset_name(d.output_dataset, rules).tag
    except naming.NamingError:
        return None


def spdroot_version(container_path: str, version_regex: str) -> tuple[int, int] | None:
    """SpdRoot's major.minor in a container path ("spdroot-dev-4.1.7.sif" → (4, 1)), or None when
    the name carries no dotted version."""
    match = re.search(version_regex, container_path.rstrip("/").rsplit("/", 1)[-1])
    if match is None:
        return None
    parts = re.findall(r"\d+", match.group(1) if match.re.groups else match.group(0))
    return (int(parts[0]), int(parts[1])) if len(parts) >= 2 else None


# --- the constraints --------------------------------------------------------------------------------


def chain_fields(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """Name, processing type, number of steps; only admins override the version check."""
    out = []
    if not chain.name.strip():
        out.append(problem(chain, None, "name", "enter a name for the chain"))
    elif len(chain.name) > MAX_NAME_LENGTH:
        out.append(problem(chain, None, "name", f"at most {MAX_NAME_LENGTH} characters"))
    if chain.processing_type not in ctx.processing_types:
        choices = ", ".join(ctx.processing_types)
        out.append(problem(chain, None, "processing_type", f"must be one of {choices}"))
    if not chain.steps:
        out.append(problem(chain, None, "steps", "a chain needs at least one step"))
    elif len(chain.steps) > ctx.max_steps:
        out.append(
            problem(chain, None, "steps", f"{len(chain.steps)} steps; a chain has at most {ctx.max_steps}")
        )
    if chain.version_override_reason.strip() and not ctx.is_admin:
        out.append(problem(chain, None, "version_override_reason", "only admins may override versions"))
    return out


def first_step_generates(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """The first step generates its events (SIM): nothing before it could feed it."""
    if not chain.steps:
        return []
    first = chain.steps[0]
    kind = _kind(ctx, first.step)
    if kind is None:
        return [problem(chain, 1, "step", f"unknown step type {first.step!r}")]
    if kind != GENERATION:
        generators = [s for s, k in ctx.kinds.items() if k == GENERATION]
        return [
            problem(
                chain, 1, "step",
                f"the first step must generate its events ({', '.join(generators)}); "
                f"{first.step} reads the output of a step before it",
            )
        ]  # fmt: skip
    return []


def processing_follows(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """RECO follows SIM: every later step processes the output of the step before it."""
    out = []
    for i, d in enumerate(chain.steps[1:], start=2):
        kind = _kind(ctx, d.step)
        if kind is None:
            out.append(problem(chain, i, "step", f"unknown step type {d.step!r}"))
        elif kind != PROCESSING:
            out.append(
                problem(
                    chain, i, "step",
                    f"only the first step generates events; step {i} must process the output of "
                    f"step {i - 1} ({chain.steps[i - 2].step})",
                )
            )  # fmt: skip
    return out


def distinct_step_types(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """Task names are <production>.<step>: two steps of one type would share their names."""
    out = []
    seen: dict[str, int] = {}
    for i, d in enumerate(chain.steps, start=1):
        if d.step in seen:
            out.append(
                problem(
                    chain, i, "step", f"{d.step} is step {seen[d.step]} already; each step type appears once"
                )
            )
        else:
            seen[d.step] = i
    return out


def input_is_previous_output(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """A processing step reads the previous step's output: its parent is that step (not typed)."""
    out = []
    for i, d in enumerate(chain.steps[1:], start=2):
        previous = chain.steps[i - 2].task_name.strip()
        if d.parent_task and d.parent_task.strip() != previous:
            out.append(
                problem(
                    chain, i, "parent_task",
                    f"{d.parent_task} is not step {i - 1}'s task {previous}; a step reads the output "
                    "of the step before it (leave the parent empty: it is filled in)",
                )
            )  # fmt: skip
    return out


def shared_production(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """All steps share the production id of step 1."""
    first = _production(chain.steps[0], ctx.rules) if chain.steps else None
    if first is None:
        return []
    out = []
    for i, d in enumerate(chain.steps[1:], start=2):
        production = _production(d, ctx.rules)
        if production is not None and production != first:
            out.append(
                problem(
                    chain, i, "task_name",
                    f"production {production.format(ctx.rules)} differs from step 1's "
                    f"{first.format(ctx.rules)}; all steps share one production id",
                )
            )  # fmt: skip
    return out


def shared_physics_tag(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """All steps share the physics tag of step 1 (in their output datasets)."""
    first = _tag(chain.steps[0], ctx.rules) if chain.steps else None
    if first is None:
        return []
    out = []
    for i, d in enumerate(chain.steps[1:], start=2):
        tag = _tag(d, ctx.rules)
        if tag is not None and tag != first:
            out.append(
                problem(
                    chain, i, "output_dataset",
                    f"physics tag {tag} differs from step 1's {first}; all steps share one physics tag",
                )
            )  # fmt: skip
    return out


def shared_request(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """A chain serves one production request: the steps that name one name the same (a step that
    names none belongs to the chain's)."""
    named = [(i, d.request_id) for i, d in enumerate(chain.steps, start=1) if d.request_id is not None]
    if not named:
        return []
    first_position, first = named[0]
    return [
        problem(chain, i, "request_id",
                f"request #{request} differs from step {first_position}'s #{first}; a chain serves one request")
        for i, request in named[1:] if request != first
    ]  # fmt: skip


def events_derived(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """A processing step's events come from the step before it: they are not typed twice."""
    out = []
    for i, d in enumerate(chain.steps[1:], start=2):
        if _kind(ctx, d.step) != PROCESSING:
            continue
        source = derived_events(chain, i, ctx)
        where = f"step {i - 1}'s output" + (f" ({source} events per task)" if source else "")
        for name in ("total_events", "events_per_job"):
            if getattr(d, name) is not None:
                out.append(problem(chain, i, name, f"{d.step} reads {where}; leave it empty"))
    return out


def consistent_bunch_sizes(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """Each task of a step gets its own child in the next step: the sizes are equal."""
    out = []
    for i, d in enumerate(chain.steps[1:], start=2):
        previous = chain.steps[i - 2].bunch_size
        if _kind(ctx, d.step) == PROCESSING and d.bunch_size != previous:
            out.append(
                problem(
                    chain, i, "bunch_size",
                    f"{d.bunch_size} does not match step {i - 1}'s {previous}; each task of step "
                    f"{i - 1} gets its own {d.step} child",
                )
            )  # fmt: skip
    return out


def compatible_containers(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """Same SpdRoot major.minor in every step, unless an admin overrides it with a reason."""
    if len(chain.steps) < 2 or (ctx.is_admin and chain.version_override_reason.strip()):
        return []
    versions = [spdroot_version(d.container_path, ctx.version_regex) for d in chain.steps]
    out = []
    for i, (d, version) in enumerate(zip(chain.steps, versions, strict=True), start=1):
        if version is None and d.container_path:
            out.append(
                problem(
                    chain, i, "container_path",
                    f"no SpdRoot version (as in spdroot-dev-4.1.7.sif) in {d.container_path}; "
                    "the steps' versions cannot be compared",
                )
            )  # fmt: skip
    first = versions[0]
    for i, version in enumerate(versions[1:], start=2):
        if first is not None and version is not None and version != first:
            out.append(
                problem(
                    chain, i, "container_path",
                    f"SpdRoot {version[0]}.{version[1]} differs from step 1's {first[0]}.{first[1]}; "
                    "the steps use the same SpdRoot major.minor (an admin may override with a reason)",
                )
            )  # fmt: skip
    return out


def names_follow_conventions(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """Each step's task and dataset names follow the naming conventions and agree with its step type."""
    out = []
    for i, d in enumerate(chain.steps, start=1):
        task = dataset = None
        try:
            task = naming.parse_task_name(d.task_name, ctx.rules)
            if task.index is not None:
                out.append(problem(chain, i, "task_name", "enter the name without the bunch index .N"))
                task = None
        except naming.NamingError as exc:
            out.append(problem(chain, i, "task_name", exc.message))
        try:
            if d.output_dataset.strip():
                dataset = naming.parse_dataset_name(d.output_dataset, ctx.rules)
        except naming.NamingError as exc:
            out.append(problem(chain, i, "output_dataset", exc.message))
        try:
            tag = naming.physics_tag_from_path(d.exec_path, ctx.rules) if d.exec_path else None
        except naming.NamingError:
            tag = None  # reported with the execution path by the step's own checks
        if task is not None and dataset is not None:
            try:
                naming.check_consistency(task, dataset, d.step, tag, ctx.rules)
            except naming.NamingError as exc:
                field = "task_name" if exc.part == "task_name" else "output_dataset"
                out.append(problem(chain, i, field, exc.message))
        elif task is not None and task.step != d.step:
            out.append(problem(chain, i, "task_name", f"step {task.step} does not match step type {d.step}"))
    return out


CONSTRAINTS: tuple[Constraint, ...] = (
    chain_fields,
    first_step_generates,
    processing_follows,
    distinct_step_types,
    input_is_previous_output,
    shared_production,
    shared_physics_tag,
    shared_request,
    events_derived,
    consistent_bunch_sizes,
    compatible_containers,
    names_follow_conventions,
)


def check(chain: ChainDefinition, ctx: Context) -> list[Problem]:
    """Every constraint's problems, in the order of ``CONSTRAINTS`` (empty: the chain is valid)."""
    return [p for constraint in CONSTRAINTS for p in constraint(chain, ctx)]


# --- what later steps derive ------------------------------------------------------------------------


def chain_request(named: Iterable[int | None]) -> int | None:
    """The request a chain counts for, from what its steps name in step order: the first one named."""
    return next((request for request in named if request is not None), None)


def derive(chain: ChainDefinition, ctx: Context) -> ChainDefinition:
    """Fill in what each processing step takes from the step before it: its parent (whose output
    it reads, task by task). A parent typed differently is left for ``input_is_previous_output``.
    A step that names no request gets the chain's (the first one named), so that its tasks count
    for that request everywhere (request pages, statistics)."""
    steps = list(chain.steps)
    for i in range(1, len(steps)):
        if _kind(ctx, steps[i].step) == PROCESSING and not (steps[i].parent_task or "").strip():
            steps[i] = dataclasses.replace(steps[i], parent_task=steps[i - 1].task_name.strip())
    request = chain_request(d.request_id for d in steps)
    steps = [d if d.request_id is not None else dataclasses.replace(d, request_id=request) for d in steps]
    return chain.with_steps(steps)


def derived_events(chain: ChainDefinition, position: int, ctx: Context) -> int | None:
    """Events per task that step `position` (1-based) processes: those its generating ancestor makes."""
    for d in reversed(chain.steps[:position]):
        if _kind(ctx, d.step) == GENERATION:
            return d.total_events
    return None


def _next_step_type(ctx: Context, previous_step: str) -> str:
    """The step type added after another: the first processing step type."""
    return next((s for s, kind in ctx.kinds.items() if kind == PROCESSING), previous_step)


def _next_names(task_name: str, output_dataset: str, step: str, rules: naming.NamingRules) -> tuple[str, str]:
    """Task and dataset names of a `step` added after a step with these names: same production and
    physics tag, dataset version 1 ("" for what cannot be derived from names that do not parse)."""
    try:
        task = naming.parse_task_name(task_name, rules)
    except naming.NamingError:
        return "", ""
    name = naming.TaskName(task.production, step).format(rules)
    try:
        dataset = naming.parse_dataset_name(output_dataset, rules)
    except naming.NamingError:
        return name, ""
    return name, dataclasses.replace(dataset, production=task.production, step=step, version=1).format(rules)


def prefill_next_step(previous: Mapping[str, str], ctx: Context) -> dict[str, str]:
    """The form row of a step added after `previous` (a form row: field name -> text): the first
    processing step type, and everything derivable from `previous` (same production and tag, names
    for the new step, size, placement, paths). What cannot be derived stays empty."""
    step = _next_step_type(ctx, previous.get("step", ""))
    row = {name: previous.get(name, "") for name in NEXT_STEP_COPIED if name in previous}
    row.update(step=step, total_events="", events_per_job="", files_per_job="1", initial_offset="0")
    row["task_name"], row["output_dataset"] = _next_names(
        previous.get("task_name", ""), previous.get("output_dataset", ""), step, ctx.rules
    )
    return row


def next_step(previous: TaskDefinition, ctx: Context) -> TaskDefinition:
    """The step added after `previous` when a chain is built outside the form (from a request): what
    ``prefill_next_step`` puts in the form row, as a definition (its parent is derived later)."""
    step = _next_step_type(ctx, previous.step)
    task_name, dataset = _next_names(previous.task_name, previous.output_dataset, step, ctx.rules)
    return dataclasses.replace(
        previous, step=step, task_name=task_name, output_dataset=dataset, total_events=None,
        events_per_job=None, files_per_job=1, initial_offset=0, parent_task=None, comment="",
    )  # fmt: skip
