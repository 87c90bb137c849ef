"""Scheduling launches (issue 10 item 2) with the scripted PanDA: at a time, when another task is
done or has N % of its jobs done; cancel, reschedule, launch now; the token checks; and the
schedule proofs (due during downtime, cancelled, rescheduled, token expired refused)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.launches import dispatcher, gates, jobs, listing, schedule
from app.launches.schedule import Schedule, ScheduleRefused
from app.tasks import services
from app.tasks.models import TaskBunch
from tests.launches.conftest import give_grant
from tests.tasks.conftest import TAG, sim_definition


def _bunch(user, number: int = 8, key: str | None = None, plan: Schedule = schedule.NOW, **changes) -> TaskBunch:
    definition = sim_definition(
        number, output_dataset=f"MC2025_S1.{TAG}.PROD2025-{number:03d}.SIM.1", **changes
    )
    bunch = services.create_bunch(definition, user, key or f"k{number}", is_admin=False, schedule=plan).bunch
    return bunch


def _launch(bunch: TaskBunch, index: int = 0):
    return bunch.tasks[index].latest_launch


def _why(launch) -> str:
    """What the Launches page says the launch waits for."""
    [row] = listing.rows_of([launch], launch.created_by)
    return row.why


def test_a_launch_due_during_downtime_runs_once_at_start(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    bunch = _bunch(user, plan=Schedule(at=clock() + timedelta(minutes=10)))
    db.session.commit()
    assert dispatcher.dispatch_due(client=fake_panda) == 0  # not due yet: nothing sent
    clock.advance(hours=5)  # the panel was down when it fell due
    dispatcher.dispatch_due(client=fake_panda)  # what the start-up (and each dispatch cycle) runs
    dispatcher.dispatch_due(client=fake_panda)
    assert fake_panda.submits == ["PROD2025-008.SIM"]
    assert _launch(bunch).status == "submitted"


def test_a_cancelled_launch_never_runs(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    bunch = _bunch(user, plan=Schedule(at=clock() + timedelta(hours=1)), bunch_size=3)
    db.session.commit()
    first = _launch(bunch)
    assert schedule.cancel(schedule.targets(first, whole_bunch=True), user) == 3
    db.session.commit()
    clock.advance(hours=2)
    dispatcher.dispatch_due(client=fake_panda)
    assert fake_panda.submits == []
    assert {t.latest_launch.status for t in bunch.tasks} == {"cancelled"}
    assert first.error == f"cancelled by {user.username}"
    # Cancelling again changes nothing (and is audited as refused).
    assert schedule.cancel([first], user) == 0
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "launch.cancel")).all()
    assert [e.outcome for e in events] == ["ok", "refused"]


def test_a_claimed_launch_is_neither_cancelled_nor_rescheduled(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    bunch = _bunch(user)
    db.session.commit()
    launch = _launch(bunch)
    assert dispatcher.claim(launch.id, clock())  # the dispatcher got there first
    assert schedule.cancel([launch], user) == 0
    with pytest.raises(ScheduleRefused, match="no longer pending"):
        schedule.schedule_launch(launch, user, when=clock() + timedelta(hours=1))
    assert launch.status == "sending"


def test_a_rescheduled_launch_runs_at_its_new_time(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    bunch = _bunch(user, plan=Schedule(at=clock() + timedelta(hours=1)))
    db.session.commit()
    start = clock()
    schedule.schedule_launch(_launch(bunch), user, when=start + timedelta(hours=3))
    db.session.commit()
    clock.advance(hours=2)  # past the old time
    dispatcher.dispatch_due(client=fake_panda)
    assert fake_panda.submits == [] and _launch(bunch).status == "pending"
    clock.advance(hours=1)
    dispatcher.dispatch_due(client=fake_panda)
    assert fake_panda.submits == ["PROD2025-008.SIM"]
    assert _launch(bunch).due_at == start + timedelta(hours=3)


def test_launch_now_drops_the_time_and_the_condition(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    parent = _bunch(user, 7)
    later = _bunch(user, plan=Schedule(at=clock() + timedelta(days=2), after_task=parent.tasks[0]))
    db.session.commit()
    assert schedule.reschedule([_launch(later)], schedule.NOW, user) == 1
    db.session.commit()
    dispatcher.dispatch_due(client=fake_panda)
    assert sorted(fake_panda.submits) == ["PROD2025-007.SIM", "PROD2025-008.SIM"]


def test_when_another_task_is_done(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    first = _bunch(user, 7)
    waiting = _bunch(user, plan=Schedule(after_task=first.tasks[0]))
    db.session.commit()
    other = first.tasks[0]
    # The task it waits for is sent in the same cycle; its own launch waits.
    dispatcher.dispatch_due(client=fake_panda)
    assert fake_panda.submits == ["PROD2025-007.SIM"]
    launch = _launch(waiting)
    assert launch.status == "pending"
    assert _why(launch) == f"waiting for task {other.panda_task_id} (PROD2025-007.SIM) to be done (PanDA status: not read yet)"
    other.panda_status = "running"  # what the sync stores
    db.session.commit()
    dispatcher.dispatch_due(client=fake_panda)
    assert _why(launch).endswith("(PanDA status: running)") and len(fake_panda.submits) == 1
    other.panda_status = "done"
    db.session.commit()
    dispatcher.dispatch_due(client=fake_panda)
    assert fake_panda.submits == ["PROD2025-007.SIM", "PROD2025-008.SIM"] and launch.status == "submitted"


def test_when_another_task_has_n_percent_of_its_jobs_done(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    first = _bunch(user, 7)
    waiting = _bunch(user, plan=Schedule(after_task=first.tasks[0], at_percent=50))
    db.session.commit()
    dispatcher.dispatch_due(client=fake_panda)
    other, launch = first.tasks[0], _launch(waiting)
    other.panda_status, other.jobs_done, other.jobs_total = "running", 4, 10
    db.session.commit()
    dispatcher.dispatch_due(client=fake_panda)
    assert _why(launch) == f"waiting for task {other.panda_task_id} (PROD2025-007.SIM) to reach 50 % of its jobs (now 40 %)"
    other.jobs_done = 5
    db.session.commit()
    dispatcher.dispatch_due(client=fake_panda)
    assert launch.status == "submitted" and len(fake_panda.submits) == 2


def test_a_task_that_can_no_longer_get_there_fails_the_launch(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    first = _bunch(user, 7)
    waiting = _bunch(user, plan=Schedule(after_task=first.tasks[0], at_percent=80))
    db.session.commit()
    dispatcher.dispatch_due(client=fake_panda)
    other = first.tasks[0]
    other.panda_status, other.jobs_done, other.jobs_total = "failed", 2, 10
    db.session.commit()
    dispatcher.dispatch_due(client=fake_panda)
    launch = _launch(waiting)
    assert launch.status == "failed"
    assert launch.error == (
        f"task {other.panda_task_id} (PROD2025-007.SIM) ended failed in PanDA before being 80 % of its jobs done; "
        "not submitted"
    )
    assert fake_panda.submits == ["PROD2025-007.SIM"]


def test_the_gate_folds_parent_dependency_and_iam(app, db, make_user, clock):
    user = make_user("manager")
    first = _bunch(user, 7)
    waiting = _bunch(user, plan=Schedule(after_task=first.tasks[0]))
    db.session.commit()
    held = gates.gate(_launch(waiting))
    assert held.wait and held.reason == "waiting for task PROD2025-007.SIM to reach PanDA, then to be done"
    assert gates.gate(_launch(first)).goes
    assert gates.job_percent(1, 3) == 33.3 and gates.job_percent(None, 3) is None and gates.job_percent(0, 0) is None


def test_schedules_that_cannot_work_are_refused_with_field_messages(app, db, make_user, clock):
    user = make_user("manager")
    first = _bunch(user, 7)
    db.session.commit()
    with pytest.raises(services.ValidationFailed) as refused:
        _bunch(user, plan=Schedule(at=clock() - timedelta(hours=1)))
    assert refused.value.errors == {
        "launch_at": ["2026-01-15 11:00 UTC is in the past; choose a later time or launch now"]
    }
    first.tasks[0].panda_status = "aborted"
    with pytest.raises(ScheduleRefused) as refused2:
        schedule.check(Schedule(after_task=first.tasks[0]), user)
    assert refused2.value.errors == {"after_task": ["PROD2025-007.SIM ended aborted in PanDA; it will never be done"]}
    with pytest.raises(ScheduleRefused, match="cannot wait for itself"):
        schedule.check(Schedule(after_task=first.tasks[0]), user, launching=[first.tasks[0].id])


def test_only_the_owner_or_an_admin_changes_a_launch(app, db, make_user, clock):
    owner, other, admin = make_user("manager"), make_user("manager"), make_user("admin")
    launch = _launch(_bunch(owner, plan=Schedule(at=clock() + timedelta(hours=1))))
    db.session.commit()
    with pytest.raises(schedule.NotAllowed):
        schedule.cancel([launch], other)
    assert schedule.cancel([launch], admin) == 1


def test_time_zones(app, db, make_user):
    from datetime import datetime

    winter = schedule.to_utc(datetime(2026, 1, 15, 14, 30), "Europe/Moscow")
    assert winter.isoformat() == "2026-01-15T11:30:00+00:00"
    summer = schedule.to_utc(datetime(2026, 7, 1, 14, 30), "Europe/Berlin")
    assert summer.isoformat() == "2026-07-01T12:30:00+00:00"
    with pytest.raises(ScheduleRefused, match="unknown time zone"):
        schedule.to_utc(datetime(2026, 1, 1), "Mars/Olympus")
    assert schedule.in_zone(winter, "Asia/Tokyo").strftime("%H:%M") == "20:30"
    user = make_user("manager")
    schedule.remember_zone(user, "Europe/Moscow")
    schedule.remember_zone(user, "nowhere")
    assert user.time_zone == "Europe/Moscow"


# --- the owner's token ------------------------------------------------------------------------------


def test_a_launch_whose_token_will_have_expired_is_refused_at_scheduling(iam_app, db, make_user, clock):
    user = make_user("manager")
    give_grant(db, user, timedelta(hours=2), clock)
    with pytest.raises(services.ValidationFailed) as refused:
        _bunch(user, plan=Schedule(at=clock() + timedelta(hours=3)))
    assert refused.value.errors == {"launch_at": [
        f"the PanDA token of {user.username} can be renewed only until 2026-01-15 14:00 UTC, before this launch is "
        "due: choose an earlier time, or log in again and schedule it then"
    ]}  # fmt: skip
    db.session.rollback()
    bunch = _bunch(user, plan=Schedule(at=clock() + timedelta(hours=1)))  # within the grant: accepted
    db.session.commit()
    assert _launch(bunch).due_at == clock() + timedelta(hours=1)
    with pytest.raises(ScheduleRefused, match="renewed only until"):
        schedule.schedule_launch(_launch(bunch), user, when=clock() + timedelta(hours=5))


def test_launches_are_flagged_as_soon_as_their_token_becomes_unusable(iam_app, db, make_user, clock):
    user = make_user("manager")
    grant = give_grant(db, user, timedelta(hours=4), clock)
    soon = _bunch(user, 7, plan=Schedule(at=clock() + timedelta(hours=1)))
    late = _bunch(user, 8, plan=Schedule(at=clock() + timedelta(hours=3)))
    db.session.commit()
    assert jobs.flag_unusable_tokens() == 0
    clock.advance(hours=2)  # the grant (4 h) still outlasts both
    assert jobs.flag_unusable_tokens() == 0
    grant.needs_relogin = True  # IAM refused the refresh token
    db.session.commit()
    assert jobs.flag_unusable_tokens() == 2
    assert _launch(soon).token_problem.startswith("token unusable: log in again")
    assert jobs.flag_unusable_tokens() == 0  # flagged once
    grant.needs_relogin = False
    grant.refresh_token_expires_at = clock() + timedelta(minutes=30)  # ends before `late` is due
    db.session.commit()
    jobs.flag_unusable_tokens()
    assert _launch(soon).token_problem == ""
    assert _launch(late).token_problem.startswith("token unusable: log in again: the PanDA token of")


def test_launches_waiting_for_days_do_not_hold_up_the_ones_due(app, db, make_user, fake_panda, clock):
    user = make_user("manager")
    first = _bunch(user, 7)
    db.session.commit()
    dispatcher.dispatch_due(client=fake_panda)  # the task they wait for is in PanDA, running
    first.tasks[0].panda_status, first.tasks[0].jobs_done, first.tasks[0].jobs_total = "running", 1, 10
    waiting = _bunch(user, 8, plan=Schedule(after_task=first.tasks[0], at_percent=90), bunch_size=30)
    db.session.commit()
    clock.advance(minutes=5)
    due = _bunch(user, 9)  # due now, after 30 older waiting launches
    db.session.commit()
    dispatcher.dispatch_due(limit=10, client=fake_panda)
    assert fake_panda.submits == ["PROD2025-007.SIM", "PROD2025-009.SIM"]
    first.tasks[0].jobs_done = 9  # now they may go: the next cycles send them
    db.session.commit()
    for _ in range(3):
        dispatcher.dispatch_due(limit=10, client=fake_panda)
    assert {t.latest_launch.status for t in waiting.tasks} == {"submitted"} and len(fake_panda.submits) == 32
    assert _launch(due).status == "submitted"
