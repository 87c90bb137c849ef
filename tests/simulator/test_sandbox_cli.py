"""Sandbox start from the panel's settings, and the standalone `prodpanel panda-sim` command."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys

import pytest
import requests
from flask import Flask

from app.config import Settings
from app.panda.simulator import SimConfig, create_simulator, serve_in_thread
from app.panda.simulator.sandbox import EXTENSION, URL_KEY, attach_sandbox, start_sandbox
from tests.helpers import free_port, wait_until


def test_start_sandbox_from_settings(tmp_path):
    base = Settings(instance_dir=tmp_path)
    settings = dataclasses.replace(
        base, panda=dataclasses.replace(base.panda, sim_seed=9, sim_transports="v1")
    )
    running = start_sandbox(settings)
    try:
        sim = running.app
        assert sim.config.seed == 9 and sim.config.transports == "v1" and sim.config.vo == "spd"
        assert requests.get(f"{running.url}/api/v1/system/is_alive", timeout=5).status_code == 200
        token = sim.mint_token("admin", "Admin User", ["spd", "spd/production"])
        headers = {
            "Authorization": f"Bearer {token}",
            "Origin": "spd.production",
            "Accept": "application/json",
        }
        attrs = requests.get(
            f"{running.url}/api/v1/system/get_user_attributes", headers=headers, timeout=5
        ).json()
        assert attrs["data"]["is_production_user"] is True
        flask_app = Flask(__name__)
        attach_sandbox(flask_app, running)
        assert flask_app.extensions[EXTENSION] is sim and flask_app.config[URL_KEY] == running.url
    finally:
        running.stop()


def test_stop_survives_trigger_pulls_racing_with_the_shutdown(monkeypatch):
    running = serve_in_thread(create_simulator(SimConfig(time_scale=0)))
    assert requests.get(f"{running.url}/server/panda/isAlive", timeout=5).text == "alive=yes"
    trigger = running._server.trigger
    real_pull = trigger._physical_pull

    def racing_pull() -> None:
        real_pull()  # the loop wakes and runs the stop thunk at once ...
        wait_until(lambda: not running._thread.is_alive(), timeout=5, message="server loop to end")
        real_pull()  # ... before this pull (stop's own, or a worker's after its reply) is written

    monkeypatch.setattr(trigger, "_physical_pull", racing_pull)
    running.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{running.url}/server/panda/isAlive", timeout=5)


def test_panda_sim_command_serves_until_sigterm():
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "prodpanel")
    proc = subprocess.Popen(
        [exe, "panda-sim", "--port", str(port), "--time-scale", "0", "--seed", "4"],
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

        wait_until(alive, timeout=20, message="panda-sim to listen")
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
    assert f"PanDA simulator on http://127.0.0.1:{port}" in out and "PanDA simulator stopped." in out
