"""The dispatcher's exactly-once rules with the scripted fake PanDA (unit level): unanswered submits
looked up in bulk and resent only on positive evidence of absence, launches PanDA could not be reached
for going again by themselves, and a manager settling unanswered submits at once from the pages."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app import clock as app_clock
from app.audit.models import AuditEvent
from app.launches import dispatcher
from app.launches import services as launches
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.panda.errors import PandaUnavailable
from app.tasks import services
from app.tasks.models import TaskBunch
from tests.conftest import FrozenClock
from tests.tasks.conftest import post, sim_definition

S = LaunchStatus
NAMES = [f"PROD2025-008.SIM.{i}" for i in range(1, 6)]


class TickingClock(FrozenClock):
    """A frozen clock that moves 1 ms at every reading: each claim and reply has a moment of its own."""

    def __call__(self):
        self.current += timedelta(milliseconds=1)
        return self.current


@pytest.fixture
def clock():
    ticking = TickingClock(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    app_clock.set_source(ticking)
    yield ticking
    app_clock.set_source(None)


def waits(launch: Launch, clock) -> float:
    """Seconds until the launch is due again."""
    return round((launch.due_at - clock.current).total_seconds())


def bunch_of(make_user, db, size: int = 5) -> TaskBunch:
    bunch, *_ = services.create_bunch(
        sim_definition(bunch_size=size), make_user("manager"), "k", is_admin=False
    )
    db.session.commit()
    return bunch


def in_panda(fake, name: str) -> list[int]:
    return [tid for tid, t in fake.tasks.items() if t["params"]["taskName"] == name]


def test_an_unanswered_submit_is_resent_once_a_later_task_is_visible(app, db, make_user, fake_panda, clock):
    bunch = bunch_of(make_user, db, 3)
    fake_panda.script = ["lost", "ok", "ok"]  # .1 never arrived; .2 and .3 were sent after it
    fake_panda.hidden = {NAMES[1], NAMES[2]}  # … and JEDI has not registered them yet
    clock.advance(seconds=1)
    dispatcher.dispatch_due(client=fake_panda)
    first = bunch.tasks[0].latest_launch
    assert first.status == S.UNKNOWN and "not in PanDA yet (PROD2025-008.SIM.2, sent after it" in first.error
    # Absence alone proves nothing, however long it lasts, as long as nothing later is visible.
    clock.advance(hours=1)
    dispatcher.dispatch_due(client=fake_panda)
    assert first.status == S.NEEDS_DECISION and "no task sent after it is visible yet" in first.error
    assert fake_panda.submits.count(NAMES[0]) == 1
    # A manager looks it up once JEDI has registered the later tasks: .1 is proven absent, sent again.
    fake_panda.hidden = set()
    assert launches.look_up_now([first], first.created_by) == (
        "1 proven not in PanDA (a task sent later is there) and sent again"
    )
    db.session.commit()
    assert first.status == S.FAILED and f"not in PanDA: {NAMES[1]}, sent after it" in first.error
    dispatcher.dispatch_due(client=fake_panda)
    retry = bunch.tasks[0].latest_launch
    assert retry.attempt == 2 and retry.status == S.SUBMITTED and retry.confirmed_absent_by
    assert [len(in_panda(fake_panda, name)) for name in NAMES[:3]] == [1, 1, 1]


def test_the_background_pass_resends_on_evidence_without_a_manager(app, db, make_user, fake_panda, clock):
    bunch = bunch_of(make_user, db, 2)
    fake_panda.script = ["lost", "ok"]
    clock.advance(seconds=1)
    dispatcher.dispatch_due(client=fake_panda)  # .2 is visible at once: .1 is proven absent
    dispatcher.dispatch_due(client=fake_panda)  # … and its next attempt goes out
    assert [t.latest_launch.status for t in bunch.tasks] == [S.SUBMITTED, S.SUBMITTED]
    assert bunch.tasks[0].latest_launch.attempt == 2
    assert fake_panda.submits == [NAMES[0], NAMES[1], NAMES[0]]
    assert len(in_panda(fake_panda, NAMES[0])) == 1
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "launch.resend_absent"))
    assert event.target == NAMES[0] and event.details["evidence"] == NAMES[1]


def test_a_task_sent_while_the_unknown_one_was_in_flight_is_no_evidence(
    app, db, make_user, fake_panda, clock
):
    """Only a task whose submit started after the unanswered one ended shows where JEDI's refiner is."""
    bunch = bunch_of(make_user, db, 2)
    fake_panda.script = ["ok", "lost"]  # .2's request (sent in parallel) ended after .1 was claimed
    dispatcher.send_all([t.launches[0].id for t in bunch.tasks], fake_panda)
    first, second = (t.latest_launch for t in bunch.tasks)
    second.claimed_at = first.claimed_at - timedelta(seconds=1)
    db.session.commit()
    dispatcher.dispatch_due(client=fake_panda)
    assert second.status == S.UNKNOWN and "no task sent after it is visible yet" in second.error


def test_look_ups_are_batched_and_logged_as_background_calls(app, db, make_user, fake_panda, clock):
    bunch = bunch_of(make_user, db, 5)
    fake_panda.script = ["unknown", "lost", "unknown", "lost", "unknown"]
    fake_panda.hidden = set(NAMES)
    dispatcher.dispatch_due(client=fake_panda)
    assert fake_panda.listings == [dispatcher.BACKGROUND]  # one listing for the five unanswered rows
    fake_panda.hidden = set()
    clock.advance(seconds=30)
    dispatcher.dispatch_due(client=fake_panda)
    assert fake_panda.listings == [dispatcher.BACKGROUND] * 2
    statuses = [t.latest_launch.status for t in bunch.tasks]
    assert statuses == [S.SUBMITTED, S.UNKNOWN, S.SUBMITTED, S.UNKNOWN, S.SUBMITTED]  # nothing later: wait
    assert all(len(in_panda(fake_panda, name)) == 1 for name in NAMES[::2])


def test_a_listing_cut_at_its_limit_proves_no_absence(app, db, make_user, fake_panda, clock):
    """PanDA cuts a listing at n_tasks: a name missing from a cut listing may still be in PanDA."""
    for i in range(10):  # older tasks of the same owner fill the listing
        fake_panda.tasks[10 + i] = {"params": {"taskName": f"older.{i}"}, "parent_tid": None}
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(
        settings, sync=dataclasses.replace(settings.sync, max_tasks_per_call=10)
    )
    bunch = bunch_of(make_user, db, 3)
    fake_panda.script = ["lost", "ok", "ok"]
    dispatcher.dispatch_due(client=fake_panda)
    assert bunch.tasks[0].latest_launch.status == S.UNKNOWN  # .2 and .3 are in PanDA, beyond the cut
    app.config["SETTINGS"] = settings
    dispatcher.dispatch_due(client=fake_panda)
    dispatcher.dispatch_due(client=fake_panda)
    assert bunch.tasks[0].latest_launch.attempt == 2 and bunch.tasks[0].latest_launch.status == S.SUBMITTED


def test_unreachable_panda_launches_go_again_by_themselves_with_backoff(
    app, db, make_user, fake_panda, clock
):
    bunch = bunch_of(make_user, db, 1)
    fake_panda.script = ["unavailable", "unavailable", "ok"]
    launch = bunch.tasks[0].latest_launch
    dispatcher.dispatch_due(client=fake_panda)
    assert launch.status == S.PENDING and waits(launch, clock) == 10
    assert "Nothing was sent; the panel tries again by itself at" in launch.error
    assert dispatcher.dispatch_due(client=fake_panda) == 0  # not due yet
    clock.advance(seconds=10)
    dispatcher.dispatch_due(client=fake_panda)
    assert launch.status == S.PENDING and waits(launch, clock) == 20  # doubled
    clock.advance(seconds=20)
    dispatcher.dispatch_due(client=fake_panda)
    assert launch.status == S.SUBMITTED and launch.attempt == 1 and len(fake_panda.submits) == 3


def test_the_unreachable_reason_is_a_sentence(app, db, make_user, fake_panda):
    bunch = bunch_of(make_user, db, 1)

    def refused(*args, **kwargs):
        raise PandaUnavailable("PanDA at http://panda:25443 cannot be reached: it refused the connection.")

    fake_panda.submit = refused
    dispatcher.dispatch_due(client=fake_panda)
    error = bunch.tasks[0].latest_launch.error
    assert error.startswith("PanDA at http://panda:25443 cannot be reached: it refused the connection.")
    assert "HTTPConnectionPool" not in error


def test_a_crash_left_row_is_looked_up_then_resent_only_on_evidence(app, db, make_user, fake_panda, clock):
    bunch = bunch_of(make_user, db, 2)
    first = bunch.tasks[0].launches[0]
    assert dispatcher.claim(first.id, clock())  # claimed, then the panel died before sending
    clock.advance(minutes=5)
    dispatcher.dispatch_due(client=fake_panda)  # .2 goes out; .1 becomes unknown (looked up, not resent)
    assert first.status == S.UNKNOWN and fake_panda.submits == [NAMES[1]]
    clock.advance(seconds=5)
    dispatcher.dispatch_due(client=fake_panda)  # .2 was claimed before .1 was found stale: no evidence
    assert first.status == S.UNKNOWN
    bunch2 = services.create_bunch(sim_definition(number=9), first.created_by, "k2", is_admin=False)[0]
    db.session.commit()
    clock.advance(seconds=5)
    dispatcher.dispatch_due(client=fake_panda)  # a later task of the same owner is visible: evidence
    dispatcher.dispatch_due(client=fake_panda)
    assert bunch.tasks[0].latest_launch.status == S.SUBMITTED and bunch2.tasks[0].panda_task_id
    assert fake_panda.submits == [NAMES[1], "PROD2025-009.SIM", NAMES[0]]


@pytest.mark.parametrize("where", ["task", "bunch"])
def test_a_manager_settles_unanswered_submits_from_the_pages(
    where, app, db, client, login_as, fake_panda, clock
):
    manager = login_as("manager")
    bunch = services.create_bunch(sim_definition(bunch_size=3), manager, "k", is_admin=False)[0]
    db.session.commit()
    fake_panda.script = ["lost", "unknown", "lost"]
    fake_panda.hidden = {NAMES[1]}
    dispatcher.dispatch_due(client=fake_panda)
    page = client.get(f"/tasks/bunch/{bunch.id}").get_data(as_text=True)
    assert 'id="unanswered"' in page and "Submits PanDA never answered (3)" in page
    fake_panda.hidden = set()
    first, second, third = bunch.tasks
    if where == "task":
        assert 'id="look-up"' in client.get(f"/tasks/{second.id}").get_data(as_text=True)
        response = post(client, f"/tasks/{second.id}/look-up", {})
        assert response.headers["Location"].endswith(f"/tasks/{second.id}")
        assert [first.latest_launch.status, second.latest_launch.status] == [S.UNKNOWN, S.SUBMITTED]
    else:
        response = post(client, f"/tasks/bunch/{bunch.id}/look-up", {}, follow_redirects=True)
        assert "Looked up: 1 found in PanDA and adopted; 2 not visible in PanDA yet." in response.get_data(
            as_text=True
        )
    assert fake_panda.listings[-1] == f"look-up asked by {manager.username}"
    # Adopt and "not in PanDA: send again" from the bunch page come back to it.
    fake_panda.tasks[555] = {"params": {"taskName": NAMES[0]}, "parent_tid": None}
    response = post(client, f"/tasks/{first.id}/adopt", {"panda_task_id": "555", "back": "bunch"})
    assert response.headers["Location"].endswith(f"/tasks/bunch/{bunch.id}#unanswered")
    response = post(client, f"/tasks/{third.id}/mark-not-submitted", {"back": "bunch"})
    assert response.headers["Location"].endswith(f"/tasks/bunch/{bunch.id}#unanswered")
    assert first.panda_task_id == 555 and third.latest_launch.attempt == 2
    actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"task.look_up", "task.adopt", "task.mark_not_submitted"} <= actions


def test_look_up_now_needs_csrf(app, db, client, login_as, fake_panda):
    bunch = services.create_bunch(sim_definition(), login_as("manager"), "k", is_admin=False)[0]
    db.session.commit()
    assert client.post(f"/tasks/{bunch.tasks[0].id}/look-up").status_code == 400
    assert client.post(f"/tasks/bunch/{bunch.id}/look-up").status_code == 400
    assert fake_panda.listings == []


def test_look_up_now_needs_a_manager(app, db, client, login_as, make_user, fake_panda):
    bunch = services.create_bunch(sim_definition(), make_user("manager"), "k", is_admin=False)[0]
    db.session.commit()
    login_as("viewer")
    assert post(client, f"/tasks/{bunch.tasks[0].id}/look-up", {}).status_code == 403
    assert post(client, f"/tasks/bunch/{bunch.id}/look-up", {}).status_code == 403
    assert fake_panda.listings == []
