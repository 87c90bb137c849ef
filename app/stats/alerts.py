"""Alerts: stalled tasks, failed or broken tasks, a scheduled launch whose owner's token will not
last until it is due, PanDA unreachable. Each is one row named by its event (`Alert.key`): raised
once, cleared when the condition ends, shown on the home page to the people concerned (the task's
creator, the launch's owner; everyone for PanDA). These functions flush, never commit; the job in
app/stats/jobs.py evaluates them and sends the notifications."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import clock
from app.auth.models import User
from app.config import get_settings
from app.extensions import db
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.stats.models import Alert, NotifyPreference, TaskProgress
from app.stats.progress import stalled_clause
from app.sync.services import sync_status
from app.tasks.models import Task, TaskBunch
from app.tokens.services import panda_token_line

FAILED = ("failed", "broken")
FAILED_WINDOW = timedelta(days=7)  # failed tasks older than this raise no alert any more


@dataclass(frozen=True)
class Wanted:
    """An alert the current state calls for."""

    key: str
    kind: str
    user_id: int | None
    task_id: int | None
    message: str
    url: str = ""


def _task_url(task_id: int) -> str:
    return f"/tasks/{task_id}"


def stalled(now: datetime) -> list[Wanted]:
    rows = db.session.execute(
        select(Task.id, Task.name, Task.panda_status, TaskBunch.created_by_id, TaskProgress.moved_at)
        .join(TaskProgress, TaskProgress.task_id == Task.id)
        .join(TaskBunch, TaskBunch.id == Task.bunch_id)
        .where(stalled_clause(now))
    ).all()
    return [
        Wanted(f"stalled:{tid}:{moved:%Y%m%dT%H%M%S}", "stalled", owner, tid,
               f"{name} ({status}) has made no progress since {moved:%Y-%m-%d %H:%M} UTC", _task_url(tid))
        for tid, name, status, owner, moved in rows
    ]  # fmt: skip


def failed(now: datetime) -> list[Wanted]:
    rows = db.session.execute(
        select(Task.id, Task.name, Task.panda_status, TaskBunch.created_by_id, Task.panda_error)
        .join(TaskBunch, TaskBunch.id == Task.bunch_id)
        .where(Task.panda_status.in_(FAILED), Task.ended_at >= now - FAILED_WINDOW)
    ).all()
    return [
        Wanted(f"failed:{tid}:{status}", "failed", owner, tid,
               f"{name} is {status} in PanDA" + (f": {error[:200]}" if error else ""), _task_url(tid))
        for tid, name, status, owner, error in rows
    ]  # fmt: skip


def _token_problem(user: User, due_at: datetime) -> str | None:
    """Why the owner's token will not be usable at `due_at` (None: it will be)."""
    line = panda_token_line(user)
    if line.kind == "sandbox":
        return None
    if line.kind in ("missing", "refused"):
        return line.reason or "no usable token"
    if line.has_refresh_token:
        ends = line.refresh_until
        return None if ends is None or ends >= due_at else f"the refresh token ends {ends:%Y-%m-%d %H:%M} UTC"
    if line.accepted_until is not None and line.accepted_until < due_at:
        return f"the token expires {line.accepted_until:%Y-%m-%d %H:%M} UTC and cannot be refreshed"
    return None


def token_expiry(now: datetime) -> list[Wanted]:
    horizon = now + timedelta(hours=get_settings().stats.token_warning_hours)
    launches = db.session.scalars(
        select(Launch)
        .options(selectinload(Launch.task), selectinload(Launch.created_by))
        .where(Launch.status == LaunchStatus.PENDING, Launch.due_at > now, Launch.due_at <= horizon)
        .order_by(Launch.due_at)
    ).all()
    wanted = []
    for launch in launches:
        owner = launch.created_by
        if launch.token_problem:  # flagged by the scheduled launches' token check (app/launches)
            problem: str | None = launch.token_problem
        else:
            problem = _token_problem(owner, launch.due_at) if owner is not None else "its owner was removed"
        if problem:
            wanted.append(Wanted(
                f"token:{launch.id}", "token", launch.created_by_id, launch.task_id,
                f"{launch.task.name} is due {launch.due_at:%Y-%m-%d %H:%M} UTC but {problem}: log in again before",
                "/tokens/",
            ))  # fmt: skip
    return wanted


def panda_down() -> list[Wanted]:
    since = sync_status().unreachable_since
    if since is None:
        return []
    return [Wanted(f"panda:{since:%Y%m%dT%H%M%S}", "panda", None, None,
                   f"PanDA unreachable since {since:%Y-%m-%d %H:%M} UTC (the sync retries)")]  # fmt: skip


def evaluate(now: datetime | None = None) -> list[Alert]:
    """Raise the alerts the state calls for that are not open yet, clear those it no longer calls
    for; returns the new ones (flushed)."""
    now = now or clock.now()
    wanted = {w.key: w for w in (*stalled(now), *failed(now), *token_expiry(now), *panda_down())}
    open_alerts = db.session.scalars(select(Alert).where(Alert.cleared_at.is_(None))).all()
    for alert in open_alerts:
        if alert.key not in wanted:
            alert.cleared_at = now
    known = set(db.session.scalars(select(Alert.key).where(Alert.key.in_(list(wanted))))) if wanted else set()
    raised = [Alert(key=w.key, kind=w.kind, user_id=w.user_id, task_id=w.task_id, message=w.message,
                    url=w.url, raised_at=now) for key, w in wanted.items() if key not in known]  # fmt: skip
    db.session.add_all(raised)
    db.session.flush()
    return raised


def recipients(alert: Alert, users: Iterable[User]) -> list[User]:
    """Who an alert concerns among `users`: its person, or everyone for a team-wide alert."""
    return [u for u in users if u.active and (alert.user_id is None or u.id == alert.user_id)]


def preference(user: User) -> NotifyPreference:
    """The user's opt-in (both off until they choose)."""
    return db.session.get(NotifyPreference, user.id) or NotifyPreference(
        user_id=user.id, email=False, webhook=False
    )


def save_preference(user: User, *, email: bool, webhook: bool) -> None:
    """Store the user's opt-in (flushes)."""
    row = db.session.get(NotifyPreference, user.id)
    if row is None:
        row = NotifyPreference(user_id=user.id)
        db.session.add(row)
    row.email, row.webhook = email, webhook
    db.session.flush()
