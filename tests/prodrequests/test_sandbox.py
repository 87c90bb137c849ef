"""Sandbox mode: with no [requests] url, `serve` runs the requests-service simulator in-process and
the Requests pages show its sample requests; the CVMFS scan at start finds nothing to scan here."""

from __future__ import annotations

from html import unescape

from flask import Flask

from app.prodrequests.current import SANDBOX_URL_KEY
from app.prodrequests.sandbox import start_sandbox
from tests.foundation.test_serve_and_cli import Served, first_log_in
from tests.helpers import free_port, wait_until


def test_start_sandbox_points_the_panel_at_the_simulator(settings_factory):
    flask_app = Flask(__name__)
    flask_app.config["SETTINGS"] = settings_factory(requests={"token": "tkn"})
    running = start_sandbox(flask_app)
    try:
        assert flask_app.config[SANDBOX_URL_KEY] == running.url
        assert running.app.config.token == "tkn" and len(running.app.requests) == 25
    finally:
        running.stop()


def test_serve_in_sandbox_mode_shows_the_sample_requests(tmp_path):
    instance = tmp_path / "instance"
    served = Served(instance, free_port())
    try:
        wait_until(lambda: (instance / "initial_admin_password").exists(), message="the admin password file")
        password = (instance / "initial_admin_password").read_text().strip()
        with first_log_in(served.url, password) as session:
            html = unescape(session.get(f"{served.url}/requests/", timeout=10).text)
            assert "minbias (Pythia8) at 27 GeV, SpdRoot 4.1.8" in html and "25 in all" in html
            form = unescape(session.get(f"{served.url}/tasks/from-request/3", timeout=10).text)
            assert 'value="/cvmfs/spd.jinr.ru/production/MC/jpsi-P8-spdroot417.27GeV.V01"' in form
        wait_until(lambda: "path catalog: Scan found 0 path(s)" in served.output, message="the scan at start")
        assert "requests-service simulator on http://127.0.0.1:" in served.output
    finally:
        assert served.stop() == 0, served.output
