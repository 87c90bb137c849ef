"""`prodpanel serve --processes 2`: the main process and a worker serve one port; what a request in one
process starts, another finishes; a launch made through the worker goes out at once; SIGTERM stops
both. A requests.Session keeps its connection, so the process that answered its /healthz (the `pid`
of `process`) answers its next requests too."""

import os
import re
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.foundation.test_serve_and_cli import Served, first_log_in
from tests.helpers import free_port, wait_until
from tests.tasks.conftest import form_data, sim_definition


def answering_pid(session: requests.Session, url: str) -> int:
    return session.get(f"{url}/healthz", timeout=10).json()["process"]["pid"]


def pinned(
    url: str, wanted: Callable[[int], bool], cookies: requests.Session | None = None
) -> tuple[requests.Session, int]:
    """A session whose connection is held by a process that `wanted` accepts, and that process's pid."""

    def attempt() -> tuple[requests.Session, int] | None:
        session = requests.Session()
        session.trust_env = False
        if cookies is not None:
            session.cookies.update(cookies.cookies)
        pid = answering_pid(session, url)
        return (session, pid) if wanted(pid) else None

    return wait_until(attempt, timeout=60, message="a connection to the wanted serve process")


def form_post(session: requests.Session, url: str, page: str, path: str, **fields: str) -> requests.Response:
    html = session.get(f"{url}{page}", timeout=30).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    return session.post(f"{url}{path}", data={"csrf_token": token, **fields}, timeout=60, allow_redirects=False)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def panel(tmp_path_factory, oidc_op):
    """A served panel with two processes, whose dispatch job runs by itself only once an hour: a
    launch goes out at once only when a wake reaches the main process's scheduler."""
    instance = tmp_path_factory.mktemp("processes") / "instance"
    instance.mkdir(mode=0o700)
    (instance / "config.toml").write_text(
        "[scheduler]\ndispatch_interval_s = 3600.0\n"
        f'[iam]\nissuer = "{oidc_op.issuer}"\nclient_id = "{oidc_op.client_id}"\n'
        f'client_secret = "{oidc_op.client_secret}"\ndevice_client_id = "{oidc_op.panda_client_id}"\n'
        "[auth]\nlogin_attempts = 3\n"
    )
    served = Served(instance, free_port(), "--processes", "2")
    try:
        wait_until(lambda: (instance / "initial_admin_password").exists(), message="the admin password file")
        admin = first_log_in(served.url, (instance / "initial_admin_password").read_text().strip())
        yield served, admin
    finally:
        served.stop()


def test_a_launch_made_through_the_worker_is_sent_at_once(panel):
    served, admin = panel
    main_pid = served.proc.pid
    worker, worker_pid = pinned(served.url, lambda pid: pid != main_pid, admin)
    assert parent_of(worker_pid) == main_pid
    data = form_data(sim_definition(number=61, bunch_size=2), key="through-a-worker")
    created = form_post(worker, served.url, "/tasks/new", "/tasks/create", **data)
    assert created.status_code == 302, created.text[:2000]
    assert answering_pid(worker, served.url) == worker_pid  # the worker made the launches
    bunch = int(created.headers["Location"].rstrip("/").rsplit("/", 1)[-1])

    def sent() -> bool:
        with sqlite3.connect(served.instance / "prodpanel.sqlite3", timeout=30) as conn:
            query = "SELECT count(panda_task_id) FROM task WHERE bunch_id = ?"
            return conn.execute(query, (bunch,)).fetchone()[0] == 2

    wait_until(sent, timeout=30, message="the bunch in PanDA (the dispatch job's own next run is in an hour)")


def test_a_device_link_started_in_one_process_is_finished_in_another(panel, oidc_op):
    served, admin = panel
    main_pid = served.proc.pid
    worker, worker_pid = pinned(served.url, lambda pid: pid != main_pid, admin)
    main, _ = pinned(served.url, lambda pid: pid == main_pid, admin)
    assert form_post(worker, served.url, "/tokens/", "/tokens/link").status_code == 302
    user_code = re.search(r'id="user-code">([^<]+)<', main.get(f"{served.url}/tokens/", timeout=30).text).group(1)
    oidc_op.approve_device_code(user_code, "alice")
    assert form_post(main, served.url, "/tokens/", "/tokens/link/poll").status_code == 302
    assert "PanDA token linked" in main.get(f"{served.url}/tokens/", timeout=30).text
    assert (answering_pid(worker, served.url), answering_pid(main, served.url)) == (worker_pid, main_pid)


def test_failed_logins_count_in_every_process(panel):
    served, _ = panel
    main_pid = served.proc.pid
    worker, _ = pinned(served.url, lambda pid: pid != main_pid)
    main, _ = pinned(served.url, lambda pid: pid == main_pid)
    wrong = {"username": "someone", "password": "not-the-password"}
    statuses = [form_post(session, served.url, "/login", "/login", **wrong).status_code
                for session in (worker, main, worker, main)]  # fmt: skip
    assert statuses == [401, 401, 401, 429]  # [auth] login_attempts = 3, whichever process counted


def test_a_worker_that_died_is_replaced_and_sigterm_stops_every_process(tmp_path):
    served = Served(tmp_path / "instance", free_port(), "--processes", "2")
    main_pid = served.proc.pid
    try:
        _, first = pinned(served.url, lambda pid: pid != main_pid)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: "ended (exit code -9); starting another" in served.output, timeout=30,
                   message="the main process noticing its worker's end")  # fmt: skip
        _, second = pinned(served.url, lambda pid: pid not in (main_pid, first))
        assert parent_of(second) == main_pid
    finally:
        code = served.stop(signal.SIGTERM)
    assert code == 0, served.output
    assert not alive(second), "the worker outlived its main process"
    assert "prodpanel stopped." in served.output


def test_workers_end_when_the_main_process_is_killed(tmp_path):
    served = Served(tmp_path / "instance", free_port(), "--processes", "3")
    main_pid = served.proc.pid
    workers: set[int] = set()
    try:
        wait_until(lambda: workers.add(pinned(served.url, lambda pid: pid != main_pid)[1]) or len(workers) == 2,
                   timeout=60, message="both workers answering")  # fmt: skip
    finally:
        served.stop(signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=30, message="the workers' end")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
