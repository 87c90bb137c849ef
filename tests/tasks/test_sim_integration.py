"""The task flow over real HTTP against the PanDA simulator (real client, real tokens, real database).

Faults are injected by the simulator: HTTP 500s, ``success: false`` replies and submits that are
committed and then time out. Every task must reach PanDA exactly once.
"""

from __future__ import annotations

import re
import threading

import pytest
from flask import g
from sqlalchemy import func, select

from app.extensions import db as _db
from app.extensions import panda_clients
from app.launches.models import Launch
from app.panda.calllog import flush_call_log
from app.panda.models import PandaCall
from app.tasks.models import Task, TaskBunch
from pandasim import Faults, SimConfig, Timings, create_simulator, serve_in_thread
from tests.helpers import csrf_token, settle_launches, wait_until
from tests.tasks.conftest import TAG, form_data, form_values, post, sandbox_app, sim_definition


@pytest.fixture
def sim(request):
    config = SimConfig(
        version=getattr(request, "param", "1.0"),  # "0.8": the legacy API only
        seed=11,
        time_scale=600.0,  # JEDI's pick-up window (60 simulated s) lasts 0.1 s
        client_ids=("prodpanel",),
        timings=Timings(pickup_s=60.0),
    )
    running = serve_in_thread(create_simulator(config))
    yield running.app
    running.stop()


@pytest.fixture
def app(settings_factory, migrated_sqlite, sim):
    """The panel in sandbox mode, bound to the simulator, with short PanDA timeouts."""
    settings = settings_factory(
        panda={
            "read_timeout_s": 1.0,
            "connect_timeout_s": 1.0,
            "retries": 3,
            "retry_backoff_s": 0.05,
            # Pinned: a fault-injected 500 on the auto-detection probe must not switch the panel to legacy.
            "transport": "legacy" if sim.config.version == "0.8" else "v1",
        },
        tasks={"reconcile_grace_s": 2.0},
    )
    application = sandbox_app(settings, migrated_sqlite, sim)
    application.config["TESTING"] = True
    with application.app_context():
        yield application
        flush_call_log(10)
        _db.session.remove()
        _db.engine.dispose()


def sim_task_names(sim) -> list[str]:
    return [row[0] for row in sim.state.select_rows("SELECT taskName FROM tasks", ())]


def settle(client, bunch_id: int, rounds: int = 15) -> None:
    """Wait for the dispatcher, resending failed tasks (never unknown ones) until all are in PanDA."""
    for _ in range(rounds):
        assert settle_launches(120)
        _db.session.expire_all()
        bunch = _db.session.get(TaskBunch, bunch_id)
        statuses = [t.latest_launch.status for t in bunch.tasks]
        if all(t.panda_task_id for t in bunch.tasks):
            return
        assert "sending" not in statuses
        if "failed" in statuses:
            post(client, f"/tasks/bunch/{bunch_id}/resend", {})
        else:
            post(client, f"/tasks/bunch/{bunch_id}/dispatch", {})
    raise AssertionError("the bunch did not reach PanDA")


def test_bunch_of_20_submitted_exactly_once_despite_faults(client, login_as, sim):
    user = login_as("manager")
    sim.set_faults(Faults(error_rate=0.25, submit_timeout_rate=0.3, stall_s=1.5))
    response = post(
        client, "/tasks/create", form_data(sim_definition(bunch_size=20, initial_offset=100), key="b20")
    )
    assert response.status_code == 302
    bunch = _db.session.scalar(select(TaskBunch))
    settle(client, bunch.id)
    sim.set_faults(Faults())

    expected = [f"PROD2025-008.SIM.{i}" for i in range(1, 21)]
    assert sorted(sim_task_names(sim)) == sorted(expected)  # each name exactly once in PanDA
    tasks = _db.session.scalars(select(Task).order_by(Task.bunch_index)).all()
    for task in tasks:
        stored = sim.state.select_rows("SELECT jediTaskID FROM tasks WHERE taskName=?", (task.name,))
        assert [r[0] for r in stored] == [task.panda_task_id]
    launches = _db.session.scalars(select(Launch)).all()
    hows = [(launch.manifest or {}).get("panda_reply", {}).get("how") for launch in launches]
    assert "reconciled by task name" in hows, "no timeout-after-commit was exercised"
    assert any(launch.status == "failed" for launch in launches), "no HTTP 500 / refusal was exercised"
    # The parameters PanDA stored are exactly the ones previewed, saved and put in the manifest.
    first = tasks[0]
    panda = panda_clients()
    try:
        stored = panda.get_task_parameters(first.submitted_launch.created_by, first.panda_task_id)
    finally:
        panda.close()
    assert stored == first.params == first.submitted_launch.manifest["task_parameters"]
    assert [t.spec["offset"] for t in tasks][:3] == [100, 10100, 20100]
    page = client.get(f"/tasks/bunch/{bunch.id}").get_data(as_text=True)
    assert "20 of 20 submitted" in page
    assert user.username in first.submitted_launch.manifest["user"]


def test_double_post_same_key_creates_one_bunch(app, client, login_as, sim):
    login_as("manager")
    data = form_data(sim_definition(bunch_size=4), key="dbl")
    g.pop("csrf_token", None)
    token = csrf_token(client, "/tasks/")
    cookie = client.get_cookie("prodpanel_session").value
    results = []

    def submit():
        other = app.test_client()
        other.set_cookie("prodpanel_session", cookie)
        results.append(other.post("/tasks/create", data={"csrf_token": token, **data}).status_code)

    threads = [threading.Thread(target=submit) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    results.append(post(client, "/tasks/create", data).status_code)
    assert results == [302] * 6
    assert _db.session.scalar(select(func.count()).select_from(TaskBunch)) == 1
    bunch = _db.session.scalar(select(TaskBunch))
    settle(client, bunch.id)
    assert sorted(sim_task_names(sim)) == [f"PROD2025-008.SIM.{i}" for i in range(1, 5)]


def call_log_rows(html: str) -> list[str]:
    """The table rows of the task page's "PanDA interactions" section."""
    section = html.split('class="panda-task-calls"', 1)[1].split("</section>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", section, re.S)


def test_task_page_shows_stored_state_and_never_calls_panda(client, login_as, sim):
    user = login_as("manager")
    post(client, "/tasks/create", form_data(sim_definition(), key="one"))
    bunch = _db.session.scalar(select(TaskBunch))
    settle(client, bunch.id)
    task = bunch.tasks[0]
    flush_call_log(5)
    calls_before = _db.session.scalar(select(func.count()).select_from(PandaCall))
    html = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    flush_call_log(5)
    assert _db.session.scalar(select(func.count()).select_from(PandaCall)) == calls_before
    assert (
        'id="refresh-from-panda"' in html
        and "status-" not in html.split('id="panda-task-status"', 1)[1][:200]
    )
    # The call log names the one submit (no faults were injected): its user and its outcome.
    submits = [row for row in call_log_rows(html) if "<code>submit</code>" in row]
    assert len(submits) == 1, call_log_rows(html)
    assert f"<td>{user.username}</td>" in submits[0]
    assert re.search(r'class="badge panda-outcome outcome-ok [^"]*">ok</span>', submits[0])


def test_sync_this_task_now_before_and_after_jedi_picks_the_task_up(client, login_as, sim):
    login_as("manager")
    sim.clock.set_scale(0)  # simulated time stands still: the task stays in DEFT's "waiting"
    post(client, "/tasks/create", form_data(sim_definition(), key="wait"))
    bunch = _db.session.scalar(select(TaskBunch))
    settle(client, bunch.id)
    task_id = bunch.tasks[0].id
    refresh = post(client, f"/tasks/{task_id}/refresh", {}, follow_redirects=True).get_data(as_text=True)
    assert "PanDA has not picked the task up yet" in refresh
    sim.advance(300)
    refresh = post(client, f"/tasks/{task_id}/refresh", {}, follow_redirects=True).get_data(as_text=True)
    assert "not picked the task up" not in refresh
    # The status and counters shown are PanDA's (simulated time stands still, so they agree).
    task = _db.session.get(Task, task_id)
    panda = panda_clients()
    try:
        info = panda.get_detailed_info(task.submitted_launch.created_by, task.panda_task_id)
    finally:
        panda.close()
    assert info.n_files == 10  # 10000 events, 1000 per job
    counters = f"{info.n_files_finished} / {info.n_files_failed} / {info.n_files}"
    assert f"jobs done / failed / total: {counters}" in refresh
    assert task.panda_status == info.status and task.panda_checked_at is not None
    status = refresh.split('id="panda-task-status"', 1)[1][:300]
    assert f"status-{info.status}" in status  # the page shows what was stored
    flush_call_log(5)
    calls = client.get(f"/tasks/{task_id}").get_data(as_text=True).split("PanDA interactions", 1)[1]
    assert "<code>submit</code>" in calls and "<code>get_detailed_info</code>" in calls


def test_viewer_sees_the_stored_status_without_refresh_or_calls(client, login_as, sim):
    login_as("manager")
    post(client, "/tasks/create", form_data(sim_definition(), key="v"))
    bunch = _db.session.scalar(select(TaskBunch))
    settle(client, bunch.id)
    task = bunch.tasks[0]
    task.panda_status = "running"
    _db.session.commit()
    post(client, "/logout", {})
    g.pop("csrf_token", None)  # the token cached for the manager's session (one app context)
    login_as("viewer")
    html = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "status-running" in html.split('id="panda-task-status"', 1)[1][:300]
    assert 'id="refresh-from-panda"' not in html and "PanDA interactions" not in html
    assert post(client, f"/tasks/{task.id}/refresh", {}).status_code == 403


@pytest.mark.parametrize("sim", ["0.8"], indirect=True)
def test_legacy_server_bunch_exactly_once(client, login_as, sim):
    """Against a pre-1.0 server (form fields, pickled replies) reconciliation lists tasks by time."""
    login_as("manager")
    sim.set_faults(Faults(submit_timeout_rate=0.4, stall_s=1.5))
    definition = sim_definition(bunch_size=6, request_id=None)  # reqID defaults to the task id
    post(client, "/tasks/create", form_data(definition, key="legacy"))
    bunch = _db.session.scalar(select(TaskBunch))
    settle(client, bunch.id)
    sim.set_faults(Faults())
    assert sorted(sim_task_names(sim)) == [f"PROD2025-008.SIM.{i}" for i in range(1, 7)]
    hows = [
        (launch.manifest or {}).get("panda_reply", {}).get("how")
        for launch in _db.session.scalars(select(Launch))
    ]
    assert "reconciled by task name" in hows


def test_reco_for_a_sim_bunch_is_submitted_with_parent_tid(client, login_as, sim):
    login_as("manager")
    post(client, "/tasks/create", form_data(sim_definition(bunch_size=2), key="sim"))
    sim_bunch = _db.session.scalar(select(TaskBunch))
    settle(client, sim_bunch.id)
    page = client.get(f"/tasks/bunch/{sim_bunch.id}").get_data(as_text=True)
    assert f'href="/tasks/new?step=RECO&amp;after={sim_bunch.id}"' in page
    form = client.get(f"/tasks/new?step=RECO&after={sim_bunch.id}").get_data(as_text=True)
    assert '<h1 class="h4">RECO for bunch PROD2025-008.SIM</h1>' in form
    values = form_values(form)
    assert (values["task_name"], values["parent_task"]) == ("PROD2025-008.RECO", "PROD2025-008.SIM")
    assert values["output_dataset"] == f"MC2025_S1.{TAG}.PROD2025-008.RECO.1" and values["bunch_size"] == "2"
    # Preview: each RECO task diffed against its own parent (not the newest SIM task), nothing sent.
    from app.panda.models import PandaCall

    flush_call_log(5)
    calls_before = _db.session.scalar(select(func.count()).select_from(PandaCall))
    html = post(client, "/tasks/preview", values).get_data(as_text=True)
    assert "nothing has been sent" in html
    assert "PROD2025-008.RECO.1</code> — diff against <code>PROD2025-008.SIM.1</code>" in html
    assert "PROD2025-008.RECO.2</code> — diff against <code>PROD2025-008.SIM.2</code>" in html
    assert "-  &#34;processingType&#34;: &#34;simul&#34;," in html
    assert "+  &#34;processingType&#34;: &#34;reco&#34;," in html
    flush_call_log(5)
    assert _db.session.scalar(select(func.count()).select_from(PandaCall)) == calls_before
    assert len(sim_task_names(sim)) == 2
    assert post(client, "/tasks/create", values).status_code == 302
    reco_bunch = _db.session.scalar(select(TaskBunch).where(TaskBunch.step == "RECO"))
    settle(client, reco_bunch.id)
    sim_tasks = {t.bunch_index: t for t in sim_bunch.tasks}
    sim.advance(120)  # past JEDI's pick-up window: the RECO tasks exist in JEDI now
    panda = panda_clients()
    try:
        for task in reco_bunch.tasks:
            info = panda.get_detailed_info(task.launches[-1].created_by, task.panda_task_id)
            assert info.parent_tid == sim_tasks[task.bunch_index].panda_task_id
            params = panda.get_task_parameters(task.launches[-1].created_by, task.panda_task_id)
            inputs = [i for i in params["jobParameters"] if i.get("param_type") == "input"]
            assert inputs[0]["dataset"] == sim_tasks[task.bunch_index].output_dataset
    finally:
        panda.close()
    detail = client.get(f"/tasks/{sim_tasks[1].id}").get_data(as_text=True)
    relations = detail.split('id="relations"', 1)[1].split("</dl>", 1)[0]
    assert ">PROD2025-008.RECO.1</a>" in relations and ">PROD2025-008.RECO.2</a>" not in relations  # child
    first_reco = reco_bunch.tasks[0]
    relations = client.get(f"/tasks/{first_reco.id}").get_data(as_text=True)
    relations = relations.split('id="relations"', 1)[1].split("</dl>", 1)[0]
    assert f'<a href="/tasks/{sim_tasks[1].id}">PROD2025-008.SIM.1</a>' in relations  # parent
    assert f'<a href="/tasks/{reco_bunch.tasks[1].id}">PROD2025-008.RECO.2</a>' in relations  # sibling
    assert "(task 1 of 2)" in relations


def test_launches_left_pending_are_sent_when_the_panel_starts(app, login_as, sim):
    """A bunch saved but not sent (the panel stopped) goes out at the next start, each task once."""
    from app.runtime import start_scheduler
    from app.tasks import services

    user = login_as("manager")
    bunch, created, _ = services.create_bunch(
        sim_definition(number=31, bunch_size=3), user, "left-pending", is_admin=False
    )
    _db.session.commit()
    assert created and sim_task_names(sim) == []

    stop = start_scheduler(app)  # as `serve` does: the dispatch job's first run is at start
    try:
        wait_until(lambda: len(sim_task_names(sim)) == 3, timeout=60, message="the 3 tasks reached PanDA")
    finally:
        stop()  # waits for the job's run in flight: the ids are stored by then
    _db.session.expire_all()
    assert all(t.panda_task_id for t in _db.session.get(TaskBunch, bunch.id).tasks)
    assert sorted(sim_task_names(sim)) == [f"PROD2025-031.SIM.{i}" for i in range(1, 4)]
