"""Errors raised by the PanDA client; each class tells the caller what it may do next.

- `PandaUnavailable`: nothing was processed by the server; safe to retry later.
- `PandaOutcomeUnknown`: the request was sent and no usable reply came; it may or may not have been
  applied. Never resend blindly (reconcile a submit by task name, re-read a task's status).
- `PandaRejected`: the server processed the request and refused it (code + message + a human sentence).
- `PandaNotFound`: a `PandaRejected` for an unknown task id (also right after submit, before JEDI
  picked the task up).
- `PandaAuthError`: the token or the role was refused (HTTP 403, or a role check inside the API).
- `PandaRoleMissing`: the panel refused to submit because the token lacks the production role.
- `PandaUnsupported`: the call does not exist on the server's protocol (legacy API).
"""

from __future__ import annotations

# Human sentences for the task-insertion codes (reference §1.3, `insertTaskParamsPanda`).
SUBMIT_CODES: dict[int, str] = {
    0: "The task was accepted.",
    1: "PanDA refused the task as a duplicate of a task already registered in DEFT.",
    2: "PanDA refused the task as a duplicate of an active task in JEDI with the same name.",
    3: "PanDA accepted the task as an incremental execution of an existing task with the same name.",
    4: "PanDA had a server error while registering the task; check the task parameters and try again later.",
    10: "PanDA refused the task: too many active tasks for this user; wait for some to finish.",
    11: "PanDA refused the task: the parent task named by parentTaskName was not found.",
}

# Human sentences for the task-command codes (reference §1.3, `sendCommandTaskPanda`).
COMMAND_CODES: dict[int, str] = {
    0: "The command was registered; JEDI executes it in a few minutes.",
    1: "PanDA had a server error while registering the command; try again later.",
    2: "PanDA does not know this task (it may not have been picked up by JEDI yet).",
    3: "PanDA refused the command: permission denied (not the task owner and no production role).",
    4: "PanDA refused the command in the task's current status.",
    5: "The task is still running; PanDA retried its failed jobs instead of the task.",
}

# Human sentences for `increase_attempts` (`increaseAttemptNrPanda` has its own codes).
INCREASE_CODES: dict[int, str] = {
    0: "The attempt numbers were increased.",
    1: "PanDA does not know this task.",
    2: "PanDA refused to increase attempts in the task's current status.",
}

# Legacy-only codes (panda-server 0.8 `UserIF.py`: CODE_SSL, CODE_LOGIC).
LEGACY_CODES: dict[int, str] = {
    100: "PanDA requires an authenticated (secure) connection for this command.",
    101: "PanDA refused the task id as malformed.",
}


class PandaError(Exception):
    """Base class of every error the PanDA client raises."""

    outcome = "error"  # short name stored in the interaction log (PandaCall.outcome)

    def __init__(self, message: str, *, method: str = "", server: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.server = server

    def __str__(self) -> str:
        return self.message


class PandaUnavailable(PandaError):
    """PanDA could not be reached or refused before processing: safe to retry."""

    outcome = "unavailable"


class PandaOutcomeUnknown(PandaError):
    """The request was sent but no usable reply came: it may have been applied. Never retry blindly."""

    outcome = "unknown"


class PandaAuthError(PandaError):
    """The server refused the token or the role; `reason` is the server's own text."""

    def __init__(self, message: str, *, reason: str = "", method: str = "", server: str = "") -> None:
        super().__init__(message, method=method, server=server)
        self.reason = reason or message

    outcome = "auth"


class PandaRoleMissing(PandaAuthError):
    """The panel refused a submission because the token has no production role."""


class PandaRejected(PandaError):
    """The server processed the request and refused it."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        server_message: str = "",
        kind: str = "command",
        method: str = "",
        server: str = "",
    ) -> None:
        super().__init__(message, method=method, server=server)
        self.code = code
        self.server_message = server_message
        self.kind = kind

    @property
    def human(self) -> str:
        """A sentence saying what happened, for the UI."""
        return self.message

    outcome = "rejected"


class PandaNotFound(PandaRejected):
    """The task id is unknown to PanDA (possibly not yet picked up by JEDI)."""

    outcome = "not_found"


class PandaUnsupported(PandaError):
    """The call has no equivalent on the server's protocol (e.g. legacy API)."""

    outcome = "unsupported"


def human_sentence(code: int | None, kind: str, server_message: str = "") -> str:
    """Map a server return code to a sentence; the server's text is appended when it adds detail."""
    table = {"submit": SUBMIT_CODES, "command": COMMAND_CODES, "increase": INCREASE_CODES}.get(kind, {})
    sentence = table.get(code) if code is not None else None
    if sentence is None and code is not None and kind in ("submit", "command", "increase"):
        sentence = LEGACY_CODES.get(code)
    if sentence is None:
        sentence = "PanDA refused the request."
        if code is not None:
            sentence = f"PanDA refused the request (code {code})."
    if server_message:
        return f"{sentence} Server said: {server_message}"
    return sentence
