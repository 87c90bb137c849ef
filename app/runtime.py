"""Background services that only `prodpanel serve` starts (never create_app(), tests or other commands)."""

import logging
import threading
from collections.abc import Callable

from flask import Flask

from app.extensions import db
from app.launches.dispatcher import dispatch_due, wait_for_dispatchers
from app.panda.calllog import stop_call_log
from app.prodrequests.jobs import scheduled_rescan
from app.sync.jobs import refresh_hinted
from app.sync.queue import Hints, TaskStatusConsumer

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
    if settings.queue.enabled:
        stoppers.append(start_status_consumer(app))
    if not settings.requests.url:  # sandbox: the requests-service simulator on a loopback port
        from app.prodrequests.sandbox import start_sandbox as start_requests_sim

        requests_sim = start_requests_sim(app)
        log.info("sandbox mode: requests-service simulator on %s", requests_sim.url)
        stoppers.append(requests_sim.stop)
    scan = start_catalog_scan(app)
    stoppers.append(lambda: scan.join(timeout=30))  # the scan uses the database: let it end first
    resumer = resume_launches(app)

    def finish_dispatching() -> None:
        """Let launches in flight get their answer (bounded), so their calls reach the log and the DB."""
        resumer.join(timeout=30)
        if not wait_for_dispatchers(timeout=30):
            log.warning("stopped while launches were still being sent; they are settled at the next start")

    stoppers.append(finish_dispatching)  # stops first: PanDA and the log are still there for it
    return stoppers


def resume_launches(app: Flask) -> threading.Thread:
    """Send the launches that came due while the panel was down, and settle those a crash left open.

    In a thread, so that a slow PanDA does not delay the web server's start.
    """

    def run() -> None:
        with app.app_context():
            try:
                handled = dispatch_due(limit=10_000)
                if handled:
                    log.info("resumed %d launch(es) left from before the start", handled)
            except Exception:  # the page's "continue dispatching" remains; log and go on
                log.exception("resuming launches at start failed")
            finally:
                db.session.remove()

    thread = threading.Thread(target=run, name="resume-launches", daemon=True)
    thread.start()
    return thread


def start_status_consumer(app: Flask) -> Stopper:
    """The task-status consumer (`[queue]`) and the worker that re-reads the tasks its messages
    name, at once; returns what stops both."""
    hints = Hints()
    consumer = TaskStatusConsumer(app.config["SETTINGS"].queue, hints.add)
    stopping = threading.Event()

    def refresh() -> None:
        while not stopping.is_set():
            if not hints.wait(1.0):
                continue
            with app.app_context():
                try:
                    refresh_hinted(hints.drain())
                except Exception:  # the next message or the next sync cycle tries again
                    log.exception("refreshing the tasks named by status messages failed")
                finally:
                    db.session.remove()

    worker = threading.Thread(target=refresh, name="task-status-refresh", daemon=True)
    consumer.start()
    worker.start()

    def stop() -> None:
        consumer.stop()
        stopping.set()
        worker.join(5)

    return stop
def start_catalog_scan(app: Flask) -> threading.Thread:
    """Scan CVMFS for the path catalog once at start, in a thread (an automount may be slow)."""
    thread = threading.Thread(target=scheduled_rescan, args=(app,), name="path-catalog-scan", daemon=True)
    thread.start()
    return thread


def stop_background(stoppers: list[Stopper]) -> None:
    for stop in reversed(stoppers):
        try:
            stop()
        except Exception:  # keep stopping the rest
            log.exception("error while stopping a background service")
