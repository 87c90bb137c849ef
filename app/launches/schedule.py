"""Scheduling launches: now, at a time (entered in the user's time zone, stored in UTC), when another
task is done, or when it has N % of its jobs done; and the Launches page's cancel, reschedule and
launch-now.

A schedule is checked before anything is saved (`check`): a time in the past, a task that cannot be
found or can never get there, or an owner whose token will not be usable then is refused with a
message for the form field (`ScheduleRefused`). Changes to an existing launch are conditional UPDATEs
on its status, so a launch the dispatcher claimed meanwhile is never changed (and a cancelled one
never runs). Services flush, never commit (the token check job is `app.launches.jobs`).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import select, update

from app import clock
from app.audit.services import record
from app.auth.models import User
from app.auth.roles import role_at_least
from app.extensions import db
from app.launches.dispatcher import dispatch_soon
from app.launches.gates import PARENT_FAILED
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.launches.states import check as check_transition
from app.tasks.models import Task
from app.tokens import services as token_vault

S = LaunchStatus
# A time this close to now counts as "now" (the form was filled in a minute ago).
PAST_SLACK = timedelta(minutes=2)
TOKEN_UNUSABLE = "token unusable: log in again"


class ScheduleRefused(Exception):
    """Field-level reasons (form field name → messages), as the task services' ValidationFailed."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class NotAllowed(Exception):
    """The user may not change this launch (a manager changes their own; an admin any)."""


@dataclass(frozen=True)
class Schedule:
    """When a launch goes: at `at` (UTC; None: now) and, with `after_task`, once that task is done in
    PanDA, or has `at_percent` % of its jobs done. `zone`: the time zone the time was entered in
    (kept as the user's preference once the schedule is accepted)."""

    at: datetime | None = None
    after_task: Task | None = None
    at_percent: int | None = None
    zone: str = ""

    @property
    def later(self) -> bool:
        return self.at is not None or self.after_task is not None

    def describe(self) -> str:
        parts = [f"at {self.at:%Y-%m-%d %H:%M} UTC"] if self.at else []
        if self.after_task is not None:
            goal = f"has {self.at_percent} % of its jobs done" if self.at_percent else "is done"
            parts.append(f"when task {self.after_task.name} {goal}")
        return " and ".join(parts) or "now"


NOW = Schedule()


# --- time zones -------------------------------------------------------------------------------------


@cache
def zone_names() -> tuple[str, ...]:
    """The IANA zones users may enter times in (UTC first)."""
    return ("UTC", *sorted(zoneinfo.available_timezones() - {"UTC"}))


def to_utc(local: datetime, zone: str) -> datetime:
    """A wall-clock time in `zone` as UTC (for a time a DST change skips or repeats, the first)."""
    if zone not in zone_names():
        raise ScheduleRefused({"time_zone": [f"unknown time zone {zone!r}"]})
    return local.replace(tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(UTC)


def in_zone(value: datetime, zone: str) -> datetime:
    """A UTC time as wall-clock time in `zone` (UTC when `zone` is not a known zone)."""
    return value.astimezone(zoneinfo.ZoneInfo(zone if zone in zone_names() else "UTC"))


def remember_zone(user: User, zone: str) -> None:
    """Keep the zone a user scheduled in as their preference (flushed with the caller's work)."""
    if zone in zone_names() and user.time_zone != zone:
        user.time_zone = zone


# --- checking a schedule ------------------------------------------------------------------------------


def find_task(text: str) -> Task | None:
    """The task a user names: its name, or a PanDA task id (the newest task with that id)."""
    text = text.strip()
    if text.isdigit():
        found = db.session.scalar(
            select(Task).where(Task.panda_task_id == int(text)).order_by(Task.id.desc()).limit(1)
        )
        if found is not None:
            return found
    return db.session.scalar(select(Task).where(Task.name == text))


def check(schedule: Schedule, owner: User, *, launching: Iterable[int] = ()) -> None:
    """Raise ScheduleRefused unless `schedule` can work for launches owned by `owner` (of the tasks
    `launching`, which may not wait for themselves)."""
    errors: dict[str, list[str]] = {}
    now = clock.now()
    if schedule.at is not None and schedule.at < now - PAST_SLACK:
        errors["launch_at"] = [
            f"{schedule.at:%Y-%m-%d %H:%M} UTC is in the past; choose a later time or launch now"
        ]
    other = schedule.after_task
    if schedule.at_percent is not None and not 1 <= schedule.at_percent <= 100:
        errors["at_percent"] = ["a percentage of jobs from 1 to 100"]
    if other is not None:
        problem = _dependency_problem(other, set(launching))
        if problem:
            errors["after_task"] = [problem]
    if schedule.later and not errors:
        problem = token_problem(owner, schedule.at)
        if problem:
            errors["launch_at" if schedule.at else "after_task"] = [problem]
    if errors:
        raise ScheduleRefused(errors)


def _dependency_problem(other: Task, launching: set[int]) -> str | None:
    if other.id in launching:
        return f"{other.name} is one of the tasks being launched; it cannot wait for itself"
    if other.panda_status in PARENT_FAILED:
        return f"{other.name} ended {other.panda_status} in PanDA; it will never be done"
    latest = other.latest_launch
    if other.panda_task_id is None and latest is not None and latest.status == S.CANCELLED:
        return f"{other.name} was cancelled; it will never reach PanDA"
    return None


def token_problem(owner: User, at: datetime | None) -> str | None:
    """Why `owner`'s token will not be usable for a launch at `at` (None: on a condition, at any time
    from now), or None. A grant lasts until its refresh token ends (without one, its current token)."""
    return token_problem_for(owner, token_vault.valid_until(owner), at)


def token_problem_for(owner: User, until: datetime | None, at: datetime | None) -> str | None:
    if until is None:
        return f"{TOKEN_UNUSABLE}: the panel holds no usable PanDA token for {owner.username}"
    if until <= clock.now():
        return f"{TOKEN_UNUSABLE}: the PanDA token of {owner.username} ended {until:%Y-%m-%d %H:%M} UTC"
    if at is not None and until < at:
        return (
            f"the PanDA token of {owner.username} can be renewed only until {until:%Y-%m-%d %H:%M} UTC, "
            "before this launch is due: choose an earlier time, or log in again and schedule it then"
        )
    return None


def apply(launch: Launch, schedule: Schedule) -> None:
    """Give a new (unsaved or pending) launch its schedule."""
    launch.due_at = schedule.at or clock.now()
    launch.after_task_id = schedule.after_task.id if schedule.after_task is not None else None
    launch.at_percent = schedule.at_percent if schedule.after_task is not None else None


# --- changing pending launches ------------------------------------------------------------------------


def may_change(user: User, launch: Launch) -> bool:
    """A manager changes their own launches; an admin anyone's."""
    if role_at_least(user, "admin"):
        return True
    return role_at_least(user, "manager") and launch.created_by_id == user.id


def targets(launch: Launch, whole_bunch: bool) -> list[Launch]:
    """The launch, or every pending launch of its bunch (each task's latest)."""
    if not whole_bunch:
        return [launch]
    latest = (t.latest_launch for t in launch.task.bunch.tasks)
    return [row for row in latest if row is not None and row.status == S.PENDING]


def _update_pending(launches: list[Launch], **values: Any) -> list[Launch]:
    """UPDATE the launches still pending (a claimed one is never changed); the ones changed."""
    if not launches:
        return []
    result = db.session.execute(
        update(Launch)
        .where(Launch.id.in_([row.id for row in launches]), Launch.status == S.PENDING)
        .values(**values)
        .returning(Launch.id)
        .execution_options(synchronize_session=False)
    )
    changed = set(result.scalars())
    for row in launches:
        db.session.expire(row)
    return [row for row in launches if row.id in changed]


def allowed(launches: list[Launch], user: User) -> None:
    """Raise NotAllowed unless `user` may change every one of `launches`."""
    refused = [row for row in launches if not may_change(user, row)]
    if refused:
        raise NotAllowed(f"only its owner or an admin may change the launch of {refused[0].task.name}")


def cancel(launches: list[Launch], user: User) -> int:
    """Cancel pending launches: they never run. How many were cancelled (audited)."""
    allowed(launches, user)
    check_transition(S.PENDING, S.CANCELLED)
    names = [row.task.name for row in launches]
    done = _update_pending(
        launches, status=S.CANCELLED, finished_at=clock.now(), error=f"cancelled by {user.username}"
    )
    record("launch.cancel", target=names[0] if names else None, outcome="ok" if done else "refused",
           details={"launch_ids": [row.id for row in done], "asked": len(launches)}, user=user)  # fmt: skip
    return len(done)


def reschedule(launches: list[Launch], schedule: Schedule, user: User) -> int:
    """Give pending launches a new schedule (checked as a new one); how many changed (audited).
    The dispatcher is woken once committed, so "now" goes at once."""
    allowed(launches, user)
    owners = {row.created_by_id for row in launches}
    for owner in (db.session.get(User, owner_id) for owner_id in owners if owner_id is not None):
        if owner is not None:
            check(schedule, owner, launching=[row.task_id for row in launches])
    other = schedule.after_task
    done = _update_pending(
        launches,
        due_at=schedule.at or clock.now(),
        after_task_id=other.id if other is not None else None,
        at_percent=schedule.at_percent if other is not None else None,
        error="",
    )
    remember_zone(user, schedule.zone)
    if done:
        dispatch_soon()
    record("launch.reschedule", target=launches[0].task.name if launches else None,
           outcome="ok" if done else "refused",
           details={"launch_ids": [row.id for row in done], "schedule": schedule.describe()}, user=user)  # fmt: skip
    return len(done)


def schedule_launch(
    launch: Launch,
    user: User,
    *,
    when: datetime | None = None,
    after_task: Task | None = None,
    at_percent: int | None = None,
) -> Launch:
    """Schedule one pending launch (the API's entry point): at `when` (aware, any zone; None: now),
    and/or when `after_task` is done or has `at_percent` % of its jobs done. Raises ScheduleRefused
    (field → messages), NotAllowed, or ScheduleRefused on "launch" when it is no longer pending."""
    at = when.astimezone(UTC) if when is not None else None
    if not reschedule([launch], Schedule(at, after_task, at_percent), user):
        raise ScheduleRefused({"launch": [f"the launch of {launch.task.name} is no longer pending"]})
    return launch
