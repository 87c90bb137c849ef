"""The API's JSON records of stored objects (plain dicts; times as ISO 8601 in UTC). A task's record is
the task tables' own (app/monitoring/records.py), shared with their JSON export."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import joinedload

from app.actions.models import BulkAction, TaskCommand
from app.api.models import ApiToken
from app.audit.models import AuditEvent
from app.chains.models import Chain
from app.launches import listing
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.monitoring.records import task_record
from app.tasks.models import Task, TaskBunch


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def launch_record(launch: Launch) -> dict[str, Any]:
    """A launch as the Launches page shows it: its state and what it waits for besides its time."""
    return {
        "state": listing.STATE_OF[LaunchStatus(launch.status)], "condition": listing.condition_of(launch),
        "id": launch.id, "task_id": launch.task_id, "attempt": launch.attempt, "status": str(launch.status),
        "due_at": iso(launch.due_at), "created_at": iso(launch.created_at), "claimed_at": iso(launch.claimed_at),
        "finished_at": iso(launch.finished_at), "panda_task_id": launch.panda_task_id, "error": launch.error,
        "after_parent_done": launch.after_parent_done, "after_task_id": launch.after_task_id,
        "at_percent": launch.at_percent, "token_problem": launch.token_problem,
        "created_by": launch.created_by.username if launch.created_by else None,
    }  # fmt: skip


# What task_detail reads of a task besides its record, loaded with the task (one statement, not three).
TASK_DETAIL = (joinedload(Task.bunch), joinedload(Task.launches))


def task_detail(task: Task) -> dict[str, Any]:
    """The task page's content: the task record (app/monitoring/records.py, as the task tables and their
    JSON export give it), its definition, exact PanDA parameters and launches."""
    return {
        **task_record(task),
        "definition": task.bunch.definition,
        "params": task.params,
        "launches": [launch_record(launch) for launch in task.launches],
    }


def bunch_record(bunch: TaskBunch) -> dict[str, Any]:
    return {
        "id": bunch.id, "base_name": bunch.base_name, "step": bunch.step, "size": bunch.size,
        "comment": bunch.comment, "created_at": iso(bunch.created_at),
        "created_by": bunch.created_by.username if bunch.created_by else None,
        "definition": bunch.definition, "task_ids": [t.id for t in bunch.tasks],
    }  # fmt: skip


def chain_record(chain: Chain, task_ids: Mapping[int, list[int]] | None = None) -> dict[str, Any]:
    """`task_ids`: bunch id -> its tasks' ids, read beforehand for a page of chains (else each step's
    bunch's tasks are read)."""
    return {
        "id": chain.id, "name": chain.name, "processing_type": chain.processing_type,
        "wait_for_parent_done": chain.wait_for_parent_done, "comment": chain.comment,
        "created_at": iso(chain.created_at), "created_by": chain.created_by.username if chain.created_by else None,
        "cloned_from_id": chain.cloned_from_id,
        "steps": [{"position": s.position, "step": s.step, "bunch_id": s.bunch_id,
                   "task_ids": task_ids[s.bunch_id] if task_ids is not None else [t.id for t in s.bunch.tasks]}
                  for s in chain.steps],
    }  # fmt: skip


def command_record(command: TaskCommand) -> dict[str, Any]:
    return {
        "id": command.id, "task_id": command.task_id, "action": command.action, "params": command.params,
        "comment": command.comment, "outcome": str(command.outcome), "panda_code": command.panda_code,
        "message": command.message, "requested_at": iso(command.requested_at), "username": command.username,
    }  # fmt: skip


def bulk_record(bulk: BulkAction, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": bulk.id, "action": bulk.action, "params": bulk.params, "comment": bulk.comment,
        "selection": bulk.selection, "created_at": iso(bulk.created_at), "finished_at": iso(bulk.finished_at),
        "counts": counts, "done": bulk.finished_at is not None,
    }  # fmt: skip


def audit_record(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id, "at": iso(event.at), "username": event.username, "action": event.action,
        "target": event.target, "outcome": event.outcome, "request_id": event.request_id,
        "details": event.details,
    }  # fmt: skip


def token_record(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id, "name": token.name, "scope": token.scope, "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at), "last_used_at": iso(token.last_used_at),
    }  # fmt: skip
