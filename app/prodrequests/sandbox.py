"""Sandbox mode: with no [requests] url, `serve` runs the requests-service simulator (`reqsim`) in-process."""

from __future__ import annotations

from flask import Flask

from app.prodrequests.current import SANDBOX_URL_KEY
from reqsim import ReqSimConfig, RunningServer, create_simulator, serve_in_thread


def start_sandbox(app: Flask, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start the simulator on a loopback port and point the panel's client at it; `.stop()` ends it."""
    running = serve_in_thread(
        create_simulator(ReqSimConfig(token=app.config["SETTINGS"].requests.token)), host, port
    )
    attach_sandbox(app, running.url)
    return running


def attach_sandbox(app: Flask, url: str) -> None:
    """Make a running simulator known to the panel (tests attach one they started themselves)."""
    app.config[SANDBOX_URL_KEY] = url
