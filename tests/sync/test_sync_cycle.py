"""The sync cycle against the PanDA simulator over real HTTP: what it stores, how many calls it makes
(counted by the simulator), whose token it uses, and what happens while PanDA is unreachable."""

from __future__ import annotations

from sqlalchemy import select, text

from app import clock
from app.extensions import db, panda_clients
from app.panda.calllog import flush_call_log
from app.panda.models import PandaCall
from app.panda.results import TaskInfo
from app.stats.models import ALL_DAYS, StatSplit
from app.sync import jobs
from app.sync.models import SyncState, TaskStatusChange
from app.sync.services import apply_info, sync_status
from app.tasks.models import Task
from pandasim import Faults


def calls(sim) -> int:
    return sum(sim.calls.values())


def stored(task_id: int) -> Task:
    db.session.expire_all()
    return db.session.get(Task, task_id)


def panda_info(task: Task):
    client = panda_clients()
    try:
        return client.get_detailed_info(task.submitted_launch.created_by, task.panda_task_id)
    finally:
        client.close()


def test_a_task_followed_from_submit_to_done_with_history_progress_and_accounting(sim, submit):
    bunch = submit(2)
    first = bunch.tasks[0]

    before = calls(sim)
    report = jobs.sync_cycle()
    assert report.calls == calls(sim) - before == 1  # one owner, nothing progressing yet
    assert stored(first.id).panda_status is None  # still in DEFT: JEDI has not picked it up

    sim.advance(60 + 30 + 60)  # picked up, refined, jobs generated: running
    report = jobs.sync_cycle()
    task = stored(first.id)
    info = panda_info(task)
    assert task.panda_status == info.status == "running"
    assert report.updated == 2 and report.errors == []
    assert (task.jobs_done, task.jobs_failed, task.jobs_total) == (0, 0, 10)
    assert (task.priority_default, task.priority_current) == (info.task_priority, info.current_priority)
    assert task.events_requested == 10000
    assert task.submitted_at == info.creation_date and task.started_at == info.start_time
    assert task.cloud == "JINR" and task.ended_at is None
    report = jobs.sync_cycle()  # nothing moved: no row changed, yet every row says when it was read
    assert report.updated == 0 and report.seen == 4  # the changes listing + the "running" listing
    cycle_at = db.session.scalars(select(SyncState.last_cycle_at)).one()
    assert stored(first.id).panda_checked_at == cycle_at == stored(bunch.tasks[1].id).panda_checked_at

    sim.advance(3300)  # most jobs ended: the counters move without a change of status
    before = calls(sim)
    report = jobs.sync_cycle()
    assert report.calls == calls(sim) - before == 2  # the changes listing + the "running" listing
    task = stored(first.id)
    info = panda_info(task)
    assert info.status == "running" and 0 < info.n_files_finished < 10
    assert task.jobs_done == info.n_files_finished

    sim.advance(7200)
    jobs.sync_cycle()
    task = stored(first.id)
    info = panda_info(task)
    assert task.panda_status == info.status == "done"
    assert task.ended_at == info.end_time and task.jobs_done == 10
    history = db.session.scalars(
        select(TaskStatusChange.status)
        .where(TaskStatusChange.task_id == task.id)
        .order_by(TaskStatusChange.id)
    ).all()
    assert history == ["running", "done"]  # the statuses in between came and went between two cycles

    # Final accounting: the job descriptions, read once, give walltime, events and sizes.
    assert task.accounted_at is not None and task.accounting_error is None
    client = panda_clients()
    try:
        described = client.get_job_descriptions(task.submitted_launch.created_by, task.panda_task_id)
    finally:
        client.close()
    assert task.accounted_jobs == len(described) == 10
    assert task.walltime_s == int(sum(j.walltime_s for j in described)) > 0
    assert task.events_processed == 10000
    assert task.output_bytes == sum(j.output_bytes for j in described) > 0
    assert task.log_bytes == sum(j.log_bytes for j in described) > 0
    before = sim.calls["get_job_descriptions"]
    jobs.sync_cycle()
    assert sim.calls["get_job_descriptions"] == before  # once per task


def test_calls_per_cycle_are_bounded_whatever_the_number_of_tasks(sim, submit, make_user, app):
    alice, bob = make_user("manager"), make_user("manager")
    submit(40, owner=alice, number=8)
    submit(30, owner=bob, number=9)
    sim.advance(150)  # every task running
    before = calls(sim)
    report = jobs.sync_cycle()  # one "modified since" listing per owner finds them all
    assert report.calls == calls(sim) - before == 2
    assert report.seen == report.updated == 70
    assert set(db.session.scalars(select(Task.panda_status))) == {"running"}

    sim.advance(3300)
    before = calls(sim)
    report = jobs.sync_cycle()
    per_owner = 1 + 1  # changes + the one progressing status they are in ("running")
    assert report.calls == calls(sim) - before == 2 * per_owner
    assert all(t.jobs_done for t in db.session.scalars(select(Task)))

    # A smaller budget: the cycle stops at it and the rest waits for the next cycle.
    app.config["SETTINGS"] = _with_sync(app, max_calls_per_cycle=3)
    before = calls(sim)
    report = jobs.sync_cycle()
    assert calls(sim) - before == 3 and report.deferred == 1


def _with_sync(app, **changes):
    import dataclasses

    settings = app.config["SETTINGS"]
    return dataclasses.replace(settings, sync=dataclasses.replace(settings.sync, **changes))


def test_the_owner_token_is_used_never_another_users(sim, submit, make_user, app, client, login_as):
    owner = make_user("manager")
    task = submit(1, owner=owner).tasks[0]
    sim.advance(150)
    jobs.sync_cycle()
    flush_call_log(10)
    users = set(db.session.scalars(select(PandaCall.user_id).where(PandaCall.method.like("get_tasks%"))))
    assert users == {owner.id}

    # Another manager's "Sync this task now" reads it with the owner's token too.
    login_as("manager")
    from tests.tasks.conftest import post

    page = post(client, f"/tasks/{task.id}/refresh", {}, follow_redirects=True).get_data(as_text=True)
    assert "PanDA says running" in page
    flush_call_log(10)
    reader = db.session.scalars(
        select(PandaCall.user_id).where(PandaCall.method == "get_detailed_info").order_by(PandaCall.id.desc())
    ).first()
    assert reader == owner.id


def test_a_service_identity_lists_every_owners_tasks(sim, submit, make_user, app):
    service = make_user("manager", username="prodsync")
    alice = make_user("manager")
    submit(2, owner=alice)
    sim.advance(150)
    app.config["SETTINGS"] = _with_sync(app, identity="prodsync")
    jobs.sync_cycle()
    flush_call_log(10)
    users = set(db.session.scalars(select(PandaCall.user_id).where(PandaCall.method.like("get_tasks%"))))
    assert users == {service.id}
    assert set(db.session.scalars(select(Task.panda_status))) == {"running"}


def test_an_outage_backs_off_says_since_when_and_recovers(sim, submit, app, client, login_as):
    task = submit(1).tasks[0]
    sim.advance(150)
    sim.set_faults(Faults(reset_rate=1.0))  # every connection dropped: PanDA is unreachable
    report = jobs.sync_cycle()
    state = db.session.get(SyncState, "sandbox")
    assert state.unreachable_since is not None and state.failures == 1 and state.next_attempt_at
    assert report.errors == [] and stored(task.id).panda_status is None  # nothing half-stored

    before = calls(sim)
    report = jobs.sync_cycle()  # backing off: no call at all
    assert calls(sim) == before and report.skipped.startswith("PanDA unreachable")

    login_as("viewer")
    page = client.get("/tasks/").get_data(as_text=True)
    assert "PanDA unreachable since" in page
    assert sync_status().unreachable_since == state.unreachable_since

    sim.set_faults(Faults())
    state.next_attempt_at = state.unreachable_since  # the pause is over
    db.session.commit()
    jobs.sync_cycle()
    assert stored(task.id).panda_status == "running"
    assert sync_status().unreachable_since is None
    assert "PanDA unreachable since" not in client.get("/tasks/").get_data(as_text=True)


def test_whatever_panda_says_is_stored_without_overflow(submit):
    task = submit(1).tasks[0]
    info = TaskInfo.from_dict(
        {"jediTaskID": task.panda_task_id, "status": "running", "nFiles": 10**20, "nFilesFinished": 10**19,
         "taskPriority": 10**12, "raw_task_params": {"nEvents": 10**30, "noInput": True}}
    )  # fmt: skip
    assert apply_info(task, info, clock.now())
    db.session.commit()
    task = stored(task.id)
    assert task.jobs_total == task.jobs_done == 2**31 - 1 and task.events_requested == 2**63 - 1
    assert task.priority_default == 2**31 - 1


def counted_tasks() -> int:
    """The tasks the statistics' summary counts (its all-time total)."""
    return db.session.scalar(select(StatSplit.tasks).where(StatSplit.dimension == "all", StatSplit.day == ALL_DAYS))


def test_a_task_the_database_refuses_loses_only_its_own_update(sim, submit):
    bunch = submit(3)
    refused = bunch.tasks[1]
    sim.advance(150)  # all three running
    db.session.execute(text(  # a real failure of one row inside the batch: its status history is refused
        f"CREATE TRIGGER refuse_one BEFORE INSERT ON task_status_change WHEN NEW.task_id = {refused.id} "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ))  # fmt: skip
    db.session.commit()
    report = jobs.sync_cycle()
    assert [str(refused.panda_task_id) in e and "refused by the test" in e for e in report.errors] == [True]
    assert [stored(t.id).panda_status for t in bunch.tasks] == ["running", None, "running"]
    assert counted_tasks() == 2  # the summary follows what was stored
    assert not (db.session.scalars(select(SyncState.cursors)).one() or {})  # the listing is read again

    db.session.execute(text("DROP TRIGGER refuse_one"))
    db.session.commit()
    report = jobs.sync_cycle()
    assert report.errors == [] and stored(refused.id).panda_status == "running"
    assert counted_tasks() == 3
