"""Pure logic of the PanDA client with a scripted fake HTTP session (no sockets).

Everything that needs a server's behaviour is in test_contract.py, against the simulator over real
HTTP; here: error classification, retry policy, reply decoding and the interaction records.
"""

import json
import pickle
from datetime import datetime

import pytest
import requests
from urllib3.exceptions import NewConnectionError, ProtocolError

from app.panda.client import ClientConfig, PandaClient, strip_secrets
from app.panda.errors import (
    COMMAND_CODES,
    SUBMIT_CODES,
    PandaAuthError,
    PandaNotFound,
    PandaOutcomeUnknown,
    PandaRejected,
    PandaRoleMissing,
    PandaUnsupported,
    human_sentence,
)
from app.panda.transports import decode_json, restricted_loads
from app.tokens.errors import TokenUnavailable
from tests.fakes.tokens import FixedTokens

URL = "http://panda.test:25443"


class User:
    def __init__(self, id=7):
        self.id = id


def response(status=200, body=b"", url=URL):
    r = requests.Response()
    r.status_code = status
    r._content = body if isinstance(body, bytes) else body.encode()
    r.url = url
    r.request = requests.Request("GET", url).prepare()
    return r


def envelope(success=True, message="", data=None):
    return json.dumps({"success": success, "message": message, "data": data})


class FakeSession:
    """Routes requests to handlers by path; records what was sent."""

    def __init__(self, routes):
        self.routes = routes
        self.sent = []

    def request(self, verb, url, **kwargs):
        path = url.removeprefix(URL)
        self.sent.append((verb, path, kwargs))
        handler = self.routes.get(path)
        if handler is None:
            return response(404, "not found")
        result = handler(verb, kwargs) if callable(handler) else handler
        if isinstance(result, BaseException):
            raise result
        return result


def make_client(routes, transport="v1", tokens=None, retries=2, **config):
    session = FakeSession(routes)
    records, sleeps = [], []
    client = PandaClient(
        ClientConfig(url=URL, transport=transport, retries=retries, retry_backoff_s=0.1, **config),
        tokens or FixedTokens(),
        recorder=records.append,
        sleep=sleeps.append,
        session_factory=lambda: session,
    )
    return client, session, records, sleeps


PROD = {"/api/v1/system/get_user_attributes": response(200, envelope(data={"is_production_user": True}))}


def test_v1_headers_body_and_typed_result():
    routes = {
        **PROD,
        "/api/v1/task/submit": response(200, envelope(True, "succeeded. new jediTaskID=42", 42)),
    }
    client, session, records, _ = make_client(routes)
    result = client.submit(User(), {"taskName": "t1"}, parent_tid=5)
    assert (result.task_id, result.code) == (42, 0)
    verb, path, kwargs = session.sent[-1]
    assert (verb, path) == ("POST", "/api/v1/task/submit")
    assert kwargs["headers"]["Authorization"] == "Bearer tok-abc"
    assert kwargs["headers"]["Origin"] == "spd.production"
    assert kwargs["headers"]["Accept"] == "application/json"
    assert kwargs["headers"]["Content-Type"] == "application/json"
    assert json.loads(kwargs["data"]) == {"task_parameters": {"taskName": "t1"}, "parent_tid": 5}
    assert kwargs["timeout"] == (5.0, 30.0)
    assert [r.method for r in records] == ["get_user_attributes", "submit"]
    assert records[-1].task_id == 42 and records[-1].outcome == "ok" and records[-1].user_id == 7


def test_v1_get_uses_query_string_with_typed_values():
    routes = {"/api/v1/task/get_details": response(200, envelope(data={"statistics": "finished*3,failed*1"}))}
    client, session, _, _ = make_client(routes)
    details = client.get_details(User(), 9, include_parameters=True)
    assert details.statistics == {"finished": 3, "failed": 1}
    verb, _, kwargs = session.sent[-1]
    assert verb == "GET" and kwargs.get("data") is None
    assert ("task_id", "9") in kwargs["params"] and ("include_parameters", "true") in kwargs["params"]


def test_datetime_envelope_decoding():
    data = decode_json('{"a": {"__datetime__": "2026-01-02T03:04:05"}, "b": [1]}')
    assert data["a"] == datetime(2026, 1, 2, 3, 4, 5)


def test_retry_success_with_data_4_is_a_rejection():
    msg = "Command rejected: the retry command is not accepted if the task is in running status "
    client, _, records, _ = make_client({"/api/v1/task/retry": response(200, envelope(True, msg, 4))})
    with pytest.raises(PandaRejected) as info:
        client.retry(User(), 5)
    assert info.value.code == 4 and "current status" in info.value.human
    assert records[-1].outcome == "rejected" and records[-1].return_code == 4


def test_retry_with_new_parameters_accepted_as_incremental_execution():
    msg = "reactivation accepted. jediTaskID=5 (currently in finished state) will be re-executed with old and/or new input"
    client, _, _, _ = make_client({**PROD, "/api/v1/task/retry": response(200, envelope(True, msg, 3))})
    result = client.retry(User(), 5, new_parameters={"nEvents": 10})
    assert (result.code, result.new_task_id) == (3, None)
    with pytest.raises(PandaRejected):  # without new parameters 3 is no answer retry gives
        client.retry(User(), 5)


def test_submit_accepted_as_incremental_execution_says_code_3():
    msg = "reactivation accepted. jediTaskID=42 (currently in done state) will be re-executed with old and/or new input"
    routes = {**PROD, "/api/v1/task/submit": response(200, envelope(True, msg, 42))}
    client, _, _, _ = make_client(routes)
    assert client.submit(User(), {"taskName": "t"}).code == 3


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4, 10, 11])
def test_every_submit_code_has_its_own_sentence(code):
    assert human_sentence(code, "submit") == SUBMIT_CODES[code]


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4, 5])
def test_every_command_code_has_its_own_sentence(code):
    assert human_sentence(code, "command") == COMMAND_CODES[code]


@pytest.mark.parametrize("code", [1, 2, 4, 10, 11])
def test_refused_submit_raises_the_code_its_sentence_and_the_servers_text(code):
    routes = {**PROD, "/api/v1/task/submit": response(200, envelope(False, f"server text {code}", code))}
    client, _, records, _ = make_client(routes)
    with pytest.raises(PandaRejected) as info:
        client.submit(User(), {"taskName": "t"})
    assert (info.value.code, info.value.server_message) == (code, f"server text {code}")
    assert info.value.human == f"{SUBMIT_CODES[code]} Server said: server text {code}"
    assert (records[-1].outcome, records[-1].return_code) == ("rejected", code)


@pytest.mark.parametrize("code", [1, 3, 4, 5])
def test_refused_command_raises_the_code_and_its_sentence(code):
    client, _, _, _ = make_client({"/api/v1/task/kill": response(200, envelope(False, "no", code))})
    with pytest.raises(PandaRejected) as info:
        client.kill(User(), 1)
    assert info.value.code == code and info.value.human.startswith(COMMAND_CODES[code])


def test_reads_are_retried_with_backoff_on_unavailable_then_succeed():
    calls = iter([response(500, "boom"), response(503, ""), response(200, envelope(data="running"))])
    client, _, records, sleeps = make_client({"/api/v1/task/get_status": lambda v, k: next(calls)})
    assert client.get_status(User(), 3) == "running"
    assert sleeps == [0.1, 0.2]
    assert [(r.attempt, r.outcome) for r in records] == [(1, "unavailable"), (2, "unavailable"), (3, "ok")]


def test_writes_with_unknown_outcome_are_never_retried():
    client, session, records, sleeps = make_client(
        {**PROD, "/api/v1/task/submit": requests.ReadTimeout("read timed out")}
    )
    with pytest.raises(PandaOutcomeUnknown):
        client.submit(User(), {"taskName": "t"})
    assert sleeps == [] and [p for _, p, _ in session.sent].count("/api/v1/task/submit") == 1
    assert records[-1].outcome == "unknown"


def test_http_500_on_a_write_is_an_unknown_outcome():
    client, _, _, sleeps = make_client({"/api/v1/task/kill": response(500, "exception")})
    with pytest.raises(PandaOutcomeUnknown):
        client.kill(User(), 1)
    assert sleeps == []


def test_connection_refused_on_a_write_is_unavailable_and_retried():
    refused = requests.ConnectionError(NewConnectionError(None, "Connection refused"))
    calls = iter([refused, response(200, envelope(True, "command=kill is registered", 0))])
    client, _, records, sleeps = make_client({"/api/v1/task/kill": lambda v, k: next(calls)})
    assert client.kill(User(), 1).code == 0
    assert sleeps == [0.1] and records[0].outcome == "unavailable"


def test_reset_after_send_on_a_write_is_unknown():
    reset = requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")))
    client, _, _, _ = make_client({"/api/v1/task/pause": reset})
    with pytest.raises(PandaOutcomeUnknown):
        client.pause(User(), 1)


def test_403_token_failure_gives_the_servers_reason():
    body = "ERROR : Token authentication failed. Not a member of the spd/production group"
    client, _, records, _ = make_client({"/api/v1/task/get_status": response(403, body)})
    with pytest.raises(PandaAuthError) as info:
        client.get_status(User(), 1)
    assert info.value.reason == "Not a member of the spd/production group"
    assert records[-1].outcome == "auth" and records[-1].http_status == 403


def test_role_message_in_envelope_is_an_auth_error():
    client, _, _, _ = make_client(
        {"/api/v1/task/pause": response(200, envelope(False, "production or pilot role required"))}
    )
    with pytest.raises(PandaAuthError):
        client.pause(User(), 1)


def test_task_not_found_is_panda_not_found():
    client, _, _, _ = make_client(
        {"/api/v1/task/get_status": response(200, envelope(False, "Task not found"))}
    )
    with pytest.raises(PandaNotFound):
        client.get_status(User(), 1)
    client, _, _, _ = make_client(
        {"/api/v1/task/kill": response(200, envelope(False, "jediTaskID=1 not found", 2))}
    )
    with pytest.raises(PandaNotFound):
        client.kill(User(), 1)


def test_submit_refused_without_production_role_names_the_group():
    routes = {
        "/api/v1/system/get_user_attributes": response(200, envelope(data={"is_production_user": False}))
    }
    client, session, _, _ = make_client(routes)
    with pytest.raises(PandaRoleMissing) as info:
        client.submit(User(), {"taskName": "t"})
    assert "spd/production" in str(info.value) and "IAM admins" in str(info.value)
    assert all(path != "/api/v1/task/submit" for _, path, _ in session.sent)


def test_missing_token_is_an_auth_error_and_recorded():
    client, session, records, _ = make_client({}, tokens=FixedTokens(fail="refresh token expired"))
    with pytest.raises(PandaAuthError) as info:
        client.get_status(User(), 1)
    assert info.value.reason == "refresh token expired" and isinstance(info.value.__cause__, TokenUnavailable)
    assert session.sent == [] and records[-1].outcome == "auth"


def test_tokens_never_reach_the_record():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
    assert strip_secrets(
        {"a": 1, "id_token": "x", "nested": {"Authorization": "y"}, "note": f"Bearer {jwt}"}
    ) == {"a": 1, "id_token": "***", "nested": {"Authorization": "***"}, "note": "Bearer ***"}
    # JEDI's "token" key of a dataset item is a storage token, not a credential: logged as sent.
    assert strip_secrets({"log": {"token": "local"}}) == {"log": {"token": "local"}}


def test_transport_detection_falls_back_to_legacy_and_is_cached():
    routes = {
        "/api/v1/system/is_alive": response(404, "Not Found"),
        "/server/panda/isAlive": response(200, "alive=yes"),
        "/server/panda/getTaskStatus": response(200, pickle.dumps("running", protocol=0)),
    }
    client, session, _, _ = make_client(routes, transport="auto")
    assert client.get_status(User(), 4) == "running"
    assert client.get_status(User(), 4) == "running"
    paths = [p for _, p, _ in session.sent]
    assert paths.count("/api/v1/system/is_alive") == 1 and paths.count("/server/panda/isAlive") == 1


def test_legacy_form_fields_booleans_and_pickled_tuple():
    seen = {}

    def kill(verb, kwargs):
        seen.update(kwargs["data"])
        return response(200, pickle.dumps((0, "command=kill is registered"), protocol=0))

    client, _, _, _ = make_client({"/server/panda/killTask": kill}, transport="legacy")
    assert client.kill(User(), 11, broadcast=True).code == 0
    assert seen == {"jediTaskID": "11", "properErrorCode": "True", "broadcast": "True"}


def test_legacy_calls_without_equivalent_are_unsupported():
    client, _, records, _ = make_client({}, transport="legacy")
    with pytest.raises(PandaUnsupported):
        client.get_tasks_detailed_info_since(User())
    assert records[-1].outcome == "unsupported"


def test_restricted_unpickler_refuses_classes():
    evil = b"cos\nsystem\n(S'echo hi'\ntR."
    with pytest.raises(pickle.UnpicklingError):
        restricted_loads(evil)
    with pytest.raises(pickle.UnpicklingError):  # only the latin1 codec datetimes need
        restricted_loads(b"c_codecs\nencode\n(Vx\nVzlib\ntR.")
    value = {"a": (1, 2.5, None, True), "t": datetime(2026, 1, 1), "s": {1}}
    assert restricted_loads(pickle.dumps(value, protocol=0)) == value


def test_recorder_failure_never_breaks_a_call():
    def broken(record):
        raise RuntimeError("db down")

    session = FakeSession({"/api/v1/task/get_status": response(200, envelope(data="done"))})
    client = PandaClient(
        ClientConfig(url=URL, transport="v1"), FixedTokens(), recorder=broken, session_factory=lambda: session
    )
    assert client.get_status(User(), 1) == "done"
