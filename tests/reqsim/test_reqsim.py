"""The requests-service simulator on its own: paging, one request, token, faults, the command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from reqsim import Faults, ReqSimConfig, create_simulator, serve_in_thread
from tests.helpers import free_port, wait_until

API = "/api/v1/requests/"


@pytest.fixture
def running():
    server = serve_in_thread(create_simulator(ReqSimConfig(token="t0k", page_size=10)))
    yield server
    server.stop()


def get(server, path: str = API, token: str = "t0k", **params):
    return requests.get(
        server.url + path, params=params, headers={"Authorization": f"Token {token}"}, timeout=5
    )


def test_pages_cover_every_request_once(running):
    first = get(running).json()
    assert first["count"] == 25 and len(first["results"]) == 10 and first["previous"] is None
    assert first["next"] == f"{running.url}{API}?page=2&page_size=10"
    ids = [r["id"] for page in (1, 2, 3) for r in get(running, page=page).json()["results"]]
    assert ids == list(range(1, 26))
    assert get(running, page=3).json()["next"] is None
    assert get(running, page=4).status_code == 404


def test_one_request_unknown_ids_and_the_token(running):
    record = get(running, f"{API}3/").json()
    assert record["tag"] == "jpsi-P8-spdroot417.27GeV" and record["author"]["full_name"] == "Artem Petrosyan"
    assert record["config_path"] == "/cvmfs/spd.jinr.ru/production/MC/jpsi-P8-spdroot417.27GeV.V01"
    assert get(running, f"{API}999/").status_code == 404
    refused = get(running, token="wrong")
    assert refused.status_code == 401 and refused.json() == {"detail": "Invalid token."}


def test_new_requests_have_no_paths_yet(running):
    record = get(running, f"{API}8/").json()
    assert record["state"] == "New" and record["container"] == "" and record["config_path"] is None


def test_faults_apply_to_the_next_calls_then_stop(running):
    sim = running.app
    sim.set_faults(Faults(http_status=503, times=2))
    assert [get(running).status_code for _ in range(3)] == [503, 503, 200]
    sim.set_faults(Faults(malformed_json=True, times=1))
    with pytest.raises(ValueError):
        get(running).json()
    sim.set_faults(Faults(bad_schema=True))
    broken = get(running).json()["results"][0]
    assert "title" not in broken and broken["events"] == "40000000 events"
    reply = requests.post(f"{running.url}/_sim/faults", json={"latency_ms": 300, "times": 1}, timeout=5)
    assert reply.json()["latency_ms"] == 300
    with pytest.raises(requests.Timeout):
        requests.get(running.url + API, headers={"Authorization": "Token t0k"}, timeout=0.1)
    assert requests.post(f"{running.url}/_sim/faults", json={"nonsense": 1}, timeout=5).status_code == 400


def test_a_request_can_be_added(running):
    added = {**get(running, f"{API}1/").json(), "id": 77, "title": "Added by a test"}
    assert requests.post(f"{running.url}/_sim/requests", json=added, timeout=5).status_code == 200
    assert get(running, f"{API}77/").json()["title"] == "Added by a test"
    assert get(running).json()["count"] == 26


def test_requests_sim_command_serves_until_sigterm():
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "prodpanel")
    proc = subprocess.Popen(
        [exe, "requests-sim", "--port", str(port), "--token", "abc"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def answers() -> bool:
            try:
                reply = requests.get(
                    f"http://127.0.0.1:{port}{API}", headers={"Authorization": "Token abc"}, timeout=1
                )
            except requests.ConnectionError:
                return False
            return reply.status_code == 200 and reply.json()["count"] == 25

        wait_until(answers, timeout=20, message="requests-sim to listen")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert f"requests simulator on http://127.0.0.1:{port}" in out and "stopped" in out


def test_reqsim_imports_nothing_from_app():
    import reqsim
    from tests.pandasim.test_boundary import panel_imports

    package = os.path.dirname(reqsim.__file__)
    offenders = {}
    for name in sorted(os.listdir(package)):
        if name.endswith(".py"):
            with open(os.path.join(package, name), encoding="utf-8") as fh:
                offenders[name] = sorted(panel_imports(fh.read()))
    assert len(offenders) >= 6
    assert {name: found for name, found in offenders.items() if found} == {}
