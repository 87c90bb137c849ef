"""Background services that only `prodpanel serve` starts (never create_app(), tests or other commands)."""

import logging
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)

Stopper = Callable[[], None]


def start_background(app: Flask) -> list[Stopper]:
    """Start what runs beside the web server; returns the functions that stop it, in start order."""
    from app.panda.services import stop_call_log

    # First in, so run last: the PanDA calls made while the other services stop are stored too.
    stoppers: list[Stopper] = [stop_call_log]
    settings = app.config["SETTINGS"]
    if not settings.panda.url:  # sandbox: the built-in PanDA simulator on a loopback port
        from app.panda.simulator.sandbox import attach_sandbox, start_sandbox

        running = start_sandbox(settings)
        attach_sandbox(app, running)
        log.info("sandbox mode: PanDA simulator on %s", running.url)
        stoppers.append(running.stop)
    return stoppers


def stop_background(stoppers: list[Stopper]) -> None:
    for stop in reversed(stoppers):
        try:
            stop()
        except Exception:  # keep stopping the rest
            log.exception("error while stopping a background service")
