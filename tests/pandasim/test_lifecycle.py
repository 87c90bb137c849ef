"""JEDI lifecycle over real HTTP: not-found window, statuses, jobs, chains, time scale, determinism."""

from __future__ import annotations

from pandasim import SimConfig, create_simulator, serve_in_thread
from tests.helpers import wait_until
from tests.pandasim.conftest import Panda, evgen, reco


def test_submitted_task_is_not_found_until_jedi_picks_it_up(sim, prod):
    reply = prod.call("task/submit", task_parameters=evgen())
    assert reply == {"success": True, "message": "succeeded. new jediTaskID=1", "data": 1}
    assert prod.call("task/get_status", task_id=1) == {
        "success": False,
        "message": "Task not found",
        "data": None,
    }
    assert (
        prod.call("task/get_details", task_id=1)["message"]
        == "Task not found or error retrieving the details"
    )
    kill = prod.call("task/kill", task_id=1)
    assert kill == {"success": False, "message": "jediTaskID=1 not found", "data": 2}
    # DEFT already has the parameters
    params = prod.call("task/get_task_parameters", task_id=1)
    assert params["success"] and params["data"]["taskName"] == "spd.mc.test.evgen.v3"
    sim.advance(60)
    assert prod.status(1) == "registered"


def test_evgen_without_scouts_runs_to_done_with_realistic_jobs(sim, prod):
    task_id = prod.submit(evgen())
    sim.advance(60 + 30)
    assert prod.status(task_id) == "defined"
    sim.advance(60)
    assert prod.status(task_id) == "running"
    info = prod.call("task/get_detailed_info", task_id=task_id)["data"]
    assert (
        info["splitRule"]
        == "nEventsPerJob=1000,pushStatusChanges=1,cloudAsVO=1,messageDriven=1,randomSeed=1000,firstEvent=0"
    )
    assert info["nFiles"] == 10 and info["nFilesFinished"] == 0
    assert info["parent_tid"] == task_id and info["currentPriority"] == 900 and info["userName"] == "spd_prod"
    assert info["startTime"]["__datetime__"]
    sim.advance(3600)
    detailed = prod.call("task/get_detailed_info", task_id=task_id)["data"]
    assert detailed["status"] in ("done", "finished")
    assert detailed["nFilesFinished"] + detailed["nFilesFailed"] == 10
    jobs = prod.call("task/get_job_descriptions", task_id=task_id)["data"]
    assert len(jobs) == 10
    finished = [j for j in jobs if j["jobStatus"] == "finished"]
    assert finished, jobs[0]["jobStatus"]
    job = finished[0]
    assert job["nEvents"] == 1000 and job["cpuConsumptionTime"] > 0 and job["jobDuration"] > 2000
    out = [f for f in job["Files"] if f["type"] == "output"][0]
    log = [f for f in job["Files"] if f["type"] == "log"][0]
    assert out["lfn"].startswith("spd.mc.test.evgen.v3.0000") and out["fsize"] > 1e8
    assert log["lfn"].startswith("spd.mc.test.evgen.v3.log.") and log["fsize"] > 0
    assert "--seed 10" in job["jobParameters"]
    details = prod.call("task/get_details", task_id=task_id, include_status=True)["data"]
    assert details["status"] == detailed["status"]
    assert details["outDS"] == "spd.mc.test.evgen.v3.root,spd.mc.test.evgen.v3.log"
    assert details["statistics"].startswith("finished*") and len(details["PandaID"]) == 10


def test_scouting_then_avalanche(sim, prod):
    task_id = prod.submit(evgen("spd.mc.scouted", skipScout=None, nEvents=50000))
    sim.advance(150)
    assert prod.status(task_id) == "scouting"
    assert len(prod.call("task/get_job_ids", task_id=task_id)["data"]) == 10
    reply = prod.call("task/avalanche", task_id=task_id)
    assert reply["data"] == 0
    sim.advance(60)
    assert prod.status(task_id) == "running"
    sim.advance(4000)
    assert prod.status(task_id) in ("done", "finished")
    assert len(prod.call("task/get_job_ids", task_id=task_id)["data"]) == 50


def test_forced_failure_and_broken_outcomes(sim, prod):
    failing = prod.submit(evgen("spd.mc.simfail.evgen"))
    broken = prod.submit(evgen("spd.mc.simbroken.evgen"))
    sim.advance(100)
    assert prod.status(broken) == "tobroken"
    sim.advance(3800)
    assert prod.status(failing) == "failed"
    assert prod.status(broken) == "broken"


def test_child_waits_for_parent_then_runs(sim, prod):
    parent = prod.submit(evgen())
    child = prod.submit(reco("spd.mc.test.reco.v3"), parent_tid=parent)
    sim.advance(90)
    info = prod.call("task/get_detailed_info", task_id=child)["data"]
    assert (
        info["status"] == "pending" and info["errorDialog"] == f"pending until parent task {parent} is done"
    )
    assert info["parent_tid"] == parent
    sim.advance(3700)
    assert prod.status(parent) in ("done", "finished")
    sim.advance(1)
    assert prod.status(child) == "defined"
    sim.advance(3700)
    assert prod.status(child) in ("done", "finished")
    parent_info = prod.call("task/get_parent_detailed_info", task_id=child)["data"]
    assert parent_info["jediTaskID"] == parent


def test_child_breaks_when_parent_fails(sim, prod):
    """JEDI breaks (not fails) the child of a failed parent: only failed tasks can be retried."""
    parent = prod.submit(evgen("spd.mc.simfail.evgen"))
    child = prod.submit(reco("spd.mc.child.reco", input_ds="spd.mc.simfail.evgen.root"), parent_tid=parent)
    sim.advance(3900)
    assert prod.status(parent) == "failed"
    info = prod.call("task/get_detailed_info", task_id=child)["data"]
    assert info["status"] == "broken" and info["errorDialog"] == f"parent task {parent} failed to complete"


def test_tasks_modified_since_and_detailed_info_since(sim, prod):
    ids = [prod.submit(evgen(f"spd.mc.since.{i}", reqID=42)) for i in range(3)]
    sim.advance(60)
    now = sim.clock.now_dt().strftime("%Y-%m-%d %H:%M:%S")
    reply = prod.call(
        "task/get_tasks_modified_since",
        since="2020-01-01 00:00:00",
        dn="spd_prod",
        prod_source_label="managed",
    )
    # keyed by reqID: the three tasks share reqID 42, so one entry survives (like the real server)
    assert list(reply["data"]) == ["42"]
    assert reply["data"]["42"]["status"] == "registered"
    assert prod.call("task/get_tasks_modified_since", since=now, dn="spd_prod", prod_source_label="managed")[
        "data"
    ]
    sim.advance(600)
    assert (
        prod.call("task/get_tasks_modified_since", since=now, dn="nobody", prod_source_label="managed")[
            "data"
        ]
        == {}
    )
    listing = prod.call(
        "task/get_tasks_detailed_info_since", filters='{"userName": "spd_prod", "reqID": "42"}'
    )["data"]
    assert [t["jediTaskID"] for t in listing] == ids
    regex = prod.call(
        "task/get_tasks_detailed_info_since",
        filters='{"userName": "spd_prod", "taskName": "since\\\\.(0|2)$"}',
    )
    assert [t["jediTaskID"] for t in regex["data"]] == [ids[0], ids[2]]
    bad = prod.call("task/get_tasks_detailed_info_since", filters="{nope")
    assert bad == {"success": False, "message": "filters is not valid JSON", "data": None}


def test_ten_thousand_job_task_finishes_in_seconds_with_the_time_scale():
    app = create_simulator(SimConfig(seed=3, time_scale=200_000))
    running = serve_in_thread(app)
    try:
        pm = Panda(running.url, app.mint_token("pm", "test manager", ["spd", "spd/production"]))
        task_id = pm.submit(evgen("spd.mc.big", nEvents=10_000_000, nEventsPerJob=1000))
        wait_until(
            lambda: pm.status(task_id) in ("done", "finished"), timeout=20, message="10k-job task to end"
        )
        info = pm.call("task/get_detailed_info", task_id=task_id)["data"]
        assert info["nFiles"] == 10_000 and info["nFilesFinished"] + info["nFilesFailed"] == 10_000
        assert 0 < info["nFilesFailed"] < 500  # 2 % failure rate
        assert (
            len(pm.call("task/get_job_descriptions", task_id=task_id, unsuccessful_only=True)["data"])
            == info["nFilesFailed"]
        )
    finally:
        running.stop()


def _run_once(seed: int) -> list:
    app = create_simulator(SimConfig(seed=seed, time_scale=0))
    running = serve_in_thread(app)
    try:
        pm = Panda(running.url, app.mint_token("pm", "test manager", ["spd", "spd/production"]))
        task_id = pm.submit(evgen("spd.mc.det", nEvents=200_000))
        app.advance(5000)
        jobs = pm.call("task/get_job_descriptions", task_id=task_id)["data"]
        info = pm.call("task/get_detailed_info", task_id=task_id)["data"]
        counts = [info[k] for k in ("status", "nFiles", "nFilesFinished", "nFilesFailed")]
        return counts + [
            (
                j["PandaID"],
                j["jobStatus"],
                j["nEvents"],
                j["jobDuration"],
                j["computingSite"],
                [f["fsize"] for f in j["Files"]],
            )
            for j in jobs
        ]
    finally:
        running.stop()


def test_same_seed_same_history_other_seed_differs():
    first, again, other = _run_once(11), _run_once(11), _run_once(12)
    assert first == again
    assert first != other


def test_state_in_a_sqlite_file_survives_a_restart(tmp_path):
    path = str(tmp_path / "sim.sqlite3")
    first = create_simulator(SimConfig(seed=5, time_scale=0, state_path=path))
    running = serve_in_thread(first)
    try:
        pm = Panda(running.url, first.mint_token("pm", "test manager", ["spd", "spd/production"]))
        task_id = pm.submit(evgen())
        first.advance(36_000)  # simulated time runs far ahead of the wall clock
        assert pm.status(task_id) in ("done", "finished")
    finally:
        running.stop()
    second = create_simulator(SimConfig(seed=5, time_scale=0, state_path=path))
    assert second.clock.now() >= first.clock.now() - 1
    running = serve_in_thread(second)
    try:
        pm = Panda(running.url, second.mint_token("pm", "test manager", ["spd", "spd/production"]))
        assert pm.status(task_id) in ("done", "finished")
        assert pm.submit(evgen("spd.mc.after.restart")) == task_id + 1
    finally:
        running.stop()


def test_external_issuer_through_discovery():
    iam = create_simulator(SimConfig(time_scale=0))  # plays IAM: only its /oidc endpoints are used
    iam_running = serve_in_thread(iam)
    panda = create_simulator(SimConfig(time_scale=0, issuer_url=f"{iam_running.url}/oidc"))
    running = serve_in_thread(panda)
    try:
        assert panda.issuer is None
        token = iam.mint_token("pm", "test manager", ["spd", "spd/production"])
        assert (
            Panda(running.url, token).call("system/get_user_attributes")["data"]["is_production_user"] is True
        )
    finally:
        running.stop()
        iam_running.stop()


def test_running_task_is_touched_at_every_wave(sim, prod):
    task_id = prod.submit(evgen("spd.mc.waves", nEvents=3_000_000))  # 3 waves of 1000 jobs
    sim.advance(150)
    first = prod.call("task/get_detailed_info", task_id=task_id)["data"]
    sim.advance(3600)
    second = prod.call("task/get_detailed_info", task_id=task_id)["data"]
    assert second["status"] == "running"
    assert second["modificationTime"]["__datetime__"] > first["modificationTime"]["__datetime__"]
    assert 25 <= second["progress"] <= 34
    since = first["modificationTime"]["__datetime__"].replace("T", " ")
    changed = prod.call(
        "task/get_tasks_modified_since", since=since, dn="spd_prod", prod_source_label="managed"
    )
    assert changed["data"][str(task_id)]["jediTaskID"] == task_id
