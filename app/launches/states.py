"""The launch state machine: one status enum, the transitions it allows, and `transition()`, the
way every writer changes a launch's status.

    pending ──claim──▶ sending ──▶ submitted | failed | unknown | needs_decision
    sending ──PanDA unreachable, nothing sent──▶ pending (goes again by itself, after a backoff)
    unknown (sent, no answer) ──lookup by task name──▶ submitted | failed | needs_decision
    needs_decision (PanDA cannot tell) ──a manager──▶ submitted (adopted) | failed (not in PanDA)
    pending ──▶ cancelled

submitted, failed and cancelled are final: "resend" makes a new launch row (the next attempt). A
request that may have reached PanDA (unknown, needs_decision) never leads back to pending.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from app import clock

if TYPE_CHECKING:
    from app.launches.models import Launch


class LaunchStatus(StrEnum):
    PENDING = "pending"  # due at due_at; the dispatcher claims it
    SENDING = "sending"  # claimed (committed before the request leaves); never claimed twice
    SUBMITTED = "submitted"  # PanDA's task id is stored (answered, found by name, or adopted)
    FAILED = "failed"  # refused, or nothing reached PanDA; a resend is a new attempt
    UNKNOWN = "unknown"  # sent without an answer: looked up by task name, never resent blindly
    NEEDS_DECISION = "needs_decision"  # PanDA cannot tell whether it arrived: a manager decides
    CANCELLED = "cancelled"


S = LaunchStatus
TRANSITIONS: dict[LaunchStatus, frozenset[LaunchStatus]] = {
    S.PENDING: frozenset({S.SENDING, S.CANCELLED}),
    S.SENDING: frozenset({S.PENDING, S.SUBMITTED, S.FAILED, S.UNKNOWN, S.NEEDS_DECISION}),
    S.UNKNOWN: frozenset({S.SUBMITTED, S.FAILED, S.NEEDS_DECISION}),
    S.NEEDS_DECISION: frozenset({S.SUBMITTED, S.FAILED}),
    S.SUBMITTED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
FINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
# Outcomes the dispatcher still settles by itself (PanDA asked again by task name).
UNSETTLED = frozenset({S.SENDING, S.UNKNOWN})


class InvalidTransition(Exception):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a launch cannot go from {current} to {target}")


def check(current: str, target: LaunchStatus) -> None:
    """Raise InvalidTransition unless the table allows current → target."""
    if target not in TRANSITIONS[LaunchStatus(current)]:
        raise InvalidTransition(current, target)


def transition(
    launch: Launch, target: LaunchStatus, *, error: str = "", reply: dict[str, Any] | None = None
) -> None:
    """Move `launch` to `target` with its reason (`error`, shown to managers) and PanDA's `reply`
    (kept in the manifest); raises InvalidTransition for a move the table forbids."""
    check(launch.status, target)
    launch.status = target
    launch.error = error[:4000]
    launch.finished_at = clock.now()
    if reply is not None:
        launch.manifest = {**(launch.manifest or {}), "panda_reply": reply}
