"""Conformance: the official panda-client 2.2.0 drives the simulator over HTTP.

Each assertion states what panda-client returns against a real panda-server 1.0.x according to
the reference (shared/reference/panda.md §1.2-1.3, §8 quirks).
"""

from __future__ import annotations

import importlib
from datetime import datetime

import pytest

from tests.pandasim.conftest import PROD_GROUPS, evgen

EC_FAILED = 255


@pytest.fixture
def pclient(sim, monkeypatch, tmp_path):
    """pandaclient.Client configured through its environment variables, with a sim-minted ID token."""
    token = sim.mint_token("pm", "test manager", PROD_GROUPS)
    monkeypatch.setenv("PANDA_URL", f"{sim.url}/server/panda")
    monkeypatch.setenv("PANDA_URL_SSL", f"{sim.url}/server/panda")
    monkeypatch.setenv("PANDACACHE_URL", f"{sim.url}/server/panda")
    monkeypatch.setenv("PANDA_AUTH", "oidc")
    monkeypatch.setenv("PANDA_AUTH_VO", "spd.production")
    monkeypatch.setenv("PANDA_AUTH_ID_TOKEN", token)
    monkeypatch.setenv("PANDA_BEHIND_REAL_LB", "1")
    monkeypatch.setenv("PANDA_CONFIG_ROOT", str(tmp_path))
    monkeypatch.setenv("PANDA_VERIFY_HOST", "off")
    import pandaclient.Client

    client = importlib.reload(pandaclient.Client)  # base URLs are read at import time
    assert client.server_base_path_ssl == f"{sim.url}/api/v1"
    return client


def test_hello(pclient):
    assert pclient.hello() == (0, "")


def test_submit_status_details_parameters(sim, pclient):
    status, (code, message) = pclient.insertTaskParams(evgen(), properErrorCode=True)
    assert (status, code, message) == (0, 0, "succeeded. new jediTaskID=1")
    # not yet in JEDI: get_status fails, the client reports a communication failure code
    assert pclient.getTaskStatus(1) == (EC_FAILED, None)
    status, params = pclient.getTaskParamsMap(1)
    assert status == 0 and params["taskName"] == "spd.mc.test.evgen.v3" and params["nEvents"] == 10000
    sim.advance(150)
    assert pclient.getTaskStatus(1) == (0, "running")
    status, details = pclient.getJediTaskDetails({"jediTaskID": 1}, True, True)
    assert status == 0 and details["status"] == "running" and details["jediTaskID"] == 1
    assert details["outDS"] == "spd.mc.test.evgen.v3.root,spd.mc.test.evgen.v3.log"
    assert details["cliParams"] == "" and len(details["PandaID"]) == 10
    status, (ok, info) = pclient.get_task_details_json(1)
    assert status == 0 and ok is True
    assert isinstance(info["creationDate"], datetime)  # {"__datetime__": ...} decoded
    assert info["nFiles"] == 10 and info["raw_task_params"]["nEventsPerJob"] == 1000
    status, jobs = pclient.get_job_descriptions(1)
    assert status == 0 and len(jobs) == 10 and {j["jobStatus"] for j in jobs} <= {"running", "activated"}
    status, ids = pclient.getPandaIDsWithTaskID(1)
    assert status == 0 and sorted(ids) == [j["PandaID"] for j in sorted(jobs, key=lambda j: j["PandaID"])]


def test_child_submission_with_parent_tid(sim, pclient):
    pclient.insertTaskParams(evgen(), properErrorCode=True)
    status, (code, message) = pclient.insertTaskParams(
        evgen("spd.mc.child"), properErrorCode=True, parent_tid=1
    )
    assert (status, code, message) == (0, 0, "succeeded. new jediTaskID=2")
    sim.advance(90)
    status, (ok, info) = pclient.get_task_details_json(2)
    assert info["parent_tid"] == 1 and info["status"] == "pending"
    status, parent = pclient.get_parent_detailed_info(2)
    assert status == 0 and parent["jediTaskID"] == 1


def test_tasks_since(sim, pclient):
    pclient.insertTaskParams(evgen(reqID=77), properErrorCode=True)
    sim.advance(60)
    status, tasks = pclient.getJobIDsJediTasksInTimeRange(
        "2020-01-01 00:00:00", dn="spd_prod", task_type="managed"
    )
    assert status == 0 and list(tasks) == ["77"]  # JSON-stringified reqID keys
    entry = tasks["77"]
    assert (
        entry["jediTaskID"] == 1
        and entry["status"] == "registered"
        and isinstance(entry["modificationTime"], datetime)
    )
    assert "statistics" in entry  # full=True adds the digest
    # the caller's own tasks (dn=None): the production manager submitted them as spd_prod, not as himself
    assert pclient.getJobIDsJediTasksInTimeRange("2020-01-01 00:00:00", task_type="managed") == (0, {})
    status, listing = pclient.get_tasks_detailed_info_since(filters={"userName": "spd_prod"})
    assert status == 0 and [t["jediTaskID"] for t in listing] == [1]
    status, listing = pclient.get_tasks_detailed_info_since(since="2020-01-01 00:00:00")
    assert status == 0 and listing == []  # scoped to the caller's own userName


def test_kill_finish_retry(sim, pclient):
    for name in ("spd.mc.a", "spd.mc.b"):
        pclient.insertTaskParams(evgen(name), properErrorCode=True)
    sim.advance(150)
    # extended mode drops the message: (True, 0) on acceptance
    assert pclient.killTask(1) == (0, (True, 0))
    assert pclient.finishTask(2, soft=True) == (0, (True, 0))
    # a second command for the same task is accepted too and replaces the queued one
    assert pclient.killTask(2) == (0, (True, 0))
    sim.advance(60)
    assert pclient.getTaskStatus(1) == (0, "toabort")
    assert pclient.getTaskStatus(2) == (0, "toabort")
    sim.advance(30)
    # rejected commands: success false -> (False, message)
    assert pclient.killTask(1) == (
        0,
        (False, "Command rejected: the kill command is not accepted if the task is in aborted status "),
    )
    # retry: success true, the code is in data
    status, (code, message) = pclient.retryTask(1)
    assert (status, code) == (0, 4)
    assert message == "Command rejected: the retry command is not accepted if the task is in aborted status "
    assert pclient.killTask(99) == (0, (False, "jediTaskID=99 not found"))


def test_retry_finished_task(sim, pclient):
    pclient.insertTaskParams(evgen("spd.mc.simpartial.x"), properErrorCode=True)
    sim.advance(150 + 3700)
    assert pclient.getTaskStatus(1) == (0, "finished")
    status, (code, message) = pclient.retryTask(1)
    assert (status, code) == (0, 0)
    assert message == "command=retry is registered for task ID 1. will be executed in a few minutes"
    sim.advance(60)
    assert pclient.getTaskStatus(1) == (0, "toretry")


def test_change_priority_through_the_clients_http_layer(sim, pclient):
    """panda-client 2.2.0 has no change-priority function; use its own request decorator/transport."""
    change_priority = pclient.http_request_decorator(
        endpoint="task/change_priority", method="post", json_out=True, output_mode="full"
    )(lambda task_id, priority: {"task_id": task_id, "priority": priority})
    pclient.insertTaskParams(evgen(), properErrorCode=True)
    assert change_priority(1, 950) == (0, {"success": False, "message": "Task not found", "data": None})
    sim.advance(60)
    assert change_priority(1, 950) == (0, {"success": True, "message": "1 tasks changed", "data": None})
    status, (ok, info) = pclient.get_task_details_json(1)
    assert info["currentPriority"] == 950 and info["taskPriority"] == 900


def test_user_without_production_role(sim, pclient, monkeypatch):
    monkeypatch.setenv("PANDA_AUTH_ID_TOKEN", sim.mint_token("uu", "plain user", ["spd"]))
    monkeypatch.setenv("PANDA_AUTH_VO", "spd")
    status, (code, message) = pclient.insertTaskParams(evgen(), properErrorCode=True)
    assert (status, code) == (0, 0)
    status, params = pclient.getTaskParamsMap(1)
    assert (
        params["userName"] == "Plain User" and params["taskType"] == "anal" and params["taskPriority"] == 1000
    )
    # a role the token's groups do not carry: HTTP 403, panda-client reports (403, text)
    monkeypatch.setenv("PANDA_AUTH_VO", "spd.production")
    status, _ = pclient.getTaskStatus(1)
    assert status == EC_FAILED
