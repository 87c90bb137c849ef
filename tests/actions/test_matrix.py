"""The status × action × role matrix: its answers for every combination (generated from the matrix,
checked against the service the pages and the API use), and a hand-written table of cases that must
hold whatever the matrix says about itself."""

from __future__ import annotations

import pytest

from app.actions.matrix import ACTIONS, STATUSES, Action, check
from app.auth.roles import ROLES

# --- written by hand from PanDA's preconditions (reference/panda.md §1.3) and the issue ------------
CASES = [
    # action, status, role, allowed, reason (when refused)
    ("retry", "failed", "manager", True, ""),
    ("retry", "finished", "manager", True, ""),
    ("retry", "exhausted", "manager", True, ""),
    ("retry", "broken", "admin", False, "retry: not possible while broken"),
    ("retry", "done", "manager", False, "retry: not possible while done"),
    ("kill", "running", "viewer", False, "kill: needs the manager role"),
    ("kill", "pending", "manager", True, ""),
    ("kill", "aborted", "admin", False, "kill: not possible while aborted"),
    ("finish", "done", "manager", False, "finish: not possible while done"),
    ("finish", "toabort", "manager", False, "finish: not possible while toabort"),
    ("pause", "paused", "manager", False, "pause: not possible while paused"),
    ("resume", "paused", "manager", True, ""),
    ("resume", "running", "manager", False, "resume: not possible while running"),
    ("avalanche", "scouting", "admin", True, ""),
    ("avalanche", "scouting", "manager", False, "avalanche: needs the admin role"),
    ("avalanche", "running", "admin", False, "avalanche: not possible while running"),
    ("release", "pending", "manager", True, ""),
    ("reassign", "done", "admin", False, "reassign: not possible while done"),
    ("priority", "running", "admin", True, ""),
    ("increase_attempts", "defined", "manager", False, "increase_attempts: not possible while defined"),
    ("modify", "running", "manager", True, ""),
    ("modify", "failed", "manager", False, "modify: not possible while failed"),
]


@pytest.mark.parametrize(("action", "status", "role", "allowed", "reason"), CASES, ids=lambda v: str(v))
def test_cases_written_by_hand(action, status, role, allowed, reason):
    answer = check(action, status, role)
    assert answer.allowed is allowed
    if not allowed:
        assert answer.reason.startswith(reason)
        assert answer.http_status == (403 if "role" in reason else 409)


def test_refusals_name_the_task_state_when_panda_has_not_reported_it():
    assert (
        check("kill", None, "manager").reason == "kill: not possible before PanDA reports the task's status"
    )
    assert check("kill", "running", "manager", in_panda=False).reason.startswith(
        "kill: not possible before the task is in PanDA"
    )
    assert (
        check("kill", "weird", "manager").reason
        == "kill: not possible while PanDA reports the unknown status 'weird'"
    )
    assert check("kill", "running", None).http_status == 403  # not logged in, or disabled


def test_every_status_in_panda_is_in_the_matrix():
    """The sync's final statuses and every status of reference/panda.md §4.1 have a column."""
    from app.sync.services import FINAL

    assert set(STATUSES) >= FINAL
    assert len(STATUSES) == len(set(STATUSES)) == 30


def test_broken_differs_from_failed_for_every_role():
    for role in ("manager", "admin"):
        assert check("retry", "failed", role) and not check("retry", "broken", role)


# --- generated: one test per combination, the service agrees with the matrix --------------------
COMBINATIONS = [(a.value, s, r) for a in Action for s in (*STATUSES, None) for r in ROLES]


@pytest.mark.parametrize(("action", "status", "role"), COMBINATIONS, ids=lambda v: str(v))
def test_matrix_answer_is_consistent(action, status, role):
    answer = check(action, status, role)
    needed = ACTIONS[Action(action)].role
    if ROLES.index(role) < ROLES.index(needed):
        assert (answer.allowed, answer.http_status) == (False, 403)
        assert answer.reason == f"{action}: needs the {needed} role"
    elif status is None:
        assert (answer.allowed, answer.http_status) == (False, 409)
    elif answer.allowed:
        assert answer.reason == "" and answer.http_status == 200
    else:
        assert answer.http_status == 409 and answer.reason.startswith(
            f"{action}: not possible while {status}"
        )
    # Nothing but retry (and nothing at all for a killed or broken task) is possible once final.
    if status in {"done", "aborted", "broken"}:
        assert not answer.allowed
    if status in {"failed", "finished"} and answer.allowed:
        assert action == "retry"
