"""The scheduler (app/scheduler.py) and its job list (app/jobs.py): real APScheduler, jobs of the test."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import text

from app import scheduler as sched
from app.extensions import db
from app.jobs import JOBS
from app.scheduler import Job, Scheduler
from tests.helpers import wait_until

HOUR = 3600.0


def not_before_an_hour(jobs: Scheduler, name: str) -> bool:
    """Nothing will run job `name` by itself for (almost) an hour: its next run is that far."""
    next_run = jobs.next_run(name)
    return next_run is not None and next_run > datetime.now(UTC) + timedelta(minutes=59)


@pytest.fixture
def make(app):
    """A started scheduler over the given jobs, shut down (and uninstalled) at the end."""
    started: list[Scheduler] = []

    def start(*jobs: Job) -> Scheduler:
        jobs_ = Scheduler(app, jobs)
        sched.install(jobs_)
        jobs_.start()
        started.append(jobs_)
        return jobs_

    yield start
    for jobs_ in started:
        jobs_.shutdown(timeout=5)
    sched.install(None)


def test_the_job_list_names_each_job_once_and_every_job_runs_with_the_default_settings(app):
    names = [job.name for job in JOBS]
    assert len(names) == len(set(names))
    assert {"dispatch", "reconcile", "sync", "final-accounting", "bulk-actions", "token-refresh",
            "session-purge", "catalog-rescan", "panda-call-log"} <= set(names)  # fmt: skip
    settings = app.config["SETTINGS"]
    scheduled = Scheduler(app, JOBS).scheduled()
    queue_jobs = {"task-status-queue", "task-status-hints"}  # the queue is off by default
    assert set(scheduled) == set(names) - queue_jobs
    assert all(job.interval(settings) is None or job.interval(settings) > 0 for job in JOBS)


def test_jobs_use_interval_triggers_coalesce_never_overlap_and_run_late_rather_than_never(app):
    jobs = Scheduler(app, JOBS)
    jobs._scheduler.start(paused=True)  # the job defaults apply once the jobs reach the store
    try:
        apjobs = jobs._scheduler.get_jobs()
        assert len(apjobs) == len(jobs.scheduled()) > 0
        for apjob in apjobs:
            assert isinstance(apjob.trigger, IntervalTrigger)
            assert (apjob.coalesce, apjob.max_instances, apjob.misfire_grace_time) == (True, 1, None)
        assert str(jobs._scheduler.timezone) == "UTC"
        dispatch = jobs._scheduler.get_job("dispatch")
        interval = app.config["SETTINGS"].scheduler.dispatch_interval_s
        assert dispatch.trigger.interval.total_seconds() == interval
    finally:
        jobs._scheduler.shutdown(wait=False)


def test_a_job_starts_at_once_when_asked_and_otherwise_after_one_interval(make):
    runs: list[str] = []
    jobs = make(Job("first", lambda: runs.append("first"), lambda s: HOUR),
                Job("later", lambda: runs.append("later"), lambda s: HOUR, at_start=False))  # fmt: skip
    wait_until(lambda: "first" in runs, message="the at-start job ran")
    assert not_before_an_hour(jobs, "later")  # "later" is not due for an hour, and nothing woke it
    assert jobs.runs["later"] == jobs.wakes["later"] == 0 and runs == ["first"]


def test_wake_runs_a_job_now_in_an_app_context_with_its_own_session_removed_after(app, make):
    seen: list[object] = []

    def job() -> None:
        seen.append(db.session())  # needs an app context; the session is this run's own

    make(Job("j", job, lambda s: HOUR, at_start=False))
    outer = db.session()
    sched.wake("j")
    wait_until(lambda: len(seen) == 1, message="the woken job ran")
    sched.wake("j")
    wait_until(lambda: len(seen) == 2, message="the job ran again when woken again")
    assert seen[0] is not outer and seen[1] is not seen[0]  # removed after each run


def test_wakes_during_a_run_coalesce_into_one_more_run(make):
    running, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def job() -> None:
        runs.append(len(runs))
        running.set()
        release.wait(10)

    jobs = make(Job("slow", job, lambda s: HOUR))
    assert running.wait(10)
    for _ in range(5):
        sched.wake("slow")
    release.set()
    wait_until(lambda: len(runs) == 2 and not jobs.busy("slow"), message="one more run after the wakes")
    # Ended, not woken again and not due for an hour: no third run can come.
    assert len(runs) == jobs.runs["slow"] == 2 and jobs.wakes["slow"] == 5
    assert not_before_an_hour(jobs, "slow")


def test_a_wake_after_commit_waits_for_the_commit_and_is_dropped_by_a_rollback(app, make):
    runs: list[int] = []
    jobs = make(Job("j", lambda: runs.append(1), lambda s: HOUR, at_start=False))
    db.session.execute(text("SELECT 1"))  # a transaction to roll back
    sched.wake_after_commit("j")
    db.session.rollback()
    db.session.execute(text("SELECT 1"))
    sched.wake_after_commit("j")
    assert jobs.wakes["j"] == 0 and not_before_an_hour(jobs, "j")  # nothing committed yet: not woken
    db.session.commit()
    assert jobs.wakes["j"] == 1  # the commit woke it, once (the rolled-back wake was dropped)
    wait_until(lambda: runs == [1] and not jobs.busy("j"), message="the job ran once after the commit")
    assert jobs.runs["j"] == 1


def test_shutdown_lets_the_row_in_hand_finish_and_starts_nothing_more(make):
    in_row, release = threading.Event(), threading.Event()
    done: list[int] = []
    other: list[int] = []

    def rows() -> None:
        for row in range(100):
            if sched.stopping():
                return
            in_row.set()
            release.wait(10)
            done.append(row)

    jobs = make(Job("rows", rows, lambda s: HOUR), Job("other", lambda: other.append(1), lambda s: HOUR,
                                                         at_start=False))  # fmt: skip
    assert in_row.wait(10)
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    assert jobs.shutdown(timeout=5) == []
    assert time.monotonic() - started < 5
    assert done == [0]  # the row in hand finished, no other row started
    sched.wake("other")
    # A stopped scheduler refuses the wake and has no next run for any job: nothing can start.
    assert jobs.wakes["other"] == 0 and jobs.next_run("other") is None and jobs.next_run("rows") is None
    assert other == [] and jobs.runs["other"] == 0


def test_shutdown_names_a_job_that_did_not_end_in_time(make):
    release = threading.Event()
    make(Job("stuck", lambda: release.wait(10), lambda s: HOUR))
    jobs = sched.current()
    assert jobs is not None
    wait_until(lambda: jobs._running, message="the job is running")
    assert jobs.shutdown(timeout=0.2) == ["stuck"]
    release.set()


def test_a_failing_job_is_logged_once_and_runs_again(make, caplog):
    outcomes = ["boom", "boom", "ok"]
    runs: list[str] = []

    def job() -> None:
        runs.append(outcomes[len(runs)])
        if runs[-1] == "boom":
            raise RuntimeError("PanDA said no")

    caplog.set_level(logging.INFO, logger="app.scheduler")
    make(Job("flaky", job, lambda s: HOUR))
    wait_until(lambda: len(runs) == 1)
    sched.wake("flaky")
    wait_until(lambda: len(runs) == 2)
    sched.wake("flaky")
    wait_until(lambda: len(runs) == 3)
    wait_until(lambda: len([r for r in caplog.records if r.name == "app.scheduler"]) == 2)
    messages = [r for r in caplog.records if r.name == "app.scheduler"]
    assert [m.getMessage() for m in messages] == [
        "background job flaky failed; it runs again at its next time",
        "background job flaky works again",
    ]
    assert messages[0].exc_info is not None


def test_without_a_running_scheduler_wake_and_stopping_do_nothing(app):
    assert sched.current() is None
    sched.wake("dispatch")  # tests and other commands: no scheduler, no error
    assert sched.stopping() is False


def test_a_switched_off_job_is_not_scheduled_and_stays_off_when_woken(make):
    runs: list[int] = []
    jobs = make(Job("off", lambda: runs.append(1), lambda s: None))
    assert jobs.scheduled() == []
    sched.wake("off")
    # Not in the scheduler at all: the wake is refused and no trigger exists to run it.
    assert jobs.wakes["off"] == 0 and jobs.next_run("off") is None
    assert runs == []
