"""The Launches page and the schedule fields of the task form over the Flask test client (PanDA is
the scripted fake): scheduling in the user's time zone, field messages, filters and paging, and
cancel / reschedule / launch now with their role checks, CSRF and audit entries."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import g
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.launches import schedule
from app.launches.models import Launch
from app.tasks import services
from app.tasks.models import TaskBunch
from tests.helpers import csrf_token, settle_launches
from tests.launches.test_schedule import _bunch
from tests.tasks.conftest import form_data, post, sim_definition


def _post(client, url, data=None, **kwargs):
    g.pop("csrf_token", None)
    return client.post(url, data={"csrf_token": csrf_token(client, "/launches/"), **(data or {})}, **kwargs)


def test_a_bunch_scheduled_in_the_users_time_zone_is_stored_in_utc(client, login_as, db, fake_panda, clock):
    user = login_as("manager")
    html = client.get("/tasks/new").get_data(as_text=True)
    assert 'name="launch_when"' in html and "data-browser-zone" in html  # no zone chosen yet: the browser's
    data = {**form_data(sim_definition(bunch_size=2), key="k1"), "launch_when": "at",
            "launch_at": "2026-01-16T09:30", "time_zone": "Europe/Moscow"}  # fmt: skip
    response = post(client, "/tasks/create", data)
    assert response.status_code == 302
    bunch = db.session.scalar(select(TaskBunch))
    assert [t.latest_launch.due_at.isoformat() for t in bunch.tasks] == ["2026-01-16T06:30:00+00:00"] * 2
    assert user.time_zone == "Europe/Moscow"  # remembered
    assert fake_panda.submits == []
    page = client.get("/launches/?state=upcoming").get_data(as_text=True)
    assert page.count("2026-01-16 09:30 MSK") == 2  # shown in the user's zone
    assert "data-browser-zone" not in client.get("/tasks/new").get_data(as_text=True)


def test_schedule_fields_get_their_messages(client, login_as, db, fake_panda, clock):
    login_as("manager")
    cases = [
        ({"launch_when": "at", "launch_at": "2026-01-14T09:30", "time_zone": "UTC"}, "is in the past"),
        ({"launch_when": "at", "launch_at": "", "time_zone": "UTC"}, "enter the date and time of the launch"),
        ({"launch_when": "done", "after_task": "PROD1999-001.SIM"}, "no task named &#39;PROD1999-001.SIM&#39;"),
        ({"launch_when": "percent", "after_task": ""}, "name the task to wait for"),
    ]
    for i, (fields, message) in enumerate(cases):
        response = post(client, "/tasks/create", {**form_data(sim_definition(), key=f"k{i}"), **fields})
        assert response.status_code == 400, fields
        assert re.search(r'class="invalid-feedback[^"]*">[^<]*' + re.escape(message), response.get_data(as_text=True)), message
    assert db.session.scalar(select(TaskBunch)) is None


def test_a_dependent_bunch_from_the_form(client, login_as, db, fake_panda, clock):
    user = login_as("manager")
    first = _bunch(user, 7)
    db.session.commit()
    data = {**form_data(sim_definition(), key="k"), "launch_when": "percent", "after_task": first.tasks[0].name,
            "at_percent": "30"}  # fmt: skip
    assert post(client, "/tasks/create", data).status_code == 302
    launch = db.session.scalars(select(Launch).order_by(Launch.id.desc())).first()
    assert launch.after_task_id == first.tasks[0].id and launch.at_percent == 30
    page = client.get("/launches/").get_data(as_text=True)
    assert "when task PROD2025-007.SIM has 30 % of its jobs done" in page


def test_the_launches_page_filters_and_pages(client, login_as, make_user, db, clock):
    me = login_as("manager")
    other = make_user("manager")
    _bunch(me, 7, plan=schedule.Schedule(at=clock() + timedelta(hours=1)), bunch_size=60)
    theirs = _bunch(other, 8)
    db.session.commit()
    schedule.cancel([theirs.tasks[0].latest_launch], other)
    db.session.commit()
    page1 = client.get("/launches/?state=upcoming").get_data(as_text=True)
    assert page1.count('data-state="upcoming"') == 50 and "61 in all" not in page1 and "60 in all" in page1
    assert len(re.findall(r'id="state-upcoming">upcoming <span class="badge text-bg-secondary">60<', page1)) == 1
    page2 = client.get(re.search(r'rel="next" href="([^"]*)"', page1)[1].replace("&amp;", "&")).get_data(as_text=True)
    assert page2.count('data-state="upcoming"') == 10
    cancelled = client.get("/launches/?state=cancelled").get_data(as_text=True)
    assert cancelled.count('data-state="cancelled"') == 1 and f"cancelled by {other.username}" in cancelled
    assert 'id="cancel-' not in cancelled  # nothing to do with a cancelled launch
    mine = client.get(f"/launches/?owner={other.username}").get_data(as_text=True)
    assert mine.count("<tr id=\"launch-") == 1
    wrong = client.get("/launches/?state=lost").get_data(as_text=True)
    assert "State: one of upcoming, running, done, failed, cancelled" in wrong


def test_the_state_tabs_count_each_state_up_to_the_cap_and_follow_the_moves(
    client, login_as, make_user, db, fake_panda, clock, monkeypatch
):
    from app import extensions

    monkeypatch.setattr(extensions, "COUNT_CAP", 3)
    me = login_as("manager")
    other = make_user("manager")
    later = schedule.Schedule(at=clock() + timedelta(hours=1))
    mine = _bunch(me, 7, plan=later, bunch_size=5)
    _bunch(other, 8, plan=later, bunch_size=2)
    db.session.commit()

    def tabs(query: str = "") -> dict[str, str]:
        html = client.get(f"/launches/{query}").get_data(as_text=True)
        return dict(re.findall(r'id="state-(\w+)">\w+ <span class="badge text-bg-secondary">([^<]*)<', html))

    assert tabs() == {"upcoming": "3+", "running": "0", "done": "0", "failed": "0", "cancelled": "0"}
    assert tabs(f"?owner={other.username}")["upcoming"] == "2"
    schedule.cancel([t.latest_launch for t in mine.tasks[:4]], me)  # 4 pending -> cancelled
    db.session.commit()
    assert tabs()["upcoming"] == "3" and tabs()["cancelled"] == "3+"
    assert tabs(f"?owner={me.username}") == {"upcoming": "1", "running": "0", "done": "0", "failed": "0",
                                             "cancelled": "3+"}  # fmt: skip
    schedule.reschedule([mine.tasks[4].latest_launch], schedule.NOW, me)
    db.session.commit()
    assert settle_launches()  # sent to the fake PanDA: submitted
    assert tabs(f"?owner={me.username}") == {"upcoming": "0", "running": "0", "done": "1", "failed": "0",
                                             "cancelled": "3+"}  # fmt: skip
    assert tabs("?owner=nobody") == dict.fromkeys(("upcoming", "running", "done", "failed", "cancelled"), "0")


def test_cancel_reschedule_and_launch_now_with_role_checks(client, login_as, make_user, db, fake_panda, clock):
    owner = make_user("manager")
    bunch = _bunch(owner, plan=schedule.Schedule(at=clock() + timedelta(hours=2)), bunch_size=3)
    db.session.commit()
    first, second, third = (t.latest_launch for t in bunch.tasks)
    # Another manager sees the launches but may not change them; a viewer may not either.
    login_as("manager")
    page = client.get("/launches/").get_data(as_text=True)
    assert f'id="launch-{first.id}"' in page and f'id="cancel-{first.id}"' not in page
    assert _post(client, f"/launches/{first.id}/cancel").status_code == 403
    assert client.get(f"/launches/{first.id}/reschedule").status_code == 403
    denied = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "access.denied")).all()
    assert denied and "only its owner or an admin" in denied[-1].details["reason"]
    client.post("/logout", data={"csrf_token": csrf_token(client, "/launches/")})
    login_as("viewer")
    assert _post(client, f"/launches/{first.id}/cancel").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/launches/")})
    # The owner: CSRF is required; cancel one, reschedule the bunch, launch one now.
    from tests.helpers import post_form

    post_form(client, "/login", {"username": owner.username, "password": "correct-horse-battery"})
    assert client.post(f"/launches/{first.id}/cancel", data={}).status_code == 400
    response = _post(client, f"/launches/{first.id}/cancel", {"next": "/launches/?state=upcoming"})
    assert response.status_code == 302 and response.headers["Location"] == "/launches/?state=upcoming"
    db.session.expire_all()
    assert first.status == "cancelled"
    form = client.get(f"/launches/{second.id}/reschedule").get_data(as_text=True)
    assert 'value="2026-01-15T14:00"' in form  # its time, in the zone offered (UTC: none chosen yet)
    data = {"launch_when": "at", "launch_at": "2026-01-15T23:30", "time_zone": "Asia/Tokyo", "whole_bunch": "y"}
    assert _post(client, f"/launches/{second.id}/reschedule", data).status_code == 302
    db.session.expire_all()
    assert second.due_at.isoformat() == third.due_at.isoformat() == "2026-01-15T14:30:00+00:00"
    assert first.status == "cancelled"  # a cancelled launch is not brought back by the bunch's reschedule
    past = {**data, "launch_at": "2026-01-15T08:00"}
    refused = _post(client, f"/launches/{second.id}/reschedule", past)
    assert refused.status_code == 400 and "is in the past" in refused.get_data(as_text=True)
    assert _post(client, f"/launches/{third.id}/now").status_code == 302
    db.session.expire_all()
    assert third.due_at == clock() and second.due_at.minute == 30
    actions = [e.action for e in db.session.scalars(select(AuditEvent).where(AuditEvent.action.like("launch.%")))]
    assert actions == ["launch.cancel", "launch.reschedule", "launch.reschedule"]
    # An admin may change anyone's launch.
    client.post("/logout", data={"csrf_token": csrf_token(client, "/launches/")})
    login_as("admin")
    assert _post(client, f"/launches/{second.id}/cancel").status_code == 302
    db.session.expire_all()
    assert second.status == "cancelled"
    assert settle_launches(30)
    assert fake_panda.submits == [third.task.name]  # launched now, once; the others never
    assert services.bunch_progress(bunch).submitted == 1


def test_a_chain_scheduled_for_later(client, login_as, db, fake_panda, clock):
    from app.chains.models import Chain
    from tests.chains.conftest import chain_definition, chain_form_data

    login_as("manager")
    data = {**chain_form_data(chain_definition(bunch_size=2), key="c1"), "launch_when": "at",
            "launch_at": "2026-01-15T18:00", "time_zone": "UTC"}  # fmt: skip
    assert post(client, "/chains/create", data).status_code == 302
    chain = db.session.scalar(select(Chain))
    due = {t.latest_launch.due_at.isoformat() for step in chain.steps for t in step.bunch.tasks}
    assert due == {"2026-01-15T18:00:00+00:00"}  # every step; later steps also wait for their parents
    assert settle_launches(30) and fake_panda.submits == []
    past = {**chain_form_data(chain_definition(9), key="c2"), "launch_when": "at", "launch_at": "2026-01-15T06:00",
            "time_zone": "UTC"}  # fmt: skip
    refused = post(client, "/chains/create", past)
    assert refused.status_code == 400 and "is in the past" in refused.get_data(as_text=True)


def test_preview_checks_the_schedule_as_create_does(client, login_as, db, fake_panda, clock):
    """Preview refuses what Create would refuse (a past time, a parent that will never be done), on the
    schedule's fields, for a bunch and for a chain; a schedule that can work is previewed."""
    from tests.chains.conftest import chain_definition, chain_form_data

    user = login_as("manager")
    past = {"launch_when": "at", "launch_at": "2026-01-14T09:30", "time_zone": "UTC"}
    refused = post(client, "/tasks/preview", {**form_data(sim_definition(), key="k1"), **past})
    assert refused.status_code == 400
    assert re.search(r'class="invalid-feedback[^"]*">[^<]*is in the past', refused.get_data(as_text=True))
    first = _bunch(user, 7)
    first.tasks[0].panda_task_id, first.tasks[0].panda_status = 4242, "failed"
    db.session.commit()
    after_failed = {"launch_when": "done", "after_task": first.tasks[0].name}
    refused = post(client, "/tasks/preview", {**form_data(sim_definition(8), key="k2"), **after_failed})
    assert refused.status_code == 400 and "it will never be done" in refused.get_data(as_text=True)
    later = {"launch_when": "at", "launch_at": "2026-01-16T09:30", "time_zone": "UTC"}
    assert post(client, "/tasks/preview", {**form_data(sim_definition(8), key="k3"), **later}).status_code == 200

    chain = chain_form_data(chain_definition(9), key="c1")
    refused = post(client, "/chains/preview", {**chain, **past})
    assert refused.status_code == 400 and "is in the past" in refused.get_data(as_text=True)
    assert post(client, "/chains/preview", {**chain, **later}).status_code == 200
    assert db.session.scalar(select(TaskBunch).where(TaskBunch.id != first.id)) is None  # a preview saves nothing


def test_preview_warns_when_the_owners_token_will_not_last(iam_app, client, login_as, db, clock):
    """A launch scheduled after the owner's grant ends is refused by Preview, not only by Create."""
    from tests.launches.conftest import give_grant

    user = login_as("manager")
    give_grant(db, user, timedelta(hours=2), clock)
    late = {"launch_when": "at", "launch_at": "2026-01-15T17:00", "time_zone": "UTC"}
    refused = post(client, "/tasks/preview", {**form_data(sim_definition(), key="k1"), **late})
    assert refused.status_code == 400 and "can be renewed only until" in refused.get_data(as_text=True)
    soon = {**late, "launch_at": "2026-01-15T13:00"}
    assert post(client, "/tasks/preview", {**form_data(sim_definition(), key="k2"), **soon}).status_code == 200
