"""Modifying a task after submission: only what PanDA can change in a running task (priority, memory,
walltime, split rule, attempts). The difference is shown before anything is sent; then each changed
field is one PanDA call, recorded as a `modify` command with its old and new value.

(A task or bunch not submitted yet is edited like a new one instead: `app.tasks` edit pages.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.actions import services
from app.actions.matrix import Action, Verdict
from app.actions.models import Outcome, TaskCommand
from app.auth.models import User
from app.config import get_settings
from app.extensions import db, panda_clients
from app.inputs import as_id
from app.tasks.models import Task

# The split-rule tags PanDA lets a running task change (`changeable_split_rule_tags` of the real
# server, reference/panda-real-replies.md #65) and their names in PanDA's task information.
SPLIT_RULES = {
    "AI": "allowIncompleteInDS", "TW": "t1Weight", "EC": "nEsConsumers", "MF": "nMaxFilesPerJob",
    "NG": "nGBPerJob", "NI": "noInputPooling", "NF": "nFilesPerJob", "ES": "nEventsPerWorker",
    "NJ": "nJumboJobs", "AV": "avoidVP", "IL": "allowInputLAN", "LI": "useLocalIO", "LC": "noLoopingCheck",
    "CC": "maxCoreCount", "OT": "onlyTagsForFC", "UZ": "useZipToPin", "IM": "ignoreMissingInDS", "NP": "noAutoPause",
}  # fmt: skip
_RULE_VALUE = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
LABELS = {
    "priority": "Priority",
    "memory_mb": "Memory per core, MB",
    "walltime_s": "Walltime per job, s",
    "split_rule": "Split rule",
    "attempts": "Max attempts",
}


@dataclass(frozen=True)
class Change:
    """One field to change: what PanDA has now (as far as the panel knows) and what it will get."""

    field: str
    current: Any
    new: Any
    params: dict[str, Any]  # the `modify` command's parameters

    @property
    def label(self) -> str:
        if self.field == "split_rule":
            return f"{LABELS[self.field]} {self.params['rule']} ({SPLIT_RULES[self.params['rule']]})"
        return LABELS[self.field]


def current_values(task: Task) -> dict[str, Any]:
    """What PanDA has for the changeable fields: the values sent at submission, then every change
    PanDA accepted since (the priority as the sync last read it)."""
    params = task.params or {}
    values: dict[str, Any] = {
        "priority": task.priority_current
        if task.priority_current is not None
        else params.get("taskPriority"),
        "memory_mb": params.get("ramCount"),
        "walltime_s": params.get("walltime"),
        "attempts": params.get("maxAttempt"),
    }
    accepted = db.session.scalars(
        select(TaskCommand)
        .where(
            TaskCommand.task_id == task.id,
            TaskCommand.action == Action.MODIFY.value,
            TaskCommand.outcome == Outcome.ACCEPTED,
        )
        .order_by(TaskCommand.id)
    )
    for command in accepted:
        field = command.params.get("field")
        if field == "split_rule":
            values[f"split_rule:{command.params.get('rule')}"] = command.params.get("to")
        elif field in values and field != "priority":
            values[field] = command.params.get("to")
    return values


def _number(values: Mapping[str, Any], name: str, low: int, high: int, errors: dict[str, str]) -> int | None:
    raw = str(values.get(name) or "").strip()
    if not raw:
        return None
    number = as_id(raw)
    if number is None or not low <= number <= high:
        errors[name] = f"a whole number from {low} to {high}"
        return None
    return number


def plan_changes(task: Task, values: Mapping[str, Any], user: User) -> list[Change]:
    """The changes a modification form asks for (fields left empty or unchanged are not changes).
    Raises InvalidInput (wrong values, or nothing to change) or ActionRefused (the matrix)."""
    services.ensure_allowed(task, Action.MODIFY, user)
    limits = get_settings().tasks
    current = current_values(task)
    errors: dict[str, str] = {}
    changes: list[Change] = []
    for name, high in (
        ("priority", 10000),
        ("memory_mb", limits.max_memory_mb),
        ("walltime_s", limits.max_walltime_s),
    ):
        new = _number(values, name, 0 if name == "priority" else 1, high, errors)
        if new is not None and new != current[name]:
            changes.append(
                Change(name, current[name], new, {"field": name, "from": current[name], "to": new})
            )
    rule, rule_value = str(values.get("split_rule") or ""), str(values.get("split_value") or "").strip()
    if rule or rule_value:
        if rule not in SPLIT_RULES:
            errors["split_rule"] = "choose one of the rules PanDA can change"
        elif not _RULE_VALUE.fullmatch(rule_value):
            errors["split_value"] = "letters, digits, '.', '-' or '_' (at most 32)"
        else:
            old = current.get(f"split_rule:{rule}")
            changes.append(
                Change(
                    "split_rule",
                    old,
                    rule_value,
                    {"field": "split_rule", "rule": rule, "from": old, "to": rule_value},
                )
            )
    add = _number(values, "add_attempts", 1, 100, errors)
    if add:
        old = current["attempts"]
        new_max = f"{old} + {add}" if old is not None else f"PanDA's default + {add}"
        changes.append(Change("attempts", old, new_max, {"field": "attempts", "from": old, "add": add}))
    if errors:
        raise services.InvalidInput(errors)
    if not changes:
        raise services.InvalidInput({"form": "nothing to change: every value is what PanDA has"})
    for change in changes:
        services.ensure_allowed(task, Action.MODIFY, user, change.params)
    return changes


@dataclass(frozen=True)
class ModifyPage:
    """The modification form's context: what PanDA has now, and whether the priority may change."""

    task: Task
    current: dict[str, Any]
    allowed: Verdict
    priority: Verdict


def modify_page(task: Task, user: User | None) -> ModifyPage:
    return ModifyPage(
        task,
        current_values(task),
        services.verdict(task, Action.MODIFY, user),
        services.verdict(task, Action.MODIFY, user, {"field": "priority"}),
    )


def form_values(current: Mapping[str, Any]) -> dict[str, Any]:
    """The form prefilled with what PanDA has now."""
    return {
        name: "" if current.get(name) is None else str(current[name])
        for name in ("priority", "memory_mb", "walltime_s")
    }


def modify(task: Task, values: Mapping[str, Any], user: User) -> list[TaskCommand]:
    """Send each change the form asks for (one PanDA call each, with the comment); flushes. The
    commands' outcomes say what PanDA accepted."""
    changes = plan_changes(task, values, user)
    comment = services.check_comment(Action.MODIFY, str(values.get("comment") or ""))
    client = panda_clients(interactive=True)
    try:  # every call first, then the records (see services.send)
        answers = [services.send(task, Action.MODIFY, c.params, user, comment, client) for c in changes]
    finally:
        client.close()
    return [
        services.record_command(task, Action.MODIFY, c.params, user, comment, answer)
        for c, answer in zip(changes, answers, strict=True)
    ]
