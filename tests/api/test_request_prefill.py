"""The Requests pages' "New task / New chain from this request" through the API, against the
spd-requests simulator: the prefilled definition to complete, 404 for a request the service does not
know, 424 when the service cannot answer."""

from __future__ import annotations

from tests.prodrequests.conftest import app, reqsim, reqsim_server  # noqa: F401,F811 (the panel bound to the simulator)


def test_definitions_prefilled_from_a_request(api, reqsim):  # noqa: F811
    manager = api("manager")
    task = manager.get("/api/v1/requests/3/task-definition")
    assert task.status_code == 200, task.json
    chain = manager.get("/api/v1/requests/3/chain-definition")
    assert chain.status_code == 200, chain.json
    assert chain.json["schema"] == "prodpanel.chain/1" and chain.json["steps"][0]["task_name"] == task.json["task_name"]
    assert task.json["request_id"] == 3 and len(chain.json["steps"]) == 2, (task.json, chain.json)
    assert manager.get("/api/v1/requests/999/task-definition").status_code == 404
    assert api("viewer").get("/api/v1/requests/3/chain-definition").status_code == 403
    reqsim.set_faults({"http_status": 500})
    failing = manager.get("/api/v1/requests/998/chain-definition")  # not in the cached list: asked
    assert failing.status_code == 424 and failing.mimetype == "application/problem+json", failing.json
