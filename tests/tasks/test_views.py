"""The task pages over the Flask test client (PanDA replaced by the scripted client)."""

import json
import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import func, select

from app.launches import dispatcher
from app.launches.models import Launch
from app.tasks import services
from app.tasks.models import Task, TaskBunch
from tests.fakes.panda import LegacyFakePanda, install
from tests.helpers import settle_launches, wait_until
from tests.tasks.conftest import TAG, form_data, form_values, post, sim_definition


def test_viewer_reads_but_cannot_create(client, login_as, db, fake_panda):
    login_as("viewer")
    assert client.get("/tasks/").status_code == 200
    assert client.get("/tasks/new").status_code == 403
    data = form_data(sim_definition(), key="v")
    for url in ("/tasks/create", "/tasks/preview", "/tasks/bunch/1/resend", "/tasks/1/mark-not-submitted"):
        assert post(client, url, data).status_code == 403, url  # a valid CSRF token: the role refuses
    assert db.session.scalar(select(func.count()).select_from(TaskBunch)) == 0
    assert 'id="new-task"' not in client.get("/tasks/").get_data(as_text=True)


def test_new_form_suggests_next_production_and_has_every_field(client, login_as, clock):
    login_as("manager")
    html = client.get("/tasks/new").get_data(as_text=True)
    assert 'id="next-production">PROD2026-001<' in html
    for name in (
        "step",
        "task_name",
        "bunch_size",
        "output_dataset",
        "total_events",
        "events_per_job",
        "cloud",
        "data_disk",
        "request_id",
        "skip_scout",
        "initial_offset",
        "exec_path",
        "container_path",
        "memory_mb",
        "walltime_s",
        "max_attempts",
        "comment",
        "idempotency_key",
    ):
        assert f'name="{name}"' in html, name
    for admin_only in ("priority", "site", "working_group", "template_overrides"):
        assert f'name="{admin_only}"' not in html


def test_admin_sees_admin_fields(client, login_as):
    login_as("admin")
    html = client.get("/tasks/new").get_data(as_text=True)
    assert 'id="admin-fields"' in html and 'name="template_overrides"' in html


def test_invalid_input_keeps_values_and_saves_nothing(client, login_as, db):
    login_as("manager")
    data = form_data(sim_definition(events_per_job=20000, exec_path="/tmp/x"), key="k1")
    response = post(client, "/tasks/create", data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "events per job (20000) must not exceed total events (10000)" in html
    assert "path to execution files must be an absolute path under /cvmfs/spd.jinr.ru/" in html
    assert 'value="20000"' in html and 'value="/tmp/x"' in html and 'value="PROD2025-008.SIM"' in html
    assert db.session.scalar(select(func.count()).select_from(TaskBunch)) == 0


def test_non_numeric_number_is_a_field_error(client, login_as):
    login_as("manager")
    data = form_data(sim_definition(), key="k")
    data["total_events"] = "ten"
    html = post(client, "/tasks/preview", data).get_data(as_text=True)
    assert "Not a valid integer value" in html and 'value="ten"' in html


@pytest.mark.parametrize(
    ("url", "name", "value"),
    [
        ("/tasks/create", "priority", "2000"),
        ("/tasks/preview", "template_overrides", '{"taskPriority": 5000}'),
    ],
)
def test_manager_cannot_send_admin_fields(client, login_as, db, url, name, value):
    from app.audit.models import AuditEvent

    login_as("manager")
    data = form_data(sim_definition(), key="k")
    data[name] = value
    response = post(client, url, data)
    assert response.status_code == 403
    assert f"only admins may set: {name}; nothing was saved" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(TaskBunch)) == 0
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "task.admin_fields_refused"))
    assert (event.outcome, event.target, event.details) == ("denied", url, {"fields": [name]})


def test_preview_shows_exact_parameters_and_diff(client, login_as, db, fake_panda):
    login_as("manager")
    response = post(
        client, "/tasks/preview", form_data(sim_definition(bunch_size=2, events_per_job=3000), key="k")
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "nothing has been sent" in html and "not a multiple of events per job" in html
    blocks = re.findall(r'<pre class="border rounded p-2 small preview-json">(.*?)</pre>', html, re.S)
    previewed = [json.loads(unescape(block)) for block in blocks]
    assert previewed[0]["taskName"] == "PROD2025-008.SIM.1" and previewed[0]["nEventsPerJob"] == 3000
    assert "diff against <code>PROD2025-008.SIM.1</code>" in html
    assert "+  &#34;taskName&#34;: &#34;PROD2025-008.SIM.2&#34;," in html
    assert db.session.scalar(select(func.count()).select_from(TaskBunch)) == 0
    assert fake_panda.submits == []
    # What was previewed is exactly what is saved and sent.
    post(client, "/tasks/create", form_values(html))
    assert settle_launches(30)
    tasks = db.session.scalars(select(Task).order_by(Task.bunch_index)).all()
    assert [t.params for t in tasks] == previewed
    assert [t.latest_launch.manifest["task_parameters"] for t in tasks] == previewed


def test_a_task_over_the_limits_gets_field_messages_at_preview_and_keeps_what_was_typed(
    client, login_as, db, fake_panda
):
    login_as("manager")
    data = form_data(sim_definition(total_events=10**20, memory_mb=10**9), key="huge")
    response = post(client, "/tasks/preview", data)
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 400
    assert "total events must be at most 1,000,000,000 per task" in html
    assert "memory must be at most 64,000 MB" in html
    assert form_values(html)["total_events"] == str(10**20)  # nothing the user typed is lost
    response = post(client, "/tasks/create", data)
    assert response.status_code == 400 and db.session.scalar(select(func.count()).select_from(TaskBunch)) == 0
    assert fake_panda.submits == []


def test_create_twice_with_same_key_creates_one_bunch(client, login_as, db, fake_panda):
    login_as("manager")
    data = form_data(sim_definition(bunch_size=3), key="same-key")
    first = post(client, "/tasks/create", data)
    second = post(client, "/tasks/create", data)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert settle_launches(30)
    assert db.session.scalar(select(func.count()).select_from(TaskBunch)) == 1
    assert db.session.scalar(select(func.count()).select_from(Launch)) == 3
    assert sorted(fake_panda.submits) == [f"PROD2025-008.SIM.{i}" for i in (1, 2, 3)]
    page = client.get(first.headers["Location"]).get_data(as_text=True)
    assert "3 of 3 submitted" in page


def test_bunch_failures_and_resend(client, login_as, db, fake_panda):
    login_as("manager")
    fake_panda.script = ["ok", "reject"]
    location = post(client, "/tasks/create", form_data(sim_definition(bunch_size=2), key="k")).headers[
        "Location"
    ]
    assert settle_launches(30)
    page = client.get(location).get_data(as_text=True)
    assert "1 of 2 submitted" in page and "too many active tasks" in page and "Resend failed (1)" in page
    bunch_id = int(location.rstrip("/").rsplit("/", 1)[1])
    response = post(client, f"/tasks/bunch/{bunch_id}/resend", {})
    assert response.status_code == 302
    assert settle_launches(30)
    wait_until(lambda: "2 of 2 submitted" in client.get(location).get_data(as_text=True))


def test_task_page_manifest_clone_both_ways(client, login_as, db, fake_panda, clock):
    login_as("manager")
    post(client, "/tasks/create", form_data(sim_definition(), key="k"))
    assert settle_launches(30)
    task = db.session.scalar(select(Task))
    page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert task.name in page and "download JSON" in page and str(task.panda_task_id) in page
    refreshed = post(client, f"/tasks/{task.id}/refresh", {}, follow_redirects=True).get_data(as_text=True)
    assert "PanDA says registered" in refreshed and "status-registered" in refreshed
    db.session.expire_all()
    assert db.session.get(Task, task.id).panda_status == "registered"
    manifest = client.get(f"/tasks/{task.id}/manifest.json")
    assert manifest.headers["Content-Disposition"] == f'attachment; filename="{task.name}.manifest.json"'
    body = manifest.get_json()
    assert body["task_parameters"] == task.params and body["panda_reply"]["task_id"] == task.panda_task_id
    clone = client.get(f"/tasks/clone?task={task.id}").get_data(as_text=True)
    copied = re.search(r'id="clone-copied">(.*?)</div>', clone, re.S).group(1)
    reset = re.search(r'id="clone-reset">(.*?)</div>', clone, re.S).group(1)
    assert "Path to container" in copied and "Events per job" in copied
    assert "Priority" not in copied  # admin-only fields are not copied for managers
    assert "Task name" in reset and "Output dataset name" in reset and "Tasks to launch" in reset
    # Submitted as it is, the clone differs from its source only in what the form says it reset.
    assert post(client, "/tasks/create", form_values(clone)).status_code == 302
    assert settle_launches(30)
    new = db.session.scalar(select(Task).where(Task.name == "PROD2026-001.SIM"))
    assert new.output_dataset == f"MC2025_S1.{TAG}.PROD2026-001.SIM.1"
    renamed = {"taskName": new.name, "log": new.params["log"], "jobParameters": new.params["jobParameters"]}
    assert new.params == {**task.params, **renamed}
    assert json.dumps(new.params["jobParameters"]) == json.dumps(task.params["jobParameters"]).replace(
        "PROD2025-008", "PROD2026-001"
    )
    assert f">{task.name}</a>" in client.get(f"/tasks/{new.id}").get_data(as_text=True)
    assert f">{new.name}</a>" in client.get(f"/tasks/{task.id}").get_data(as_text=True)
    relaunch = client.get(f"/tasks/{task.id}/relaunch").get_data(as_text=True)
    assert "relaunch of PROD2025-008.SIM" in relaunch and 'value="PROD2026-002.SIM"' in relaunch
    assert '<h1 class="h4">Relaunch from a manifest</h1>' in relaunch


def test_relaunch_from_uploaded_manifest(client, login_as, db, fake_panda, clock):
    import io

    login_as("manager")
    post(client, "/tasks/create", form_data(sim_definition(bunch_size=2, initial_offset=3), key="k"))
    assert settle_launches(30)
    task = db.session.scalar(select(Task).where(Task.bunch_index == 2))
    body = client.get(f"/tasks/{task.id}/manifest.json").get_data()
    response = post(client, "/tasks/relaunch", {"manifest": (io.BytesIO(body), "m.json")},
                    content_type="multipart/form-data")  # fmt: skip
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "manifest file m.json" in html and 'value="10003"' in html and 'value="PROD2026-001.SIM"' in html
    bad = post(
        client,
        "/tasks/relaunch",
        {"manifest": (io.BytesIO(b"{}"), "x.json")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 302
    assert "x.json is not a submission manifest" in client.get("/tasks/").get_data(as_text=True)
    for junk in (b'{"definition": {"task_name": 5}}', b"[1]", b"not json"):
        response = post(client, "/tasks/relaunch", {"manifest": (io.BytesIO(junk), "j.json")},
                        content_type="multipart/form-data")  # fmt: skip
        assert response.status_code == 302, junk


def test_form_level_messages(client, login_as, db):
    login_as("admin")
    data = form_data(sim_definition())  # no idempotency key
    html = post(client, "/tasks/create", data).get_data(as_text=True)
    assert "the form has no submission key; reload it and submit again" in html
    data = form_data(sim_definition(), key="k")
    data["template_overrides"] = "[1, 2]"
    response = post(client, "/tasks/preview", data)
    assert response.status_code == 400
    assert "template overrides must be a JSON object" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(TaskBunch)) == 0


def test_admin_may_set_admin_fields(client, login_as, db, fake_panda):
    login_as("admin")
    data = form_data(sim_definition(), key="adm")
    data.update(
        priority="950", site="JINR_PROD", working_group="spd_prod", template_overrides='{"gshare": "Test"}'
    )
    assert post(client, "/tasks/create", data).status_code == 302
    assert settle_launches(30)
    params = db.session.scalar(select(Task)).params
    assert (params["taskPriority"], params["site"], params["workingGroup"], params["gshare"]) == (
        950, "JINR_PROD", "spd_prod", "Test",
    )  # fmt: skip


def test_undecided_task_mark_or_adopt(app, client, login_as, db, clock):
    fake = install(app, LegacyFakePanda())
    login_as("manager")
    fake.script = ["unknown", "lost", "ok"]
    post(client, "/tasks/create", form_data(sim_definition(bunch_size=3), key="k"))
    assert settle_launches(30)
    first, second, _third = db.session.scalars(select(Task).order_by(Task.bunch_index)).all()
    page = client.get(f"/tasks/{first.id}").get_data(as_text=True)
    assert "PanDA cannot confirm whether this task arrived" in page and 'id="adopt"' in page
    # Wrong id: PanDA names another task. Right id: adopted.
    post(client, f"/tasks/{first.id}/adopt", {"panda_task_id": "1001"})
    assert "is named &#39;PROD2025-008.SIM.3&#39;" in client.get(f"/tasks/{first.id}").get_data(as_text=True)
    post(client, f"/tasks/{first.id}/adopt", {"panda_task_id": "1000"})
    db.session.expire_all()
    assert db.session.get(Task, first.id).panda_task_id == 1000
    # The other one really is missing: mark it, and it is sent once more.
    post(client, f"/tasks/{second.id}/mark-not-submitted", {})
    assert settle_launches(30)
    db.session.expire_all()
    assert db.session.get(Task, second.id).panda_task_id is not None
    assert fake.submits.count("PROD2025-008.SIM.2") == 2 and fake.submits.count("PROD2025-008.SIM.1") == 1


def test_note_when_events_do_not_divide_is_shown_after_create(client, login_as, fake_panda):
    login_as("manager")
    response = post(client, "/tasks/create", form_data(sim_definition(events_per_job=3000), key="k"))
    assert settle_launches(30)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "are not a multiple of events per job (3000)" in page


def test_empty_output_dataset_is_built_from_the_conventions(client, login_as, fake_panda):
    login_as("manager")
    data = form_data(sim_definition(output_dataset=""), key="k")
    html = post(client, "/tasks/preview", data).get_data(as_text=True)
    assert (
        f"left empty: built as MC2025_S1.{TAG}.PROD2025-008.SIM.1" in html and "nothing has been sent" in html
    )
    assert form_values(html)["output_dataset"] == ""  # the empty field keeps following the other fields
    # A wrong execution path must not leave a name built from it behind: once the path is corrected,
    # the same form previews with the right physics tag.
    data = form_data(sim_definition(output_dataset="", exec_path="/tmp/minbias.V01"), key="k")
    html = post(client, "/tasks/preview", data).get_data(as_text=True)
    assert "must be an absolute path under" in html
    values = form_values(html)
    assert values["output_dataset"] == ""
    values["exec_path"] = sim_definition().exec_path
    html = post(client, "/tasks/preview", values).get_data(as_text=True)
    assert "nothing has been sent" in html and f"{TAG}.PROD2025-008.SIM.1" in html
    data = form_data(sim_definition(output_dataset="", task_name="not-a-name"), key="k")
    html = post(client, "/tasks/preview", data).get_data(as_text=True)
    assert "enter the output dataset name, or a valid task name and execution path to build it" in html


def test_task_list_filters_sorts_and_pages(client, login_as, db, make_user):
    from app.tasks import services

    user = make_user("manager")
    services.create_bunch(sim_definition(number=1, bunch_size=52), user, "big", is_admin=False)
    services.create_bunch(sim_definition(number=2), user, "one", is_admin=False)
    reco = sim_definition(
        number=2, step="RECO", task_name="PROD2025-002.RECO", total_events=None, events_per_job=None,
        output_dataset=f"MC2025_S1.{TAG}.PROD2025-002.RECO.1",
    )  # fmt: skip
    services.create_bunch(reco, user, "reco", is_admin=False)
    failed = db.session.scalar(select(Task).where(Task.name == "PROD2025-001.SIM.7")).latest_launch
    failed.status = "failed"
    db.session.commit()
    login_as("viewer")

    def names(query):
        html = client.get(f"/tasks/?{query}").get_data(as_text=True)
        return re.findall(r'class="task-link">([^<]+)</a>', html), html

    shown, html = names("")
    assert len(shown) == 50 and shown[0] == "PROD2025-002.RECO"  # newest first, 50 a page
    assert "rows 1–50 of 54 matching" in html and 'rel="next" href="/tasks/?after=' in html
    assert names("page=2")[0] == [f"PROD2025-001.SIM.{i}" for i in (4, 3, 2, 1)]
    assert names("step=RECO")[0] == ["PROD2025-002.RECO"]
    assert names("launch=failed")[0] == ["PROD2025-001.SIM.7"]
    assert names("q=*SIM.5*")[0] == ["PROD2025-001.SIM.52", "PROD2025-001.SIM.51", "PROD2025-001.SIM.50",
                                     "PROD2025-001.SIM.5"]  # fmt: skip
    shown, html = names("sort=name&order=asc&step=SIM")
    assert shown[:3] == ["PROD2025-001.SIM.1", "PROD2025-001.SIM.2", "PROD2025-001.SIM.3"]  # .2 before .10
    assert shown[-1] == "PROD2025-001.SIM.50" and "PROD2025-002.RECO" not in shown
    # Sort links keep the filters; the pager keeps filters and order.
    assert 'href="/tasks/?step=SIM&amp;sort=name&amp;order=desc"' in html
    assert 'href="/tasks/?step=SIM&amp;sort=name&amp;order=asc&amp;last=1"' in html
    assert "No task matches these filters." in names("q=nothing")[1]


def test_required_numbers_and_malformed_request_id_are_field_errors(client, login_as, db):
    login_as("manager")
    data = form_data(sim_definition(), key="k")
    data.update(bunch_size="", initial_offset="", request_id="REQ-42")
    response = post(client, "/tasks/preview", data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "tasks to launch is required" in html and "initial offset is required" in html
    data = form_data(sim_definition(), key="k")
    data["request_id"] = "REQ-42"
    html = post(client, "/tasks/preview", data).get_data(as_text=True)
    assert "request id must be a positive number, as on spd-requests (e.g. 42)" in html
    assert 'value="REQ-42"' in html  # the entered value stays
    assert db.session.scalar(select(func.count()).select_from(TaskBunch)) == 0


def test_clone_a_whole_bunch_links_both_ways(client, login_as, db, fake_panda, clock):
    login_as("manager")
    post(client, "/tasks/create", form_data(sim_definition(bunch_size=3, initial_offset=5), key="k"))
    assert settle_launches(30)
    source = db.session.scalar(select(TaskBunch))
    form = client.get(f"/tasks/clone?bunch={source.id}").get_data(as_text=True)
    assert "Clone of bunch PROD2025-008.SIM (3 tasks)" in form
    copied = re.search(r'id="clone-copied">(.*?)</div>', form, re.S).group(1)
    assert "Tasks to launch" in copied and "Initial offset" in copied
    values = form_values(form)
    assert (values["bunch_size"], values["initial_offset"], values["cloned_from_bunch"]) == (
        "3",
        "5",
        str(source.id),
    )
    preview = post(client, "/tasks/preview", values).get_data(as_text=True)
    assert "nothing has been sent" in preview and 'id="clone-copied"' in preview  # still says what it cloned
    assert post(client, "/tasks/create", values).status_code == 302
    assert settle_launches(30)
    clone = db.session.scalar(select(TaskBunch).where(TaskBunch.id != source.id))
    assert clone.base_name == "PROD2026-001.SIM" and clone.cloned_from_id == source.id
    assert [t.cloned_from_id for t in clone.tasks] == [t.id for t in source.tasks]
    assert [t.spec["offset"] for t in clone.tasks] == [t.spec["offset"] for t in source.tasks]
    page = client.get(f"/tasks/bunch/{clone.id}").get_data(as_text=True)
    assert f'Cloned from <a href="/tasks/bunch/{source.id}">PROD2025-008.SIM</a>' in page
    page = client.get(f"/tasks/bunch/{source.id}").get_data(as_text=True)
    assert f'Clones: <a href="/tasks/bunch/{clone.id}">PROD2026-001.SIM</a>' in page


def test_a_used_form_changed_after_create_is_not_dropped_silently(client, login_as, db, fake_panda):
    login_as("manager")
    data = form_data(sim_definition(), key="used")
    first = post(client, "/tasks/create", data)
    assert settle_launches(30)
    # Back button, new values, same key: not a repeat of the first POST.
    data.update(task_name="PROD2025-009.SIM", output_dataset=f"MC2025_S1.{TAG}.PROD2025-009.SIM.1")
    response = post(client, "/tasks/create", data)
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "This form already created PROD2025-008.SIM and was changed since" in html
    values = form_values(html)
    assert values["task_name"] == "PROD2025-009.SIM" and values["idempotency_key"] not in ("", "used")
    assert db.session.scalar(select(func.count()).select_from(TaskBunch)) == 1
    second = post(client, "/tasks/create", values)
    assert settle_launches(30)
    assert second.headers["Location"] != first.headers["Location"]
    assert db.session.scalar(select(func.count()).select_from(TaskBunch)) == 2
    # An unchanged repeat still lands on the bunch it created.
    assert post(client, "/tasks/create", values).headers["Location"] == second.headers["Location"]


def test_an_interrupted_send_is_explained_and_dispatching_resumes(client, login_as, db, fake_panda, clock):
    from app.tasks import services

    user = login_as("manager")
    bunch, *_ = services.create_bunch(sim_definition(bunch_size=2), user, "k", is_admin=False)
    db.session.commit()
    first = bunch.tasks[0].launches[0]
    # A dispatcher claimed it, then its panel stopped: longer ago than any request can take.
    assert dispatcher.claim(first.id, clock() - timedelta(minutes=10))
    page = client.get(f"/tasks/bunch/{bunch.id}").get_data(as_text=True)
    assert "1 sending (interrupted: never resent" in page and "Continue dispatching" in page
    post(client, f"/tasks/bunch/{bunch.id}/dispatch", {})
    assert settle_launches(30)
    assert "Dispatching resumed." in client.get(f"/tasks/bunch/{bunch.id}").get_data(as_text=True)
    assert fake_panda.submits == ["PROD2025-008.SIM.2"]  # the claimed one is not resent


def test_home_page_shows_recent_bunches_and_token_validity(client, login_as, db):
    user = login_as("manager")
    bunch, *_ = services.create_bunch(
        sim_definition(number=77, bunch_size=3), user, "home-page", is_admin=False
    )
    db.session.commit()
    html = client.get("/").get_data(as_text=True)
    assert f'href="/tasks/bunch/{bunch.id}">PROD2025-077.SIM</a>' in html
    assert "0 of 3" in html
    assert 'id="token-validity"' in html
