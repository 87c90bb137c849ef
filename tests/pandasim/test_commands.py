"""Queued commands, status preconditions and return codes (reference §1.3)."""

from __future__ import annotations

import requests

from tests.pandasim.conftest import evgen


def _running_task(sim, prod, **overrides) -> int:
    task_id = prod.submit(evgen(**overrides))
    sim.advance(150)
    assert prod.status(task_id) == "running"
    return task_id


def test_kill_is_queued_then_executed(sim, prod):
    task_id = _running_task(sim, prod)
    reply = prod.call("task/kill", task_id=task_id)
    assert reply == {
        "success": True,
        "message": f"command=kill is registered for task ID {task_id}. will be executed in a few minutes",
        "data": 0,
    }
    assert prod.status(task_id) == "running"  # not yet consumed by TaskCommando
    sim.advance(60)
    assert prod.status(task_id) == "toabort"
    sim.advance(30)
    assert prod.status(task_id) == "aborted"
    jobs = prod.call("task/get_job_descriptions", task_id=task_id)["data"]
    assert {j["jobStatus"] for j in jobs} == {"closed"}
    again = prod.call("task/kill", task_id=task_id)
    assert again == {
        "success": False,
        "message": "Command rejected: the kill command is not accepted if the task is in aborted status ",
        "data": 4,
    }


def test_newer_command_replaces_unexecuted_one(sim, prod):
    task_id = _running_task(sim, prod)
    assert prod.call("task/pause", task_id=task_id)["data"] == 0
    assert prod.call("task/reassign", task_id=task_id, site="PNPI_PROD")["data"] == 0
    sim.advance(60)
    # only the reassignment ran: no pause happened
    assert prod.status(task_id) == "toreassign"
    sim.advance(60)
    info = prod.call("task/get_detailed_info", task_id=task_id)["data"]
    assert info["status"] == "running" and info["site"] == "PNPI_PROD"


def test_pause_resume_keeps_progress(sim, prod):
    task_id = _running_task(sim, prod, nEvents=3_000_000)  # 3000 jobs = 3 waves
    prod.call("task/pause", task_id=task_id)
    sim.advance(60)
    assert prod.status(task_id) == "paused"
    sim.advance(10_000)
    assert prod.status(task_id) == "paused"
    done_while_paused = prod.call("task/get_detailed_info", task_id=task_id)["data"]["nFilesFinished"]
    assert 0 < done_while_paused < 3000
    resume = prod.call("task/resume", task_id=task_id)
    assert resume["data"] == 0
    sim.advance(60)
    assert prod.status(task_id) == "running"
    sim.advance(4 * 3600)
    info = prod.call("task/get_detailed_info", task_id=task_id)["data"]
    assert info["status"] in ("done", "finished")
    assert info["nFilesFinished"] + info["nFilesFailed"] == 3000


def test_resume_rejected_unless_paused(sim, prod):
    task_id = _running_task(sim, prod)
    reply = prod.call("task/resume", task_id=task_id)
    assert reply == {
        "success": False,
        "message": "Command rejected: the resume command is not accepted if the task is in running status ",
        "data": 4,
    }
    assert prod.call("task/avalanche", task_id=task_id)["data"] == 4


def test_soft_finish_and_retry(sim, prod):
    task_id = _running_task(sim, prod, nEvents=3_000_000)
    sim.advance(3700)  # first wave done
    assert prod.call("task/finish", task_id=task_id, soft=True)["data"] == 0
    sim.advance(60)
    assert prod.status(task_id) == "passed"  # the finish was accepted (panda-real-replies.md row 85)
    sim.advance(3700)
    info = prod.call("task/get_detailed_info", task_id=task_id)["data"]
    assert info["status"] == "finished" and info["nFilesFinished"] < 3000
    # retry answers success:true even when rejected; data says what happened
    retry = prod.call("task/retry", task_id=task_id)
    assert retry["success"] is True and retry["data"] == 0
    sim.advance(60)
    assert prod.status(task_id) == "toretry"
    sim.advance(30 + 60)
    assert prod.status(task_id) == "running"
    assert prod.call("task/get_detailed_info", task_id=task_id)["data"]["attemptNr"] == 1
    sim.advance(3 * 3700)
    assert prod.status(task_id) in ("done", "finished")


def test_retry_of_a_running_task_is_rejected_with_success_true(sim, prod):
    task_id = _running_task(sim, prod)
    reply = prod.call("task/retry", task_id=task_id)
    assert reply == {
        "success": True,
        "message": "Command rejected: the retry command is not accepted if the task is in running status ",
        "data": 4,
    }


def test_retry_with_new_parameters_of_a_production_task_creates_a_new_task(sim, prod):
    task_id = _running_task(sim, prod)
    reply = prod.call("task/retry", task_id=task_id, new_parameters={"nEvents": 2000})
    assert reply == {"success": True, "message": "succeeded. new jediTaskID=2", "data": 0}


def test_reload_input_rules(sim, prod):
    task_id = _running_task(sim, prod)
    assert prod.call("task/reload_input", task_id=task_id)["data"] == 4
    sim.advance(3700)
    assert prod.call("task/reload_input", task_id=task_id)["data"] == 0
    sim.advance(60)
    assert prod.status(task_id) == "toincexec"


def test_priority_attribute_split_rule_and_attempts(sim, prod, user):
    task_id = _running_task(sim, prod)
    assert prod.call("task/change_priority", task_id=task_id, priority=950) == {
        "success": True, "message": "1 tasks changed", "data": None,
    }  # fmt: skip
    info = prod.call("task/get_detailed_info", task_id=task_id)["data"]
    assert info["currentPriority"] == 950 and info["taskPriority"] == 900
    jobs = prod.call("task/get_job_descriptions", task_id=task_id)["data"]
    assert {j["currentPriority"] for j in jobs} == {950}
    assert prod.call("task/change_priority", task_id=999, priority=1)["message"] == "Task not found"
    assert user.call("task/change_priority", task_id=task_id, priority=1) == {
        "success": False, "message": "production or pilot role required", "data": None,
    }  # fmt: skip
    assert prod.call("task/change_attribute", task_id=task_id, attribute_name="ramCount", value=4000)[
        "success"
    ]
    bad = prod.call("task/change_attribute", task_id=task_id, attribute_name="nope", value=1)
    assert (
        bad["message"]
        == "nope is not a valid attribute. Valid attributes are ['ramCount', 'wallTime', 'cpuTime', 'coreCount']"
    )
    assert prod.call("task/change_split_rule", task_id=task_id, attribute_name="NF", value="2")["success"]
    assert prod.call("task/change_split_rule", task_id=task_id, attribute_name="XX", value="2")["data"] == 2
    assert "nFilesPerJob=2" in prod.call("task/get_detailed_info", task_id=task_id)["data"]["splitRule"]
    inc = prod.call("task/increase_attempts", task_id=task_id, increase=2)
    assert inc["success"] and inc["data"] == 0 and inc["message"].startswith("increased attemptNr for ")
    assert (
        prod.call("task/increase_attempts", task_id=task_id, increase=-1)["message"]
        == "increase must be a positive integer, got -1"
    )


def test_owner_or_production_role_for_kill(sim, prod, user):
    task_id = _running_task(sim, prod)
    assert user.call("task/kill", task_id=task_id) == {
        "success": False, "message": "not the task owner or no production role", "data": None,
    }  # fmt: skip
    own = user.submit(evgen("user.uu.mytask"))
    sim.advance(150)
    assert user.call("task/kill", task_id=own)["data"] == 0
    assert user.call("task/pause", task_id=own)["message"] == "production or pilot role required"


def test_paused_child_continues_after_resume_when_parent_ended(sim, prod):
    from tests.pandasim.conftest import reco

    parent = prod.submit(evgen())
    child = prod.submit(reco("spd.mc.reco.paused"), parent_tid=parent)
    sim.advance(90)
    assert prod.status(child) == "pending"
    prod.call("task/pause", task_id=child)
    sim.advance(3700)
    assert prod.status(parent) in ("done", "finished") and prod.status(child) == "paused"
    prod.call("task/resume", task_id=child)
    sim.advance(60)
    assert prod.status(child) == "defined"


def test_anonymous_get_task_parameters_needs_a_secure_request(sim, prod):
    prod.submit(evgen())
    anonymous = requests.get(f"{sim.url}/api/v1/task/get_task_parameters", params={"task_id": 1}, timeout=5)
    assert (
        anonymous.text == "{'success': False, 'message': 'SSL secure connection is required', 'data': None}"
    )


def test_retry_of_exhausted_task_needs_the_production_role(sim, prod, user):
    own = user.submit(evgen("user.uu.simexhaust"))
    sim.advance(150 + 3700)
    assert user.status(own) == "exhausted"
    reply = user.call("task/retry", task_id=own)
    assert reply == {
        "success": True,
        "message": "Command rejected: the retry command is not accepted if the task is in exhausted status "
        "and production role is missing",
        "data": 4,
    }
    assert prod.call("task/retry", task_id=own)["data"] == 0
