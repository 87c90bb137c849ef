"""The per-day summary (`stat_split`): each task PanDA knows adds its contribution to one row per
dimension (its day and every day; "all" is the daily total), and every change the sync applies moves
the contribution (old one out, new one in) in one atomic upsert, so the statistics read a few rows
per day and key instead of every task. `rebuild()` recomputes it from the tasks (after an upgrade,
or to check it).

The sync applies thousands of tasks per listing: inside `batched()` the moves are summed in memory
and written when the block ends, one executemany upsert (the sums commute, so the rows end
as they would have one statement per task), in the transaction of the task rows they follow."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app import clock
from app.extensions import db
from app.stats.models import ALL_DAYS, StatSplit, TaskProgress
from app.tasks.models import Task, TaskBunch

KEY = ("day", "step", "status", "request_id", "user_id")  # of a contribution (0: no request, no creator)
# jobs_total and log_bytes are for the successful table's totals row (app/monitoring/tables.py `totals`).
VALUES = ("tasks", "jobs_done", "jobs_failed", "events", "output_bytes", "walltime_s", "jobs_total", "log_bytes")
# The dimensions of `stat_split` and the KEY name each is keyed by ("all": one key, "", the daily total).
DIMENSIONS: dict[str, str | None] = {
    "all": None, "step": "step", "status": "status", "request": "request_id", "user": "user_id",
}  # fmt: skip
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Contribution:
    key: tuple[date, str, str, int, int]
    values: tuple[int, ...]  # in the order of VALUES


def contribution(task: Any) -> Contribution | None:
    """What one task adds to the summary (None before PanDA knows it). `task` is a Task or a row with
    the same attribute names plus `creator_id` (the rebuild's query)."""
    if task.panda_status is None:
        return None
    when = task.ended_at or task.submitted_at or task.created_at
    creator = task.creator_id if hasattr(task, "creator_id") else task.bunch.created_by_id
    key = (when.date(), task.step, task.panda_status, int(task.request_id or 0), int(creator or 0))
    values = (1, task.jobs_done or 0, task.jobs_failed or 0, task.events_processed or 0,
              task.output_bytes or 0, task.walltime_s or 0, task.jobs_total or 0, task.log_bytes or 0)  # fmt: skip
    return Contribution(key, values)


def _upsert_many(model: Any, rows: list[dict[str, Any]], keys: list[str], set_: Any) -> None:
    """INSERT … ON CONFLICT DO UPDATE (SQLite and PostgreSQL) of each row: one statement (executemany
    when several), no lost update. Flushes the session first (the rows may follow pending changes)."""
    if not rows:
        return
    upsert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = upsert(model)
    db.session.flush()
    db.session.connection().execute(
        statement.on_conflict_do_update(index_elements=keys, set_=set_(statement.excluded)), rows
    )


def _stat_rows(totals: dict[tuple[date, str, str, int, int], list[int]]) -> list[dict[str, Any]]:
    return [
        dict(zip(KEY, key, strict=True)) | dict(zip(VALUES, values, strict=True))
        for key, values in totals.items()
        if any(values)
    ]


def split_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `stat_split` rows of per-day rows (KEY and VALUES): each row's values added to its key of
    every dimension, on its day and over every day (ALL_DAYS); in key order (concurrent upserts lock
    rows in one order)."""
    totals: dict[tuple[str, date, str], list[int]] = defaultdict(lambda: [0] * len(VALUES))
    for row in rows:
        values = [row[name] for name in VALUES]
        for dimension, column in DIMENSIONS.items():
            key = "" if column is None else str(row[column])
            for day in (row["day"], ALL_DAYS):
                total = totals[(dimension, day, key)]
                for i, value in enumerate(values):
                    total[i] += value
    return [
        {"dimension": dimension, "day": day, "key": key} | dict(zip(VALUES, values, strict=True))
        for (dimension, day, key), values in sorted(totals.items())
        if any(values)
    ]


def _add_rows(rows: list[dict[str, Any]]) -> None:
    """Add each per-day row's values (possibly negative) to its splits' rows, creating them."""
    _upsert_many(
        StatSplit, split_rows(rows), ["dimension", "day", "key"],
        lambda new: {n: getattr(StatSplit, n) + getattr(new, n) for n in VALUES},
    )  # fmt: skip


def _moved_rows(moved: dict[int, datetime]) -> None:
    rows = [{"task_id": task_id, "moved_at": at} for task_id, at in moved.items()]
    _upsert_many(TaskProgress, rows, ["task_id"], lambda new: {"moved_at": new.moved_at})


@dataclass
class _Batch:
    """The moves of a `batched()` block, not yet written."""

    totals: dict[tuple[date, str, str, int, int], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * len(VALUES))
    )
    moved: dict[int, datetime] = field(default_factory=dict)  # task id -> when its jobs last moved


_batch: ContextVar[_Batch | None] = ContextVar("summary_batch", default=None)


@contextmanager
def batched() -> Iterator[None]:
    """Within the block, sum the summary's moves (and the tasks' "moved at") in memory; write them at
    its end (two statements at most). Nothing is written when the block raises: the caller rolls
    back the task rows too. Not reentrant: an inner block joins the outer one."""
    if _batch.get() is not None:
        yield
        return
    batch = _Batch()
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
    _add_rows(_stat_rows(batch.totals))
    _moved_rows(batch.moved)


def _add(key: tuple[date, str, str, int, int], values: Iterable[int]) -> None:
    """Add `values` (possibly negative) to the row `key`, creating it; one statement, no lost update
    (inside `batched()`: summed, written at its end)."""
    batch = _batch.get()
    if batch is not None:
        total = batch.totals[key]
        for i, value in enumerate(values):
            total[i] += value
        return
    _add_rows([dict(zip(KEY, key, strict=True)) | dict(zip(VALUES, values, strict=True))])


def _motion(task: Task) -> tuple[Any, ...]:
    return task.panda_status, task.jobs_done, task.jobs_failed


def move(before: Contribution | None, after: Contribution | None) -> None:
    """Replace a task's old contribution with its new one (nothing when they are equal)."""
    if before == after:
        return
    if before is not None and after is not None and before.key == after.key:
        _add(after.key, (a - b for a, b in zip(after.values, before.values, strict=True)))
        return
    if before is not None:
        _add(before.key, (-v for v in before.values))
    if after is not None:
        _add(after.key, after.values)


def counted(apply: Callable[P, R]) -> Callable[P, R]:
    """Decorates a sync function whose first argument is the task it changes: the summary follows,
    and the moment its jobs (or status) last moved is kept."""

    @functools.wraps(apply)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        task = args[0]
        assert isinstance(task, Task)
        before, motion = contribution(task), _motion(task)
        result = apply(*args, **kwargs)
        move(before, contribution(task))
        if _motion(task) != motion:  # the stalled-task alert measures from here
            batch = _batch.get()
            if batch is not None:
                batch.moved[task.id] = clock.now()
            else:
                _moved_rows({task.id: clock.now()})
        return result

    return wrapper


def rebuild() -> int:
    """Recompute the whole summary from the tasks (flushes); returns the number of tasks counted."""
    totals: dict[tuple[date, str, str, int, int], list[int]] = defaultdict(lambda: [0] * len(VALUES))
    rows = db.session.execute(
        select(
            Task.panda_status,
            Task.ended_at,
            Task.submitted_at,
            Task.created_at,
            Task.step,
            Task.request_id,
            Task.jobs_done,
            Task.jobs_failed,
            Task.events_processed,
            Task.output_bytes,
            Task.walltime_s,
            Task.jobs_total,
            Task.log_bytes,
            TaskBunch.created_by_id.label("creator_id"),
        )  # fmt: skip
        .join(TaskBunch, TaskBunch.id == Task.bunch_id)
        .where(Task.panda_status.is_not(None))
        .execution_options(yield_per=5000)
    )
    counted_tasks = 0
    for row in rows:
        part = contribution(row)
        assert part is not None
        counted_tasks += 1
        for i, value in enumerate(part.values):
            totals[part.key][i] += value
    db.session.execute(delete(StatSplit))
    if totals:
        db.session.execute(insert(StatSplit), split_rows(_stat_rows(totals)))
    return counted_tasks
