"""`prodpanel serve` stopped by SIGTERM while its dispatch job sends a bunch to a slow PanDA."""

import re
import signal
import sqlite3
import time
from pathlib import Path

import requests

from tests.foundation.test_serve_and_cli import Served, first_log_in
from tests.helpers import free_port, wait_until
from tests.tasks.conftest import form_data, sim_definition

BUNCH = 12  # three waves of [panda] max_parallel_submits (4)


def sim_stats(url: str) -> dict:
    return requests.get(f"{url}/_sim/stats", timeout=10).json()


def launches_by_status(instance: Path) -> dict[str, int]:
    """The served panel's launches counted by status, read from its SQLite database."""
    with sqlite3.connect(instance / "prodpanel.sqlite3", timeout=30) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM launch GROUP BY status").fetchall())


def all_launches_submitted(instance: Path, expected: int) -> bool:
    """Every launch settled as submitted: the dispatcher has nothing left that it could send again."""
    return launches_by_status(instance) == {"submitted": expected}


def sim_url(served: Served) -> str:
    found = wait_until(lambda: re.search(r"PanDA simulator on (http://\S+)", served.output), timeout=30)
    return found.group(1)


def create_bunch(served: Served, session: requests.Session) -> None:
    page = session.get(f"{served.url}/tasks/new", timeout=30).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    data = {"csrf_token": token, **form_data(sim_definition(number=51, bunch_size=BUNCH), key="sigterm")}
    response = session.post(f"{served.url}/tasks/create", data=data, timeout=30, allow_redirects=False)
    assert response.status_code == 302, response.text[:2000]


def test_sigterm_while_dispatching_stops_within_5_s_quietly_and_the_rest_goes_out_at_the_next_start(tmp_path):
    instance = tmp_path / "instance"
    served = Served(instance, free_port())
    try:
        wait_until(lambda: (instance / "initial_admin_password").exists(), message="the admin password file")
        session = first_log_in(served.url, (instance / "initial_admin_password").read_text().strip())
        panda = sim_url(served)
        requests.post(f"{panda}/_sim/faults", json={"latency_ms": 1000}, timeout=10).raise_for_status()
        create_bunch(served, session)
        # The first wave arrived: the dispatch job is sending the second (1 s per PanDA call).
        wait_until(lambda: sim_stats(panda)["tasks"] >= 1, timeout=60, message="the first task in PanDA")
        session.get(f"{served.url}/tasks/", timeout=30)  # pages are being browsed meanwhile
    finally:
        started = time.monotonic()
        code = served.stop(signal.SIGTERM)
        took = time.monotonic() - started
    out = served.output
    assert code == 0, out
    assert took < 5, f"serve took {took:.1f} s to stop:\n{out}"
    for noise in ("Traceback", "Bad file descriptor", "The session has not yet been opened", " ERROR "):
        assert noise not in out, out
    assert "prodpanel stopped." in out
    assert len(re.findall(r"launch\(es\) left for the next start", out)) == 1, out

    again = Served(instance, free_port())  # the sandbox simulator keeps its tasks in the instance
    try:
        panda = sim_url(again)
        wait_until(lambda: sim_stats(panda).get("tasks") == BUNCH, timeout=90,
                   message=f"all {BUNCH} tasks in PanDA after the restart")  # fmt: skip
        wait_until(lambda: all_launches_submitted(instance, BUNCH), timeout=60, message="every launch settled")
        assert sim_stats(panda).get("tasks") == BUNCH  # and with nothing left to send, none went twice
    finally:
        assert again.stop() == 0
    assert "Traceback" not in again.output, again.output
