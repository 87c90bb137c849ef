"""The task record: one task as the task tables, their CSV and JSON exports and the JSON API
(``GET /api/v1/tasks``) give it. One flat dict of plain values, so that a CSV row is the same record.

`task_records` reads what the tasks refer to (creators, parents, bunches, chains) in one query each,
never one per task.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.auth.models import User
from app.chains.models import Chain, ChainStep
from app.config import get_settings
from app.extensions import db
from app.launches.models import Launch
from app.tasks.models import Task, TaskBunch

SCHEMA = "prodpanel.task/1"
# The record's keys in order (the CSV header of a full export).
FIELDS = (
    "id", "panda_task_id", "name", "step", "panda_status", "parent_id", "parent_panda_task_id", "creator",
    "jobs_done", "jobs_failed", "jobs_total", "priority_default", "priority_current", "events_requested",
    "events_processed", "progress_percent", "events_per_job", "request_id", "bunch_id", "bunch", "chain_id",
    "chain", "cloud", "site", "output_dataset", "submitted_at", "started_at", "ended_at", "created_at",
    "walltime_s", "output_bytes", "log_bytes", "launch_status", "bigpanda_url",
)  # fmt: skip


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _ratio(part: int | None, whole: int | None, scale: float = 1.0) -> float | None:
    if part is None or not whole:
        return None
    return round(part * scale / whole, 1)


def bigpanda_url(panda_task_id: int | None) -> str | None:
    template = get_settings().panda.bigpanda_task_url
    return template.format(id=panda_task_id) if template and panda_task_id is not None else None


def task_records(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """The records of `tasks`, in their order."""
    creators = _lookup(select(User.id, User.username), User.id, {t.created_by_id for t in tasks})
    parents = _lookup(select(Task.id, Task.panda_task_id), Task.id, {t.parent_id for t in tasks})
    bunches = _lookup(select(TaskBunch.id, TaskBunch.base_name), TaskBunch.id, {t.bunch_id for t in tasks})
    chain_query = select(ChainStep.bunch_id, Chain.id, Chain.name).join(Chain, Chain.id == ChainStep.chain_id)
    chains = {
        row[0]: (row[1], row[2])
        for row in db.session.execute(chain_query.where(ChainStep.bunch_id.in_({t.bunch_id for t in tasks})))
    }
    launches = {  # the latest launch of each task wins
        row[0]: row[1]
        for row in db.session.execute(
            select(Launch.task_id, Launch.status).where(Launch.task_id.in_([t.id for t in tasks])).order_by(Launch.id)
        )
    }
    return [
        {**_record(t, creators, parents, bunches, chains.get(t.bunch_id, (None, None))), "launch_status": launches.get(t.id),
         "bigpanda_url": bigpanda_url(t.panda_task_id)}
        for t in tasks
    ]  # fmt: skip


def task_record(task: Task) -> dict[str, Any]:
    """The record of one task."""
    return task_records([task])[0]


def _lookup(query: Any, key: Any, ids: set[int | None]) -> dict[int, Any]:
    # Asked even for no ids: a page runs as many statements whatever its rows.
    wanted = {i for i in ids if i is not None}
    return {row[0]: row[1] for row in db.session.execute(query.where(key.in_(wanted)))}


def _record(
    t: Task, creators: dict[int, Any], parents: dict[int, Any], bunches: dict[int, Any], chain: tuple[Any, Any]
) -> dict[str, Any]:
    return {
        "id": t.id,
        "panda_task_id": t.panda_task_id,
        "name": t.name,
        "step": t.step,
        "panda_status": t.panda_status,
        "parent_id": t.parent_id,
        "parent_panda_task_id": parents.get(t.parent_id) if t.parent_id else None,
        "creator": creators.get(t.created_by_id) if t.created_by_id else None,
        "jobs_done": t.jobs_done,
        "jobs_failed": t.jobs_failed,
        "jobs_total": t.jobs_total,
        "priority_default": t.priority_default,
        "priority_current": t.priority_current,
        "events_requested": t.events_requested,
        "events_processed": t.events_processed,
        "progress_percent": _ratio(t.jobs_done, t.jobs_total, 100.0),
        "events_per_job": _ratio(t.events_processed, t.jobs_total),
        "request_id": t.request_id,
        "bunch_id": t.bunch_id,
        "bunch": bunches.get(t.bunch_id),
        "chain_id": chain[0],
        "chain": chain[1],
        "cloud": t.cloud,
        "site": t.site,
        "output_dataset": t.output_dataset,
        "submitted_at": _time(t.submitted_at),
        "started_at": _time(t.started_at),
        "ended_at": _time(t.ended_at),
        "created_at": _time(t.created_at),
        "walltime_s": t.walltime_s,
        "output_bytes": t.output_bytes,
        "log_bytes": t.log_bytes,
    }
