"""Fixtures: a simulator served on loopback with a frozen clock, tokens, and a tiny HTTP helper."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import requests

from pandasim import SimConfig, create_simulator, serve_in_thread

PROD_GROUPS = ["spd", "spd/production"]

EVGEN_PARAMS: dict[str, Any] = {
    "vo": "spd",
    "prodSourceLabel": "managed",
    "taskType": "prod",
    "processingType": "simul",
    "taskName": "spd.mc.test.evgen.v3",
    "userName": "spd_prod",
    "workingGroup": "spd_prod",
    "taskPriority": 900,
    "architecture": "",
    "transUses": "",
    "transHome": "",
    "transPath": "/cvmfs/spd.jinr.ru/scripts/run_evgen.sh",
    "container_name": "/cvmfs/spd.jinr.ru/images/spdroot.sif",
    "cloud": "JINR",
    "noInput": True,
    "nEvents": 10000,
    "nEventsPerJob": 1000,
    "skipScout": True,
    "ramCount": 2000,
    "ramUnit": "MBPerCore",
    "walltime": 3600,
    "coreCount": 1,
    "log": {
        "type": "template",
        "param_type": "log",
        "dataset": "spd.mc.test.evgen.v3.log",
        "value": "spd.mc.test.evgen.v3.log.${SN}.tgz",
        "token": "local",
        "destination": "local",
    },
    "jobParameters": [
        {"type": "constant", "value": "--config gen.cfg"},
        {"type": "template", "param_type": "number", "value": "--seed ${RNDMSEED}", "offset": 1000},
        {"type": "template", "param_type": "number", "value": "--first-event ${FIRSTEVENT}", "offset": 0},
        {"type": "constant", "value": "--nevents 1000"},
        {
            "type": "template",
            "param_type": "output",
            "dataset": "spd.mc.test.evgen.v3.root",
            "value": "--output spd.mc.test.evgen.v3.${SN/P}.root",
        },
    ],
}


def evgen(name: str = "spd.mc.test.evgen.v3", **overrides: Any) -> dict[str, Any]:
    params = copy.deepcopy(EVGEN_PARAMS)
    params["taskName"] = name
    params.update(overrides)
    return params


def reco(name: str, input_ds: str = "spd.mc.test.evgen.v3.root", **overrides: Any) -> dict[str, Any]:
    params = evgen(name, **overrides)
    for key in ("noInput", "nEvents", "nEventsPerJob"):
        params.pop(key, None)
    params.update(processingType="reco", nFilesPerJob=1)
    params["log"] = dict(params["log"], dataset=f"{name}.log", value=f"{name}.log.${{SN}}.tgz")
    params["jobParameters"] = [
        {"type": "template", "param_type": "input", "dataset": input_ds, "value": "--input ${IN/L}"},
        {
            "type": "template",
            "param_type": "output",
            "dataset": f"{name}.root",
            "value": f"--output {name}.${{SN/P}}.root",
        },
    ]
    return params


class Panda:
    """Raw HTTP against the simulator, like a careful client: JSON + Accept + token + Origin."""

    def __init__(self, url: str, token: str | None, origin: str | None = "spd.production") -> None:
        self.url = url
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if origin:
            self.headers["Origin"] = origin

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.url}/api/v1/{path}", params=params, headers=self.headers, timeout=10)

    def post(self, path: str, **body: Any) -> requests.Response:
        return requests.post(f"{self.url}/api/v1/{path}", json=body, headers=self.headers, timeout=10)

    def call(self, path: str, **args: Any) -> dict[str, Any]:
        """GET for reads, POST for the rest; returns the decoded envelope (HTTP 200 asserted)."""
        verb = self.get if path.split("/")[-1].startswith("get_") or path.endswith("is_alive") else self.post
        response = verb(path, **args)
        assert response.status_code == 200, response.text
        return response.json()

    def submit(self, params: dict[str, Any], parent_tid: int | None = None) -> int:
        body: dict[str, Any] = {"task_parameters": params}
        if parent_tid is not None:
            body["parent_tid"] = parent_tid
        reply = self.call("task/submit", **body)
        assert reply["success"], reply
        return reply["data"]

    def status(self, task_id: int) -> str | None:
        reply = self.call("task/get_status", task_id=task_id)
        return reply["data"] if reply["success"] else None


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=7, time_scale=0)


@pytest.fixture
def sim(sim_config):
    """(SimApp, url) served on loopback; the simulated clock moves only with sim.advance()."""
    app = create_simulator(sim_config)
    running = serve_in_thread(app)
    try:
        yield app
    finally:
        running.stop()


@pytest.fixture
def legacy_sim():
    """A simulator emulating panda-server 0.8.x (the legacy /server/panda/ API only)."""
    app = create_simulator(SimConfig(seed=7, time_scale=0, version="0.8"))
    running = serve_in_thread(app)
    try:
        yield app
    finally:
        running.stop()


@pytest.fixture
def prod(sim) -> Panda:
    """A production manager (group spd/production, Origin spd.production)."""
    return Panda(sim.url, sim.mint_token("pm", "test manager", PROD_GROUPS))


@pytest.fixture
def user(sim) -> Panda:
    """A plain VO member (Origin spd, no production role)."""
    return Panda(sim.url, sim.mint_token("uu", "plain user", ["spd"]), origin="spd")
