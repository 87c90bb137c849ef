"""The launch state machine: the table, `transition()`, and the database's CHECK constraint."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.launches.models import Launch
from app.launches.states import FINAL, TRANSITIONS, InvalidTransition, LaunchStatus, transition

S = LaunchStatus


def reachable_from(start: LaunchStatus) -> set[LaunchStatus]:
    seen, todo = {start}, [start]
    while todo:
        for target in TRANSITIONS[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_table_covers_every_status_and_every_status_is_reachable():
    assert set(TRANSITIONS) == set(LaunchStatus)
    assert reachable_from(S.PENDING) == set(LaunchStatus)
    assert {S.SUBMITTED, S.FAILED, S.CANCELLED} == FINAL


def test_an_unanswered_submit_is_never_sent_again_by_the_state_machine():
    """Nothing leads from "sent" back to pending: a resend is a new launch row. Only a claimed row
    that PanDA never received (unreachable) goes back to pending, directly."""
    for status in (S.UNKNOWN, S.NEEDS_DECISION):
        assert S.PENDING not in reachable_from(status)
    assert S.PENDING in TRANSITIONS[S.SENDING]
    assert TRANSITIONS[S.NEEDS_DECISION] == {S.SUBMITTED, S.FAILED}  # a manager's two answers


def test_transition_records_the_move(clock):
    launch = Launch(status=S.SENDING, manifest={"task_name": "T"})
    transition(launch, S.FAILED, error="refused", reply={"outcome": "rejected"})
    assert launch.status == S.FAILED and launch.error == "refused" and launch.finished_at == clock()
    assert launch.manifest == {"task_name": "T", "panda_reply": {"outcome": "rejected"}}


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.PENDING, S.SUBMITTED),
        (S.SUBMITTED, S.PENDING),
        (S.FAILED, S.SUBMITTED),
        (S.NEEDS_DECISION, S.UNKNOWN),
    ],
)
def test_transition_refuses_a_move_the_table_forbids(current, target):
    launch = Launch(status=current, error="")
    with pytest.raises(InvalidTransition, match=f"from {current} to {target}"):
        transition(launch, target)
    assert launch.status == current and launch.error == ""


def test_the_database_accepts_exactly_the_statuses(app, db, make_user):
    from app.tasks import services
    from tests.tasks.conftest import sim_definition

    bunch, *_ = services.create_bunch(sim_definition(), make_user("manager"), "k", is_admin=False)
    db.session.commit()
    launch_id = bunch.tasks[0].launches[0].id
    for status in LaunchStatus:
        db.session.execute(
            text("UPDATE launch SET status = :s WHERE id = :id"), {"s": status.value, "id": launch_id}
        )
    with pytest.raises(IntegrityError):
        db.session.execute(text("UPDATE launch SET status = 'lost' WHERE id = :id"), {"id": launch_id})
    db.session.rollback()
