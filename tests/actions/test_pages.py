"""The action pages with the fake PanDA: the task page's buttons (greyed out with the matrix's reason),
each action's confirmation with its comment, PanDA's answers in words, the command history and the
"command queued" line; modifying a submitted task (difference first); editing a scheduled bunch
like a new one (preview with each task's difference, launches kept)."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import select

from app.actions.models import Outcome, TaskCommand
from app.audit.models import AuditEvent
from app.launches.states import LaunchStatus
from app.panda.errors import PandaOutcomeUnknown, PandaRejected, PandaUnavailable
from app.tasks import services as task_services
from app.tasks.models import Task, TaskBunch
from tests.actions.conftest import new_task, post
from tests.helpers import bunch_counts, settle_launches
from tests.tasks.conftest import form_data, form_values, sim_definition


def text(response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def html(response) -> str:
    return unescape(response.get_data(as_text=True))


def test_the_task_page_greys_out_what_the_matrix_refuses(client, login_as, fake_panda):
    manager = login_as("manager")
    task = new_task(manager, status="pending")
    page = html(client.get(f"/tasks/{task.id}"))
    assert f'href="/tasks/{task.id}/actions/kill" id="action-kill"' in page
    assert 'title="resume: not possible while pending"' in page
    assert 'title="avalanche: needs the admin role"' in page
    assert "No commands yet." in page


def test_a_kill_asks_for_a_comment_and_says_how_many_tasks(client, login_as, fake_panda, db):
    manager = login_as("manager")
    task = new_task(manager, status="running")
    page = text(client.get(f"/tasks/{task.id}/actions/kill"))
    assert f"This will abort the task: its running jobs are killed for 1 task ({task.name})" in page
    assert "required: why" in page
    empty = post(client, f"/tasks/{task.id}/actions/kill", {"comment": "  "})
    assert empty.status_code == 400 and "say why" in text(empty) and fake_panda.commands == []
    done = post(client, f"/tasks/{task.id}/actions/kill", {"comment": "wrong tune"})
    assert done.status_code == 302 and fake_panda.commands == [("kill", task.panda_task_id, {"comment": "wrong tune"})]
    after = client.get(f"/tasks/{task.id}")
    assert f"PanDA accepted the kill of {task.name}" in text(after)
    assert f"command queued: kill (by {manager.username}, at" in text(after)
    row = re.search(r'<tr data-outcome="accepted">(.*?)</tr>', after.get_data(as_text=True), re.S).group(1)
    assert "kill" in row and "wrong tune" in row and manager.username in row
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "task.kill")).one()
    assert audit.details["comment"] == "wrong tune" and audit.target == task.name


def test_pandas_refusals_and_failures_in_words(client, login_as, fake_panda, db):
    manager = login_as("manager")
    task = new_task(manager, status="running")
    fake_panda.refuse[task.panda_task_id] = PandaRejected(
        "PanDA refused the command in the task's current status. Server said: Command rejected: the pause "
        "command is not accepted if the task is in paused status ", code=4)  # fmt: skip
    refused = post(client, f"/tasks/{task.id}/actions/pause", {}, follow_redirects=True)
    assert "PanDA refused the pause of" in text(refused) and "not accepted if the task is in paused status" in text(refused)
    fake_panda.refuse[task.panda_task_id] = PandaUnavailable("PanDA at fake is unreachable")
    failed = post(client, f"/tasks/{task.id}/actions/release", {}, follow_redirects=True)
    assert "was not sent: Nothing was registered: PanDA at fake is unreachable" in text(failed)
    fake_panda.refuse[task.panda_task_id] = PandaOutcomeUnknown("no reply")
    unknown = post(client, f"/tasks/{task.id}/actions/release", {}, follow_redirects=True)
    assert "may or may not have reached PanDA" in text(unknown)
    assert post(client, f"/tasks/{task.id}/actions/resume", {}).status_code == 409  # running: nothing sent
    outcomes = db.session.scalars(select(TaskCommand.outcome).order_by(TaskCommand.id)).all()
    assert outcomes == [Outcome.REJECTED, Outcome.FAILED, Outcome.UNKNOWN]
    assert len(fake_panda.commands) == 3


def test_the_retry_page_is_prefilled_from_the_query(client, login_as, fake_panda):
    manager = login_as("manager")
    task = new_task(manager, status="failed")
    page = html(client.get(f"/tasks/{task.id}/actions/retry?memory_mb=4000"))
    assert 'name="memory_mb" type="text" value="4000"' in page
    bad = post(client, f"/tasks/{task.id}/actions/retry", {"memory_mb": "lots", "walltime_s": "3600"})
    assert bad.status_code == 400 and "enter a whole number" in text(bad) and 'value="3600"' in html(bad)
    assert post(client, f"/tasks/{task.id}/actions/retry", {"memory_mb": "4000"}).status_code == 302
    assert fake_panda.commands[-1] == ("retry", task.panda_task_id, {"new_parameters": {"ramCount": 4000}, "comment": ""})


def test_modify_shows_the_difference_before_sending(client, login_as, fake_panda, db):
    manager = login_as("manager")
    task = new_task(manager, status="running")
    form = html(client.get(f"/tasks/{task.id}/actions/modify"))
    assert "needs the admin role" in form  # the priority field is read-only for a manager
    nothing = post(client, f"/tasks/{task.id}/actions/modify", {})
    assert nothing.status_code == 400 and "nothing to change" in text(nothing)
    preview = post(client, f"/tasks/{task.id}/actions/modify", {"memory_mb": "3500", "add_attempts": "2"})
    page = text(preview)
    assert preview.status_code == 200 and "The difference" in page and fake_panda.commands == []
    assert "Memory per core, MB — 3500" in page and "Max attempts" in page
    values = form_values(preview.get_data(as_text=True), "modify-confirm")
    sent = post(client, f"/tasks/{task.id}/actions/modify", values | {"comment": "OOM in 10 %"})
    assert sent.status_code == 302
    assert [c[0] for c in fake_panda.commands] == ["change_attribute", "increase_attempts"]
    assert fake_panda.commands[0][2] == {"attribute_name": "ramCount", "value": 3500, "comment": "OOM in 10 %"}
    commands = db.session.scalars(select(TaskCommand).where(TaskCommand.action == "modify")).all()
    assert [c.params["field"] for c in commands] == ["memory_mb", "attempts"]


def test_a_scheduled_bunch_is_edited_like_a_new_one(client, login_as, fake_panda, db):
    manager = login_as("manager")
    bunch, _, _ = task_services.create_bunch(sim_definition(number=55, bunch_size=2), manager, "edit-me", is_admin=False)
    db.session.commit()
    assert "Edit (not submitted yet)" in text(client.get(f"/tasks/bunch/{bunch.id}"))
    form = client.get(f"/tasks/bunch/{bunch.id}/edit")
    values = form_values(form.get_data(as_text=True))
    assert values["task_name"] == "PROD2025-055.SIM" and values["memory_mb"] == ""
    too_many = post(client, f"/tasks/bunch/{bunch.id}/edit", values | {"bunch_size": "3", "preview": "1"})
    assert too_many.status_code == 400 and "stays 2 when editing" in text(too_many)
    preview = post(client, f"/tasks/bunch/{bunch.id}/edit", values | {"memory_mb": "3000", "preview": "1"})
    page = text(preview)
    assert preview.status_code == 200 and "diff against PROD2025-055.SIM.1" in page and '+ "ramCount": 3000' in page
    saved = post(client, f"/tasks/bunch/{bunch.id}/edit", values | {"memory_mb": "3000"})
    assert saved.status_code == 302
    db.session.expire_all()
    tasks = db.session.get(TaskBunch, bunch.id).tasks
    assert [t.params["ramCount"] for t in tasks] == [3000, 3000]
    assert all(t.latest_launch.status == LaunchStatus.PENDING for t in tasks)  # still as scheduled
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.action == "task.edit")).one().details["changed"] == ["memory_mb"]
    # Sent afterwards with the new parameters; then it is no longer editable.
    assert settle_launches() and bunch_counts(bunch.id) == {"submitted": 2}
    assert fake_panda.tasks[min(fake_panda.tasks)]["params"]["ramCount"] == 3000
    again = client.get(f"/tasks/bunch/{bunch.id}/edit", follow_redirects=True)
    assert "already sent (or being sent) to PanDA" in text(again)


def test_editing_keeps_other_bunches_names_taken(client, login_as, fake_panda, db):
    manager = login_as("manager")
    task_services.create_bunch(sim_definition(number=56), manager, "taken", is_admin=False)
    bunch, _, _ = task_services.create_bunch(sim_definition(number=57), manager, "mine", is_admin=False)
    db.session.commit()
    values = form_data(sim_definition(number=56))
    clash = post(client, f"/tasks/bunch/{bunch.id}/edit", values | {"preview": "1"})
    assert clash.status_code == 400 and "is already used" in text(clash)
    renamed = post(client, f"/tasks/bunch/{bunch.id}/edit", form_data(sim_definition(number=58)))
    assert renamed.status_code == 302
    db.session.expire_all()
    assert db.session.get(Task, bunch.tasks[0].id).name == "PROD2025-058.SIM"
