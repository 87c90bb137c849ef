"""Editing a bunch that is scheduled and not yet submitted, like a new one: the task form prefilled
with its definition, a preview with each task's difference from what is saved, then the saved tasks
replaced in place (same launches, same schedule). Once any of its tasks is being sent, or is in
PanDA, only what PanDA can change is offered (`modify.py`)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import exists, or_, select, update

from app.audit.services import record
from app.auth.models import User
from app.chains.constraints import chain_request
from app.chains.models import ChainStep
from app.extensions import db
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.tasks import naming
from app.tasks.models import Task, TaskBunch
from app.tasks.services import (
    Plan,
    PreviewItem,
    ValidationFailed,
    naming_rules,
    params_diff,
    plan_bunch,
    pretty,
)
from app.tasks.specs import TaskDefinition


def not_editable_reason(bunch: TaskBunch) -> str | None:
    """Why the bunch cannot be edited like a new one (None: it can: every launch still waits).
    One query, whatever the bunch's size: the task page asks it for the task's bunch."""
    sent = or_(Task.panda_task_id.is_not(None), Task.launches.any(Launch.status != LaunchStatus.PENDING))
    if db.session.scalar(select(exists().where(Task.bunch_id == bunch.id, sent))):
        return "already sent (or being sent) to PanDA: only what PanDA can change may be modified, task by task"
    return None


def definition_of(bunch: TaskBunch) -> TaskDefinition:
    return TaskDefinition.from_dict(bunch.definition)


def _plan(bunch: TaskBunch, definition: TaskDefinition, user: User, *, is_admin: bool) -> Plan:
    reason = not_editable_reason(bunch)
    if reason:
        raise ValidationFailed({"form": [f"{bunch.base_name} is {reason}."]})
    if definition.bunch_size != bunch.size:
        raise ValidationFailed({"bunch_size": [f"stays {bunch.size} when editing: its launches are scheduled already"]})
    return plan_bunch(definition, user, is_admin=is_admin, editing=bunch)


def preview_edit(bunch: TaskBunch, definition: TaskDefinition, user: User, *, is_admin: bool) -> list[PreviewItem]:
    """Each task's new parameters and their difference from the saved ones (nothing saved)."""
    plan = _plan(bunch, definition, user, is_admin=is_admin)
    return [
        PreviewItem(p.spec.task_name, pretty(p.params), params_diff(t.params, p.params, t.name, p.spec.task_name), t.name)
        for t, p in zip(bunch.tasks, plan.tasks, strict=True)
    ]


def _counted_request(bunch: TaskBunch, named: int | None) -> int | None:
    """The request the bunch's tasks count for (``Task.request_id``): the one it names, else its
    chain's, as the chain form derives it (``chain_request``; the bunch's own definition is the new one)."""
    if named is not None:
        return named
    step = db.session.scalar(select(ChainStep).where(ChainStep.bunch_id == bunch.id))
    if step is None:
        return None
    return chain_request(s.bunch.definition.get("request_id") for s in step.chain.steps)


def save_edit(bunch: TaskBunch, definition: TaskDefinition, user: User, *, is_admin: bool) -> list[str]:
    """Replace the bunch's definition and its tasks' specs and parameters; their launches stay as
    scheduled. The launches are locked first, so the dispatcher cannot send a task while it changes
    (it sends the new parameters afterwards). Returns the changed fields; flushes; audited."""
    ids = [t.id for t in bunch.tasks]
    held = db.session.execute(
        update(Launch).where(Launch.task_id.in_(ids), Launch.status == LaunchStatus.PENDING).values(status=LaunchStatus.PENDING)
    ).rowcount  # type: ignore[attr-defined]
    if held < len(ids):
        raise ValidationFailed({"form": [f"{bunch.base_name} is being sent to PanDA now: nothing was changed."]})
    plan = _plan(bunch, definition, user, is_admin=is_admin)
    before = definition_of(bunch)
    changed = [f.name for f in dataclasses.fields(TaskDefinition) if getattr(before, f.name) != getattr(definition, f.name)]
    rules = naming_rules()
    bunch.definition, bunch.base_name, bunch.comment = definition.to_dict(), definition.task_name.strip(), definition.comment
    request = _counted_request(bunch, definition.request_id)
    for task, planned in zip(bunch.tasks, plan.tasks, strict=True):
        task.name, task.output_dataset = planned.spec.task_name, planned.spec.output_dataset
        task.spec, task.params, task.request_id = dataclasses.asdict(planned.spec), planned.params, request
        task.production = naming.parse_task_name(definition.task_name, rules).production.format(rules)
        task.parent_id = planned.parent.id if planned.parent else None
    record("task.edit", target=bunch.base_name, details={"bunch_id": bunch.id, "changed": changed}, user=user)
    db.session.flush()
    return changed
