"""Each file in examples/ works as its comments say: the SIM→RECO chain and the bunch through the
command line, the sweep and the delayed launches as shell scripts against a live panel over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.chains.models import Chain
from app.cli import main
from app.launches.models import Launch
from app.tasks.models import Task, TaskBunch
from tests.e2e.conftest import LiveServer
from tests.helpers import settle_launches

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def live(app):
    server = LiveServer(app)
    server.start()
    yield server.url
    server.stop()


def script(name: str, url: str, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRODPANEL_URL": url, "PRODPANEL_TOKEN": token,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
    return subprocess.run(
        ["sh", str(EXAMPLES / name), *args], env=env, capture_output=True, text=True, timeout=240
    )


def test_the_sim_reco_chain_previews_then_launches(runner, make_user, fake_panda, db):
    user = make_user("manager").username
    preview = runner.invoke(
        main, ["chain", "submit", str(EXAMPLES / "sim-reco-chain.yaml"), "--preview", "--user", user]
    )
    assert preview.exit_code == 0, preview.output
    assert (
        "step 2 RECO (processing): 3 task(s)" in preview.output
        and "(reads PROD2026-101.SIM.2)" in preview.output
    )
    created = runner.invoke(main, ["chain", "submit", str(EXAMPLES / "sim-reco-chain.yaml"), "--user", user])
    assert created.exit_code == 0, created.output
    assert settle_launches(60)
    assert {"PROD2026-101.SIM.1", "PROD2026-101.SIM.2", "PROD2026-101.SIM.3"} <= set(fake_panda.submits)


def test_the_bunch_creates_five_tasks(runner, make_user, fake_panda, db):
    user = make_user("manager").username
    result = runner.invoke(main, ["import", str(EXAMPLES / "bunch.yaml"), "--user", user])
    assert result.exit_code == 0, result.output
    assert settle_launches(60)
    bunch = db.session.scalar(select(TaskBunch))
    assert [t.name for t in bunch.tasks] == [f"PROD2026-102.SIM.{i}" for i in range(1, 6)]
    assert [t.spec["offset"] for t in bunch.tasks] == [0, 10000, 20000, 30000, 40000]


def test_the_sweep_script_creates_one_chain_per_energy(live, runner, make_token, fake_panda, db):
    user, token = make_token("manager")
    source = runner.invoke(
        main, ["chain", "submit", str(EXAMPLES / "sim-reco-chain.yaml"), "--user", user.username]
    )
    chain_id = source.output.split()[1]
    result = script("sweep.sh", live, token, chain_id)
    assert result.returncode == 0, result.stderr
    preview, created = (json.loads(line) for line in result.stdout.splitlines() if line.strip())
    assert [v["value"] for v in preview["variants"]] == ["13.5GeV", "27GeV"] and not preview["variants"][0][
        "problems"
    ]
    names = [c["name"] for c in created["chains"]]
    assert len(names) == 2 and names[0].endswith("13.5GeV") and names[1].endswith("27GeV")
    assert (
        db.session.scalar(select(Chain).where(Chain.name == names[1]))
        .steps[0]
        .bunch.definition["exec_path"]
        .endswith("minbias-P8-spdroot417-dev.27GeV.V01")
    )


def test_the_delayed_launch_script(live, make_token, fake_panda, db):
    _, token = make_token("manager")
    started = datetime.now(UTC)
    result = script("delayed-launch.sh", live, token)
    assert result.returncode == 0, result.stderr + result.stdout
    sim = db.session.scalar(select(Task).where(Task.name == "PROD2026-101.SIM.1"))
    due = sim.latest_launch.due_at
    assert (
        started + timedelta(hours=2) - timedelta(minutes=1) <= due <= started + timedelta(hours=2, minutes=2)
    )
    waiting = db.session.scalars(
        select(Launch).join(Task, Launch.task).where(Task.name.like("PROD2026-102.SIM.%"))
    ).all()
    assert len(waiting) == 5 and {(w.after_task_id, w.at_percent) for w in waiting} == {(sim.id, 50)}
    assert "50 % of its jobs done" in result.stdout  # the upcoming launches the script lists at the end
    assert fake_panda.submits == []  # nothing was due yet
