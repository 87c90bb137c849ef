"""Tasks through the API: list with the task list's filters and pages, get, preview, create and launch
(idempotent), clone, actions and bulk actions, with the UI's validation messages field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.actions.models import BulkItem, Outcome, TaskCommand
from app.tasks.models import Task, TaskBunch
from tests.actions.conftest import new_task
from tests.helpers import settle_launches
from tests.tasks.conftest import sim_definition

PROBLEM = "application/problem+json"


def definition(number: int = 8, **changes) -> dict:
    return sim_definition(number, **changes).to_dict()


def errors_of(response) -> dict[str, str]:
    assert response.mimetype == PROBLEM, response.get_data(as_text=True)[:300]
    return {e["field"]: e["message"] for e in response.json["errors"]}


def test_preview_shows_each_tasks_parameters(api):
    response = api().post("/api/v1/tasks/preview", json=definition(bunch_size=2))
    assert response.status_code == 200, response.json
    names = [t["name"] for t in response.json["tasks"]]
    assert names == ["PROD2025-008.SIM.1", "PROD2025-008.SIM.2"]
    assert response.json["tasks"][0]["params"]["taskName"] == "PROD2025-008.SIM.1"
    assert "-  " not in response.json["tasks"][0]["diff"] or response.json["tasks"][0]["diff_against"] is None


def test_invalid_definitions_name_their_fields(api):
    manager = api()
    form_level = manager.post(
        "/api/v1/tasks/preview", json={**definition(), "task_name": "", "bunch_size": "many"}
    )
    assert form_level.status_code == 422
    assert set(errors_of(form_level)) >= {"task_name", "bunch_size"}
    service_level = manager.post("/api/v1/tasks/preview", json=definition(exec_path="/tmp/elsewhere"))
    assert service_level.status_code == 422 and "exec_path" in errors_of(service_level)
    unknown = manager.post("/api/v1/tasks/preview", json={**definition(), "colour": "red"})
    assert errors_of(unknown) == {"colour": "unknown field"}
    not_json = manager.post("/api/v1/tasks/preview", data="x", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 422 and "body" in errors_of(not_json)
    overrides = manager.post("/api/v1/tasks/preview", json={**definition(), "template_overrides": [1]})
    assert overrides.status_code in (403, 422)  # admin-only field: refused before its type is looked at


def test_create_launches_once_per_key(api, fake_panda, db):
    manager = api()
    body = {**definition(bunch_size=2), "idempotency_key": "k1"}
    created = manager.post("/api/v1/tasks", json=body)
    assert created.status_code == 201, created.json
    assert created.headers["Location"].endswith(f"/api/v1/bunches/{created.json['id']}")
    assert settle_launches(60)
    assert sorted(fake_panda.submits) == ["PROD2025-008.SIM.1", "PROD2025-008.SIM.2"]
    again = manager.post("/api/v1/tasks", json=body)
    assert again.status_code == 200 and again.json["id"] == created.json["id"]
    changed = manager.post("/api/v1/tasks", json={**body, "total_events": 20000})
    assert changed.status_code == 409 and changed.mimetype == PROBLEM
    bunch = manager.get(f"/api/v1/bunches/{created.json['id']}").json
    assert bunch["progress"]["submitted"] == 2 and len(bunch["tasks"]) == 2 and bunch["next_after"] is None
    start = manager.get(f"/api/v1/bunches/{created.json['id']}?after=0").json  # paged by position
    assert [t["name"] for t in start["tasks"]] == ["PROD2025-008.SIM.1", "PROD2025-008.SIM.2"]
    rest = manager.get(f"/api/v1/bunches/{created.json['id']}?after=1").json
    assert [t["name"] for t in rest["tasks"]] == ["PROD2025-008.SIM.2"] and rest["progress"]["submitted"] == 2
    assert manager.get(f"/api/v1/bunches/{created.json['id']}?after=x").status_code == 422
    taken = manager.post("/api/v1/tasks", json=definition())  # same names, another key
    assert taken.status_code == 422 and "task_name" in errors_of(taken)
    assert db.session.query(TaskBunch).count() == 1


def test_list_filters_and_pages_like_the_task_list(api, make_user, db):
    owner = make_user("manager")
    first, second, third = (new_task(owner, "running") for _ in range(3))
    manager = api()
    listed = manager.get("/api/v1/tasks?per_page=2")
    assert [t["id"] for t in listed.json["items"]] == [third.id, second.id]
    assert listed.json["next_page"] == 2
    rest = manager.get("/api/v1/tasks?per_page=2&page=2").json
    assert [t["id"] for t in rest["items"]] == [first.id] and rest["next_page"] is None
    named = manager.get(f"/api/v1/tasks?q={second.name}").json["items"]
    assert [t["id"] for t in named] == [second.id]
    assert manager.get("/api/v1/tasks?sort=name&order=asc").json["items"][0]["id"] == first.id
    assert manager.get("/api/v1/tasks?per_page=0").status_code == 422
    detail = manager.get(f"/api/v1/tasks/{first.id}").json
    assert detail["params"]["taskName"] == first.name and detail["launches"][0]["status"] == "pending"
    missing = manager.get("/api/v1/tasks/999999")
    assert missing.status_code == 404 and missing.mimetype == PROBLEM


def test_clone_then_create(api, make_user, fake_panda, db):
    source = new_task(make_user("manager"))
    manager = api()
    cloned = manager.get(f"/api/v1/tasks/{source.id}/clone").json
    assert cloned["cloned_from_task"] == source.id and cloned["task_name"] != source.bunch.base_name
    created = manager.post("/api/v1/tasks", json=cloned)
    assert created.status_code == 201, created.json
    task = db.session.scalar(select(Task).where(Task.bunch_id == created.json["id"]))
    assert task.cloned_from_id == source.id
    assert (
        manager.get(f"/api/v1/bunches/{source.bunch_id}/clone").json["cloned_from_bunch"] == source.bunch_id
    )


def test_actions_follow_the_matrix(api, make_user, fake_panda, db):
    running = new_task(make_user("manager"), "running")
    done = new_task(make_user("manager"), "done")
    manager = api()
    no_comment = manager.post(f"/api/v1/tasks/{running.id}/actions/kill", json={})
    assert no_comment.status_code == 422 and "comment" in errors_of(no_comment)
    killed = manager.post(f"/api/v1/tasks/{running.id}/actions/kill", json={"comment": "wrong energy"})
    assert killed.status_code == 200 and killed.json["outcome"] == "accepted"
    assert fake_panda.commands[-1][0:2] == ("kill", running.panda_task_id)
    refused = manager.post(f"/api/v1/tasks/{done.id}/actions/kill", json={"comment": "x"})
    assert refused.status_code == 409 and "done" in refused.json["detail"]
    by_role = manager.post(f"/api/v1/tasks/{running.id}/actions/priority", json={"priority": 5})
    assert by_role.status_code == 403 and "admin" in by_role.json["detail"]
    bad_value = api("admin").post(f"/api/v1/tasks/{running.id}/actions/priority", json={"priority": -3})
    assert bad_value.status_code == 422 and "priority" in errors_of(bad_value)
    assert manager.post(f"/api/v1/tasks/{running.id}/actions/explode", json={}).status_code == 404
    viewer = api("viewer").post(f"/api/v1/tasks/{running.id}/actions/pause", json={})
    assert viewer.status_code == 403
    command = db.session.scalar(select(TaskCommand).where(TaskCommand.action == "kill"))
    assert command.comment == "wrong energy"


def test_bulk_action_is_filtered_by_the_matrix(api, make_user, db):
    owner = make_user("manager")
    running, done = new_task(owner, "running"), new_task(owner, "done")
    manager = api()
    started = manager.post("/api/v1/actions/bulk", json={"action": "kill", "task_ids": [running.id, done.id],
                                                          "comment": "bad container"})  # fmt: skip
    assert started.status_code == 202, started.json
    progress = manager.get(started.headers["Location"]).json
    outcomes = {i["task_id"]: i["outcome"] for i in progress["items"]}
    assert outcomes == {running.id: "pending", done.id: "not_allowed"}
    nothing = manager.post("/api/v1/actions/bulk", json={"action": "kill", "comment": "x"})
    assert nothing.status_code == 422 and "selection" in errors_of(nothing)
    by_filter = manager.post(
        "/api/v1/actions/bulk", json={"action": "pause", "filter": {"q": running.name}, "comment": "hold"}
    )
    assert by_filter.status_code == 202 and by_filter.json["counts"] == {"pending": 1}
    assert manager.post(f"/api/v1/actions/bulk/{started.json['id']}/retry").status_code == 409  # none failed
    item = db.session.scalar(select(BulkItem).where(BulkItem.bulk_id == started.json["id"], BulkItem.task_id == running.id))
    item.outcome = Outcome.FAILED  # PanDA could not be reached for it
    db.session.commit()
    retried = manager.post(f"/api/v1/actions/bulk/{started.json['id']}/retry")
    assert retried.status_code == 202, retried.json
    assert (retried.json["action"], retried.json["comment"], retried.json["counts"]) == ("kill", "bad container", {"pending": 1})


def test_session_client_can_call_like_the_browser(client, login_as):
    login_as("viewer")
    assert client.get("/api/v1/tasks").status_code == 200


def test_modify_previews_then_sends_each_change(api, make_user, fake_panda, db):
    running = new_task(make_user("manager"), "running")
    manager = api()
    preview = manager.post(f"/api/v1/tasks/{running.id}/modify", json={"memory_mb": 4000, "preview": True})
    assert preview.status_code == 200 and [c["field"] for c in preview.json["changes"]] == ["memory_mb"]
    assert not fake_panda.commands  # nothing sent for a preview
    sent = manager.post(f"/api/v1/tasks/{running.id}/modify", json={"memory_mb": 4000, "comment": "OOM"})
    assert sent.status_code == 200 and sent.json["commands"][0]["outcome"] == "accepted"
    assert fake_panda.commands
    nothing = manager.post(f"/api/v1/tasks/{running.id}/modify", json={})
    assert nothing.status_code == 422 and "form" in errors_of(nothing)
    assert manager.post(f"/api/v1/tasks/{running.id}/actions/modify", json={}).status_code == 404


def test_ids_beyond_the_database_are_refused_not_crashed(api):
    manager = api()
    huge = 2**70
    bulk = manager.post("/api/v1/actions/bulk", json={"action": "kill", "task_ids": [huge], "comment": "x"})
    assert bulk.status_code == 422 and bulk.json["errors"][0]["field"] == "task_ids"
    target = manager.post("/api/v1/actions/bulk", json={"action": "kill", "bunch_id": huge, "comment": "x"})
    assert target.status_code == 422 and target.json["errors"][0]["field"] == "bunch_id"
    assert manager.get(f"/api/v1/tasks/{huge}").status_code == 404
    after = manager.post("/api/v1/tasks", json=definition(), query_string={"after_task": str(huge)})
    assert after.status_code == 422 and after.json["errors"][0]["field"] == "after_task"


def test_edit_a_scheduled_bunch_then_relaunch_from_the_manifest(api, fake_panda, db):
    """The bunch page's edit (a bunch none of whose launches went out: preview, then saved, its size
    kept) and the task page's relaunch from what was sent to PanDA (once it was sent)."""
    manager = api()
    at = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = manager.post(f"/api/v1/tasks?at={at}", json=definition(bunch_size=2))
    assert later.status_code == 201, later.json
    edit = f"/api/v1/bunches/{later.json['id']}/edit"
    preview = manager.post(edit, json={**definition(bunch_size=2, total_events=40000), "preview": True})
    assert preview.status_code == 200 and len(preview.json["tasks"]) == 2 and preview.json["changed"] == []
    assert "40000" in preview.json["tasks"][0]["diff"], preview.json
    resized = manager.post(edit, json=definition(bunch_size=3))
    assert resized.status_code == 422 and "bunch_size" in errors_of(resized)
    saved = manager.post(edit, json=definition(bunch_size=2, total_events=40000))
    assert saved.status_code == 200 and saved.json["changed"] == ["total_events"], saved.json
    assert db.session.get(TaskBunch, later.json["id"]).definition["total_events"] == 40000

    now = manager.post("/api/v1/tasks", json=definition(number=9))
    assert now.status_code == 201 and settle_launches(60)
    task_id = now.json["task_ids"][0]
    assert manager.post(f"/api/v1/bunches/{now.json['id']}/edit", json=definition(number=9)).status_code == 409
    relaunch = manager.get(f"/api/v1/tasks/{task_id}/relaunch")
    assert relaunch.status_code == 200 and relaunch.json["cloned_from_task"] == task_id, relaunch.json
    assert relaunch.json["comment"] == "relaunch of PROD2025-009.SIM" and relaunch.json["task_name"] != "PROD2025-009.SIM"
    unsent = db.session.get(TaskBunch, later.json["id"]).tasks[0].id
    assert manager.get(f"/api/v1/tasks/{unsent}/relaunch").status_code == 409
