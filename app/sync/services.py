"""The PanDA sync's services: what it stores about each task (status history, progress,
priorities, times, final accounting), the sync's state ("PanDA unreachable since …"), and the
manager's "Sync this task now". The background jobs that call PanDA in bulk are `jobs.py`.

Pages read the stored rows only: a viewer never causes a PanDA call. PanDA is asked with the task
owner's token (the user who submitted it) or the configured service identity, never a viewer's.
These functions flush, never commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import defer

from app import clock
from app.auth.models import User
from app.config import Settings, get_settings
from app.extensions import db, panda_clients
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.panda.client import PandaApi
from app.panda.errors import PandaError, PandaNotFound, PandaUnavailable
from app.panda.results import JobDescription, TaskInfo, TaskSummary, as_utc, parse_statistics
from app.stats.errors import record_errors
from app.stats.summary import counted
from app.sync.models import SyncState, TaskStatusChange
from app.tasks.models import Task
from app.tokens.errors import TokenUnavailable

log = logging.getLogger(__name__)

FINAL = frozenset({"done", "finished", "failed", "broken", "aborted"})
# Statuses whose job counters move without a change of status: listed every cycle.
PROGRESSING = ("scouting", "running", "throttled", "finishing")
SANDBOX_SERVER = "sandbox"


# --- state ------------------------------------------------------------------------------------


def server_key(settings: Settings | None = None) -> str:
    """The sync state's key: the configured PanDA URL (the sandbox simulator's port changes per start)."""
    settings = settings or get_settings()
    return settings.panda.url or SANDBOX_SERVER


def sync_state() -> SyncState:
    """The state row of the configured PanDA server (created on first use; flushes)."""
    key = server_key()
    state = db.session.get(SyncState, key)
    if state is None:
        state = SyncState(server=key, cursors={}, failures=0, last_cycle_calls=0, last_error="")
        db.session.add(state)
        db.session.flush()
    return state


@dataclass(frozen=True)
class SyncStatus:
    """What the pages say about the sync (read only, no PanDA call)."""

    unreachable_since: datetime | None
    last_error: str
    last_success_at: datetime | None
    next_attempt_at: datetime | None


def sync_status() -> SyncStatus:
    """The sync's health for the pages: "PanDA unreachable since …" while an outage lasts."""
    state = db.session.get(SyncState, server_key())
    if state is None:
        return SyncStatus(None, "", None, None)
    return SyncStatus(state.unreachable_since, state.last_error, state.last_success_at, state.next_attempt_at)


def mark_unreachable(state: SyncState, exc: PandaError, now: datetime) -> None:
    """PanDA did not answer: remember since when, and back off before the next cycle."""
    settings = get_settings().sync
    state.failures = (state.failures or 0) + 1
    state.unreachable_since = state.unreachable_since or now
    state.last_error = str(exc)[:1000]
    pause = min(settings.interval_s * 2 ** min(state.failures, 20), settings.backoff_max_s)
    state.next_attempt_at = now + timedelta(seconds=pause)
    log.warning("PanDA unreachable (%d in a row), next sync after %s: %s", state.failures, pause, exc)


def mark_reachable(state: SyncState, now: datetime) -> None:
    if state.unreachable_since is not None:
        log.info("PanDA reachable again (unreachable since %s)", state.unreachable_since.isoformat())
    state.failures = 0
    state.unreachable_since = None
    state.next_attempt_at = None
    state.last_error = ""
    state.last_success_at = now


# --- applying what PanDA says -----------------------------------------------------------------


INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1  # the columns' ranges: whatever PanDA says is stored


def _jobs(n_files: int | None, files_per_job: int) -> int | None:
    """Jobs from input-file counts (pseudo input for generation: one file per job)."""
    return None if n_files is None else min(-(-n_files // files_per_job), INT32_MAX)


def _files_per_job(params: dict[str, Any] | None) -> int:
    params = params or {}
    if params.get("noInput"):
        return 1
    try:
        return max(int(params.get("nFilesPerJob") or 1), 1)
    except (TypeError, ValueError):
        return 1


def _bounded(value: int | None) -> int | None:
    return None if value is None else max(min(value, INT32_MAX), -INT32_MAX)


def _record_status(task: Task, status: str, began_at: datetime) -> bool:
    """Store a new PanDA status and the moment it began; False when it is the stored one already."""
    if not status or status == task.panda_status:
        return False
    db.session.add(TaskStatusChange(task_id=task.id, status=status, began_at=began_at))
    if task.panda_status in FINAL and status not in FINAL:  # retried: account again when final
        task.accounted_at = None
    task.panda_status = status
    return True


def _set(task: Task, values: dict[str, Any]) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(task, name) != value:
            setattr(task, name, value)
            changed = True
    return changed


@counted
def apply_info(task: Task, info: TaskInfo, now: datetime, mark_checked: bool = True) -> bool:
    """Store what `get_detailed_info` says about the task; True when something changed. Flushes nothing.
    mark_checked=False: the caller sets `panda_checked_at` of many tasks in one statement (an unchanged
    task then stays clean: no UPDATE of its row)."""
    params = info.raw_task_params or {}
    per_job = _files_per_job(params)
    began = as_utc(info.raw.get("stateChangeTime")) or info.modification_time or now
    changed = _record_status(task, info.status, began)
    requested = min(params["nEvents"], INT64_MAX) if isinstance(params.get("nEvents"), int) else None
    changed |= _set(
        task,
        {
            "panda_modified_at": info.modification_time,
            "panda_error": info.error_dialog,
            "jobs_done": _jobs(info.n_files_finished, per_job),
            "jobs_failed": _jobs(info.n_files_failed, per_job),
            "jobs_total": _jobs(info.n_files, per_job),
            "events_requested": requested,
            "priority_default": _bounded(info.task_priority),
            "priority_current": _bounded(info.current_priority),
            "submitted_at": info.creation_date,
            "started_at": info.start_time,
            "ended_at": info.end_time,
            "cloud": info.cloud,
            "site": info.site or info.nucleus,
        },
    )
    if mark_checked:
        task.panda_checked_at = now
    return changed


@counted
def apply_summary(task: Task, summary: TaskSummary, now: datetime) -> bool:
    """Store what a legacy listing (`getJediTasksInTimeRange`, full) says: status, times, file counts."""
    began = summary.modification_time or now
    changed = _record_status(task, summary.status, began)
    values: dict[str, Any] = {
        "panda_modified_at": summary.modification_time,
        "submitted_at": summary.creation_date,
    }
    stats = parse_statistics(summary.raw.get("statistics"))
    if stats:
        values.update(jobs_done=_bounded(stats.get("finished", 0)), jobs_failed=_bounded(stats.get("failed", 0)),
                      jobs_total=_bounded(sum(stats.values())))  # fmt: skip
    changed |= _set(task, values)
    task.panda_checked_at = now
    return changed


@counted
def account(task: Task, jobs: list[JobDescription], now: datetime) -> None:
    """The final task's consumed walltime, processed events, output and log sizes (every attempt)."""
    finished = [job for job in jobs if job.status == "finished"]
    task.walltime_s = min(int(sum(job.walltime_s for job in jobs)), INT64_MAX)
    task.events_processed = min(sum(job.n_events or 0 for job in finished), INT64_MAX)
    task.output_bytes = min(sum(job.output_bytes for job in finished), INT64_MAX)
    task.log_bytes = min(sum(job.log_bytes for job in jobs), INT64_MAX)
    record_errors(task, jobs)
    task.accounted_jobs = len(jobs)
    task.accounted_at = now
    task.accounting_error = None


# --- who asks ---------------------------------------------------------------------------------


def _identity(settings: Settings) -> User | None:
    if not settings.sync.identity:
        return None
    return db.session.scalar(select(User).where(User.username == settings.sync.identity))


def caller_for(owner_id: int | None, settings: Settings) -> User | None:
    """The user whose token lists the owner's tasks: the service identity, else the owner."""
    if settings.sync.identity:
        return _identity(settings)
    return db.session.get(User, owner_id) if owner_id is not None else None


# --- final accounting -------------------------------------------------------------------------


def owner_of(task: Task) -> int | None:
    """The user whose token submitted the task (the sync lists the task with that token)."""
    return db.session.scalar(
        select(Launch.created_by_id)
        .where(Launch.task_id == task.id, Launch.status == LaunchStatus.SUBMITTED)
        .order_by(Launch.id.desc())
        .limit(1)
    )


# --- one task now ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """A sentence for the user and its weight (a Bootstrap alert category)."""

    message: str
    category: str = "info"


def refresh_task(task: Task, client: PandaApi) -> TaskInfo:
    """Read one task from PanDA with its owner's token (or the service identity) and store it;
    flushes. Raises PandaError / TokenUnavailable (PandaNotFound before JEDI has picked it up)."""
    if task.panda_task_id is None:
        raise PandaNotFound("the task is not in PanDA yet")
    caller = caller_for(owner_of(task), get_settings())
    if caller is None:
        raise TokenUnavailable("no user whose token can read this task (its owner was removed)")
    info = client.get_detailed_info(caller, task.panda_task_id)
    apply_info(task, info, clock.now())
    db.session.flush()
    return info


def sync_task_now(task: Task) -> Notice:
    """A manager's "Sync this task now": read the task from PanDA (never with the manager's token
    unless the manager owns it), store it, and say what PanDA said."""
    if task.panda_task_id is None:
        return Notice("The task is not in PanDA yet.", "warning")
    client = panda_clients(interactive=True)
    try:
        info = refresh_task(task, client)
    except PandaNotFound:
        return Notice(
            "PanDA has not picked the task up yet (JEDI registers a new task within minutes).", "warning"
        )
    except PandaUnavailable as exc:
        return Notice(f"PanDA is unreachable: {exc}", "danger")
    except (PandaError, TokenUnavailable) as exc:
        return Notice(f"Reading the task from PanDA failed: {exc}", "danger")
    finally:
        client.close()
    if task.accounting_error:  # the next cycle reads its job descriptions again
        task.accounted_at = task.accounting_error = None
    counters = " / ".join(
        "—" if n is None else str(n) for n in (task.jobs_done, task.jobs_failed, task.jobs_total)
    )
    priority = f"{info.task_priority}/{info.current_priority}"
    return Notice(
        f"PanDA says {info.status}; jobs done / failed / total: {counters}; priority (default/current) {priority}.",
        "success",
    )


def status_history(task: Task) -> list[TaskStatusChange]:
    """The task's PanDA statuses as the panel saw them, oldest first."""
    return list(
        db.session.scalars(
            select(TaskStatusChange)
            .where(TaskStatusChange.task_id == task.id)
            .order_by(TaskStatusChange.began_at, TaskStatusChange.id)
        )
    )


# --- the pages' in-place refresh ---------------------------------------------------------------

MAX_POLLED = 200  # task ids one polled refresh may name (a page of the task list is 50)


@dataclass(frozen=True)
class PandaRows:
    """Rows whose PanDA state a page shows, and those still active (polled until final)."""

    tasks: list[Task]
    active_ids: list[int]
    bunch_id: int | None = None
    positions: tuple[int, int] | None = None  # a page of the bunch: its first and last bunch index


def is_active(task: Task) -> bool:
    """In PanDA and not final: its state still changes."""
    return task.panda_task_id is not None and task.panda_status not in FINAL


def rows_of(tasks: list[Task], bunch_id: int | None = None, positions: tuple[int, int] | None = None) -> PandaRows:
    return PandaRows(tasks, [task.id for task in tasks if is_active(task)], bunch_id, positions)


def active_clause() -> ColumnElement[bool]:
    """SQL for `is_active`."""
    return and_(
        Task.panda_task_id.is_not(None), or_(Task.panda_status.is_(None), Task.panda_status.not_in(FINAL))
    )


def panda_rows(ids: list[int], bunch_id: int | None = None, positions: tuple[int, int] | None = None) -> PandaRows:
    """The polled refresh: the named tasks, or a bunch's tasks (those at `positions`, the page shown)
    that are active or were read in the last minute (so that the last change reaches the page); from
    the database only."""
    query = select(Task).options(defer(Task.spec), defer(Task.params))
    if bunch_id is None:
        return rows_of(list(db.session.scalars(query.where(Task.id.in_(ids[:MAX_POLLED])).order_by(Task.id))))
    recent = clock.now() - timedelta(minutes=1)
    query = query.where(Task.bunch_id == bunch_id, or_(active_clause(), Task.panda_checked_at >= recent))
    if positions is not None:
        query = query.where(Task.bunch_index.between(*positions))
    tasks = list(db.session.scalars(query.order_by(Task.bunch_index)))
    return rows_of(tasks, bunch_id, positions)
