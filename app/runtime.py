"""Background services that only `prodpanel serve` starts (never create_app(), tests or other commands):
the sandbox simulators, the scheduler with the jobs of app/jobs.py, the task-status consumer."""

import logging
from collections.abc import Callable

from flask import Flask

from app import scheduler
from app.jobs import JOBS
from app.panda.calllog import stop_call_log
from app.sync.jobs import attach_consumer, hint
from app.sync.queue import TaskStatusConsumer

log = logging.getLogger(__name__)

Stopper = Callable[[], None]


def start_background(app: Flask) -> list[Stopper]:
    """Start what runs beside the web server; returns the functions that stop it, in start order."""
    # First in, so run last: the PanDA calls made while the other services stop are stored too.
    stoppers: list[Stopper] = [stop_call_log]
    settings = app.config["SETTINGS"]
    if not settings.panda.url:  # sandbox: the built-in PanDA simulator on a loopback port
        from app.panda.sandbox import attach_sandbox, start_sandbox

        running = start_sandbox(settings)
        attach_sandbox(app, running)
        log.info("sandbox mode: PanDA simulator on %s", running.url)
        stoppers.append(running.stop)
    if not settings.requests.url:  # sandbox: the requests-service simulator on a loopback port
        from app.prodrequests.sandbox import start_sandbox as start_requests_sim

        requests_sim = start_requests_sim(app)
        log.info("sandbox mode: requests-service simulator on %s", requests_sim.url)
        stoppers.append(requests_sim.stop)
    if not settings.scheduler.enabled:
        log.warning("[scheduler] enabled = false: no launch is sent and nothing is synced in the background")
        return stoppers
    # The consumer before the scheduler (the queue job's first run connects it), stopped before it.
    stop_consumer = start_status_consumer(app) if settings.queue.enabled else None
    stoppers.append(start_scheduler(app))
    if stop_consumer is not None:
        stoppers.append(stop_consumer)
    return stoppers


def start_status_consumer(app: Flask) -> Stopper:
    """The task-status consumer (`[queue]`), kept connected by the `task-status-queue` job; each
    message wakes the `task-status-hints` job. Returns what disconnects it."""
    consumer = TaskStatusConsumer(app.config["SETTINGS"].queue, hint)
    attach_consumer(consumer)

    def stop() -> None:
        attach_consumer(None)
        consumer.stop()

    return stop


def start_scheduler(app: Flask) -> Stopper:
    """Start the jobs of app/jobs.py (launches due while the panel was down are due now: the first
    dispatch run sends them); returns what stops it."""
    jobs = scheduler.Scheduler(app, JOBS)
    scheduler.install(jobs)
    jobs.start()
    log.info("background jobs: %s", ", ".join(jobs.scheduled()))

    def stop() -> None:
        for name in jobs.shutdown(timeout=3.0):  # `serve` stops within 5 s
            log.warning("stopped while background job %s was still running; it goes on at the next start", name)
        scheduler.install(None)

    return stop


def stop_background(stoppers: list[Stopper]) -> None:
    for stop in reversed(stoppers):
        try:
            stop()
        except Exception:  # keep stopping the rest
            log.exception("error while stopping a background service")
