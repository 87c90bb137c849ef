"""The request a task counts for is `Task.request_id`: its own, else its chain's. A chain made now
names it in every step; one made before the chain form did (its later steps naming none) gets it
from migration 0025, and both then count alike on the request page, in the task table's request
filter, in the reconciliation and in the statistics by request; editing a bunch keeps it true."""

from __future__ import annotations

import dataclasses

from alembic import command
from sqlalchemy import select

from app import migrate
from app.actions import edit
from app.monitoring.filters import TaskFilter
from app.prodrequests import services
from app.stats import summary
from app.stats.models import ALL_DAYS, StatSplit
from app.tasks.models import Task
from tests.prodrequests.conftest import make_chain, make_task


def _made_before(chain) -> None:
    """Make `chain`'s RECO step as the chain form saved it before it named the chain's request in
    every step: its bunch, its tasks' specs and their request_id name none."""
    reco = chain.steps[1].bunch
    reco.definition = {**reco.definition, "request_id": None}
    for task in reco.tasks:
        task.spec, task.request_id = {**task.spec, "request_id": None}, None


def _by_request(db) -> dict:
    """The statistics' split by request: (day, request key) -> tasks."""
    rows = db.session.scalars(select(StatSplit).where(StatSplit.dimension == "request"))
    return {(r.day, r.key): r.tasks for r in rows}


def test_a_chain_made_before_counts_like_one_made_after_once_migrated(app, make_user, db):
    user = make_user("manager")
    before = make_chain(user, 1, sim_request=3, reco_request=None, statuses=("done", "done"), events=10_000_000)
    after = make_chain(user, 2, sim_request=3, reco_request=None, statuses=("done", "done"), events=10_000_000)
    make_chain(user, 3, sim_request=None, reco_request=None)
    db.session.commit()
    assert [t.request_id for s in after.steps for t in s.bunch.tasks] == [3, 3]  # the form named it
    with db.engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0024_sort_nulls_low")
    _made_before(before)
    summary.rebuild()  # the statistics as the code before counted: the old RECO under "no request"
    db.session.commit()
    assert services.reconciliation().orphan_count == 3  # the old RECO, chain 3's SIM and RECO
    assert _by_request(db)[(ALL_DAYS, "3")] == 3 and _by_request(db)[(ALL_DAYS, "0")] == 1
    migrate.upgrade(db.engine)
    db.session.expire_all()
    migrated = _by_request(db)
    assert migrated[(ALL_DAYS, "3")] == 4 and (ALL_DAYS, "0") not in migrated
    summary.rebuild()  # the migration summed the split as the summary itself does
    assert _by_request(db) == migrated

    counted = ["PROD2025-001.SIM", "PROD2025-001.RECO", "PROD2025-002.SIM", "PROD2025-002.RECO"]
    assert [t.name for t in services.tasks_for_request(3)] == counted
    assert [c.name for c in services.chains_for_request(3)] == ["PROD2025-001", "PROD2025-002"]
    filtered = db.session.scalars(select(Task.name).where(*TaskFilter(request=3).clauses()).order_by(Task.id))
    assert list(filtered) == counted
    report = services.reconciliation()
    assert sorted(t.name for t, _ in report.orphan_tasks) == ["PROD2025-003.RECO", "PROD2025-003.SIM"]
    assert report.orphan_count == 2 and 3 not in {r.id for r in report.without_tasks}
    old_reco = before.steps[1].bunch.tasks[0]
    assert old_reco.spec["request_id"] is None  # what was sent stays as it was; only the count changed


def test_an_edited_bunch_counts_for_what_it_names_else_its_chains(app, make_user, db):
    user = make_user("manager")
    chain = make_chain(user, 1, sim_request=3, reco_request=3)
    single = make_task(user, 2, request_id=3).bunch
    db.session.commit()
    reco = chain.steps[1].bunch
    named_none = dataclasses.replace(edit.definition_of(reco), request_id=None)
    assert "request_id" in edit.save_edit(reco, named_none, user, is_admin=False)
    renamed = dataclasses.replace(edit.definition_of(single), request_id=5)
    assert "request_id" in edit.save_edit(single, renamed, user, is_admin=False)
    db.session.commit()
    assert reco.tasks[0].spec["request_id"] is None and reco.tasks[0].request_id == 3  # its chain's
    assert [t.name for t in services.tasks_for_request(3)] == ["PROD2025-001.SIM", "PROD2025-001.RECO"]
    assert [t.name for t in services.tasks_for_request(5)] == ["PROD2025-002.SIM"]
