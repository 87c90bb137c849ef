"""The schedule proofs with a real panel process (tests/launches/panel_process.py, the dispatch
cycles `serve`'s scheduler runs) against the simulator over HTTP: while no panel runs, one launch
falls due, one is cancelled and one is rescheduled; then a panel starts. The due one goes once, the
cancelled one never, the rescheduled one at its new time and not before; a second start sends
nothing more."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from app import clock
from app.extensions import db as _db
from app.launches import schedule
from app.launches.models import Launch
from app.launches.schedule import Schedule
from app.tasks import services
from tests.helpers import wait_until
from tests.launches.test_proofs import app, names_in_panda, panel_process, sim, write_config  # noqa: F401 (fixtures)
from tests.tasks.conftest import TAG, sim_definition


def _launch(user, number: int, at) -> Launch:
    definition = sim_definition(number, output_dataset=f"MC2025_S1.{TAG}.PROD2025-{number:03d}.SIM.1")
    bunch = services.create_bunch(definition, user, f"s{number}", is_admin=False, schedule=Schedule(at=at)).bunch
    return bunch.tasks[0].latest_launch


def _start_panel(instance: Path, sim_url: str) -> None:
    process = panel_process(instance, sim_url)
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 0, output[-2000:]


def test_due_while_down_cancelled_and_rescheduled_with_a_real_panel_process(app, make_user, sim):  # noqa: F811
    instance = Path(app.config["SETTINGS"].instance_dir)
    write_config(instance)
    user = make_user("manager")
    start = clock.now()
    due = _launch(user, 7, start + timedelta(seconds=1))
    cancelled = _launch(user, 8, start + timedelta(seconds=1))
    moved = _launch(user, 9, start + timedelta(seconds=1))
    _db.session.commit()
    assert schedule.cancel([cancelled], user) == 1
    assert schedule.reschedule([moved], Schedule(at=start + timedelta(seconds=4)), user) == 1
    _db.session.commit()
    wait_until(lambda: clock.now() > start + timedelta(seconds=1), timeout=5, message="the first time passed")

    _start_panel(instance, sim.url)  # runs until nothing is left to send
    _db.session.expire_all()
    assert names_in_panda(sim) == {"PROD2025-007.SIM": 1, "PROD2025-009.SIM": 1}
    moved = _db.session.get(Launch, moved.id)
    assert moved.status == "submitted" and moved.claimed_at >= start + timedelta(seconds=4)
    assert _db.session.get(Launch, due.id).status == "submitted"
    assert _db.session.get(Launch, cancelled.id).status == "cancelled"

    _start_panel(instance, sim.url)  # started again: nothing more
    assert names_in_panda(sim) == {"PROD2025-007.SIM": 1, "PROD2025-009.SIM": 1}
    statuses = _db.session.scalars(select(Launch.status).order_by(Launch.id)).all()
    assert statuses == ["submitted", "cancelled", "submitted"]
