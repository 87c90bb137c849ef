"""Sandbox mode: the panel starts the PanDA simulator from its own settings (app/panda/sandbox.py)."""

from __future__ import annotations

import dataclasses

import requests
from flask import Flask

from app.config import Settings
from app.panda.sandbox import EXTENSION, URL_KEY, attach_sandbox, start_sandbox


def test_start_sandbox_from_settings(tmp_path):
    base = Settings(instance_dir=tmp_path)
    settings = dataclasses.replace(
        base, panda=dataclasses.replace(base.panda, sim_seed=9, sim_version="0.8")
    )
    running = start_sandbox(settings)
    try:
        sim = running.app
        assert sim.config.seed == 9 and sim.config.version == "0.8" and sim.config.vo == "spd"
        assert requests.get(f"{running.url}/server/panda/isAlive", timeout=5).text == "alive=yes"
        token = sim.mint_token("admin", "Admin User", ["spd", "spd/production"])
        headers = {"Authorization": f"Bearer {token}", "Origin": "spd.production"}
        voms = requests.get(f"{running.url}/server/panda/getVomsAttr", headers=headers, timeout=5)
        assert voms.text == "GRST_CRED_AUTH_TOKEN_0 : VOMS /spd/Role=production\n"
        flask_app = Flask(__name__)
        attach_sandbox(flask_app, running)
        assert flask_app.extensions[EXTENSION] is sim and flask_app.config[URL_KEY] == running.url
    finally:
        running.stop()
