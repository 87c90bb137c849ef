"""The schedule proofs with a real panel (`prodpanel serve`, its scheduler's dispatch job) against the
simulator over HTTP: while no panel runs, one launch falls due, one is cancelled and one is
rescheduled; then the panel starts. The due one goes once, the cancelled one never, the rescheduled
one at its new time and not before; started again, it sends only what fell due since."""

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
from tests.launches import serving
from tests.launches.test_proofs import app, names_in_panda, served, sim  # noqa: F401 (fixtures)
from tests.tasks.conftest import TAG, sim_definition


def _launch(user, number: int, at) -> Launch:
    definition = sim_definition(number, output_dataset=f"MC2025_S1.{TAG}.PROD2025-{number:03d}.SIM.1")
    bunch = services.create_bunch(
        definition, user, f"s{number}", is_admin=False, schedule=Schedule(at=at)
    ).bunch
    return bunch.tasks[0].latest_launch


def _statuses() -> list[str]:
    _db.session.expire_all()
    statuses = list(_db.session.scalars(select(Launch.status).order_by(Launch.id)))
    _db.session.rollback()  # no read snapshot kept open beside the served panel
    return statuses


def _run_panel(instance: Path, name: str, until) -> None:
    """Serve until `until()` holds, then stop as an operator would (SIGTERM)."""
    panel = serving.serve(instance, name)
    try:
        wait_until(until, timeout=90, interval=0.2, message=f"{name}: the due launches sent")
    finally:
        output = serving.stop(panel)
    assert panel.returncode == 0, output[-2000:]


def test_due_while_down_cancelled_and_rescheduled_with_a_real_panel_process(app, make_user, sim):  # noqa: F811
    instance = Path(app.config["SETTINGS"].instance_dir)
    user = make_user("manager")
    served(instance, sim, user)
    start = clock.now()
    due = _launch(user, 7, start + timedelta(seconds=1))
    cancelled = _launch(user, 8, start + timedelta(seconds=1))
    moved = _launch(user, 9, start + timedelta(seconds=1))
    _db.session.commit()
    assert schedule.cancel([cancelled], user) == 1
    assert schedule.reschedule([moved], Schedule(at=start + timedelta(seconds=4)), user) == 1
    _db.session.commit()
    wait_until(lambda: clock.now() > start + timedelta(seconds=1), timeout=5, message="the first time passed")

    _run_panel(instance, "first", lambda: _statuses() == ["submitted", "cancelled", "submitted"])
    assert names_in_panda(sim) == {"PROD2025-007.SIM": 1, "PROD2025-009.SIM": 1}
    moved = _db.session.get(Launch, moved.id)
    assert moved.claimed_at >= start + timedelta(seconds=4)  # not before its new time
    assert _db.session.get(Launch, due.id).status == "submitted"

    # Started again with one new launch due: that one goes, nothing is sent a second time.
    _launch(user, 10, clock.now())
    _db.session.commit()
    _run_panel(instance, "second", lambda: _statuses()[-1] == "submitted")
    assert names_in_panda(sim) == {"PROD2025-007.SIM": 1, "PROD2025-009.SIM": 1, "PROD2025-010.SIM": 1}
    assert _statuses() == ["submitted", "cancelled", "submitted", "submitted"]
