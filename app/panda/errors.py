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


TRACEBACK = "Traceback (most recent call last):"

# What PanDA's token failures mean for the user (the server appends Python tracebacks to some).
TOKEN_ADVICE = (
    ("Token decode failure. 'groups'", "your IAM token has no groups claim: ask IAM for the `groups` scope "
     "([iam] extra_scopes), then log in again"),
    ("'NoneType' object has no attribute 'replace'", "the request reached PanDA without an Origin header "
     "(a proxy between the panel and PanDA may drop it)"),
    ("unhashable type: 'list'", "your IAM token names several audiences (aud is a list): PanDA accepts "
     "only an ID token issued to one client"),
    ("Signature has expired", "your IAM token has expired: log in again with IAM"),
    ("cannot extract client_id from token", "PanDA does not know the client your IAM token was issued "
     "to: ask the PanDA operators to add the panel's client id to the VO's secondary_ids"),
)  # fmt: skip


def first_part(text: str) -> str:
    """What users see of a server text: its first line, never a Python traceback."""
    head = text.split(TRACEBACK, 1)[0].strip()
    return head.splitlines()[0].strip() if head else ""


def token_advice(reason: str) -> str:
    """A token failure's reason (first part) as advice where the cause is known."""
    for marker, advice in TOKEN_ADVICE:
        if marker in reason:
            return f"{advice} (PanDA said: {reason})"
    return reason


class PandaError(Exception):
    """Base class of every error the PanDA client raises.

    `detail` is the server's whole reply text when the message shows only part of it (tracebacks
    are cut for users); the interaction log keeps it for the managers.
    """

    outcome = "error"  # short name stored in the interaction log (PandaCall.outcome)

    def __init__(self, message: str, *, method: str = "", server: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.server = server
        self.detail = detail

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

    def __init__(
        self, message: str, *, reason: str = "", method: str = "", server: str = "", detail: str = ""
    ) -> None:
        super().__init__(message, method=method, server=server, detail=detail)
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
        detail: str = "",
    ) -> None:
        super().__init__(message, method=method, server=server, detail=detail)
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
