"""The defects a new user found in "RECO for this bunch" (issue 13, item 8), one test each (the RECO
preview diffing against its own parent is in test_sim_integration.py)."""

from __future__ import annotations

import io
import re

from sqlalchemy import select

from app.tasks import services
from app.tasks.models import Task, TaskBunch
from tests.helpers import settle_launches
from tests.tasks.conftest import TAG, form_data, form_values, post, sim_definition


def reco(bunch_size: int, **changes) -> object:
    return sim_definition(
        step="RECO", task_name="PROD2025-008.RECO", output_dataset=f"MC2025_S1.{TAG}.PROD2025-008.RECO.1",
        total_events=None, events_per_job=None, files_per_job=1, bunch_size=bunch_size, **changes,
    )  # fmt: skip


def test_reco_for_a_bunch_that_never_reached_panda_is_warned(app, db, make_user):
    user = make_user("manager")
    services.create_bunch(sim_definition(bunch_size=3), user, "sim", is_admin=False)  # saved, never sent
    db.session.commit()
    plan = services.plan_bunch(reco(3), user, is_admin=False)
    assert plan.warnings == [
        "3 parent task(s) have not reached PanDA yet (PROD2025-008.SIM.1, PROD2025-008.SIM.2, PROD2025-008.SIM.3): "
        "their RECO tasks wait until they do (resend the failed ones on the parent's bunch page)."
    ]


def test_reco_of_the_wrong_size_is_refused_for_its_size(app, db, make_user):
    user = make_user("manager")
    services.create_bunch(sim_definition(bunch_size=10), user, "sim", is_admin=False)
    db.session.commit()
    errors, _ = services.validate_definition(reco(12), is_admin=False)
    assert errors == {
        "bunch_size": [
            "tasks to launch (12) must match the 10 tasks of parent bunch PROD2025-008.SIM: task i reads the "
            "output of PROD2025-008.SIM.i"
        ]
    }
    assert services.validate_definition(reco(10), is_admin=False)[0] == {}


def test_sim_and_reco_bunch_pages_link_each_other(client, login_as, db, fake_panda):
    user = login_as("manager")
    sim_bunch = services.create_bunch(sim_definition(bunch_size=2), user, "sim", is_admin=False).bunch
    reco_bunch = services.create_bunch(reco(2), user, "reco", is_admin=False).bunch
    db.session.commit()
    sim_page = (
        client.get(f"/tasks/bunch/{sim_bunch.id}").get_data(as_text=True).split('id="bunch-relations"', 1)[1]
    )
    reco_page = (
        client.get(f"/tasks/bunch/{reco_bunch.id}").get_data(as_text=True).split('id="bunch-relations"', 1)[1]
    )
    assert re.search(
        rf'Read by</dt><dd[^>]*><a href="/tasks/bunch/{reco_bunch.id}">PROD2025-008.RECO</a>', sim_page
    )
    assert re.search(
        rf'Reads</dt><dd[^>]*><a href="/tasks/bunch/{sim_bunch.id}">PROD2025-008.SIM</a>', reco_page
    )


def test_files_per_job_and_parent_task_are_for_processing_steps_only(client, login_as, db, fake_panda):
    user = login_as("manager")
    sim_form = client.get("/tasks/new?step=SIM").get_data(as_text=True)
    for name in ("files_per_job", "parent_task"):
        wrapper = re.search(
            rf'<div data-for-kind="processing"( hidden)?>\s*<div class="mb-2">\s*<label[^>]*for="{name}"',
            sim_form,
        )
        assert wrapper and wrapper[1] == " hidden", name
    assert (
        'data-step-kinds="{&quot;RECO&quot;: &quot;processing&quot;, &quot;SIM&quot;: &quot;generation&quot;}"'
        in sim_form
    )
    sim_bunch = services.create_bunch(sim_definition(bunch_size=2), user, "sim", is_admin=False).bunch
    db.session.commit()
    reco_form = client.get(f"/tasks/new?step=RECO&after={sim_bunch.id}").get_data(as_text=True)
    assert not re.search(r'<div data-for-kind="processing" hidden>', reco_form)
    assert form_values(reco_form)["parent_task"] == "PROD2025-008.SIM"


def test_a_relaunch_from_an_uploaded_manifest_is_stored_as_a_relation(
    client, login_as, db, fake_panda, clock
):
    login_as("manager")
    post(client, "/tasks/create", form_data(sim_definition(bunch_size=2), key="k"))
    assert settle_launches(30)
    source = db.session.scalar(select(Task).where(Task.bunch_index == 2))
    body = client.get(f"/tasks/{source.id}/manifest.json").get_data()
    html = post(client, "/tasks/relaunch", {"manifest": (io.BytesIO(body), "m.json")},
                content_type="multipart/form-data").get_data(as_text=True)  # fmt: skip
    values = form_values(html)
    assert values["cloned_from_task"] == str(source.id)
    assert post(client, "/tasks/create", values).status_code == 302
    assert settle_launches(30)
    relaunched = db.session.scalar(select(TaskBunch).where(TaskBunch.base_name == values["task_name"]))
    assert relaunched.cloned_from_id == source.bunch_id and relaunched.tasks[0].cloned_from_id == source.id
    page = client.get(f"/tasks/{source.id}").get_data(as_text=True).split('id="clones"', 1)[1][:300]
    assert f'<a href="/tasks/{relaunched.tasks[0].id}">{relaunched.tasks[0].name}</a>' in page
