"""Launches through the API: a bunch or chain launched at a time or after a task, listed, rescheduled
and cancelled with the Launches page's rules (owner or admin, pending only, schedules checked)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.audit.models import AuditEvent
from app.launches import dispatcher
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.tasks import services as task_services
from tests.api.conftest import Api
from tests.tasks.conftest import sim_definition

PROBLEM = "application/problem+json"


def test_launch_lists_page_by_keyset_in_their_own_order(api, clock, fake_panda):
    manager = api()
    bunches = []
    for hours in (5, 2):  # the later bunch is due first: the upcoming list's order is not the ids'
        at = (clock() + timedelta(hours=hours)).isoformat()
        created = manager.post("/api/v1/tasks", json=sim_definition(number=30 + hours, bunch_size=3).to_dict(),
                               query_string={"at": at})  # fmt: skip
        assert created.status_code == 201, created.json
        bunches.append(created.json["id"])

    def walk(query: str) -> list[int]:
        ids, listing = [], manager.get(f"/api/v1/launches?{query}&per_page=2").json
        while True:
            ids += [entry["id"] for entry in listing["items"]]
            if listing["next_after"] is None:
                return ids
            listing = manager.get(f"/api/v1/launches?{query}&per_page=2&after={listing['next_after']}").json

    for query in ("state=upcoming", "status=pending"):  # soonest first; newest first
        whole = [entry["id"] for entry in manager.get(f"/api/v1/launches?{query}&per_page=100").json["items"]]
        assert len(whole) == 6 and walk(query) == whole
    upcoming = manager.get("/api/v1/launches?state=upcoming&per_page=100").json["items"]
    assert upcoming[0]["due_at"] < upcoming[-1]["due_at"] and whole == sorted(whole, reverse=True)


def test_schedule_list_reschedule_cancel(api, db, clock, fake_panda):
    manager = api()
    at = (clock() + timedelta(hours=3)).isoformat()
    created = manager.post(
        "/api/v1/tasks", json=sim_definition(bunch_size=2).to_dict(), query_string={"at": at}
    )
    assert created.status_code == 201, created.json
    listed = manager.get(f"/api/v1/launches?bunch_id={created.json['id']}").json["items"]
    assert [(entry["status"], entry["state"]) for entry in listed] == [("pending", "upcoming")] * 2
    assert all(
        entry["due_at"].startswith((clock() + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"))
        for entry in listed
    )
    first = listed[-1]["id"]
    later = (clock() + timedelta(hours=5)).isoformat()
    moved = manager.post(f"/api/v1/launches/{first}/reschedule", json={"at": later})
    assert moved.status_code == 200 and moved.json == {"changed": 1}
    assert db.session.get(Launch, first).due_at == clock() + timedelta(hours=5)
    past = manager.post(f"/api/v1/launches/{first}/reschedule", json={"at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422 and past.json["errors"][0]["field"] == "at"
    other = api().post(f"/api/v1/launches/{first}/cancel", json={})
    assert other.status_code == 403  # another manager's launch
    cancelled = manager.post(f"/api/v1/launches/{first}/cancel", json={"whole_bunch": True})
    assert cancelled.status_code == 200 and cancelled.json == {"changed": 2}
    again = manager.post(f"/api/v1/launches/{first}/cancel", json={})
    assert again.status_code == 409 and again.mimetype == PROBLEM
    assert manager.get("/api/v1/launches?status=cancelled").json["items"][0]["status"] == "cancelled"
    assert len(manager.get("/api/v1/launches?state=cancelled").json["items"]) == 2
    assert manager.get("/api/v1/launches?state=upcoming").json["items"] == []
    assert manager.get("/api/v1/launches?state=soon").status_code == 422
    assert fake_panda.submits == []


def test_schedules_that_cannot_work_are_refused_per_field(api, clock):
    manager = api()
    body = sim_definition().to_dict()
    past = manager.post("/api/v1/tasks?at=2020-01-01T08:00:00Z", json=body)
    assert past.status_code == 422 and {e["field"] for e in past.json["errors"]} == {"at"}
    unknown = manager.post("/api/v1/tasks?after_task=PROD1999-001.SIM", json=body)
    assert unknown.status_code == 422 and unknown.json["errors"][0]["field"] == "after_task"
    garbled = manager.post("/api/v1/tasks?at=tomorrow", json=body)
    assert garbled.status_code == 422 and "ISO 8601" in garbled.json["errors"][0]["message"]


def test_unanswered_submits_and_failed_launches_are_settled_through_the_api(client, make_token, db, fake_panda, clock):
    """The task and bunch pages' buttons as API calls: look an unanswered submit up in PanDA, adopt the
    PanDA id found by hand (PanDA confirms the name), send again one that never arrived, resend the
    failed ones; each audited, refused with a problem when there is nothing to decide."""
    user, token = make_token("manager")
    manager = Api(client, token)
    bunch = task_services.create_bunch(sim_definition(bunch_size=4), user, "k", is_admin=False)[0]
    db.session.commit()
    names = [t.name for t in bunch.tasks]
    fake_panda.script = ["unknown", "lost", "lost", "reject"]
    fake_panda.hidden = set(names)
    dispatcher.dispatch_due(client=fake_panda)
    found, adopted, missing, failed = bunch.tasks
    assert [t.latest_launch.status for t in bunch.tasks][3] == LaunchStatus.FAILED

    fake_panda.hidden = set()
    looked = manager.post(f"/api/v1/tasks/{found.id}/look-up", json={})
    assert looked.status_code == 200 and "1 found in PanDA" in looked.json["result"], looked.json
    fake_panda.tasks[555] = {"params": {"taskName": adopted.name}, "parent_tid": None}
    wrong = manager.post(f"/api/v1/tasks/{adopted.id}/adopt", json={"panda_task_id": 556})
    assert wrong.status_code == 409 and wrong.headers["Content-Type"] == PROBLEM
    right = manager.post(f"/api/v1/tasks/{adopted.id}/adopt", json={"panda_task_id": 555})
    assert right.status_code == 200 and right.json["panda_task_id"] == 555, right.json
    again = manager.post(f"/api/v1/tasks/{missing.id}/not-submitted")
    assert again.status_code == 200 and again.json["attempt"] == 2 and again.json["status"] == "pending"
    assert manager.post(f"/api/v1/tasks/{missing.id}/not-submitted").status_code == 409  # decided now
    resent = manager.post(f"/api/v1/bunches/{bunch.id}/resend")
    assert resent.status_code == 200 and resent.json == {"changed": 1}
    nothing = manager.post(f"/api/v1/bunches/{bunch.id}/look-up").json["result"]
    assert nothing == "nothing was waiting for a look-up"
    refreshed = manager.post(f"/api/v1/tasks/{found.id}/refresh")
    assert refreshed.status_code == 200 and refreshed.json["category"] in ("success", "info", "warning"), refreshed.json
    assert manager.post(f"/api/v1/chains/{10**6}/steps/1/resend").status_code == 404
    actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.username == user.username)))
    assert {"task.look_up", "task.adopt", "task.mark_not_submitted", "task.resend"} <= actions
