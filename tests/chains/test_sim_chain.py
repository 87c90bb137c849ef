"""Chains against the PanDA simulator over real HTTP (real client, tokens, database, dispatcher):
a SIM → RECO chain of 3 ends with 6 tasks, each RECO sent with its SIM's id as parent_tid and pending
in PanDA until that SIM is done; a failed SIM ends its RECO (JEDI breaks it) and the chain page says
why; resending a failed step leaves the rest untouched. Simulated time only moves when the test advances it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.chains.models import Chain
from app.extensions import db as _db
from app.panda.calllog import flush_call_log
from app.runtime import start_scheduler
from pandasim import SimConfig, Timings, create_simulator, serve_in_thread
from tests.chains.conftest import chain_definition, chain_form_data, post
from tests.helpers import wait_until
from tests.tasks.conftest import sandbox_app

FAILING_SIM = "PROD2025-061.SIM.2"
FINAL = ("done", "finished", "failed", "broken", "aborted")


@pytest.fixture
def sim():
    config = SimConfig(
        seed=5,
        time_scale=0.0,  # simulated time stands still unless the test advances it
        client_ids=("prodpanel",),
        timings=Timings(pickup_s=60.0),
        job_failure_rate=0.0,
        outcome_rules={re.escape(FAILING_SIM) + "$": "failed"},
    )
    running = serve_in_thread(create_simulator(config))
    yield running.app
    running.stop()


@pytest.fixture
def app(settings_factory, migrated_sqlite, sim):
    settings = settings_factory(
        panda={
            "read_timeout_s": 2.0,
            "connect_timeout_s": 1.0,
            "retries": 2,
            "retry_backoff_s": 0.05,
            "transport": "v1",
        },
        tasks={"reconcile_grace_s": 2.0},
        scheduler={"dispatch_interval_s": 1.0, "reconcile_interval_s": 5.0},
    )
    application = sandbox_app(settings, migrated_sqlite, sim)
    application.config["TESTING"] = True
    with application.app_context():
        stop_jobs = start_scheduler(application)  # as under `serve`: the dispatch job sends the launches
        yield application
        stop_jobs()
        flush_call_log(10)
        _db.session.remove()
        _db.engine.dispose()


def in_panda(sim) -> dict[str, tuple[int, str, int | None]]:
    """taskName -> (PanDA id, status, parent_tid) as the simulator stores them."""
    rows = sim.state.select_rows("SELECT taskName, jediTaskID, status, parent_tid FROM tasks", ())
    return {name: (tid, status, parent if parent != tid else None) for name, tid, status, parent in rows}


def run_until(sim, predicate, step_s: float = 600.0, limit_s: float = 7 * 24 * 3600) -> None:
    """Advance simulated time in steps until `predicate()` holds (fails past `limit_s` simulated)."""
    elapsed = 0.0
    while not predicate():
        assert elapsed < limit_s, "the simulated tasks never got there"
        sim.advance(step_s)
        elapsed += step_s


def create(client, number: int, **changes) -> Chain:
    """Create a chain through the form and wait until every SIM launch has settled."""
    response = post(
        client,
        "/chains/create",
        chain_form_data(chain_definition(number=number, **changes), key=f"k{number}"),
    )
    assert response.status_code == 302, re.findall(
        r'class="chain-error">([^<]*)', response.get_data(as_text=True)
    )
    chain = _db.session.scalar(select(Chain).order_by(Chain.id.desc()))

    def settled() -> bool:
        _db.session.expire_all()
        return all(t.latest_launch.status in ("submitted", "failed") for t in chain.steps[0].bunch.tasks)

    wait_until(settled, timeout=30, message="the SIM launches settle")
    return chain


def all_submitted(tasks) -> bool:
    _db.session.expire_all()
    return all(t.panda_task_id for t in tasks)


def test_chain_of_three_ends_with_six_linked_tasks_reco_pending_until_sim_done(client, login_as, sim):
    login_as("manager")
    chain = create(client, 60)
    sims, recos = (s.bunch.tasks for s in chain.steps)
    wait_until(
        lambda: all_submitted(recos), timeout=30, message="the RECO launches go once their SIM has an id"
    )
    tasks = in_panda(sim)
    assert sorted(tasks) == sorted(t.name for t in [*sims, *recos])  # 6 tasks, each name once
    for sim_task, reco in zip(sims, recos, strict=True):
        assert tasks[reco.name][0] == reco.panda_task_id
        assert tasks[reco.name][2] == sim_task.panda_task_id  # submitted with parent_tid = its own SIM
        assert reco.submitted_launch.manifest["parent_tid"] == sim_task.panda_task_id

    sim.advance(120)  # JEDI picks the tasks up: the SIMs run, every RECO waits for its SIM
    run_until(sim, lambda: all(in_panda(sim)[t.name][1] == "running" for t in sims), step_s=60)
    assert {in_panda(sim)[t.name][1] for t in recos} == {"pending"}
    run_until(sim, lambda: all(in_panda(sim)[t.name][1] in ("done", "finished") for t in [*sims, *recos]))
    # The chain page shows what the manager's refresh read from PanDA.
    html = post(client, f"/chains/{chain.id}/refresh", {}, follow_redirects=True).get_data(as_text=True)
    assert "Read 6 task(s) from PanDA." in html and "<strong>Finished:</strong>" in html
    assert html.count("status-done") == 6


def test_a_failed_sim_ends_its_reco_and_the_chain_page_says_why(client, login_as, sim):
    login_as("manager")
    chain = create(client, 61)
    sims, recos = (s.bunch.tasks for s in chain.steps)
    wait_until(
        lambda: all_submitted(recos), timeout=30, message="the RECO launches go once their SIM has an id"
    )
    sim.advance(120)
    run_until(sim, lambda: all(in_panda(sim)[t.name][1] in FINAL for t in [*sims, *recos]))
    states = {name: status for name, (_, status, _) in in_panda(sim).items()}
    # JEDI's parent check breaks the child of a parent that failed.
    assert states[FAILING_SIM] == "failed" and states["PROD2025-061.RECO.2"] == "broken"
    assert {states[n] for n in ("PROD2025-061.RECO.1", "PROD2025-061.RECO.3")} == {"done"}
    html = post(client, f"/chains/{chain.id}/refresh", {}, follow_redirects=True).get_data(as_text=True)
    row = html.split(f'id="chain-task-{recos[1].id}"', 1)[1].split("</tr>", 1)[0]
    assert "status-broken" in row and f"its parent {FAILING_SIM} ended failed, so PanDA did not run it" in row


def test_resending_a_failed_step_leaves_the_others_untouched(client, login_as, sim):
    login_as("manager")
    # PanDA refuses the SIM submits (code 10, too many active tasks): nothing of those arrived. (Errors
    # that prove nothing was processed are retried by the panel itself; a refusal is final.)
    sim.config.max_active_tasks_per_user = -1
    chain = create(client, 62, wait_for_parent_done=False)
    sims, recos = (s.bunch.tasks for s in chain.steps)
    failed = [t.name for t in sims if t.latest_launch.status == "failed"]
    assert len(failed) == 3 and "too many active tasks" in sims[0].latest_launch.error
    sim.config.max_active_tasks_per_user = None
    # The RECOs of the refused SIMs wait, saying why; they are not failed and never sent without a parent.
    waiting = [r for s, r in zip(sims, recos, strict=True) if s.name in failed]

    def explained() -> bool:
        _db.session.expire_all()
        return all("to reach PanDA (its launch failed: " in r.latest_launch.error for r in waiting)

    wait_until(explained, timeout=15, message="the waiting RECOs say their SIM's launch failed")
    assert all(r.latest_launch.status == "pending" for r in waiting)
    launches_before = {t.name: [launch.id for launch in t.launches] for t in [*sims, *recos]}
    response = post(client, f"/chains/{chain.id}/steps/1/resend", {}, follow_redirects=True)
    assert f"Resending {len(failed)} failed task(s) of step 1." in response.get_data(as_text=True)
    # The dispatch job (woken by the resend) sends the new attempts, then the RECOs waiting for them.
    wait_until(lambda: all_submitted([*sims, *recos]), timeout=30, message="all 6 tasks in PanDA")
    tasks = in_panda(sim)
    assert sorted(tasks) == sorted(t.name for t in [*sims, *recos])  # each of the 6 exactly once
    for task in [*sims, *recos]:
        new = [launch for launch in task.launches if launch.id not in launches_before[task.name]]
        assert len(new) == (1 if task.name in failed else 0), task.name  # the next step's untouched
    for sim_task, reco in zip(sims, recos, strict=True):
        assert tasks[reco.name][2] == sim_task.panda_task_id
