"""Task actions: what a user may do to a task (the matrix, `matrix.py`), doing it through the PanDA
client with the acting user's own token, and what became of it (the command history, "command
queued: kill (by …, at …)" until PanDA's status shows it, PanDA's reason when it said no).

Every action is recorded three times: the PanDA call in the interaction log (with the comment), the
command on the task (`TaskCommand`), and the audit trail. Services flush, never commit; nothing is
written before PanDA answered (the token vault must not wait for the request's write lock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from app import clock
from app.actions.matrix import ACTIONS, Action, ActionInfo, Verdict, check
from app.actions.models import Outcome, TaskCommand
from app.audit.services import record, record_now
from app.auth.models import User
from app.config import get_settings
from app.extensions import db, panda_clients
from app.panda.client import PandaApi
from app.panda.errors import (
    PandaAuthError,
    PandaError,
    PandaOutcomeUnknown,
    PandaRejected,
)
from app.panda.results import ChangeResult, CommandResult
from app.tasks.models import Task
from app.tokens.errors import TokenUnavailable

COMMENT_MAX = 2000
# JEDI executes a queued command "in a few minutes"; a command whose effect shows in no status
# (release, a reassignment that came and went between two syncs) counts as executed once PanDA was
# read this long after it.
COMMAND_WINDOW = timedelta(minutes=10)


class ActionRefused(Exception):
    """The matrix refused the action: nothing was sent. `verdict` holds the reason and HTTP status."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class InvalidInput(ValueError):
    """The action's parameters or comment are wrong: field → message (nothing was sent)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# --- the matrix for one task and user ----------------------------------------------------------


def role_of(user: User | None) -> str | None:
    return user.role if user is not None and user.active else None


def _needed(action: Action, params: Mapping[str, Any]) -> tuple[Action, ...]:
    """The matrix entries an action with these parameters needs: a modification of the priority or
    the attempts is that action as well."""
    if action is Action.MODIFY:
        extra = {"priority": Action.PRIORITY, "attempts": Action.INCREASE_ATTEMPTS}.get(
            params.get("field", "")
        )
        return (action, extra) if extra else (action,)
    return (action,)


def verdict(
    task: Task, action: Action | str, user: User | None, params: Mapping[str, Any] | None = None
) -> Verdict:
    """The matrix's answer for `user` and `task` as the panel last read it from PanDA."""
    for needed in _needed(Action(action), params or {}):
        answer = check(needed, task.panda_status, role_of(user), in_panda=task.panda_task_id is not None)
        if not answer:
            return answer
    return Verdict(True)


@dataclass(frozen=True)
class Button:
    action: Action
    label: str
    verdict: Verdict
    destructive: bool


def buttons(task: Task, user: User | None) -> list[Button]:
    """Every action for the task page: enabled, or greyed out with the reason as its tooltip."""
    return [
        Button(action, info.label, verdict(task, action, user), info.destructive)
        for action, info in ACTIONS.items()
    ]


# --- parameters -------------------------------------------------------------------------------

_SITE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _int(
    data: Mapping[str, Any], name: str, low: int, high: int, errors: dict[str, str], unit: str = ""
) -> int | None:
    raw = str(data.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        errors[name] = "enter a whole number"
        return None
    if not low <= value <= high:
        errors[name] = f"must be between {low} and {high}{unit}"
        return None
    return value


def parse_params(action: Action | str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The action's parameters from a form (or JSON); raises InvalidInput naming the fields."""
    action = Action(action)
    limits = get_settings().tasks
    errors: dict[str, str] = {}
    params: dict[str, Any] = {}
    if action is Action.FINISH:
        params["soft"] = str(data.get("soft", "")).lower() in ("y", "yes", "true", "on", "1")
    elif action is Action.RETRY:
        for name, high, unit in (
            ("memory_mb", limits.max_memory_mb, " MB"),
            ("walltime_s", limits.max_walltime_s, " s"),
        ):
            value = _int(data, name, 1, high, errors, unit)
            if value is not None:
                params[name] = value
    elif action is Action.PRIORITY:
        params["priority"] = _int(data, "priority", 0, 10000, errors)
        if params["priority"] is None:
            errors.setdefault("priority", "enter the new priority")
    elif action is Action.INCREASE_ATTEMPTS:
        params["increase"] = _int(data, "increase", 1, 100, errors)
        if params["increase"] is None:
            errors.setdefault("increase", "enter how many attempts to add")
    elif action is Action.REASSIGN:
        site, cloud = (str(data.get(n) or "").strip() for n in ("site", "cloud"))
        if bool(site) == bool(cloud):
            errors["site"] = "give either a site or a cloud"
        for name, text in (("site", site), ("cloud", cloud)):
            if text and (len(text) > 128 or not set(text) <= _SITE_CHARS):
                errors[name] = "letters, digits, '.', '-' and '_' only"
            elif text:
                params[name] = text
    if errors:
        raise InvalidInput(errors)
    return params


def check_comment(action: Action | str, comment: str) -> str:
    """The comment, stripped; destructive actions need one (it goes with the command everywhere)."""
    comment = (comment or "").strip()
    if ACTIONS[Action(action)].destructive and not comment:
        raise InvalidInput({"comment": "say why: the comment is stored with the command"})
    if len(comment) > COMMENT_MAX:
        raise InvalidInput({"comment": f"at most {COMMENT_MAX} characters"})
    return comment


# --- doing it ---------------------------------------------------------------------------------


def _send(
    client: PandaApi, user: User, task: Task, action: Action, params: Mapping[str, Any], comment: str
) -> CommandResult | ChangeResult:
    task_id = task.panda_task_id
    assert task_id is not None, "the matrix refuses actions on tasks without a PanDA id"
    match action:
        case Action.KILL:
            return client.kill(user, task_id, comment=comment)
        case Action.FINISH:
            return client.finish(user, task_id, soft=bool(params.get("soft")), comment=comment)
        case Action.RETRY:
            new = {
                key: params[name]
                for name, key in (("memory_mb", "ramCount"), ("walltime_s", "walltime"))
                if params.get(name)
            }
            return client.retry(user, task_id, new_parameters=new or None, comment=comment)
        case Action.PAUSE:
            return client.pause(user, task_id, comment=comment)
        case Action.RESUME:
            return client.resume(user, task_id, comment=comment)
        case Action.RELEASE:
            return client.release(user, task_id, comment=comment)
        case Action.AVALANCHE:
            return client.avalanche(user, task_id, comment=comment)
        case Action.PRIORITY:
            return client.change_priority(user, task_id, int(params["priority"]), comment=comment)
        case Action.REASSIGN:
            return client.reassign(
                user, task_id, site=params.get("site"), cloud=params.get("cloud"), comment=comment
            )
        case Action.INCREASE_ATTEMPTS:
            return client.increase_attempts(user, task_id, int(params["increase"]), comment=comment)
        case Action.MODIFY:
            return _send_modification(client, user, task_id, params, comment)
    raise AssertionError(action)  # pragma: no cover


def _send_modification(
    client: PandaApi, user: User, task_id: int, params: Mapping[str, Any], comment: str
) -> CommandResult | ChangeResult:
    """One field of a modification after submission: each is its own PanDA call."""
    field = params["field"]
    if field == "attempts":  # added to the attempts left, not set
        return client.increase_attempts(user, task_id, int(params["add"]), comment=comment)
    value = params["to"]
    if field == "priority":
        return client.change_priority(user, task_id, int(value), comment=comment)
    if field == "memory_mb":
        return client.change_attribute(user, task_id, "ramCount", int(value), comment=comment)
    if field == "walltime_s":
        return client.change_attribute(user, task_id, "wallTime", int(value), comment=comment)
    if field == "split_rule":
        return client.change_split_rule(user, task_id, params["rule"], str(value), comment=comment)
    raise ValueError(f"PanDA cannot change {field} after submission")


# The client's reasons for refusing a call before sending it (app/panda/client.py, `_token`).
_NO_TOKEN = ("no token provider configured", "no user given", "empty token")


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    message: str
    code: int | None = None
    new_task_id: int | None = None


def _answer(send: Any) -> Answer:
    """Call `send()` and say what PanDA answered, in words (never raises a PanDA or token error)."""
    try:
        result = send()
    except PandaOutcomeUnknown as exc:
        return Answer(
            Outcome.UNKNOWN, f"PanDA gave no usable answer, so it may have registered the command: {exc}"
        )
    except PandaAuthError as exc:
        if isinstance(exc.__cause__, TokenUnavailable) or exc.reason in _NO_TOKEN:  # refused before sending
            return Answer(Outcome.FAILED, f"Nothing was sent: {exc}")
        return Answer(Outcome.REJECTED, str(exc))
    except PandaRejected as exc:
        return Answer(Outcome.REJECTED, exc.human, exc.code)
    except PandaError as exc:
        return Answer(Outcome.FAILED, f"Nothing was registered: {exc}")
    except TokenUnavailable as exc:
        return Answer(Outcome.FAILED, f"Nothing was sent: no usable token ({exc.reason})")
    if isinstance(result, CommandResult):
        return Answer(Outcome.ACCEPTED, result.message, result.code, result.new_task_id)
    return Answer(Outcome.ACCEPTED, result.message)


def ensure_allowed(task: Task, action: Action, user: User, params: Mapping[str, Any] | None = None) -> None:
    """Raise ActionRefused (and audit the refusal, which outlives the request) unless the matrix allows it."""
    answer = verdict(task, action, user, params)
    if not answer:
        record_now(
            "task.action_refused", target=task.name, outcome="denied", user=user,
            details={"action": action.value, "reason": answer.reason, "status": task.panda_status},
        )  # fmt: skip
        raise ActionRefused(answer)


def act_on_task(
    task: Task,
    action: Action | str,
    params: Mapping[str, Any],
    user: User,
    comment: str,
    *,
    client: PandaApi | None = None,
    bulk_id: int | None = None,
) -> TaskCommand:
    """Take `action` on `task` for `user`: check the matrix (ActionRefused, audited, before anything is
    sent), send it to PanDA with the user's token, and record the command and the audit event;
    flushes. PanDA's refusal is not an exception: the command's outcome and message say it."""
    action = Action(action)
    ensure_allowed(task, action, user, params)
    comment = check_comment(action, comment)
    answer = send(task, action, params, user, comment, client)
    return record_command(task, action, params, user, comment, answer, bulk_id)


def send(
    task: Task,
    action: Action,
    params: Mapping[str, Any],
    user: User,
    comment: str,
    client: PandaApi | None = None,
) -> Answer:
    """Send the action to PanDA (the matrix was asked already) and say what PanDA answered; writes
    nothing, so several can be sent before their commands are recorded (the token vault may need to
    commit meanwhile, which an open write transaction would block on SQLite)."""
    panda = client or panda_clients(interactive=True)
    try:
        return _answer(lambda: _send(panda, user, task, action, params, comment))
    finally:
        if client is None:
            panda.close()


def record_command(
    task: Task,
    action: Action,
    params: Mapping[str, Any],
    user: User,
    comment: str,
    answer: Answer,
    bulk_id: int | None = None,
) -> TaskCommand:
    """Record what PanDA answered: the task's command (replacing earlier queued ones), the new PanDA
    task id of a retry PanDA registered anew, and the audit event; flushes."""
    command = TaskCommand(
        task_id=task.id, panda_task_id=task.panda_task_id, action=action.value, params=dict(params), comment=comment,
        user_id=user.id, username=user.username, bulk_id=bulk_id, status_before=task.panda_status,
        outcome=answer.outcome, panda_code=answer.code, message=answer.message[:4000], requested_at=clock.now(),
    )  # fmt: skip
    db.session.add(command)
    db.session.flush()
    if answer.outcome is Outcome.ACCEPTED and ACTIONS[action].queued:
        _supersede_earlier(command)
    if answer.new_task_id and answer.new_task_id != task.panda_task_id:
        # PanDA registered the retry with new parameters as a new task: follow that one from now on.
        command.message += (
            f" The panel now follows PanDA task {answer.new_task_id} (was {task.panda_task_id})."
        )
        task.panda_task_id, task.panda_status, task.panda_checked_at = answer.new_task_id, None, None
    details = {"action": action.value, "params": dict(params), "comment": comment, "panda_task_id": command.panda_task_id,
               "code": answer.code, "message": answer.message[:300], **({"bulk": bulk_id} if bulk_id else {})}  # fmt: skip
    record(f"task.{action.value}", target=task.name, outcome=answer.outcome.value, details=details, user=user)
    db.session.flush()
    return command


def _supersede_earlier(command: TaskCommand) -> None:
    """A newer queued command replaces one JEDI has not executed yet (PanDA keeps one per task)."""
    earlier = db.session.scalars(
        select(TaskCommand).where(
            TaskCommand.task_id == command.task_id, TaskCommand.id < command.id,
            TaskCommand.outcome == Outcome.ACCEPTED, TaskCommand.superseded_by_id.is_(None),
            TaskCommand.action.in_([a.value for a, info in ACTIONS.items() if info.queued]),
        )
    )  # fmt: skip
    task = db.session.get_one(Task, command.task_id)
    for previous in earlier:
        if not shown_in_panda(previous, task):
            previous.superseded_by_id = command.id


# --- feedback ---------------------------------------------------------------------------------

_RETRYABLE = {"finished", "failed", "exhausted"}
# The statuses in which each queued command's effect shows (None: it shows in no status).
EXPECTED: dict[str, frozenset[str] | None] = {
    "kill": frozenset({"toabort", "aborting", "aborted"}),
    "finish": frozenset({"finishing", "passed", "prepared", "done", "finished", "failed"}),
    "pause": frozenset({"paused"}),
    "avalanche": frozenset({"running"}),
    "reassign": frozenset({"toreassign", "reassigning"}),
    "release": None,
}


def _shows(command: TaskCommand, status: str | None) -> bool:
    if status is None:
        return False
    if command.action == "retry":
        return status not in _RETRYABLE
    if command.action == "resume":
        return status != "paused"
    expected = EXPECTED.get(command.action)
    return expected is not None and status in expected


def shown_in_panda(command: TaskCommand, task: Task) -> bool:
    """Does the status the panel read from PanDA since the command was queued show it executed? (The
    status as last read, not the history: PanDA's clock stamps the history, the panel's the command.)"""
    if task.panda_checked_at is None or task.panda_checked_at < command.requested_at:
        return False
    if _shows(command, task.panda_status):
        return True
    # No status shows it (release), or it may have come and gone between two reads (reassign).
    quiet = EXPECTED.get(command.action, ()) is None or command.action == "reassign"
    return quiet and task.panda_checked_at - command.requested_at >= COMMAND_WINDOW


@dataclass(frozen=True)
class QueuedCommand:
    """ "command queued: kill (by alice, at 12:03 UTC)": shown until PanDA's status reflects it."""

    command: TaskCommand
    replaced: list[TaskCommand]  # earlier ones it replaced before JEDI executed them


def queued_command(task: Task) -> QueuedCommand | None:
    """The task's latest accepted queued command while PanDA's status does not show it yet."""
    queued_actions = [a.value for a, info in ACTIONS.items() if info.queued]
    latest = db.session.scalar(
        select(TaskCommand)
        .where(
            TaskCommand.task_id == task.id,
            TaskCommand.outcome == Outcome.ACCEPTED,
            TaskCommand.action.in_(queued_actions),
        )
        .order_by(TaskCommand.id.desc())
        .limit(1)
    )
    if latest is None or (latest.panda_task_id != task.panda_task_id and latest.action != "retry"):
        return None  # a command to a PanDA task the panel no longer follows
    if shown_in_panda(latest, task):
        return None
    replaced = list(db.session.scalars(select(TaskCommand).where(TaskCommand.superseded_by_id == latest.id)))
    return QueuedCommand(latest, replaced)


def command_history(task: Task, limit: int = 200) -> list[TaskCommand]:
    """The task's commands, newest first."""
    return list(
        db.session.scalars(
            select(TaskCommand)
            .where(TaskCommand.task_id == task.id)
            .order_by(TaskCommand.id.desc())
            .limit(limit)
        )
    )


# --- the task page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskPanel:
    """The task page's actions: the buttons and the history (the command PanDA has not executed yet is
    the PanDA-state fragment's, which the page polls: tasks/_panda_detail.html)."""

    buttons: list[Button]
    history: list[TaskCommand]  # the newest HISTORY_SHOWN
    older: bool = False  # the task has older commands (the PanDA log of the task lists every one)


HISTORY_SHOWN = 20  # a task's page renders this many commands, whatever their number


def task_panel(task: Task, user: User | None) -> TaskPanel:
    history = command_history(task, HISTORY_SHOWN + 1)
    return TaskPanel(buttons(task, user), history[:HISTORY_SHOWN], len(history) > HISTORY_SHOWN)


@dataclass(frozen=True)
class Notice:
    message: str
    category: str  # a Bootstrap alert category


def notice(command: TaskCommand) -> Notice:
    """What the user is told at once about a command."""
    what = f"{command.action} of {command.task.name}"
    if command.outcome is Outcome.ACCEPTED:
        queued = ACTIONS[Action(command.action)].queued
        tail = " JEDI executes it within minutes; the task shows it as queued until then." if queued else ""
        return Notice(f"PanDA accepted the {what}.{tail}", "success")
    if command.outcome is Outcome.REJECTED:
        return Notice(f"PanDA refused the {what}: {command.message}", "danger")
    if command.outcome is Outcome.UNKNOWN:
        return Notice(f"The {what} may or may not have reached PanDA: {command.message}", "warning")
    return Notice(f"The {what} was not sent: {command.message}", "danger")


@dataclass(frozen=True)
class ActionPage:
    """The page of one action on one task: what it does, whether it may, what is queued already."""

    task: Task
    action: Action
    info: ActionInfo
    verdict: Verdict
    queued: QueuedCommand | None

    @property
    def http_status(self) -> int:
        return 200 if self.verdict else self.verdict.http_status


def action_page(task: Task, action: Action | str, user: User | None) -> ActionPage:
    action = Action(action)
    return ActionPage(task, action, ACTIONS[action], verdict(task, action, user), queued_command(task))


def act_from_form(task: Task, action: Action | str, values: Mapping[str, Any], user: User) -> TaskCommand:
    """`act_on_task` with the parameters and comment as a form sent them (InvalidInput names the
    wrong fields; the matrix is asked first, so a forbidden action is refused whatever was typed)."""
    ensure_allowed(task, Action(action), user)
    return act_on_task(task, action, parse_params(action, values), user, str(values.get("comment") or ""))
