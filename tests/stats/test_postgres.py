"""The statistics on PostgreSQL (the shared-instance database): the summary's upserts, the error
grouping, the stalled-task query and the pages, with data synced from the simulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app import clock
from app.extensions import db as _db
from app.panda.calllog import flush_call_log
from app.stats import alerts, errors, progress, summary
from app.stats.models import ALL_DAYS, TaskProgress
from app.sync import jobs
from tests.stats.test_statistics import (
    run_to_the_end,
    split_rows,
    splits_of,
    status_counts_agree,
    successful_totals_agree,
    summary_rows,
)
from tests.tasks.conftest import sandbox_app

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(settings_factory, migrated_sqlite, migrated_pg_url, sim):
    settings = settings_factory(
        database_url=migrated_pg_url, panda={"transport": "v1", "retries": 0, "read_timeout_s": 5.0}
    )
    application = sandbox_app(settings, migrated_sqlite, sim)
    application.config["TESTING"] = True
    with application.app_context():
        yield application
        flush_call_log(10)
        _db.session.remove()
        _db.engine.dispose()


def test_statistics_errors_and_alerts_on_postgresql(sim, submit, make_user, client, login_as):
    alice, bob, moving = run_to_the_end(sim, submit, make_user)
    kept = split_rows()
    assert kept[("all", ALL_DAYS, "")][0] == 5 and moving[("all", ALL_DAYS, "")][0] == 5
    assert kept == splits_of(summary_rows())
    summary.rebuild()
    assert split_rows() == kept
    successful_totals_agree()  # read from the summary (unfiltered, by status), summed in SQL (filtered)
    status_counts_agree(10_000)  # the summary's (unfiltered), counted in SQL (filtered)
    groups = errors.error_groups(errors.Scope())
    assert groups and sum(g.jobs for g in groups) > 0
    login_as("viewer")
    assert client.get("/statistics/").status_code == 200
    assert client.get("/statistics/errors").status_code == 200
    assert client.get("/").status_code == 200

    # A running task whose jobs stopped moving a day ago is stalled; the final ones never are.
    running = submit(1, owner=alice, number=10).tasks[0]
    sim.advance(150)
    jobs.sync_cycle()
    _db.session.execute(
        update(TaskProgress)
        .where(TaskProgress.task_id == running.id)
        .values(moved_at=clock.now() - timedelta(days=1))
    )
    raised = [a for a in alerts.evaluate() if a.kind == "stalled"]
    assert [(a.task_id, a.user_id) for a in raised] == [(running.id, alice.id)]
    assert alerts.evaluate() == []  # the unique key keeps one row per event
    assert [s.id for s in progress.bunch_progress(running.bunch_id).stalled] == [running.id]
