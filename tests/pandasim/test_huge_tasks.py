"""A task of any size costs the simulator bounded work per call: jobs are modelled in aggregate (per
wave of jobs), never one by one over the whole task, and lists of jobs are capped like the real
server's. A corrupt or oversized state file is refused with a clear message."""

from __future__ import annotations

import sqlite3
import time

import pytest

from pandasim import SimConfig, StateError, create_simulator
from tests.pandasim.conftest import evgen

HUGE = 10**20


def test_a_task_of_1e20_events_answers_every_call_quickly(sim, prod):
    task_id = prod.submit(evgen("spd.mc.huge.evgen", nEvents=HUGE, nEventsPerJob=1))
    failing = prod.submit(evgen("spd.mc.huge.simfail.evgen", nEvents=HUGE, nEventsPerJob=1))
    timings: dict[str, float] = {}

    def timed(path: str, **args):
        started = time.monotonic()
        reply = prod.call(path, **args)
        timings[path] = max(timings.get(path, 0.0), time.monotonic() - started)
        assert reply["success"], reply
        return reply["data"]

    for advance in (150, 3000, 86_400 * 30):  # running, first jobs, a month of waves
        sim.advance(advance)
        for tid in (task_id, failing):
            info = timed("task/get_detailed_info", task_id=tid)
            assert info["status"] == "running" and info["nFiles"] == HUGE
            assert 0 < len(timed("task/get_details", task_id=tid)["PandaID"]) <= 10_000
            assert 0 < len(timed("task/get_job_ids", task_id=tid)) <= 10_000
    assert 0 < len(timed("task/get_job_descriptions", task_id=task_id)) <= 5500
    info = timed("task/get_detailed_info", task_id=task_id)
    assert 0 < info["nFilesFinished"] < HUGE and 0 < info["nFilesFailed"] < info["nFilesFinished"]
    failed = timed("task/get_detailed_info", task_id=failing)
    assert failed["nFilesFailed"] > 0 and failed["nFilesFinished"] == 0
    filters = '{"userName": "spd_prod", "status": "running"}'
    listed = timed("task/get_tasks_detailed_info_since", filters=filters)
    assert {t["jediTaskID"] for t in listed} == {task_id, failing}
    # A hang guard, not a speed target (the old simulator looped over 10^20 jobs and never answered);
    # generous because the suite shares two cores with everything else.
    assert max(timings.values()) < 30, f"a call took too long on a huge task: {timings}"


def test_a_corrupt_state_file_is_refused_with_a_clear_message(tmp_path):
    state = tmp_path / "sim.sqlite3"
    state.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StateError, match=r"sim\.sqlite3.*not a simulator state"):
        create_simulator(SimConfig(state_path=str(state)))


def test_a_state_file_with_an_oversized_task_is_refused(tmp_path):
    state = tmp_path / "sim.sqlite3"
    create_simulator(SimConfig(state_path=str(state))).state.db.close()
    db = sqlite3.connect(state)
    db.execute(
        "INSERT INTO tasks (jediTaskID, taskName, userName, prodSourceLabel, vo, status, modificationTime, "
        "spec, params, sim) VALUES (1, 'x', 'u', 'managed', 'spd', 'running', '2026-01-01 00:00:00', ?, '{}', '{}')",
        ("{" + '"a": "' + "x" * 5_000_000 + '"}',),
    )
    db.commit()
    db.close()
    with pytest.raises(StateError, match=r"task 1 .* too large"):
        create_simulator(SimConfig(state_path=str(state)))
