"""The simulator's server (start, stop) and the standalone `prodpanel panda-sim` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from pandasim import SimConfig, create_simulator, serve_in_thread
from tests.helpers import free_port, wait_until


def test_stop_closes_the_port_even_after_a_session_reused_its_connection():
    running = serve_in_thread(create_simulator(SimConfig(time_scale=0)))
    session = requests.Session()  # keeps connections alive when the server allows it
    for _ in range(2):
        assert session.get(f"{running.url}/api/v1/system/is_alive", timeout=5).status_code == 200
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 5
    for client in (session, requests):  # neither a pooled connection nor a new one is answered
        with pytest.raises(requests.ConnectionError):
            client.get(f"{running.url}/api/v1/system/is_alive", timeout=5)


def test_panda_sim_command_serves_until_sigterm():
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "prodpanel")
    proc = subprocess.Popen(
        [exe, "panda-sim", "--port", str(port), "--time-scale", "0", "--seed", "4", "--version", "0.8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def alive() -> bool:
            try:
                return (
                    requests.get(f"http://127.0.0.1:{port}/server/panda/isAlive", timeout=1).text
                    == "alive=yes"
                )
            except requests.ConnectionError:
                return False

        wait_until(alive, timeout=60, message="panda-sim to listen")  # key generation + start on a busy machine
        minted = requests.post(
            f"http://127.0.0.1:{port}/oidc/mint",
            json={"sub": "s", "name": "Script", "groups": ["spd"], "aud": "prodpanel"},
            timeout=5,
        ).json()
        assert minted["id_token"].count(".") == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert f"PanDA simulator on http://127.0.0.1:{port}  (like panda-server 0.8.x" in out
    assert "PanDA simulator stopped." in out
