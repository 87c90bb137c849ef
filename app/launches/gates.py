"""When a pending, due launch may go: `gate(launch)` is the one place the dispatcher asks before it
claims a launch. It folds the conditions a launch can wait on, in this order:

- its chain parent (`parent_gate`): PanDA needs the parent's task id, or the chain waits for it to be done;
- another task it was scheduled after (`dependency_gate`): done in PanDA, or N % of its jobs done;
- SPD-IAM (`iam_gate`): unreachable while its owner has no valid token left.

A waiting launch stays pending with the reason shown to users ("waiting for task 123 to reach 50 %
of its jobs"); a refusal (the condition can never be met) makes the dispatcher fail it with that reason.
The time condition is the launch's `due_at`, which the dispatcher's query checks before asking here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, or_
from sqlalchemy.orm import aliased

from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.tasks.models import Task
from app.tokens import services as token_vault
from app.tokens.errors import IamUnreachable, TokenUnavailable

S = LaunchStatus
PARENT_DONE = ("done", "finished")  # PanDA releases a pending child then
PARENT_FAILED = ("failed", "broken", "aborted")  # … and fails it then


@dataclass(frozen=True)
class Gate:
    """Whether a launch may be sent now: ``wait`` (held back, stays pending, ``reason`` says why),
    or go, with ``parent_tid`` (None: no parent) or ``refusal`` (the launch fails with that reason)."""

    wait: bool = False
    reason: str = ""
    parent_tid: int | None = None
    refusal: str = ""

    @property
    def goes(self) -> bool:
        return not self.wait and not self.refusal


def gate(launch: Launch) -> Gate:
    """Whether `launch` may be sent now (see the module docstring); the dispatcher's one question."""
    found = dependencies(launch)
    return found if not found.goes else iam_gate(launch, found)


def dependencies(launch: Launch) -> Gate:
    """The conditions on other tasks (parent, scheduled-after task), asked again once a launch is
    claimed: it is never sent while one of them changed meanwhile."""
    found = parent_gate(launch)
    if not found.goes:
        return found
    after = dependency_gate(launch)
    return found if after.goes else after


def parent_gate(launch: Launch) -> Gate:
    """The one place deciding when the launch of a child task (a chain's RECO) may go.

    PanDA needs the parent's task id (``parent_tid``) and keeps the child pending until the parent is
    done, so by default the launch goes as soon as the parent has an id. With ``after_parent_done``
    (a chain option) the panel itself waits until the parent is done. A parent whose own launch
    failed keeps the child waiting: resending the parent resumes it.
    """
    parent = launch.task.parent
    if parent is None:
        return Gate()
    if parent.panda_task_id is None:
        latest = parent.latest_launch
        if latest is not None and latest.status == S.CANCELLED:
            return Gate(refusal=f"parent task {parent.name} was cancelled; it will never reach PanDA")
        why = (
            f" (its launch failed: {latest.error})"
            if latest is not None and latest.status == S.FAILED
            else ""
        )
        return Gate(wait=True, reason=f"waiting for parent task {parent.name} to reach PanDA{why}")
    if launch.after_parent_done:
        if parent.panda_status in PARENT_FAILED:
            return Gate(
                refusal=f"parent task {parent.name} ended {parent.panda_status} in PanDA; not submitted"
            )
        if parent.panda_status not in PARENT_DONE:
            status = parent.panda_status or "not read yet"
            return Gate(
                wait=True, reason=f"waiting for parent task {parent.name} to be done (PanDA status: {status})"
            )
    return Gate(parent_tid=parent.panda_task_id)


def dependency_gate(launch: Launch) -> Gate:
    """A launch scheduled "when task X is done" or "when task X has N % of its jobs done": it waits
    for what the PanDA sync stored about X (status, jobs done / total), and is refused once X can no
    longer get there (ended failed, broken or aborted; never sent)."""
    other = launch.after_task
    if launch.after_task_id is None or other is None:
        return Gate()
    label = task_label(other)
    goal = f"{launch.at_percent} % of its jobs done" if launch.at_percent else "done"
    if other.panda_task_id is None:
        latest = other.latest_launch
        if latest is not None and latest.status == S.CANCELLED:
            return Gate(refusal=f"{label} was cancelled; it will never be {goal}")
        return Gate(wait=True, reason=f"waiting for {label} to reach PanDA, then to be {goal}")
    if other.panda_status in PARENT_DONE:
        return Gate()
    percent = job_percent(other.jobs_done, other.jobs_total)
    if launch.at_percent and percent is not None and percent >= launch.at_percent:
        return Gate()
    if other.panda_status in PARENT_FAILED:
        return Gate(refusal=f"{label} ended {other.panda_status} in PanDA before being {goal}; not submitted")
    if launch.at_percent:
        now = "not read yet" if percent is None else f"{percent:g} %"
        return Gate(
            wait=True, reason=f"waiting for {label} to reach {launch.at_percent} % of its jobs (now {now})"
        )
    status = other.panda_status or "not read yet"
    return Gate(wait=True, reason=f"waiting for {label} to be done (PanDA status: {status})")


def may_go() -> ColumnElement[bool]:
    """SQL for "the dispatcher should ask `gate` about this pending launch": not one that waits for
    a task already in PanDA which has not got there yet (those may wait for days: without this, a
    few hundred of them would fill every dispatch cycle's batch). `dependency_gate` decides exactly;
    this only leaves out what it would certainly hold back."""
    other = aliased(Task)
    reached = or_(
        other.panda_task_id.is_(None),  # not in PanDA yet: the gate waits or refuses (cancelled)
        other.panda_status.in_(PARENT_DONE + PARENT_FAILED),
        and_(Launch.at_percent.is_not(None), other.jobs_total > 0,
             other.jobs_done * 100 >= Launch.at_percent * other.jobs_total),
    )  # fmt: skip
    return or_(Launch.after_task_id.is_(None), exists().where(other.id == Launch.after_task_id, reached))


def task_label(task: Task) -> str:
    """How a task a launch waits for is named to users: its PanDA id (as PanDA's pages) and name."""
    return f"task {task.panda_task_id} ({task.name})" if task.panda_task_id else f"task {task.name}"


def job_percent(done: int | None, total: int | None) -> float | None:
    """Jobs done as a percentage of all jobs, rounded down to a tenth (None while PanDA has not said)."""
    if done is None or not total:
        return None
    return int(1000 * done / total) / 10


def iam_gate(launch: Launch, passed: Gate | None = None) -> Gate:
    """Hold the launch back while SPD-IAM is unreachable and its owner has no valid token left: it
    stays pending, unclaimed, and goes on a later dispatch. Any other token problem is the submit's
    to report (the launch fails with the reason). `passed`: what the other gates decided (kept)."""
    go = passed or Gate()
    if launch.created_by_id is None:
        return go
    try:
        token_vault.token_for(launch.created_by_id)
    except IamUnreachable as exc:
        return Gate(wait=True, reason=f"waiting: {exc.reason}")
    except TokenUnavailable:
        pass
    return go
