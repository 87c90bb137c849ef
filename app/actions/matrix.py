"""The status × action × role matrix: which task actions a user may take on a task in each PanDA
status, and, when not, the reason in one sentence ("finish: not possible while done").

It is the only place that decides. The task page greys its buttons out with the reason as the
tooltip, the services refuse a forged request with the same reason (403 for the role, 409 for the
status) before anything is sent to PanDA, the bulk actions filter their selection with it, and the
API answers with it.

The status columns follow PanDA's own preconditions (`_check_command_allowed` in panda-server,
reference/panda.md §1.3), so the panel never sends a command PanDA would reject in that status. Two
places are stricter than PanDA, because the action has no effect there: a task that has ended cannot
be reassigned, have its priority or attributes changed. `retry` is possible from failed, finished
and exhausted, never from broken (bad parameters: retrying cannot help; clone and fix it) or from
done and aborted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.auth.roles import ROLES, role_rank
from app.sync.services import FINAL


class Action(StrEnum):
    KILL = "kill"
    FINISH = "finish"
    RETRY = "retry"
    PAUSE = "pause"
    RESUME = "resume"
    PRIORITY = "priority"
    REASSIGN = "reassign"
    INCREASE_ATTEMPTS = "increase_attempts"
    RELEASE = "release"
    AVALANCHE = "avalanche"
    MODIFY = "modify"  # memory, walltime, split rule, attempts (and priority for those who may)


@dataclass(frozen=True)
class ActionInfo:
    label: str  # the button's text
    role: str  # the least panel role that may take it
    destructive: bool  # asks for a confirmation and a comment
    queued: bool  # a PanDA command JEDI executes later (a newer one replaces it until then)
    summary: str  # what it does, for the confirmation


ACTIONS: dict[Action, ActionInfo] = {
    Action.KILL: ActionInfo("Kill", "manager", True, True, "abort the task: its running jobs are killed"),
    Action.FINISH: ActionInfo(
        "Finish", "manager", True, True, "finish the task now with what is done (soft: running jobs may end)"
    ),
    Action.RETRY: ActionInfo(
        "Retry",
        "manager",
        False,
        True,
        "run the task's failed inputs again (optionally with new memory or walltime)",
    ),
    Action.PAUSE: ActionInfo("Pause", "manager", False, True, "stop generating jobs until resumed"),
    Action.RESUME: ActionInfo("Resume", "manager", False, True, "continue a paused task"),
    Action.PRIORITY: ActionInfo("Change priority", "admin", False, False, "set the task's current priority"),
    Action.REASSIGN: ActionInfo("Reassign", "admin", False, True, "move the task to another site or cloud"),
    Action.INCREASE_ATTEMPTS: ActionInfo(
        "Increase attempts", "manager", False, False, "allow more attempts for the inputs not yet done"
    ),
    Action.RELEASE: ActionInfo("Release", "manager", False, True, "release the task's held work"),
    Action.AVALANCHE: ActionInfo(
        "Avalanche", "admin", True, True, "skip the rest of scouting and generate every job now"
    ),
    Action.MODIFY: ActionInfo(
        "Modify", "manager", False, False, "change memory, walltime, split rule or attempts in PanDA"
    ),
}

# Every status JEDI reports (reference/panda.md §4.1).
STATUSES: tuple[str, ...] = (
    "registered", "defined", "assigning", "ready", "pending", "scouting", "scouted", "running",
    "topreprocess", "preprocessing", "staging", "throttled", "paused", "exhausted", "prepared",
    "finishing", "passed", "aborting", "toabort", "toretry", "toincexec", "rerefine", "toreassign",
    "reassigning", "tobroken", "done", "finished", "failed", "broken", "aborted",
)  # fmt: skip
# Ending for good: changing how the task runs has no effect any more.
ENDING = FINAL | {"prepared", "finishing", "passed", "aborting", "toabort", "tobroken"}

_KILL_OR_FINISH_REFUSED = frozenset(
    {"finished", "done", "prepared", "broken", "aborted", "toabort", "aborting", "failed"}
)
_REASSIGNABLE = frozenset(
    {"defined", "ready", "running", "scouting", "scouted", "pending", "assigning", "exhausted"}
)


def _status_allows(action: Action, status: str) -> bool:
    """PanDA's precondition of each command (panel-only actions: not once the task is ending)."""
    match action:
        case Action.KILL | Action.FINISH:
            return status not in _KILL_OR_FINISH_REFUSED
        case Action.RETRY:
            return status in {"finished", "failed", "exhausted"}
        case Action.PAUSE:
            return status not in {"finished", "failed", "done", "aborted", "broken", "paused"}
        case Action.RESUME:
            return status in {"paused", "throttled", "staging"}
        case Action.REASSIGN:
            return status in _REASSIGNABLE
        case Action.INCREASE_ATTEMPTS:
            return status in {"running", "scouting", "ready"}
        case Action.RELEASE:
            return status in {"scouting", "pending", "running", "ready", "assigning", "defined"}
        case Action.AVALANCHE:
            return status == "scouting"
        case Action.PRIORITY | Action.MODIFY:
            return status not in ENDING
    raise AssertionError(action)  # pragma: no cover


# A hint after the reason where the next step is not obvious.
_HINTS = {
    (Action.RETRY, "broken"): "a broken task has bad parameters: clone it, fix them and launch it again",
    (Action.RETRY, "done"): "every input is done already",
    (Action.RETRY, "aborted"): "a killed task cannot be retried: clone it instead",
    (Action.RESUME, "running"): "it is not paused",
}


@dataclass(frozen=True)
class Verdict:
    """The matrix's answer: allowed, or refused with the reason and the HTTP status to answer with."""

    allowed: bool
    reason: str = ""
    http_status: int = 200  # 403: the role; 409: the task's status

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = Verdict(True)


def check_role(action: Action | str, role: str | None) -> Verdict:
    """The role column alone (a bulk action is refused as a whole when the role is missing)."""
    action = Action(action)
    needed = ACTIONS[action].role
    if role not in ROLES or role_rank(role) < role_rank(needed):
        return Verdict(False, f"{action}: needs the {needed} role", 403)
    return ALLOWED


def check(action: Action | str, status: str | None, role: str | None, *, in_panda: bool = True) -> Verdict:
    """May a user with panel `role` (None: not logged in, or disabled) take `action` on a task
    whose stored PanDA status is `status` (None: not read from PanDA yet)? `in_panda`: the task
    has a PanDA task id."""
    action = Action(action)
    by_role = check_role(action, role)
    if not by_role:
        return by_role
    if not in_panda:
        return Verdict(False, f"{action}: not possible before the task is in PanDA", 409)
    if status is None:
        return Verdict(False, f"{action}: not possible before PanDA reports the task's status", 409)
    if status not in STATUSES:
        return Verdict(
            False, f"{action}: not possible while PanDA reports the unknown status {status!r}", 409
        )
    if not _status_allows(action, status):
        hint = _HINTS.get((action, status))
        return Verdict(False, f"{action}: not possible while {status}" + (f" ({hint})" if hint else ""), 409)
    return ALLOWED
