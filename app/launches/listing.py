"""The Launches page's list: launches by state (upcoming, running, done, failed, cancelled) and owner,
paged by the database, each with what it waits for and what its viewer may do with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import selectinload

from app.auth.models import User
from app.extensions import capped, capped_text, db
from app.launches.gates import dependency_gate, task_label
from app.launches.models import Launch
from app.launches.schedule import may_change
from app.launches.states import LaunchStatus
from app.tasks.models import Task

S = LaunchStatus
STATES: dict[str, tuple[LaunchStatus, ...]] = {
    "upcoming": (S.PENDING,),
    "running": (S.SENDING, S.UNKNOWN, S.NEEDS_DECISION),  # claimed, outcome not settled yet
    "done": (S.SUBMITTED,),
    "failed": (S.FAILED,),
    "cancelled": (S.CANCELLED,),
}
STATE_OF = {status: state for state, statuses in STATES.items() for status in statuses}


@dataclass(frozen=True)
class LaunchFilters:
    state: str | None = None  # a key of STATES; None: all
    owner: str | None = None  # a user name


def launch_order(filters: LaunchFilters) -> tuple[list[Any], bool]:
    """The list's order, as keyset paging reads it: its keys (the last one the id) and whether they
    descend. Upcoming launches soonest first, the others newest first."""
    if filters.state == "upcoming":
        return [Launch.due_at, Launch.id], False
    return [Launch.id], True


def launches_query(filters: LaunchFilters) -> Select[Launch]:
    """The launches matching `filters`: upcoming ones soonest first, the others newest first."""
    query = (
        select(Launch)
        .join(Task, Launch.task_id == Task.id)
        .options(
            selectinload(Launch.task).selectinload(Task.bunch),
            selectinload(Launch.created_by),
            selectinload(Launch.after_task),
        )
    )
    if filters.state in STATES:
        query = query.where(Launch.status.in_(STATES[filters.state]))
    if filters.owner:
        query = query.join(User, Launch.created_by_id == User.id).where(User.username == filters.owner)
    keys, descending = launch_order(filters)
    return query.order_by(*(key.desc() if descending else key for key in keys))


def state_counts(owner: str | None = None) -> dict[str, str]:
    """How many launches are in each state (of `owner`'s, when given), as the tabs show them: each
    status counted up to COUNT_CAP + 1 only, in one statement of one index range per status, however
    many launches were ever made. The states a manager acts on (upcoming, running) stay well under the
    cap, so they are exact; the final ones (done, failed, cancelled) grow for ever: "10 000+"."""
    owned = [Launch.created_by_id == select(User.id).where(User.username == owner).scalar_subquery()] if owner else []
    counts = [
        capped(select(Launch.id).where(Launch.status == status, *owned)).scalar_subquery()
        for status in LaunchStatus
    ]
    out = dict.fromkeys(STATES, 0)
    for status, n in zip(LaunchStatus, db.session.execute(select(*counts)).one(), strict=True):
        out[STATE_OF[status]] += n
    return {state: capped_text(n) for state, n in out.items()}


@dataclass(frozen=True)
class LaunchRow:
    launch: Launch
    state: str  # a key of STATES
    condition: str  # what it waits for besides its time ("" for none)
    pending_in_bunch: int  # pending launches of its bunch (for "every launch of its bunch")
    changeable: bool  # pending, and the viewer may cancel / reschedule / launch it now
    why: str  # why it waits (read now for a condition on another task), failed or was cancelled


def condition_of(launch: Launch) -> str:
    other = launch.after_task
    if launch.after_task_id is None or other is None:
        return ""
    label = task_label(other)
    return f"when {label} has {launch.at_percent} % of its jobs done" if launch.at_percent else f"when {label} is done"


def rows_of(launches: list[Launch], viewer: User) -> list[LaunchRow]:
    """The page's rows; one query counts the pending launches of the bunches shown."""
    bunch_ids = {launch.task.bunch_id for launch in launches}
    counted = db.session.execute(
        select(Task.bunch_id, func.count())
        .join(Launch, Launch.task_id == Task.id)
        .where(Task.bunch_id.in_(bunch_ids), Launch.status == S.PENDING)
        .group_by(Task.bunch_id)
    )
    pending: dict[int, int] = {bunch_id: n for bunch_id, n in counted}
    return [
        LaunchRow(
            launch, STATE_OF[LaunchStatus(launch.status)], condition_of(launch), pending.get(launch.task.bunch_id, 0),
            launch.status == S.PENDING and may_change(viewer, launch), _why(launch),
        )  # fmt: skip
        for launch in launches
    ]


def _why(launch: Launch) -> str:
    """The stored reason, except for a launch waiting for another task: the dispatcher does not ask
    about those until the task got there (`gates.may_go`), so what it waits for is read now."""
    if launch.status == S.PENDING and launch.after_task_id is not None:
        held = dependency_gate(launch)
        return held.reason or held.refusal or launch.error
    return launch.error
