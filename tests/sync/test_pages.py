"""The pages show what the sync stored and refresh active rows from the database: a viewer opening
them causes no PanDA call at all (counted by the simulator)."""

from __future__ import annotations

import re

from flask import g

from app.extensions import db
from app.sync import jobs
from app.tasks.models import Task


def test_viewer_pages_and_their_refreshes_call_panda_never(sim, submit, client, login_as):
    bunch = submit(3)
    sim.advance(3450)  # running, some jobs done
    jobs.sync_cycle()
    task = bunch.tasks[0]
    login_as("viewer")
    before = dict(sim.calls)
    pages = {
        "list": client.get("/tasks/"),
        "bunch": client.get(f"/tasks/bunch/{bunch.id}"),
        "progress": client.get(f"/tasks/bunch/{bunch.id}/progress"),
        "task": client.get(f"/tasks/{task.id}"),
        "task state": client.get(f"/tasks/{task.id}/panda"),
        "rows": client.get(f"/tasks/panda?ids={task.id},{bunch.tasks[1].id}"),
        "bunch rows": client.get(f"/tasks/panda?bunch={bunch.id}"),
    }
    assert {name: r.status_code for name, r in pages.items()} == dict.fromkeys(pages, 200)
    assert dict(sim.calls) == before  # not one PanDA call

    db.session.expire_all()
    task = db.session.get(Task, task.id)
    listed = pages["list"].get_data(as_text=True)
    state = listed.split(f'id="panda-state-{task.id}"', 1)[1][:600]
    assert "status-running" in state and f"{task.jobs_done}/{task.jobs_total} jobs" in state
    assert 'id="panda-poll"' in listed and "hx-get=" in listed.split('id="panda-poll"', 1)[1][:300]
    poller = pages["bunch"].get_data(as_text=True).split('id="panda-poll"', 1)[1][:400]
    assert f"/tasks/panda?bunch={bunch.id}&amp;first=1&amp;last=3" in poller  # the rows of the page shown
    one = client.get(f"/tasks/panda?bunch={bunch.id}&first=2&last=2").get_data(as_text=True)
    assert one.count('class="panda-state"') == 1 and f'id="panda-state-{bunch.tasks[1].id}"' in one
    assert client.get(f"/tasks/panda?bunch={bunch.id}&first=x&last=2").status_code == 400
    detail = pages["task"].get_data(as_text=True)
    assert "Sync this task now" not in detail  # a manager's button
    assert re.search(r'id="panda-history">.*status-running', detail, re.S)
    assert f"{task.jobs_done} done" in detail


def test_the_polled_refresh_carries_the_new_state_and_stops_when_final(sim, submit, client, login_as):
    bunch = submit(2)
    sim.advance(150)
    jobs.sync_cycle()
    login_as("viewer")
    ids = ",".join(str(t.id) for t in bunch.tasks)
    rows = client.get(f"/tasks/panda?ids={ids}").get_data(as_text=True)
    assert rows.count('hx-swap-oob="true"') == 2 + 2  # two rows, the banner, the poller
    assert "status-running" in rows and "every" in rows.split('id="panda-poll"', 1)[1]

    sim.advance(20_000)  # done
    jobs.sync_cycle()
    rows = client.get(f"/tasks/panda?ids={ids}").get_data(as_text=True)
    assert rows.count("status-done") == 2
    assert "hx-get" not in rows.split('id="panda-poll"', 1)[1]  # nothing active: polling stops
    bunch_rows = client.get(f"/tasks/panda?bunch={bunch.id}").get_data(as_text=True)
    assert bunch_rows.count("status-done") == 2  # read in the last minute: the final state arrives


def test_a_manager_syncs_one_task_now(sim, submit, client, login_as):
    task = submit(1).tasks[0]
    login_as("manager")
    g.pop("csrf_token", None)
    from tests.tasks.conftest import post

    page = post(client, f"/tasks/{task.id}/refresh", {}, follow_redirects=True).get_data(as_text=True)
    assert "PanDA has not picked the task up yet" in page
    sim.advance(150)
    page = post(client, f"/tasks/{task.id}/refresh", {}, follow_redirects=True).get_data(as_text=True)
    assert "PanDA says running; jobs done / failed / total: 0 / 0 / 10" in page
    assert "status-running" in page.split('id="panda-task-status"', 1)[1][:200]
