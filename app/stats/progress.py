"""Progress and ETA of a set of tasks (a bunch, a chain, a request): events requested vs produced,
percent done, an ETA from the rate so far, and the tasks whose jobs have not moved for
`[stats] stalled_hours` (stalled)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, select

from app import clock
from app.chains.models import ChainStep
from app.config import get_settings
from app.extensions import db
from app.prodrequests.services import request_clause
from app.stats.models import TaskProgress
from app.sync.services import FINAL, active_clause
from app.tasks.models import Task


@dataclass(frozen=True)
class Stalled:
    id: int
    name: str
    status: str
    since: datetime


@dataclass(frozen=True)
class Progress:
    """Events when the tasks say how many they make (generation steps), else jobs."""

    unit: str  # "events" or "jobs"
    requested: int
    produced: int
    tasks: int
    active: int
    started_at: datetime | None
    eta: datetime | None  # None: finished, not started, or no rate yet
    stalled: list[Stalled]

    @property
    def percent(self) -> float:
        return min(100.0, 100.0 * self.produced / self.requested) if self.requested else 0.0


def stalled_clause(now: datetime) -> ColumnElement[bool]:
    """SQL: an active task PanDA runs whose jobs (or status) have not moved for `stalled_hours`."""
    cutoff = now - timedelta(hours=get_settings().stats.stalled_hours)
    return and_(active_clause(), Task.panda_status.is_not(None), TaskProgress.moved_at < cutoff)


def _produced(requested: int, row: Any) -> int:
    """Accounted tasks: the events PanDA counted; before that, the share of finished jobs."""
    if row.accounted_at is not None and row.events_processed is not None:
        return int(row.events_processed)
    if not row.jobs_total:
        return 0
    return requested * min(row.jobs_done or 0, row.jobs_total) // row.jobs_total


def progress_of(where: ColumnElement[bool]) -> Progress:
    """The progress of the tasks `where` selects (read from the stored rows, no PanDA call)."""
    now = clock.now()
    rows = db.session.execute(
        select(Task.id, Task.name, Task.panda_status, Task.panda_task_id, Task.events_requested,
               Task.spec["total_events"].as_integer().label("planned"), Task.events_processed,
               Task.accounted_at, Task.jobs_done, Task.jobs_total, Task.started_at, TaskProgress.moved_at)
        .outerjoin(TaskProgress, TaskProgress.task_id == Task.id)
        .where(where)
        .order_by(Task.id)
    ).all()  # fmt: skip
    by_events = any(r.events_requested or r.planned for r in rows)
    requested = produced = active = 0
    cutoff = now - timedelta(hours=get_settings().stats.stalled_hours)
    stalled = []
    for row in rows:
        wanted = int(row.events_requested or row.planned or 0) if by_events else int(row.jobs_total or 0)
        requested += wanted
        produced += _produced(wanted, row) if by_events else min(row.jobs_done or 0, wanted)
        is_active = row.panda_task_id is not None and row.panda_status not in FINAL
        active += is_active or row.panda_task_id is None
        if is_active and row.moved_at is not None and row.moved_at < cutoff:
            stalled.append(Stalled(row.id, row.name, row.panda_status, row.moved_at))
    started = min((r.started_at for r in rows if r.started_at), default=None)
    return Progress("events" if by_events else "jobs", requested, produced, len(rows), active, started,
                    _eta(requested, produced, started, now) if active else None, stalled)  # fmt: skip


def _eta(requested: int, produced: int, started: datetime | None, now: datetime) -> datetime | None:
    """When the rest is done at the rate so far (None before anything was produced)."""
    if started is None or produced <= 0 or produced >= requested or now <= started:
        return None
    rate = produced / (now - started).total_seconds()
    return now + timedelta(seconds=(requested - produced) / rate)


def bunch_progress(bunch_id: int) -> Progress:
    return progress_of(Task.bunch_id == bunch_id)


def chain_progress(chain_id: int) -> Progress:
    return progress_of(Task.bunch_id.in_(select(ChainStep.bunch_id).where(ChainStep.chain_id == chain_id)))


def request_progress(request_id: int) -> Progress:
    """The request's tasks as the request page counts them (its own, and its chains')."""
    return progress_of(request_clause(request_id))
