"""Dependent launches against the PanDA simulator over real HTTP: a launch "when task X is done" and
one "when task X has 50 % of its jobs done" go out once the sync has stored that state of X, each
exactly once, and not before."""

from __future__ import annotations

from app.extensions import db
from app.launches import dispatcher, gates
from app.launches.schedule import Schedule
from app.sync import jobs
from app.tasks import services
from app.tasks.models import Task
from tests.sync.conftest import app, queue_settings, sim, submit, sync_settings  # noqa: F401 (fixtures)
from tests.tasks.conftest import TAG, sim_definition


def _names(panda_sim) -> list[str]:
    return sorted(row[0] for row in panda_sim.state.select_rows("SELECT taskName FROM tasks", ()))


def _waiting(user, number: int, plan: Schedule):
    definition = sim_definition(number, output_dataset=f"MC2025_S1.{TAG}.PROD2025-{number:03d}.SIM.1")
    return services.create_bunch(definition, user, f"dep-{number}", is_admin=False, schedule=plan).bunch.tasks[0]


def test_dependent_launches_go_once_the_simulators_task_gets_there(sim, submit, make_user):  # noqa: F811 (fixtures)
    owner = make_user("manager")
    parent = submit(1, owner=owner, number=7).tasks[0]
    when_done = _waiting(owner, 8, Schedule(after_task=parent))
    at_half = _waiting(owner, 9, Schedule(after_task=parent, at_percent=50))
    db.session.commit()
    seen: dict[str, tuple[str | None, int | None, int | None]] = {}  # task → the parent when it went
    for _ in range(40):
        jobs.sync_cycle()
        dispatcher.dispatch_due()
        db.session.expire_all()
        stored = db.session.get(Task, parent.id)
        for task in (when_done, at_half):
            task = db.session.get(Task, task.id)
            if task.panda_task_id is not None and task.name not in seen:
                seen[task.name] = (stored.panda_status, stored.jobs_done, stored.jobs_total)
        if len(seen) == 2:
            break
        if not seen:
            waiting = db.session.get(Task, at_half.id).latest_launch
            assert waiting.status == "pending" and gates.dependency_gate(waiting).reason.startswith(
                f"waiting for task {parent.panda_task_id} (PROD2025-007.SIM) to reach 50 % of its jobs"
            )
        sim.advance(300)
    status, done, total = seen["PROD2025-009.SIM"]
    assert status == "running" and total == 10 and 5 <= done < 10  # went at half, before the end
    assert seen["PROD2025-008.SIM"][0] == "done"
    assert _names(sim) == ["PROD2025-007.SIM", "PROD2025-008.SIM", "PROD2025-009.SIM"]  # each once
    dispatcher.dispatch_due()
    assert len(_names(sim)) == 3
