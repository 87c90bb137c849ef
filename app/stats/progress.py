"""Progress and ETA of a set of tasks (a bunch, a chain, a request): events requested vs produced,
percent done, an ETA from the rate so far, and the tasks whose jobs have not moved for
`[stats] stalled_hours` (stalled)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute

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


@cache  # built once: composing these expressions costs more than running the statement on a bunch
def _sums() -> tuple[ColumnElement, ...]:
    """SQL: the sums a Progress is made of, over the selected tasks.

    Events when any task says how many it makes (events_requested, else the spec's total_events), else
    jobs. Produced per task: accounted tasks the events PanDA counted; before that, the share of
    finished jobs of the task's events."""
    jobs_total = func.coalesce(Task.jobs_total, 0)
    jobs_done = func.coalesce(Task.jobs_done, 0)
    finished_jobs = case((jobs_done < jobs_total, jobs_done), else_=jobs_total)  # min(done, total)
    # The spec is read once per use, only when events_requested says nothing: PostgreSQL parses the
    # whole JSON text for each `->>` (a CASE testing, then returning, the spec's value parsed it twice).
    events_wanted = func.coalesce(
        func.nullif(Task.events_requested, 0), func.nullif(Task.spec["total_events"].as_integer(), 0), 0
    )
    events_made = case(
        (and_(Task.accounted_at.is_not(None), Task.events_processed.is_not(None)), Task.events_processed),
        (jobs_total != 0, events_wanted * finished_jobs // jobs_total),
        else_=0,
    )
    active = or_(Task.panda_task_id.is_(None), func.coalesce(Task.panda_status, "").not_in(FINAL))
    return (func.count(Task.id), func.count(func.nullif(events_wanted, 0)), func.sum(events_wanted),
            func.sum(events_made), func.sum(jobs_total), func.sum(finished_jobs), func.count(case((active, 1))),
            func.min(Task.started_at))  # fmt: skip


def _stalled_columns() -> tuple[InstrumentedAttribute[Any], ...]:
    return Task.id, Task.name, Task.panda_status, TaskProgress.moved_at


def _progress(sums: Sequence[Any], stalled: list[Stalled], now: datetime) -> Progress:
    count, with_events, events, made, jobs, done, active_count, started = sums
    by_events = bool(with_events)
    requested, produced = (
        (int(events or 0), int(made or 0)) if by_events else (int(jobs or 0), int(done or 0))
    )
    return Progress("events" if by_events else "jobs", requested, produced, int(count or 0), int(active_count or 0),
                    started, _eta(requested, produced, started, now) if active_count else None, stalled)  # fmt: skip


def progress_of(where: ColumnElement[bool]) -> Progress:
    """The progress of the tasks `where` selects (read from the stored rows, no PanDA call), summed in
    the database: one statement for the sums in both units, one for the stalled tasks."""
    now = clock.now()
    sums = db.session.execute(select(*_sums()).where(where)).one()
    stalled = db.session.execute(
        select(*_stalled_columns())
        .join(TaskProgress, TaskProgress.task_id == Task.id)
        .where(where, stalled_clause(now))
        .order_by(Task.id)
    )
    return _progress(sums, [Stalled(*r) for r in stalled], now)


def _progress_by(key: InstrumentedAttribute[int], ids: list[int], through_steps: bool = False) -> dict[int, Progress]:
    """``progress_of`` of each group of tasks `key` (a bunch or a chain id) in `ids`, in two statements
    whatever their number: the home page shows a progress line per running bunch and chain."""
    if not ids:
        return {}
    now = clock.now()

    def grouped(query: Select) -> Select:
        query = query.select_from(Task)
        if through_steps:
            query = query.join(ChainStep, ChainStep.bunch_id == Task.bunch_id)
        return query.where(key.in_(ids))

    sums = {row[0]: row[1:] for row in db.session.execute(grouped(select(key, *_sums())).group_by(key))}
    stalled: dict[int, list[Stalled]] = {}
    for group, *row in db.session.execute(
        grouped(select(key, *_stalled_columns()))
        .join(TaskProgress, TaskProgress.task_id == Task.id)
        .where(stalled_clause(now))
        .order_by(key, Task.id)
    ):
        stalled.setdefault(group, []).append(Stalled(*row))
    empty = (0, 0, None, None, None, None, 0, None)
    return {i: _progress(sums.get(i, empty), stalled.get(i, []), now) for i in ids}


def bunch_progresses(bunch_ids: list[int]) -> dict[int, Progress]:
    return _progress_by(Task.bunch_id, bunch_ids)


def chain_progresses(chain_ids: list[int]) -> dict[int, Progress]:
    return _progress_by(ChainStep.chain_id, chain_ids, through_steps=True)


def _eta(requested: int, produced: int, started: datetime | None, now: datetime) -> datetime | None:
    """When the rest is done at the rate so far (None before anything was produced)."""
    if started is None or produced <= 0 or produced >= requested or now <= started:
        return None
    rate = produced / (now - started).total_seconds()
    return now + timedelta(seconds=(requested - produced) / rate)


def bunch_progress(bunch_id: int) -> Progress:
    return bunch_progresses([bunch_id])[bunch_id]


def chain_progress(chain_id: int) -> Progress:
    return chain_progresses([chain_id])[chain_id]


def request_progress(request_id: int) -> Progress:
    """The request's tasks as the request page counts them (its own, and its chains')."""
    return progress_of(request_clause(request_id))
