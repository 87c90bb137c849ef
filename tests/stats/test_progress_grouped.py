"""The home page's progress lines: the progress of several bunches and chains read in two statements
each equals the progress of each one read on its own."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app import clock
from app.chains.models import ChainStep
from app.extensions import db
from app.stats import progress
from app.stats.models import TaskProgress
from app.tasks.models import Task, TaskBunch
from tests.speed import world


def test_grouped_progress_equals_each_on_its_own(app, make_user):
    w = world.build(make_user("admin"), 6, 2)
    first = db.session.get(TaskBunch, w.bunch_id)
    assert first is not None
    for i, task in enumerate(first.tasks[:4]):  # two stalled, two moving; one of them accounted
        moved = clock.now() - timedelta(hours=10 if i % 2 else 1)
        task.panda_task_id, task.panda_status = task.panda_task_id or 5000 + i, "running"
        task.jobs_total, task.jobs_done, task.events_requested = 10, 3 + i, 1000
        db.session.add(TaskProgress(task_id=task.id, moved_at=moved))
    first.tasks[4].accounted_at, first.tasks[4].events_processed = clock.now(), 777
    db.session.commit()
    bunch_ids = list(db.session.scalars(select(TaskBunch.id).order_by(TaskBunch.id)))
    missing = max(bunch_ids) + 100

    grouped = progress.bunch_progresses([*bunch_ids, missing])
    alone = {i: progress.progress_of(Task.bunch_id == i) for i in [*bunch_ids, missing]}
    assert grouped == alone
    assert len(grouped[w.bunch_id].stalled) == 2 and grouped[w.bunch_id].produced > 0
    assert grouped[missing].tasks == 0 and grouped[missing].requested == 0

    in_chain = Task.bunch_id.in_(select(ChainStep.bunch_id).where(ChainStep.chain_id == w.chain_id))
    assert progress.chain_progresses([w.chain_id]) == {w.chain_id: progress.progress_of(in_chain)}
    assert progress.chain_progress(w.chain_id).tasks == 12
    assert progress.bunch_progresses([]) == {} == progress.chain_progresses([])
