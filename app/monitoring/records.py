"""The task record: one task as the task tables, their CSV and JSON exports and the JSON API
(``GET /api/v1/tasks``, a task, a bunch's and a chain's tasks) give it: the one builder of it. One flat dict of plain values, so that a CSV row is the same record.

`task_records` reads what the tasks refer to (creators, parents, bunches, chains) in one query each,
never one per task; `records_by_id` reads named tasks and all that in one statement (the polled
refresh of a table's active rows).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import aliased, defer

from app.auth.models import User
from app.chains.models import Chain, ChainStep
from app.config import get_settings
from app.extensions import db
from app.launches.models import Launch
from app.tasks.models import Task, TaskBunch

SCHEMA = "prodpanel.task/1"
_I, _IN, _S, _SN, _N, _T = "integer", ("integer", "null"), "string", ("string", "null"), ("number", "null"), "time"
# The record's keys in order (the CSV header of a full export) with their JSON types ("time": an ISO
# 8601 UTC time or null); the API's OpenAPI schema of a task is made of this.
TYPES: dict[str, str | tuple[str, str]] = {
    "id": _I, "panda_task_id": _IN, "name": _S, "step": _S, "production": _S, "panda_status": _SN,
    "parent_id": _IN, "parent_panda_task_id": _IN, "cloned_from_id": _IN, "creator": _SN, "jobs_done": _IN,
    "jobs_failed": _IN, "jobs_total": _IN, "priority_default": _IN, "priority_current": _IN,
    "events_requested": _IN, "events_processed": _IN, "progress_percent": _N, "events_per_job": _N,
    "request_id": _IN, "bunch_id": _I, "bunch_index": _I, "bunch": _SN, "chain_id": _IN, "chain": _SN,
    "cloud": _SN, "site": _SN, "output_dataset": _S, "submitted_at": _T, "started_at": _T, "ended_at": _T,
    "created_at": _T, "panda_checked_at": _T, "panda_error": _SN, "walltime_s": _IN, "output_bytes": _IN,
    "log_bytes": _IN, "launch_status": _SN, "bigpanda_url": _SN,
}  # fmt: skip
FIELDS = tuple(TYPES)


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _ratio(part: int | None, whole: int | None, scale: float = 1.0) -> float | None:
    if part is None or not whole:
        return None
    return round(part * scale / whole, 1)


def bigpanda_url(panda_task_id: int | None, template: str | None = None) -> str | None:
    """The task's BigPanDA page, if configured (`template`: the setting, read once by a caller of many)."""
    template = get_settings().panda.bigpanda_task_url if template is None else template
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
    bigpanda = get_settings().panda.bigpanda_task_url
    return [
        {**_record(t, creators, parents, bunches, chains.get(t.bunch_id, (None, None))), "launch_status": launches.get(t.id),
         "bigpanda_url": bigpanda_url(t.panda_task_id, bigpanda)}
        for t in tasks
    ]  # fmt: skip


@functools.cache
def _by_id_query() -> Select[Any]:
    """The statement of `records_by_id`, built once (an alias and its joins cost more to build than
    the statement costs to run); the ids are an expanding parameter."""
    parent = aliased(Task, name="parent")
    latest = (
        select(Launch.status).where(Launch.task_id == Task.id).order_by(Launch.id.desc()).limit(1).scalar_subquery()
    )
    return (
        select(Task, User.username, parent.panda_task_id, TaskBunch.base_name, Chain.id, Chain.name, latest)
        .join(TaskBunch, TaskBunch.id == Task.bunch_id)
        .outerjoin(User, User.id == Task.created_by_id)
        .outerjoin(parent, parent.id == Task.parent_id)
        .outerjoin(ChainStep, ChainStep.bunch_id == Task.bunch_id)
        .outerjoin(Chain, Chain.id == ChainStep.chain_id)
        .options(defer(Task.spec), defer(Task.params))
        .where(Task.id.in_(bindparam("ids", expanding=True)))
        .order_by(Task.id)
    )


def records_by_id(ids: Sequence[int]) -> tuple[list[Task], list[dict[str, Any]]]:
    """The named tasks (in id order) and their records, in one statement: each task by its primary key,
    what it refers to by theirs (a bunch is in at most one chain), its latest launch by launch.task_id."""
    query = _by_id_query()
    bigpanda = get_settings().panda.bigpanda_task_url
    tasks, records = [], []
    for t, creator, parent_panda_id, bunch, chain_id, chain, launch in db.session.execute(query, {"ids": list(ids)}):
        record = _record(t, {t.created_by_id: creator}, {t.parent_id: parent_panda_id}, {t.bunch_id: bunch},
                         (chain_id, chain))  # fmt: skip
        tasks.append(t)
        records.append({**record, "launch_status": launch, "bigpanda_url": bigpanda_url(t.panda_task_id, bigpanda)})
    return tasks, records


def task_record(task: Task) -> dict[str, Any]:
    """The record of one task (one statement: `records_by_id`)."""
    return records_by_id([task.id])[1][0]


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
        "production": t.production,
        "panda_status": t.panda_status,
        "parent_id": t.parent_id,
        "parent_panda_task_id": parents.get(t.parent_id) if t.parent_id else None,
        "cloned_from_id": t.cloned_from_id,
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
        "bunch_index": t.bunch_index,
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
        "panda_checked_at": _time(t.panda_checked_at),
        "panda_error": t.panda_error,
        "walltime_s": t.walltime_s,
        "output_bytes": t.output_bytes,
        "log_bytes": t.log_bytes,
    }
