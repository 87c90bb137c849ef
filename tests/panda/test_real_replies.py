"""Contract tests from the real server's replies (issue 9, item 7).

`recorded/real_replies.json` holds replies of a real panda-server 1.0.4 with JEDI, converted from
shared/reference/panda-real-replies.md. Each case runs twice through the panel's own PandaClient:

- replayed: a requests adapter answers the client's requests with the recorded bytes; the client
  must classify them as the real server means them (result, or which error with which code);
- against the simulator over HTTP, set up in the same state: the client must classify its replies
  the same way, and the simulator must answer like the real column (HTTP status, success, message
  and data; task ids as roles; a token failure's first part and whether a traceback follows).

Both runs also check that the client sent exactly the recorded requests (e.g. a submission the
production-role check refuses never reaches `task/submit`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from app.panda.client import ClientConfig, PandaClient
from app.panda.errors import (
    TRACEBACK,
    PandaAuthError,
    PandaError,
    PandaNotFound,
    PandaRejected,
    PandaRoleMissing,
    PandaUnsupported,
    first_part,
)
from pandasim import SimConfig, Timings, create_simulator, serve_in_thread
from tests.panda.test_contract import task_params
from tests.pandasim.conftest import PROD_GROUPS, Panda, reco

RECORDED = json.loads((Path(__file__).parent / "recorded" / "real_replies.json").read_text())["cases"]
USER = SimpleNamespace(id=7)
LEGACY_ADVICE = 'set [panda] transport to "auto" or "v1".'


@dataclass(frozen=True)
class Expect:
    """What the client must make of the replies: an exception of exactly this class (with `code`,
    and `says` in its message, never a traceback), or a result passing `check`."""

    raises: type[PandaError] | None = None
    code: int | None = None
    says: str = ""
    check: Callable[[Any], bool] | None = None


def raises(cls: type[PandaError], says: str = "", code: int | None = None) -> Expect:
    return Expect(raises=cls, says=says, code=code)


def returns(check: Callable[[Any], bool]) -> Expect:
    return Expect(check=check)


Call = Callable[[PandaClient, dict[str, int]], Any]


def without_task_name() -> dict[str, Any]:
    params = task_params("spd.mc.real.nameless")
    params.pop("taskName")
    return params


# case -> (the client call, what it must make of the replies)
CASES: dict[str, tuple[Call, Expect]] = {
    "is_alive": (lambda c, ids: c.is_alive(), returns(lambda r: r.alive)),
    "legacy_is_alive_on_1.0": (lambda c, ids: c.is_alive(), raises(PandaUnsupported, LEGACY_ADVICE)),
    "legacy_get_status_on_1.0": (
        lambda c, ids: c.get_status(USER, ids["SIM"]), raises(PandaUnsupported, LEGACY_ADVICE)
    ),
    "user_attributes_production": (
        lambda c, ids: c.get_user_attributes(USER),
        returns(lambda r: r.is_production_user and r.fqans == ("/spd/Role=production",)),
    ),
    "user_attributes_without_role": (
        lambda c, ids: c.get_user_attributes(USER), returns(lambda r: not r.is_production_user and not r.fqans)
    ),
    "no_origin_header": (
        lambda c, ids: c.get_user_attributes(USER), raises(PandaAuthError, "without an Origin header")
    ),
    "unknown_vo": (lambda c, ids: c.get_user_attributes(USER), raises(PandaAuthError, "Unknown vo : atlas")),
    "role_not_in_groups": (
        lambda c, ids: c.get_user_attributes(USER), raises(PandaAuthError, "Not a member of the spd/admin group")
    ),
    "user_token_production_origin": (
        lambda c, ids: c.get_user_attributes(USER),
        raises(PandaAuthError, "Not a member of the spd/production group"),
    ),
    "no_token": (
        lambda c, ids: c.get_user_attributes(USER), raises(PandaAuthError, "SSL secure connection is required")
    ),
    "garbage_token": (
        lambda c, ids: c.get_user_attributes(USER), raises(PandaAuthError, "Invalid token. Invalid header string")
    ),
    "tampered_token": (
        lambda c, ids: c.get_user_attributes(USER), raises(PandaAuthError, "Signature verification failed")
    ),
    "expired_token": (
        lambda c, ids: c.get_user_attributes(USER), raises(PandaAuthError, "your IAM token has expired")
    ),
    "unknown_audience": (
        lambda c, ids: c.get_user_attributes(USER), raises(PandaAuthError, "PanDA does not know the client")
    ),
    "no_groups_claim": (
        lambda c, ids: c.get_user_attributes(USER), raises(PandaAuthError, "your IAM token has no groups claim")
    ),
    "no_name_claim": (
        lambda c, ids: c.get_user_attributes(USER), returns(lambda r: r.dn == r.dn_clean == "0000-3333")
    ),
    "submit": (
        lambda c, ids: c.submit(USER, task_params("spd.mc.real.submit")),
        returns(lambda r: r.code == 0 and isinstance(r.task_id, int) and r.task_id > 0),
    ),
    "submit_without_task_name": (
        lambda c, ids: c.submit(USER, without_task_name()), raises(PandaRejected, "server error", code=4)
    ),
    "submit_without_role_is_not_sent": (
        lambda c, ids: c.submit(USER, task_params("spd.mc.real.norole")),
        raises(PandaRoleMissing, "Nothing was submitted"),
    ),
    "status_right_after_submit": (lambda c, ids: c.get_status(USER, ids["FRESH"]), raises(PandaNotFound)),
    "detailed_info_right_after_submit": (
        lambda c, ids: c.get_detailed_info(USER, ids["FRESH"]), raises(PandaNotFound)
    ),
    "kill_right_after_submit": (lambda c, ids: c.kill(USER, ids["FRESH"]), raises(PandaNotFound, code=2)),
    "priority_right_after_submit": (
        lambda c, ids: c.change_priority(USER, ids["FRESH"], 950), raises(PandaNotFound)
    ),
    "status_defined": (lambda c, ids: c.get_status(USER, ids["SIM"]), returns(lambda r: r == "defined")),
    "status_pending_child": (lambda c, ids: c.get_status(USER, ids["RECO"]), returns(lambda r: r == "pending")),
    "change_priority": (
        lambda c, ids: c.change_priority(USER, ids["SIM"], 950), returns(lambda r: r.n_changed == 1)
    ),
    "change_attribute_bogus": (
        lambda c, ids: c.change_attribute(USER, ids["SIM"], "bogus", 1),
        raises(PandaRejected, "bogus is not a valid attribute"),
    ),
    "change_split_rule_not_allowed": (
        lambda c, ids: c.change_split_rule(USER, ids["SIM"], "NE", "10"),
        raises(PandaRejected, "NE is not a valid attribute", code=2),
    ),
    "change_split_rule": (
        lambda c, ids: c.change_split_rule(USER, ids["SIM"], "NF", "2"), returns(lambda r: r.n_changed == 1)
    ),
    "pause": (lambda c, ids: c.pause(USER, ids["SIM"]), returns(lambda r: r.code == 0)),
    "retry_in_defined_status": (
        lambda c, ids: c.retry(USER, ids["SIM"]), raises(PandaRejected, "in defined status", code=4)
    ),
    "increase_attempts_in_defined_status": (
        lambda c, ids: c.increase_attempts(USER, ids["SIM"], 1), raises(PandaRejected, "status=defined", code=2)
    ),
    "kill_unknown_task": (lambda c, ids: c.kill(USER, ids["UNKNOWN"]), raises(PandaNotFound, code=2)),
    "kill_by_other_user": (
        lambda c, ids: c.kill(USER, ids["SIM"]), raises(PandaAuthError, "not the task owner")
    ),
    "pause_without_role": (
        lambda c, ids: c.pause(USER, ids["SIM"]), raises(PandaAuthError, "production or pilot role required")
    ),
    "pause_paused_task": (
        lambda c, ids: c.pause(USER, ids["PAUSED"]), raises(PandaRejected, "in paused status", code=4)
    ),
    "kill_task_in_toabort": (
        lambda c, ids: c.kill(USER, ids["KILLED"]), raises(PandaRejected, "in toabort status", code=4)
    ),
    "status_after_finish": (
        lambda c, ids: c.get_status(USER, ids["FINISHED"]), returns(lambda r: r == "passed")
    ),
    "kill_done_task": (lambda c, ids: c.kill(USER, ids["FINAL"]), raises(PandaRejected, "in done status", code=4)),
    "retry_done_task": (
        lambda c, ids: c.retry(USER, ids["FINAL"]), raises(PandaRejected, "in done status", code=4)
    ),
    "reassign_done_task": (
        lambda c, ids: c.reassign(USER, ids["FINAL"], site="JINR_PROD"), returns(lambda r: r.code == 0)
    ),
    "retry_with_new_parameters": (
        lambda c, ids: c.retry(USER, ids["FINAL"], new_parameters={"nEvents": 2000}),
        returns(lambda r: r.code == 0 and isinstance(r.new_task_id, int)),
    ),
    "increase_attempts_unknown_task": (
        lambda c, ids: c.increase_attempts(USER, ids["UNKNOWN"], 1), raises(PandaNotFound, code=1)
    ),
    "retry_unknown_task": (lambda c, ids: c.retry(USER, ids["UNKNOWN"]), raises(PandaNotFound, code=2)),
    "change_attribute_unknown_task": (
        lambda c, ids: c.change_attribute(USER, ids["UNKNOWN"], "ramCount", 3000), raises(PandaNotFound)
    ),
}

# identity -> (vo, role) of the Origin header
ORIGINS = {
    "prod": ("spd", "production"), "prod_spd": ("spd", ""), "prod_atlas": ("atlas", ""),
    "prod_admin": ("spd", "admin"), "user_prod": ("spd", "production"), "user_spd": ("spd", ""),
    "garbage": ("spd", "production"), "tampered": ("spd", "production"), "expired": ("spd", "production"),
    "aud_unknown": ("spd", "production"), "no_groups": ("spd", "production"), "no_name": ("spd", "production"),
    "anonymous": ("spd", "production"),
}  # fmt: skip


class Tokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def token_for(self, user) -> str:
        return self.token


def verify(call: Call, expect: Expect, client: PandaClient, ids: dict[str, int]) -> None:
    if expect.raises is None:
        result = call(client, ids)
        assert expect.check(result), result
        return
    with pytest.raises(PandaError) as caught:
        call(client, ids)
    error = caught.value
    assert type(error) is expect.raises, f"{type(error).__name__}: {error}"
    assert expect.says in str(error) and TRACEBACK not in str(error), str(error)
    if expect.code is not None:
        assert error.code == expect.code


def client_for(case: dict, url: str, token: str, session: requests.Session) -> PandaClient:
    vo, role = ORIGINS[case["identity"]]
    config = ClientConfig(url=url, transport=case.get("transport", "v1"), vo=vo, role=role, retries=0)
    return PandaClient(config, Tokens(token), session_factory=lambda: session)


# ------------------------------------------------------------------ the recorded replies, replayed


class Replay(BaseAdapter):
    """Answers each request with the recorded reply for its verb and path."""

    def __init__(self, replies: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.replies = replies
        self.sent: list[str] = []

    def send(self, request, **kwargs) -> requests.Response:
        key = f"{request.method} {urlsplit(request.url).path}"
        self.sent.append(key)
        assert key in self.replies, f"the client sent {key}, which the recording does not have"
        response = requests.Response()
        response.status_code = self.replies[key]["status"]
        response._content = self.replies[key]["body"].encode()
        response.headers["Content-Type"] = "text/plain"
        response.url, response.request = request.url, request
        return response

    def close(self) -> None:
        pass


def test_every_recorded_case_has_a_call_and_every_call_a_recording():
    assert set(RECORDED) == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_the_client_reads_the_real_replies_as_the_server_means_them(name):
    case = RECORDED[name]
    replay = Replay(case["replies"])
    session = requests.Session()
    session.mount("https://", replay)
    call, expect = CASES[name]
    verify(call, expect, client_for(case, "https://pandaserver.example:25443", "recorded", session), case.get("ids", {}))
    assert sorted(set(replay.sent)) == sorted(case["replies"])


# ------------------------------------------------------------------ the same cases against the simulator


class Recording(HTTPAdapter):
    """A real HTTP adapter that keeps each reply's status and body."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[str, dict[str, Any]] = {}

    def send(self, request, **kwargs) -> requests.Response:
        response = super().send(request, **kwargs)
        key = f"{request.method} {urlsplit(request.url).path}"
        self.replies[key] = {"status": response.status_code, "body": response.content.decode()}
        return response


@dataclass
class World:
    """A simulator in the states the recording met: task roles -> ids, identities -> tokens."""

    url: str
    ids: dict[str, int]
    tokens: dict[str, str]


def _tokens(sim) -> dict[str, str]:
    issuer = sim.issuer
    prod = issuer.mint_id_token("tmanager", "Test Manager", PROD_GROUPS, "prodpanel")
    user = issuer.mint_id_token("plain", "Plain User", ["spd"], "prodpanel")
    header, payload, signature = prod.split(".")
    tampered = ".".join((header, payload, signature[:20] + ("A" if signature[20] != "A" else "B") + signature[21:]))
    return {
        "prod": prod, "prod_spd": prod, "prod_atlas": prod, "prod_admin": prod, "user_prod": user,
        "user_spd": user, "garbage": "abc.def.ghi", "tampered": tampered, "anonymous": prod,
        "expired": issuer.mint_id_token("tmanager", "Test Manager", PROD_GROUPS, "prodpanel", lifetime_s=-10),
        "aud_unknown": issuer.mint_id_token("tmanager", "Test Manager", PROD_GROUPS, "someone-else"),
        "no_groups": issuer.mint_id_token("tmanager", "Test Manager", None, "prodpanel"),
        "no_name": issuer.mint_id_token("0000-3333", None, PROD_GROUPS, "prodpanel", preferred_username="noname"),
    }  # fmt: skip


@pytest.fixture(scope="module")
def worlds():
    """'main': a defined SIM, its pending RECO, a paused, a killed and a finished task, one not yet in JEDI;
    'final': a done task. Job generation never starts (as in the recording: JEDI ran only its
    refiner and commando), and the clocks stand still while the cases run."""
    config = dict(seed=13, time_scale=0, job_failure_rate=0.0)
    main_sim = create_simulator(SimConfig(**config, timings=Timings(generate_s=10**7)))
    final_sim = create_simulator(SimConfig(**config))
    servers = [serve_in_thread(main_sim), serve_in_thread(final_sim)]
    try:
        main, final = (World(s.url, {"UNKNOWN": 999999}, _tokens(s.app)) for s in servers)
        panda = Panda(main.url, main.tokens["prod"])
        ids = main.ids
        ids["SIM"] = panda.submit(task_params("spd.mc.real.sim"))
        ids["RECO"] = panda.submit(reco("spd.mc.real.reco", input_ds="spd.mc.real.sim.root"), parent_tid=ids["SIM"])
        ids["PAUSED"] = panda.submit(task_params("spd.mc.real.pause"))
        ids["KILLED"] = panda.submit(task_params("spd.mc.real.kill"))
        ids["FINISHED"] = panda.submit(task_params("spd.mc.real.finish"))
        main_sim.advance(90)  # refined: defined, pending
        assert panda.call("task/pause", task_id=ids["PAUSED"])["data"] == 0
        assert panda.call("task/kill", task_id=ids["KILLED"])["data"] == 0
        assert panda.call("task/finish", task_id=ids["FINISHED"], soft=True)["data"] == 0
        main_sim.advance(60)  # TaskCommando: paused, toabort, passed
        ids["FRESH"] = panda.submit(task_params("spd.mc.real.fresh"))  # not picked up by JEDI yet
        final.ids["FINAL"] = Panda(final.url, final.tokens["prod"]).submit(task_params("spd.mc.real.final"))
        final_sim.advance(6 * 3600)
        yield {"main": main, "final": final}
    finally:
        for server in servers:
            server.stop()


def comparable(reply: dict[str, Any], ids: dict[str, int]) -> tuple:
    """A reply with task ids replaced by their roles (ids differ between servers), and a 403 body
    reduced to its first part plus whether a traceback follows."""
    role = {task_id: name for name, task_id in ids.items()}

    def roles(text: str) -> str:
        text = re.sub(r"new jediTaskID=\d+", "new jediTaskID=<NEW>", text)
        return re.sub(r"(jediTaskID=|task ID )(\d+)", lambda m: f"{m[1]}<{role.get(int(m[2]), '?')}>", text)

    try:
        envelope = json.loads(reply["body"])
    except ValueError:
        return reply["status"], roles(first_part(reply["body"])), TRACEBACK in reply["body"]
    message, data = roles(envelope["message"]), envelope["data"]
    if "new jediTaskID=<NEW>" in message and data not in (0, 3):
        data = "<NEW>"  # submit: data is the new id
    return reply["status"], envelope["success"], message, data


@pytest.mark.parametrize("name", [n for n in CASES if RECORDED[n].get("sim", True)])
def test_the_simulator_answers_like_the_real_server(worlds, name):
    case = RECORDED[name]
    world = worlds["final" if "FINAL" in case.get("ids", {}) else "main"]
    recording = Recording()
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", recording)
    call, expect = CASES[name]
    verify(call, expect, client_for(case, world.url, world.tokens[case["identity"]], session), world.ids)
    assert sorted(recording.replies) == sorted(case["replies"])
    for key, real in case["replies"].items():
        assert comparable(recording.replies[key], world.ids) == comparable(real, case.get("ids", {})), key
