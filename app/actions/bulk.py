"""Bulk actions: one action on a selection of tasks. The matrix filters the selection before
anything is sent (those tasks are "not allowed in this status" at once); the rest are sent one by one
by the background job (`jobs.run_bulk_actions`), each with its own result; "retry the failed ones"
starts a new bulk action on the tasks PanDA could not be reached for or did not answer.

The job is in the scheduler's job list (app/jobs.py); `start` wakes it once its rows are committed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app import clock
from app.actions import services
from app.actions.matrix import ACTIONS, Action, Verdict, check_role
from app.actions.models import BulkAction, BulkItem, Outcome
from app.actions.selection import Selection, selected_tasks, selection_from
from app.audit.services import record
from app.auth.models import User
from app.extensions import db
from app.scheduler import wake_after_commit
from app.tasks.models import Task

# Bulk actions offered (a modification is per task: its difference is shown before sending).
BULK_ACTIONS = tuple(action for action in ACTIONS if action is not Action.MODIFY)
RETRYABLE = (Outcome.FAILED, Outcome.UNKNOWN)  # "retry the failed ones": nothing answered, or no answer
BULK_JOB = "bulk-actions"  # its name in app.jobs.JOBS
FINISHED = (Outcome.ACCEPTED, Outcome.REJECTED, Outcome.NOT_ALLOWED, Outcome.FAILED, Outcome.UNKNOWN)


def bulk_action(name: str) -> Action:
    """The action named by a form; ValueError for anything not offered in bulk."""
    action = Action(name)
    if action not in BULK_ACTIONS:
        raise ValueError(f"{name} is not a bulk action")
    return action


@dataclass(frozen=True)
class BulkPlan:
    """The confirmation: what will be sent, and what the matrix refuses (with the reasons)."""

    action: Action
    selection: Selection
    allowed: list[Task]
    refused: list[tuple[Task, str]]
    role: Verdict  # refused by role: nothing at all can be sent

    @property
    def total(self) -> int:
        return len(self.allowed) + len(self.refused)

    def reasons(self) -> list[tuple[str, int]]:
        """The refusals grouped by reason, most frequent first."""
        return Counter(reason for _, reason in self.refused).most_common()


def plan(selection: Selection, action: Action, user: User) -> BulkPlan:
    """Filter the selection through the matrix (BadSelection when it names no task)."""
    tasks = selected_tasks(selection)
    role = check_role(action, services.role_of(user))
    allowed: list[Task] = []
    refused: list[tuple[Task, str]] = []
    for task in tasks:
        answer = services.verdict(task, action, user)
        if answer:
            allowed.append(task)
        else:
            refused.append((task, answer.reason))
    return BulkPlan(action, selection, allowed, refused, role)


def start(
    selection: Selection,
    action: Action,
    values: Mapping[str, Any],
    user: User,
    *,
    retry_of: int | None = None,
) -> BulkAction:
    """Create the bulk action and its items (refused ones settled at once as not allowed); the job
    sends the rest once this is committed. Raises ActionRefused (role), InvalidInput, BadSelection."""
    bulk_plan = plan(selection, action, user)
    if not bulk_plan.role:
        raise services.ActionRefused(bulk_plan.role)
    params = services.parse_params(action, values)
    comment = str(values.get("comment") or "").strip()
    if not comment:
        raise services.InvalidInput({"comment": "say why: a bulk action needs a comment"})
    comment = services.check_comment(action, comment)
    now = clock.now()
    bulk = BulkAction(action=action.value, params=params, comment=comment, selection=selection.describe()[:300],
                      created_by_id=user.id, created_at=now, retry_of_id=retry_of)  # fmt: skip
    db.session.add(bulk)
    db.session.flush()
    items = [BulkItem(bulk_id=bulk.id, task_id=t.id, outcome=Outcome.PENDING, reason="", updated_at=now)
             for t in bulk_plan.allowed]  # fmt: skip
    items += [BulkItem(bulk_id=bulk.id, task_id=t.id, outcome=Outcome.NOT_ALLOWED, reason=reason, updated_at=now)
              for t, reason in bulk_plan.refused]  # fmt: skip
    db.session.add_all(items)
    if not bulk_plan.allowed:
        bulk.finished_at = now
    record(f"bulk.{action.value}", target=bulk.selection, user=user,
           details={"bulk_id": bulk.id, "params": params, "comment": comment, "tasks": bulk_plan.total,
                    "sent": len(bulk_plan.allowed), "not_allowed": len(bulk_plan.refused)})  # fmt: skip
    db.session.flush()
    if bulk_plan.allowed:
        wake_after_commit(BULK_JOB)
    return bulk


@dataclass(frozen=True)
class Progress:
    bulk: BulkAction
    counts: dict[str, int]  # outcome -> tasks
    items: list[BulkItem]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def open(self) -> int:
        return self.counts.get(Outcome.PENDING, 0) + self.counts.get(Outcome.SENDING, 0)

    @property
    def retryable(self) -> int:
        return sum(self.counts.get(o, 0) for o in RETRYABLE)


def progress(bulk: BulkAction) -> Progress:
    """The bulk action's counts per outcome and its items (with their tasks)."""
    rows = db.session.execute(
        select(BulkItem.outcome, func.count()).where(BulkItem.bulk_id == bulk.id).group_by(BulkItem.outcome)
    )
    counts = {str(outcome): n for outcome, n in rows}
    items = list(
        db.session.scalars(
            select(BulkItem)
            .where(BulkItem.bulk_id == bulk.id)
            .options(joinedload(BulkItem.task).load_only(Task.name, Task.panda_task_id))
            .order_by(BulkItem.id)
        )
    )
    return Progress(bulk, counts, items)


def retry_selection(bulk: BulkAction) -> Selection:
    """The tasks of `bulk` whose command PanDA could not be reached for or did not answer."""
    ids = tuple(
        db.session.scalars(
            select(BulkItem.task_id).where(BulkItem.bulk_id == bulk.id, BulkItem.outcome.in_(RETRYABLE))
            .order_by(BulkItem.id)
        )
    )  # fmt: skip
    return Selection("ids", task_ids=ids)


def plan_from_form(data: Any, user: User) -> BulkPlan:
    """The confirmation of a bulk action a form asks for (`action` + the selection's fields);
    raises BadSelection or ValueError (an action not offered in bulk)."""
    return plan(selection_from(data), bulk_action(str(data.get("action") or "")), user)


def start_from_form(data: Any, user: User) -> BulkAction:
    """`start` with what the confirmation form sent (its `retry_of`: the bulk action retried)."""
    retry_of = str(data.get("retry_of") or "")
    return start(selection_from(data), bulk_action(str(data.get("action") or "")), data, user,
                 retry_of=int(retry_of) if retry_of.isdigit() else None)  # fmt: skip


def retry_form(bulk: BulkAction) -> dict[str, Any]:
    """The confirmation form's values for "retry the failed ones" of `bulk`: same action,
    parameters and comment, on the tasks whose command failed."""
    selection = retry_selection(bulk)
    values: dict[str, Any] = {"action": bulk.action, "comment": bulk.comment, "retry_of": bulk.id}
    values.update({k: ("y" if v is True else v) for k, v in bulk.params.items()})
    return {"selection": selection, "values": values}


def act_on_tasks(
    task_ids: list[int], action: Action | str, params: Mapping[str, Any], user: User, comment: str
) -> BulkAction:
    """The service other domains call (a chain's "act on every task", the API): a bulk action on these
    tasks, filtered by the matrix and sent by the job; raises ActionRefused, InvalidInput, BadSelection."""
    selection = Selection("ids", task_ids=tuple(dict.fromkeys(task_ids)))
    return start(selection, bulk_action(str(Action(action).value)), {**params, "comment": comment}, user)
