"""Burst: 20 bunches created at the same moment while pages are browsed, against `prodpanel serve`."""

import re
import threading

import requests

from tests.foundation.test_serve_and_cli import Served, first_log_in
from tests.helpers import free_port, wait_until
from tests.scheduler.test_serve_stop import all_launches_submitted, sim_stats, sim_url
from tests.tasks.conftest import form_data, sim_definition

BUNCHES, SIZE = 20, 3
PAGES = ("/", "/tasks/", "/panda/calls", "/audit/")


def test_twenty_bunches_at_once_reach_panda_exactly_once_without_5xx_or_pool_timeouts(tmp_path):
    instance = tmp_path / "instance"
    served = Served(instance, free_port())
    statuses: list[int] = []
    try:
        wait_until(lambda: (instance / "initial_admin_password").exists(), message="the admin password file")
        admin = first_log_in(served.url, (instance / "initial_admin_password").read_text().strip())
        panda = sim_url(served)
        page = admin.get(f"{served.url}/tasks/new", timeout=30).text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        cookies = admin.cookies.get_dict()
        start = threading.Barrier(BUNCHES + 5)

        def create(n: int) -> None:
            data = {"csrf_token": token, **form_data(sim_definition(number=100 + n, bunch_size=SIZE), key=f"b{n}")}
            start.wait(30)
            reply = requests.post(f"{served.url}/tasks/create", data=data, cookies=cookies, timeout=120,
                                  allow_redirects=False)  # fmt: skip
            statuses.append(reply.status_code)

        def browse() -> None:
            start.wait(30)
            for path in PAGES * 3:
                statuses.append(requests.get(f"{served.url}{path}", cookies=cookies, timeout=120).status_code)

        threads = [threading.Thread(target=create, args=(n,)) for n in range(BUNCHES)]
        threads += [threading.Thread(target=browse) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert statuses.count(302) == BUNCHES and all(s < 500 for s in statuses), statuses
        wait_until(lambda: sim_stats(panda)["tasks"] >= BUNCHES * SIZE, timeout=180,
                   message=f"{BUNCHES * SIZE} tasks in PanDA")  # fmt: skip
        wait_until(lambda: all_launches_submitted(instance, BUNCHES * SIZE), timeout=60,
                   message="every launch settled")  # fmt: skip
        assert sim_stats(panda)["tasks"] == BUNCHES * SIZE  # and with nothing left to send, none went twice
    finally:
        assert served.stop() == 0
    assert "QueuePool limit" not in served.output and "Traceback" not in served.output, served.output
