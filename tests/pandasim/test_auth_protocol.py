"""Token checks, transports, encodings and argument validation like panda-server."""

from __future__ import annotations

import pickle
import time

import jwt
import pytest
import requests

from pandasim import SimConfig, SimIssuer, create_simulator, serve_in_thread
from tests.pandasim.conftest import PROD_GROUPS, Panda, evgen


def _forbidden(response: requests.Response) -> str:
    assert response.status_code == 403, response.text
    return response.text


def test_production_token_and_user_attributes(sim, prod, user):
    attrs = prod.call("system/get_user_attributes")["data"]
    assert attrs["is_production_user"] is True
    assert attrs["user_dn_raw"] == "Test Manager/CN=nickname:pm"
    assert attrs["user_dn_clean"] == "Test Manager"
    assert attrs["fqans"] == ["/spd/Role=production"]
    assert user.call("system/get_user_attributes")["data"]["is_production_user"] is False


def test_origin_role_needs_the_group(sim):
    token = sim.mint_token("uu", "plain user", ["spd"])
    reply = Panda(sim.url, token, origin="spd.production").get("system/get_user_attributes")
    assert (
        _forbidden(reply) == "ERROR : Token authentication failed. Not a member of the spd/production group"
    )
    colon = Panda(sim.url, sim.mint_token("pm", "test manager", PROD_GROUPS), origin="spd:production")
    assert colon.call("system/get_user_attributes")["data"]["is_production_user"] is True
    other_vo = Panda(sim.url, token, origin="atlas").get("system/get_user_attributes")
    assert _forbidden(other_vo) == "ERROR : Token authentication failed. Unknown vo : atlas"
    not_member = Panda(sim.url, sim.mint_token("x", "x y", ["other"]), origin="spd").get(
        "system/get_user_attributes"
    )
    assert _forbidden(not_member) == "ERROR : Token authentication failed. Not a member of the spd group"


def test_bad_tokens_are_rejected_with_the_servers_texts(sim):
    expired = sim.mint_token("pm", "test manager", PROD_GROUPS, lifetime_s=-10)
    assert _forbidden(Panda(sim.url, expired).get("task/get_status", task_id=1)).endswith(
        "Invalid token. Signature has expired"
    )
    wrong_aud = sim.mint_token("pm", "test manager", PROD_GROUPS, aud="someone-else")
    assert _forbidden(Panda(sim.url, wrong_aud).get("task/get_status", task_id=1)).endswith(
        "Invalid token. cannot extract client_id from token"
    )
    forged = SimIssuer(sim.issuer.issuer_url, kid=sim.issuer.kid)  # same key id, another key
    bad_sig = forged.mint_id_token("pm", "test manager", PROD_GROUPS, "prodpanel")
    assert _forbidden(Panda(sim.url, bad_sig).get("task/get_status", task_id=1)).endswith(
        "Invalid token. Signature verification failed"
    )
    unknown_kid = SimIssuer(sim.issuer.issuer_url).mint_id_token("pm", "t m", PROD_GROUPS, "prodpanel")
    assert "Invalid token. JWK not found for kid=" in _forbidden(
        Panda(sim.url, unknown_kid).get("task/get_status", task_id=1)
    )
    other_issuer = SimIssuer("http://127.0.0.1:9/elsewhere", private_key=sim.issuer.private_key, kid=sim.issuer.kid)
    wrong_iss = other_issuer.mint_id_token("pm", "t m", PROD_GROUPS, "prodpanel")
    assert _forbidden(Panda(sim.url, wrong_iss).get("task/get_status", task_id=1)).endswith(
        "Invalid token. failed to decode: Invalid issuer"
    )
    garbage = _forbidden(Panda(sim.url, "abc.def").get("task/get_status", task_id=1))
    assert garbage == "ERROR : Token authentication failed. Invalid token. Not enough segments"


def test_token_errors_read_like_pyjwt_and_the_servers_decode_failures(sim):
    """panda-server 1.0.4's texts (reference: panda-real-replies.md rows 10, 16 and §2): PyJWT's own
    messages, and "Token decode failure." with the Python traceback for the exceptions it does not expect."""
    garbage = _forbidden(Panda(sim.url, "abc.def.ghi").get("system/get_user_attributes"))
    assert garbage == (
        "ERROR : Token authentication failed. Invalid token. Invalid header string: 'utf-8' codec can't decode"
        " byte 0xb7 in position 1: invalid start byte"
    )
    token = sim.mint_token("pm", "test manager", PROD_GROUPS)
    no_origin = _forbidden(Panda(sim.url, token, origin=None).get("system/get_user_attributes"))
    assert no_origin.startswith(
        "ERROR : Token authentication failed. Token decode failure. 'NoneType' object has no attribute"
        " 'replace' Traceback (most recent call last):\n"
    )
    no_groups = sim.issuer.mint_id_token("pm", "test manager", None, "prodpanel")
    assert _forbidden(Panda(sim.url, no_groups).get("system/get_user_attributes")).startswith(
        "ERROR : Token authentication failed. Token decode failure. 'groups' Traceback (most recent call last):"
    )
    aud_list = sim.issuer.mint_id_token(
        "pm", "test manager", PROD_GROUPS, "prodpanel", extra_claims={"aud": ["prodpanel", "other"]}
    )
    assert _forbidden(Panda(sim.url, aud_list).get("system/get_user_attributes")).startswith(
        "ERROR : Token authentication failed. Token decode failure. unhashable type: 'list' Traceback"
    )


def test_a_token_without_a_name_claim_has_the_bare_subject_as_dn(sim):
    token = sim.issuer.mint_id_token("0000-3333", None, PROD_GROUPS, "prodpanel", preferred_username="noname")
    attrs = Panda(sim.url, token).call("system/get_user_attributes")
    assert attrs["message"].startswith("User DN (raw): 0000-3333\nUser DN (bare): 0000-3333\n")
    assert attrs["data"]["user_dn_raw"] == "0000-3333" and attrs["data"]["is_production_user"] is True


def test_secondary_client_ids_are_accepted():
    app = create_simulator(
        SimConfig(time_scale=0, client_ids=("pandaclient",), secondary_ids=("prodpanel-web",))
    )
    running = serve_in_thread(app)
    try:
        token = app.issuer.mint_id_token("pm", "test manager", PROD_GROUPS, "prodpanel-web")
        assert Panda(running.url, token).call("system/get_user_attributes")["data"]["is_production_user"]
    finally:
        running.stop()


def test_non_production_submission_is_silently_rewritten(sim, user):
    task_id = user.submit(evgen("user.uu.evgen", taskPriority=900))
    params = user.call("task/get_task_parameters", task_id=task_id)["data"]
    assert params["userName"] == "Plain User"
    assert params["taskType"] == "anal" and params["taskPriority"] == 1000


def test_anonymous_calls(sim):
    anonymous = Panda(sim.url, None, origin=None)
    assert anonymous.call("system/is_alive") == {"success": True, "message": "", "data": None}
    assert anonymous.call("task/get_status", task_id=1) == {
        "success": False,
        "message": "SSL secure connection is required",
        "data": None,
    }


def test_validation_messages(sim, prod):
    assert prod.post("task/submit", task_parameters="{}").json()["message"] == (
        "Type error: 'task_parameters' must be of type dict, got str."
    )
    assert (
        prod.post("task/kill", task_id="6").json()["message"]
        == "Type error: 'task_id' must be of type int, got str."
    )
    assert prod.get("task/kill", task_id=6).json() == {
        "success": False,
        "message": "expecting POST, received GET",
        "data": None,
    }
    assert (
        prod.post("task/kill").json()["message"] == "Argument error: missing a required argument: 'task_id'"
    )
    assert (
        prod.post("task/kill", task_id=1, bogus=1)
        .json()["message"]
        .startswith("Argument error: got an unexpected keyword")
    )
    cast = prod.get("task/get_details", task_id="abc").json()
    assert (
        cast["message"] == "Type error: 'task_id' with value 'abc' could not be casted to type int from str."
    )
    # GET values are cast from strings; "true"/"1" are booleans
    prod.submit(evgen())
    sim.advance(60)
    assert "status" in prod.get("task/get_details", task_id="1", include_status="true").json()["data"]
    assert prod.get("task/get_task_parameters", task_id="1").json()["success"]


def test_encodings(sim, prod):
    prod.submit(evgen())
    sim.advance(60)
    plain = requests.get(
        f"{sim.url}/api/v1/task/get_detailed_info",
        params={"task_id": 1},
        headers={**prod.headers, "Accept": "*/*"},
        timeout=5,
    )
    assert plain.headers["Content-Type"] == "text/plain"
    assert plain.text.startswith("{'success': True")  # str(dict) without Accept: application/json
    assert "datetime.datetime(" in plain.text
    as_json = prod.get("task/get_detailed_info", task_id=1)
    assert as_json.headers["Content-Type"] == "text/plain"
    assert as_json.json()["data"]["creationDate"] == {
        "__datetime__": as_json.json()["data"]["creationDate"]["__datetime__"]
    }
    invalid = requests.post(
        f"{sim.url}/api/v1/task/kill",
        data=b"{nope",
        headers={**prod.headers, "Content-Type": "application/json"},
        timeout=5,
    )
    assert invalid.status_code == 500 and invalid.text.startswith("ERROR : received invalid JSON : ")
    assert (
        requests.get(f"{sim.url}/api/v1/task/no_such_method", timeout=5).text
        == "ERROR : method no_such_method is forbidden"
    )
    latest = requests.get(
        f"{sim.url}/api/latest/system/is_alive", headers={"Accept": "application/json"}, timeout=5
    )
    assert latest.json()["success"] is True


def _legacy(url: str, method: str, token: str, origin: str = "spd.production", **form) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Origin": origin}
    return requests.post(f"{url}/server/panda/{method}", data=form, headers=headers, timeout=5)


def test_legacy_transport(legacy_sim):
    sim = legacy_sim
    token = sim.mint_token("pm", "test manager", PROD_GROUPS)
    import json

    reply = _legacy(
        sim.url, "insertTaskParams", token, taskParams=json.dumps(evgen()), properErrorCode="True"
    )
    assert pickle.loads(reply.content) == (0, "succeeded. new jediTaskID=1")
    assert reply.content.startswith(b"(I0\n")  # protocol 0
    assert pickle.loads(_legacy(sim.url, "getTaskParamsMap", token, jediTaskID="1").content).startswith(
        '{"vo"'
    )
    assert _legacy(sim.url, "getTaskStatus", token, jediTaskID="1").status_code == 500  # not in JEDI yet
    sim.advance(200)
    assert pickle.loads(_legacy(sim.url, "getTaskStatus", token, jediTaskID="1").content) == "running"
    details = pickle.loads(
        _legacy(
            sim.url, "getJediTaskDetails", token, jediTaskID="1", fullFlag="True", withTaskInfo="True"
        ).content
    )
    assert details["status"] == "running" and details["cliParams"] == ""
    kill = pickle.loads(_legacy(sim.url, "killTask", token, jediTaskID="1", properErrorCode="True").content)
    assert kill == (0, "command=kill is registered for task ID 1. will be executed in a few minutes")
    assert pickle.loads(
        _legacy(sim.url, "killTask", token, jediTaskID="x", properErrorCode="True").content
    ) == (
        101,
        "jediTaskID must be an integer",
    )
    user_token = sim.mint_token("uu", "plain user", ["spd"])
    prio = _legacy(sim.url, "changeTaskPriority", user_token, origin="spd", jediTaskID="1", newPriority="5")
    assert prio.text == "Failed : production or pilot role required"
    assert (
        pickle.loads(_legacy(sim.url, "changeTaskPriority", token, jediTaskID="1", newPriority="5").content)
        == 1
    )
    since = pickle.loads(
        _legacy(
            sim.url,
            "getJediTasksInTimeRange",
            token,
            timeRange="2020-01-01 00:00:00",
            dn="spd_prod",
            task_type="managed",
        ).content
    )
    assert since[1]["status"] == "running"
    assert requests.get(f"{sim.url}/server/panda/isAlive", timeout=5).text == "alive=yes"
    voms = requests.get(
        f"{sim.url}/server/panda/getVomsAttr",
        headers={"Authorization": f"Bearer {token}", "Origin": "spd.production"},
        timeout=5,
    )
    assert voms.text == "GRST_CRED_AUTH_TOKEN_0 : VOMS /spd/Role=production\n"


def test_legacy_jobs_by_panda_id(legacy_sim):
    """0.8.x: getPandaIDsWithTaskID (pickle), then getJobStatus answering JSON JobSpec.to_dict()."""
    import json

    sim = legacy_sim
    token = sim.mint_token("pm", "test manager", PROD_GROUPS)
    reply = _legacy(sim.url, "insertTaskParams", token, taskParams=json.dumps(evgen(nEvents=3000)))
    ok, task_id = pickle.loads(reply.content)  # without properErrorCode: (True, jediTaskID)
    assert ok is True
    sim.advance(200 + 3 * 3600)
    ids = pickle.loads(_legacy(sim.url, "getPandaIDsWithTaskID", "", jediTaskID=str(task_id)).content)
    assert len(ids) == 3
    accept = {"Accept": "application/json"}
    reply = requests.post(
        f"{sim.url}/server/panda/getJobStatus",
        data={"ids": json.dumps([*ids, 999_999])},
        headers=accept,
        timeout=5,
    )
    jobs = reply.json()
    assert [j["PandaID"] for j in jobs[:3]] == ids and jobs[3] is None
    assert all(
        "Files" not in j and isinstance(j["startTime"], str) and j["nEvents"] == 1000 for j in jobs[:3]
    )
    pickled = requests.post(f"{sim.url}/server/panda/getJobStatus", data={"ids": json.dumps(ids)}, timeout=5)
    assert pickled.status_code == 500  # JobSpec pickles are not simulated


def test_one_server_version_at_a_time():
    """1.0.x forbids every legacy method (panda-real-replies.md rows 3-4); 0.8.x has no /api/ at all."""
    new = create_simulator(SimConfig(time_scale=0))
    old = create_simulator(SimConfig(time_scale=0, version="0.8"))
    r1, r2 = serve_in_thread(new), serve_in_thread(old)
    try:
        forbidden = requests.get(f"{r1.url}/server/panda/getTaskStatus", params={"jediTaskID": 1}, timeout=5)
        assert forbidden.status_code == 403 and forbidden.text == "ERROR : method getTaskStatus is forbidden"
        alive = requests.get(f"{r1.url}/server/panda/isAlive", timeout=5)
        assert alive.status_code == 403 and alive.text == "ERROR : method isAlive is forbidden"
        assert requests.get(f"{r1.url}/api/v1/system/is_alive", timeout=5).status_code == 200
        assert requests.get(f"{r2.url}/api/v1/system/is_alive", timeout=5).status_code == 404
        assert requests.get(f"{r2.url}/server/panda/isAlive", timeout=5).text == "alive=yes"
    finally:
        r1.stop()
        r2.stop()
    with pytest.raises(ValueError, match="version must be one of"):
        SimConfig(version="both")


def test_issuer_endpoints(sim):
    discovery = requests.get(f"{sim.url}/oidc/.well-known/openid-configuration", timeout=5).json()
    assert discovery["issuer"] == f"{sim.url}/oidc/"
    jwks = requests.get(discovery["jwks_uri"], timeout=5).json()
    assert jwks["keys"][0]["kid"] == sim.issuer.kid and "d" not in jwks["keys"][0]
    minted = requests.post(
        f"{sim.url}/oidc/mint",
        json={"sub": "s", "name": "Script User", "groups": ["spd"], "aud": "prodpanel", "lifetime_s": 60},
        timeout=5,
    ).json()["id_token"]
    claims = jwt.decode(minted, sim.issuer.private_key.public_key(), algorithms=["RS256"], audience="prodpanel")
    assert (
        claims["aud"] == "prodpanel" and claims["exp"] - claims["iat"] == 60 and claims["exp"] > time.time()
    )
    config = requests.get(f"{sim.url}/auth/spd_auth_config.json", timeout=5).json()
    assert config["oidc_config_url"] == f"{sim.url}/oidc/.well-known/openid-configuration"
