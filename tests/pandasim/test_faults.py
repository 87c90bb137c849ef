"""Fault injection through the admin endpoint: latency, errors, resets, committed-then-stalled submits."""

from __future__ import annotations

import time

import pytest
import requests

from pandasim import Faults, SimConfig, create_simulator, serve_in_thread
from tests.pandasim.conftest import Panda, evgen


def _set_faults(url: str, **faults) -> dict:
    reply = requests.post(f"{url}/_sim/faults", json=faults, timeout=5)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_error_rate_gives_http_500_or_success_false(sim, prod):
    _set_faults(sim.url, error_rate=1.0)
    outcomes = set()
    for _ in range(20):
        reply = prod.get("task/get_status", task_id=1)
        if reply.status_code == 500:
            outcomes.add("500")
        else:
            assert reply.json() == {
                "success": False,
                "message": "database error in the PanDA server",
                "data": None,
            }
            outcomes.add("false")
    assert outcomes == {"500", "false"}
    _set_faults(sim.url, error_rate=0.0)
    assert prod.get("system/is_alive").json()["success"]


def test_faults_can_target_methods(sim, prod):
    _set_faults(sim.url, error_rate=1.0, methods=["submit"])
    assert prod.call("system/get_user_attributes")["success"]
    assert prod.post("task/submit", task_parameters=evgen()).status_code in (200, 500)
    assert requests.post(f"{sim.url}/_sim/faults", json={"nonsense": 1}, timeout=5).status_code == 400


def test_connection_reset(sim, prod):
    _set_faults(sim.url, reset_rate=1.0)
    with pytest.raises(requests.exceptions.RequestException):
        prod.get("task/get_status", task_id=1)


def test_submit_committed_then_timeout(sim, prod):
    _set_faults(sim.url, submit_timeout_rate=1.0, stall_s=1.0)
    with pytest.raises(requests.exceptions.RequestException):
        requests.post(
            f"{sim.url}/api/v1/task/submit",
            json={"task_parameters": evgen("spd.mc.lost")},
            headers=prod.headers,
            timeout=0.3,
        )
    _set_faults(sim.url)
    # the task was committed although the client never saw the reply: reconcile by name
    listing = prod.call("task/get_task_parameters", task_id=1)
    assert listing["success"] and listing["data"]["taskName"] == "spd.mc.lost"


def test_latency(sim, prod):
    _set_faults(sim.url, latency_ms=150)
    started = time.monotonic()
    assert prod.get("system/is_alive").json()["success"]
    assert time.monotonic() - started >= 0.15


def _fault_sequence(seed: int) -> list[int]:
    app = create_simulator(SimConfig(seed=seed, time_scale=0, faults=Faults(error_rate=0.5)))
    running = serve_in_thread(app)
    try:
        client = Panda(running.url, None, origin=None)
        return [client.get("system/is_alive").status_code for _ in range(30)]
    finally:
        running.stop()


def test_faults_are_deterministic_for_a_seed():
    assert _fault_sequence(5) == _fault_sequence(5)
    assert _fault_sequence(5) != _fault_sequence(6)


def _faults_per_method(order: list[str]) -> dict[str, list[int]]:
    """Status codes per method when calling `order` against a fresh simulator with seed 5."""
    app = create_simulator(SimConfig(seed=5, time_scale=0, faults=Faults(error_rate=0.5)))
    running = serve_in_thread(app)
    try:
        anonymous = Panda(running.url, None, origin=None)
        seen: dict[str, list[int]] = {}
        for path in order:
            seen.setdefault(path, []).append(anonymous.get(path, task_id=1).status_code)
        return seen
    finally:
        running.stop()


def test_faults_depend_on_the_method_and_its_call_index_not_on_other_calls():
    methods = ["system/is_alive", "task/get_status"]
    one_after_the_other = _faults_per_method([m for m in methods for _ in range(20)])
    interleaved = _faults_per_method(methods * 20)
    assert one_after_the_other == interleaved
    assert {500, 200} <= set(interleaved["task/get_status"])


def test_admin_clock_and_stats(sim, prod):
    prod.submit(evgen())
    before = requests.get(f"{sim.url}/_sim/clock", timeout=5).json()["now"]
    after = requests.post(f"{sim.url}/_sim/clock", json={"advance_s": 3600}, timeout=5).json()["now"]
    assert after > before
    stats = requests.get(f"{sim.url}/_sim/stats", timeout=5).json()
    assert stats["tasks"] == 1 and stats["tasks_by_status"] == {"running": 1}


def test_admin_mint(sim):
    reply = requests.post(
        f"{sim.url}/_sim/mint",
        json={"sub": "s", "name": "Script User", "groups": ["spd"], "aud": "prodpanel"},
        timeout=5,
    )
    token = reply.json()["id_token"]
    attrs = Panda(sim.url, token, origin="spd").call("system/get_user_attributes")
    assert attrs["data"]["user_dn_clean"] == "Script User"
