"""The background jobs' runner: one APScheduler 3 `BackgroundScheduler` that only `serve` starts.

The database is the source of truth (launch rows, bulk items, sync state): a job only wakes the code
that claims the rows due, so nothing is lost when the panel stops, and a job store would only add a
second truth. Hence a memory job store, UTC, interval triggers, `coalesce` and `max_instances=1` (a
job never overlaps itself; runs missed while it ran collapse into one), `misfire_grace_time=None` (a
late run still runs).

Each run has an app context and a database session of its own, removed at the end. A failure is
logged once (not again while the job keeps failing the same way) and the next run tries again.
`wake(name)` runs a job now, or once more right after its current run; `stopping()` tells the jobs'
loops to end after the row in hand when `serve` shuts down.

The job list is `app.jobs.JOBS` (domains import `wake`/`stopping` from here, and the list imports
the domains' job functions, so the two live apart).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from app.config import Settings
from app.extensions import db
from app.transaction import after_commit

log = logging.getLogger(__name__)
# APScheduler logs every run (INFO) and, as a warning, every run skipped because the job is still
# running (max_instances=1, on purpose); the jobs log what matters themselves.
logging.getLogger("apscheduler").setLevel(logging.WARNING)
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Job:
    """A background job: `run()` is called in an app context every `interval(settings)` seconds
    (None: the job is off with these settings); `at_start`: also once as soon as `serve` starts."""

    name: str
    run: Callable[[], object]
    interval: Callable[[Settings], float | None]
    at_start: bool = True


class Scheduler:
    """The jobs of one app on a BackgroundScheduler; `start` once, `shutdown` once."""

    def __init__(self, app: Flask, jobs: Sequence[Job]) -> None:
        self.app = app
        self.jobs = {job.name: job for job in jobs}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running: set[str] = set()
        self._again: set[str] = set()  # woken while running: run once more right after
        self._failing: dict[str, str] = {}  # job name -> the failure already logged
        self.runs: Counter[str] = Counter()  # runs begun, per job
        self.wakes: Counter[str] = Counter()  # wakes accepted (a run now or right after), per job
        settings: Settings = app.config["SETTINGS"]
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(settings.scheduler.threads)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        now = datetime.now(UTC)
        for job in jobs:
            seconds = job.interval(settings)
            if seconds is None:
                continue
            # Without next_run_time the trigger decides (one interval from now); None would pause it.
            first = {"next_run_time": now} if job.at_start else {}
            self._scheduler.add_job(
                self._run, IntervalTrigger(seconds=seconds, timezone=UTC), args=(job.name,), id=job.name,
                name=job.name, **first,
            )  # fmt: skip

    def start(self) -> None:
        self._scheduler.start()

    def scheduled(self) -> list[str]:
        """Names of the jobs this scheduler runs (those switched on by the settings)."""
        return [job.id for job in self._scheduler.get_jobs()]

    def next_run(self, name: str) -> datetime | None:
        """When the scheduler runs job `name` next by itself (None: switched off or stopped)."""
        job = self._scheduler.get_job(name) if self._scheduler.running else None
        return job.next_run_time if job is not None else None

    def busy(self, name: str) -> bool:
        """Whether job `name` is running now (or about to run again right after)."""
        with self._lock:
            return name in self._running

    def wake(self, name: str) -> None:
        """Run job `name` now; when it is running, once more right after (coalesced: many wakes
        during one run give one more run). A job switched off stays off."""
        if self.stopping.is_set() or self._scheduler.get_job(name) is None:
            return
        with self._lock:
            self.wakes[name] += 1
            if name in self._running:
                self._again.add(name)
                return
        self._scheduler.modify_job(name, next_run_time=datetime.now(UTC))

    def run_now(self, name: str) -> None:
        """Run one job in the calling thread, as the scheduler would (tests, `prodpanel` commands)."""
        self._run(name)

    def _run(self, name: str) -> None:
        with self._lock:
            if name in self._running:  # run_now while the scheduler runs it: once is enough
                self._again.add(name)
                return
            self._running.add(name)
        try:
            while not self.stopping.is_set():
                with self._lock:
                    self._again.discard(name)
                    self.runs[name] += 1
                self._run_once(self.jobs[name])
                with self._lock:
                    if name not in self._again:
                        break
        finally:
            with self._lock:
                self._running.discard(name)
                self._idle.notify_all()

    def _run_once(self, job: Job) -> None:
        with self.app.app_context():
            try:
                job.run()
            except Exception as exc:
                db.session.rollback()
                failure = f"{exc.__class__.__name__}: {exc}"
                if self._failing.get(job.name) != failure:
                    self._failing[job.name] = failure
                    log.exception("background job %s failed; it runs again at its next time", job.name)
            else:
                if self._failing.pop(job.name, None) is not None:
                    log.info("background job %s works again", job.name)
            finally:
                db.session.remove()

    def shutdown(self, timeout: float = 5.0) -> list[str]:
        """Start nothing more; let the runs in flight end their current row (bounded by `timeout`).
        Returns the names of the jobs still running when it gave up waiting."""
        self.stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        with self._idle:
            self._idle.wait_for(lambda: not self._running, timeout)
            return sorted(self._running)


_current: dict[str, Scheduler] = {}  # "scheduler": the one `serve` started (none in tests and commands)


def install(scheduler: Scheduler | None) -> None:
    """Make `scheduler` the process's (`serve`); None: there is none any more."""
    if scheduler is None:
        _current.pop("scheduler", None)
    else:
        _current["scheduler"] = scheduler


def current() -> Scheduler | None:
    return _current.get("scheduler")


_forward: dict[str, Callable[[str], None]] = {}  # "send": a `serve` worker's way to its main process


def forward_wakes(send: Callable[[str], None] | None) -> None:
    """In a worker process of `serve --processes N`, which runs no scheduler: `wake(name)` calls
    `send(name)`, which asks the main process's scheduler (app/workers.py). None: no more."""
    if send is None:
        _forward.pop("send", None)
    else:
        _forward["send"] = send


def wake(name: str) -> None:
    """Run background job `name` now, in the main `serve` process's scheduler (nothing when there is
    none: tests, other commands)."""
    scheduler = current()
    if scheduler is not None:
        scheduler.wake(name)
    elif (send := _forward.get("send")) is not None:
        send(name)


def wake_after_commit(name: str) -> None:
    """`wake(name)` once the current transaction commits: the job's own session sees the rows then."""
    after_commit(lambda: wake(name))


def stopping() -> bool:
    """True once `serve` is shutting down: a job's loop ends after the row in hand."""
    scheduler = current()
    return scheduler is not None and scheduler.stopping.is_set()
