"""The sync's background jobs: one sync cycle, final accounting, and the refresh of the tasks a
status message named. They commit (per batch of a listing, per task); `services.py` has
what they store and the pieces a page may call.

One cycle asks PanDA in bulk, never once per task:

- per owner (the user whose token submitted the tasks, or the configured service identity) one
  "modified since" listing (`get_tasks_detailed_info_since`) catches every change of status;
- per owner and progressing status (running, scouting, …) one listing refreshes the job counters,
  which move without a change of status;
- at most `sync.accounting_per_cycle` final tasks get their job descriptions read, once each.

A cycle never makes more than `sync.max_calls_per_cycle` calls; what does not fit waits for the
next one. While PanDA is unreachable the cycles back off and the pages say since when.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, select, update
from sqlalchemy.orm import defer, selectinload

from app import clock
from app.config import Settings, get_settings
from app.extensions import db, panda_clients
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.panda.client import PandaApi
from app.panda.errors import PandaError, PandaUnavailable, PandaUnsupported
from app.panda.results import JobDescription, TaskInfo, as_utc
from app.scheduler import stopping, wake
from app.stats.summary import batched as summary_batch
from app.sync.models import SyncState
from app.sync.queue import Hints, TaskStatusConsumer
from app.sync.services import (
    FINAL,
    PROGRESSING,
    account,
    active_clause,
    apply_info,
    apply_summary,
    caller_for,
    mark_reachable,
    mark_unreachable,
    owner_of,
    refresh_task,
    server_key,
    sync_state,
)
from app.tasks.models import Task
from app.tokens.errors import TokenUnavailable

log = logging.getLogger(__name__)

APPLY_BATCH = 1000  # tasks of a listing stored per transaction


@dataclass
class SyncReport:
    """What one cycle (or one refresh) did."""

    calls: int = 0  # PanDA calls made
    seen: int = 0  # the panel's tasks PanDA described
    updated: int = 0  # of those, tasks whose stored state changed
    accounted: int = 0  # final tasks whose job descriptions were read
    deferred: int = 0  # listings left for the next cycle (call budget)
    skipped: str = ""  # why nothing was asked (disabled, backing off)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Group:
    """The active tasks one owner's token lists: PanDA user name → panel task rows by PanDA id."""

    owner_id: int | None
    user_name: str
    tasks: dict[int, int]  # PanDA task id -> panel task id
    statuses: frozenset[str]
    oldest_created_at: datetime

    @property
    def key(self) -> str:
        return f"{self.owner_id}/{self.user_name}"


def active_groups() -> list[Group]:
    """The panel's tasks that PanDA has and that are not final, by owner and PanDA user name."""
    owner = (
        select(Launch.created_by_id)
        .where(Launch.task_id == Task.id, Launch.status == LaunchStatus.SUBMITTED)
        .order_by(Launch.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(
            Task.id,
            Task.panda_task_id,
            Task.panda_status,
            Task.created_at,
            owner,
            Task.params["userName"].as_string(),
        ).where(active_clause())
    ).all()
    grouped: dict[tuple[int | None, str], list[Any]] = defaultdict(list)
    for row in rows:
        grouped[(row[4], row[5] or "")].append(row)
    return [
        Group(
            owner_id=owner_id,
            user_name=user_name,
            tasks={row[1]: row[0] for row in members},
            statuses=frozenset(row[2] for row in members if row[2]),
            oldest_created_at=min(row[3] for row in members),
        )
        for (owner_id, user_name), members in sorted(grouped.items(), key=lambda item: str(item[0]))
    ]


# --- the cycle --------------------------------------------------------------------------------


class _Budget:
    def __init__(self, calls: int) -> None:
        self.left = calls

    def take(self) -> bool:
        if self.left <= 0 or stopping():  # `serve` stops: the rest waits for the next start
            return False
        self.left -= 1
        return True


def sync_cycle(client: PandaApi | None = None) -> SyncReport:
    """One sync cycle (the scheduler's "sync with PanDA" job); commits. See the module docstring."""
    settings = get_settings()
    report = SyncReport()
    if not settings.sync.enabled:
        report.skipped = "disabled"
        return report
    now = clock.now()
    state = sync_state()
    if state.next_attempt_at is not None and now < state.next_attempt_at:
        report.skipped = f"PanDA unreachable: next attempt at {state.next_attempt_at.isoformat()}"
        db.session.commit()
        return report
    db.session.commit()  # no write lock held while PanDA is asked (the token vault writes meanwhile)
    panda = client or panda_clients()
    budget = _Budget(settings.sync.max_calls_per_cycle)
    try:
        _run_cycle(panda, state, budget, report, settings, now)
    except PandaUnavailable as exc:
        db.session.rollback()  # the owner's half-applied listing is read again next time
        state = sync_state()
        mark_unreachable(state, exc, now)
    else:
        if report.calls:
            mark_reachable(state, now)
    finally:
        if client is None:
            panda.close()
    state.last_cycle_at = now
    state.last_cycle_calls = report.calls
    db.session.commit()
    return report


def _run_cycle(
    panda: PandaApi, state: SyncState, budget: _Budget, report: SyncReport, settings: Settings, now: datetime
) -> None:
    groups = sorted(active_groups(), key=lambda g: (state.cursors or {}).get(g.key, ""))
    for group in groups:  # first every owner's changes, oldest cursor first
        if not budget.take():
            report.deferred += 1
            continue
        _changes(panda, group, state, report, settings, now)
    for group in groups:  # then the counters of progressing tasks
        for status in sorted(group.statuses & set(PROGRESSING)):
            if not budget.take():
                report.deferred += 1
                continue
            _progress(panda, group, status, report, settings, now)
    account_final_tasks(min(budget.left, settings.sync.accounting_per_cycle), panda, report)


def _guarded_list(panda: PandaApi, group: Group, report: SyncReport, settings: Settings,
                  since: datetime | None, filters: dict[str, Any]) -> list[TaskInfo] | None:  # fmt: skip
    """One bulk listing with the group's caller; None (reported) when this owner cannot be asked.
    PandaUnavailable (PanDA is down for everyone) and PandaUnsupported (a legacy server) propagate."""
    caller = caller_for(group.owner_id, settings)
    if caller is None:
        report.errors.append(f"{group.user_name}: no user whose token can list these tasks")
        return None
    report.calls += 1
    filters = {"userName": group.user_name, **filters}
    try:
        return panda.get_tasks_detailed_info_since(
            caller, since, filters=filters, n_tasks=settings.sync.max_tasks_per_call
        )
    except (PandaUnavailable, PandaUnsupported):
        raise
    except (PandaError, TokenUnavailable) as exc:
        report.errors.append(f"{group.user_name}: {exc}")
        log.warning("sync of %s's tasks failed: %s", group.user_name, exc)
        return None


def _changes(panda: PandaApi, group: Group, state: SyncState, report: SyncReport, settings: Settings,
             now: datetime) -> None:  # fmt: skip
    """The owner's tasks modified since the cursor; moves the cursor (PanDA's clock: the newest
    modification seen) when the listing was complete."""
    overlap = timedelta(seconds=settings.sync.overlap_s)
    cursor = as_utc((state.cursors or {}).get(group.key))
    since = (cursor or group.oldest_created_at) - overlap
    try:
        infos = _guarded_list(panda, group, report, settings, since, {})
    except PandaUnsupported:
        _legacy_changes(panda, group, report, settings, since, now)
        return
    if infos is None:
        return
    if not _apply_infos(group, infos, report, now):  # a task could not be stored: read it again next time
        return
    if len(infos) < settings.sync.max_tasks_per_call:
        newest = max((info.modification_time for info in infos if info.modification_time), default=None)
        moved = max(filter(None, (newest, cursor)), default=since + overlap)
        state.cursors = {**(state.cursors or {}), group.key: moved.isoformat()}
    else:
        log.warning("%s: more than %d tasks modified since %s; raise sync.max_tasks_per_call",
                    group.user_name, settings.sync.max_tasks_per_call, since)  # fmt: skip
    db.session.commit()


def _legacy_changes(panda: PandaApi, group: Group, report: SyncReport, settings: Settings,
                    since: datetime, now: datetime) -> None:  # fmt: skip
    """Servers before panda-server 1.0 list the owner's tasks keyed by request id (tasks sharing one
    hide each other): what the listing shows is stored, the rest waits for "Sync this task now"."""
    caller = caller_for(group.owner_id, settings)
    if caller is None:
        return
    report.calls += 1
    try:
        summaries = panda.get_tasks_modified_since(caller, since, dn=group.user_name or None, full=True)
    except PandaUnavailable:
        raise
    except (PandaError, TokenUnavailable) as exc:
        report.errors.append(f"{group.user_name}: {exc}")
        return
    for chunk in _chunks(summaries):
        with db.session.no_autoflush, summary_batch():
            tasks = _tasks_by_panda_id(group, (s.task_id for s in chunk))
            for summary in chunk:
                task = tasks.get(summary.task_id)
                if task is not None:
                    report.seen += 1
                    report.updated += apply_summary(task, summary, now)
        db.session.commit()


def _progress(panda: PandaApi, group: Group, status: str, report: SyncReport, settings: Settings,
              now: datetime) -> None:  # fmt: skip
    """The owner's tasks in one progressing status (their counters move without a status change)."""
    try:
        infos = _guarded_list(panda, group, report, settings, None, {"status": status})
    except PandaUnsupported:  # legacy servers: the full listing of _legacy_changes carries the counters
        return
    if infos is None:
        return
    _apply_infos(group, infos, report, now)
    db.session.commit()


def _tasks_by_panda_id(group: Group, panda_ids: Iterable[int]) -> dict[int, Task]:
    ids = [group.tasks[pid] for pid in set(panda_ids) if pid in group.tasks]
    if not ids:
        return {}
    rows = db.session.scalars(  # the spec and bunch: the statistics' request and creator
        select(Task).options(defer(Task.params), selectinload(Task.bunch)).where(Task.id.in_(ids))
    )
    return {task.panda_task_id: task for task in rows if task.panda_task_id is not None}


T = TypeVar("T")


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), APPLY_BATCH):
        yield items[start : start + APPLY_BATCH]


def _apply_infos(group: Group, infos: list[TaskInfo], report: SyncReport, now: datetime) -> bool:
    """Store a listing, APPLY_BATCH tasks per transaction: their rows loaded in one query, the status
    history, the changed rows and the statistics' summary written in a few executemany statements (no
    flush per task), every row's `panda_checked_at` in one UPDATE, then a commit (the next batch's rows
    are loaded after it, never reloaded one by one). A batch that fails is stored again task by task:
    only the failing task's update is lost (reported). False when a task could not be stored."""
    complete = True
    for chunk in _chunks(infos):
        try:
            seen, updated = _store_batch(group, chunk, now)
        except Exception as exc:  # one task's failure must not lose the others' updates
            db.session.rollback()
            log.warning("%s: a batch of %d tasks failed (%s); storing them one by one", group.user_name, len(chunk), exc)
            seen = updated = 0
            for info in chunk:
                try:
                    one_seen, one_updated = _store_batch(group, [info], now)
                except Exception as exc:  # this task only: reported, read again next cycle
                    db.session.rollback()
                    complete = False
                    report.errors.append(f"PanDA task {info.task_id}: not stored: {exc}")
                    log.exception("sync: PanDA task %s could not be stored", info.task_id)
                    continue
                seen, updated = seen + one_seen, updated + one_updated
        report.seen += seen
        report.updated += updated
    return complete


def _store_batch(group: Group, infos: Sequence[TaskInfo], now: datetime) -> tuple[int, int]:
    """One batch of `_apply_infos` in one transaction (commits); (tasks seen, tasks changed)."""
    seen = updated = 0
    with db.session.no_autoflush, summary_batch():
        tasks = _tasks_by_panda_id(group, (info.task_id for info in infos))
        for info in infos:
            task = tasks.get(info.task_id)
            if task is not None:
                seen += 1
                updated += apply_info(task, info, now, mark_checked=False)
    if tasks:  # every row read now, in one statement: the unchanged ones are not flushed one by one
        db.session.execute(
            update(Task)
            .where(Task.id.in_([task.id for task in tasks.values()]))
            .values(panda_checked_at=now)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return seen, updated


def to_account(limit: int) -> Select[Task]:
    """The first `limit` final tasks whose job descriptions were not read yet, the earliest ended first:
    a walk of the index of the tasks PanDA knows that are not accounted (ix_task_to_account), which
    holds the active tasks and the final ones waiting, not every task ever made."""
    return (
        select(Task)
        .where(Task.panda_status.in_(FINAL), Task.accounted_at.is_(None), Task.panda_task_id.is_not(None))
        .order_by(Task.ended_at.nulls_last(), Task.id)
        .limit(limit)
    )


def account_final_tasks(
    limit: int, client: PandaApi | None = None, report: SyncReport | None = None
) -> SyncReport:
    """Read the job descriptions of up to `limit` final, not yet accounted tasks, once each (the
    scheduler's "final accounting" job, also the end of each sync cycle); commits per task.

    A task PanDA will not describe (no usable token, unknown to PanDA) keeps the reason in
    `accounting_error` and is not asked again until a manager syncs it again.
    """
    report = report if report is not None else SyncReport()
    if limit <= 0:
        return report
    settings = get_settings()
    tasks = db.session.scalars(
        to_account(limit).options(defer(Task.params), selectinload(Task.bunch))
    ).all()
    if not tasks:
        return report
    panda = client or panda_clients()
    try:
        for task in tasks:
            if stopping():
                break
            report.calls += 1
            try:
                jobs = _job_descriptions(panda, task, settings)
            except PandaUnavailable:
                raise
            except (PandaError, TokenUnavailable) as exc:
                task.accounted_at, task.accounting_error = clock.now(), str(exc)[:1000]
                report.errors.append(f"{task.name}: accounting failed: {exc}")
            else:
                account(task, jobs, clock.now())
                report.accounted += 1
            db.session.commit()
    finally:
        if client is None:
            panda.close()
    return report


def _job_descriptions(panda: PandaApi, task: Task, settings: Settings) -> list[JobDescription]:
    caller = caller_for(owner_of(task), settings)
    if caller is None:
        raise TokenUnavailable("no user whose token can read this task (its owner was removed)")
    assert task.panda_task_id is not None
    return panda.get_job_descriptions(caller, task.panda_task_id)


def refresh_hinted(panda_ids: Iterable[int], client: PandaApi | None = None) -> SyncReport:
    """Refresh the tasks a status message named (the message is a hint: PanDA is read again);
    one call per task, at most `sync.max_calls_per_cycle`; commits per task. Unknown ids are ignored."""
    report = SyncReport()
    ids = sorted(set(panda_ids))[: get_settings().sync.max_calls_per_cycle]  # the rest: the next cycle
    state = db.session.get(SyncState, server_key())
    if state is not None and state.next_attempt_at is not None and clock.now() < state.next_attempt_at:
        report.skipped = "PanDA unreachable: the sync cycles catch up once it is back"
        return report
    if not ids:
        return report
    tasks = db.session.scalars(
        select(Task).options(selectinload(Task.bunch)).where(Task.panda_task_id.in_(ids)).order_by(Task.id)
    ).all()
    if not tasks:
        return report
    panda = client or panda_clients()
    try:
        for task in tasks:
            if stopping():
                break
            report.calls += 1
            try:
                refresh_task(task, panda)
            except PandaUnavailable as exc:
                db.session.rollback()
                report.errors.append(str(exc))
                break  # the next cycle notices the outage and backs off
            except (PandaError, TokenUnavailable) as exc:
                report.errors.append(f"{task.name}: {exc}")
                db.session.rollback()
                continue
            report.seen += 1
            db.session.commit()
    finally:
        if client is None:
            panda.close()
    return report


HINTS_JOB = "task-status-hints"  # its name in app.jobs.JOBS
_hints = Hints()  # PanDA task ids named by status messages, waiting for the job


def hint(panda_task_id: int) -> None:
    """A status message named this PanDA task (the consumer's callback): refresh it at once."""
    _hints.add(panda_task_id)
    wake(HINTS_JOB)


def refresh_hints() -> SyncReport:
    """The "task-status-hints" job: refresh the tasks named by messages since its last run."""
    return refresh_hinted(_hints.drain())


QUEUE_JOB = "task-status-queue"  # its name in app.jobs.JOBS
_consumers: dict[str, TaskStatusConsumer] = {}  # "consumer": the one `serve` started


def attach_consumer(consumer: TaskStatusConsumer | None) -> None:
    """The consumer the "task-status-queue" job keeps connected (None: none any more)."""
    if consumer is None:
        _consumers.pop("consumer", None)
    else:
        _consumers["consumer"] = consumer


def keep_queue_connected() -> None:
    """The "task-status-queue" job: (re)connect the status consumer when it is not connected."""
    consumer = _consumers.get("consumer")
    if consumer is not None:
        consumer.keep_connected()
