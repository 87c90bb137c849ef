"""Server tracebacks never reach users: panda-server appends Python tracebacks to some 403 bodies
(no groups claim, aud as a list, no Origin). Users get the first part, mapped to advice where the
cause is known; the interaction log keeps the whole body for the managers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.extensions import db as _db
from app.panda.calllog import flush_call_log
from app.panda.client import CallRecord, ClientConfig, PandaClient
from app.panda.errors import PandaAuthError, first_part
from app.panda.models import PandaCall
from pandasim import SimConfig, create_simulator, serve_in_thread
from tests.pandasim.conftest import PROD_GROUPS
from tests.tasks.conftest import post, sandbox_app

TRACEBACK = "Traceback (most recent call last):"


@pytest.fixture(scope="module")
def sim():
    running = serve_in_thread(create_simulator(SimConfig(seed=4, time_scale=0)))
    yield running
    running.stop()


class Tokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def token_for(self, user) -> str:
        return self.token


def refused(sim, token: str) -> tuple[PandaAuthError, CallRecord]:
    records: list[CallRecord] = []
    client = PandaClient(ClientConfig(url=sim.url, transport="v1", retries=0), Tokens(token), recorder=records.append)
    with pytest.raises(PandaAuthError) as caught:
        client.get_user_attributes(SimpleNamespace(id=1))
    return caught.value, records[-1]


CASES = {
    "no groups claim": (
        dict(groups=None),
        "PanDA refused the token or role: your IAM token has no groups claim: ask IAM for the `groups` scope",
        "Token decode failure. 'groups'",
    ),
    "aud as a list": (
        dict(extra_claims={"aud": ["prodpanel", "another-client"]}),
        "PanDA refused the token or role: your IAM token names several audiences",
        "Token decode failure. unhashable type: 'list'",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_user_gets_advice_and_the_log_keeps_the_traceback(sim, case):
    claims, advice, reason = CASES[case]
    token = sim.app.issuer.mint_id_token(
        "pm", "Test Manager", claims.pop("groups", PROD_GROUPS), "prodpanel", **claims
    )
    error, record = refused(sim, token)
    assert str(error).startswith(advice) and TRACEBACK not in str(error)
    assert error.reason == reason  # the first part of the server's text, as the manifest stores it
    assert record.outcome == "auth" and record.http_status == 403
    assert record.message.startswith(str(error) + "\nPanDA's reply: ERROR : Token authentication failed.")
    assert TRACEBACK in record.message and len(record.message) > len(str(error)) + 200


def test_known_texts_without_traceback_get_advice_too(sim):
    expired = sim.app.mint_token("pm", "Test Manager", PROD_GROUPS, lifetime_s=-10)
    error, record = refused(sim, expired)
    assert str(error) == (
        "PanDA refused the token or role: your IAM token has expired: log in again with IAM "
        "(PanDA said: Invalid token. Signature has expired)"
    )
    assert record.message == str(error)  # nothing was cut, nothing is repeated


def test_first_part_cuts_tracebacks_and_keeps_one_line():
    body = "ERROR : Token decode failure. 'groups' Traceback (most recent call last):\n  File \"x.py\", line 1"
    assert first_part(body) == "ERROR : Token decode failure. 'groups'"
    assert first_part("failed to extract common parameters with KeyError:'x' Traceback (most recent call last):\n  File") == (
        "failed to extract common parameters with KeyError:'x'"
    )
    assert first_part("line one\nline two") == "line one" and first_part("") == ""


def test_a_refiner_traceback_in_error_dialog_stays_in_raw(sim):
    """JEDI's errorDialog for a task missing a key ends with a traceback (panda-real-replies.md §3)."""
    from tests.panda.test_contract import task_params

    token = sim.app.mint_token("pm", "Test Manager", PROD_GROUPS)
    client = PandaClient(ClientConfig(url=sim.url, transport="v1"), Tokens(token))
    user = SimpleNamespace(id=1)
    params = task_params("spd.mc.traceback")
    params.pop("taskPriority")
    task_id = client.submit(user, params).task_id
    sim.app.advance(90)
    info = client.get_detailed_info(user, task_id)
    assert info.status == "tobroken"
    assert info.error_dialog == "failed to extract common parameters with KeyError:'taskPriority'"
    assert TRACEBACK in info.raw["errorDialog"]


class GroupsDroppingIssuer:
    """IAM misconfigured: ID tokens without the groups claim (signed by the simulator's issuer)."""

    def __init__(self, issuer) -> None:
        self.issuer, self.kid, self.issuer_url = issuer, issuer.kid, issuer.issuer_url

    def mint_id_token(self, **claims) -> str:
        return self.issuer.mint_id_token(**{**claims, "groups": None})


@pytest.fixture
def app(settings_factory, migrated_sqlite, sim):
    """The panel in sandbox mode; its sandbox tokens lack the groups claim."""
    settings = settings_factory(panda={"transport": "v1", "retries": 0})
    sandbox = SimpleNamespace(issuer=GroupsDroppingIssuer(sim.app.issuer), config=sim.app.config)
    application = sandbox_app(settings, migrated_sqlite, SimpleNamespace(url=sim.url))
    application.extensions["panda_sandbox"] = sandbox
    application.config["TESTING"] = True
    with application.app_context():
        yield application
        flush_call_log(10)
        _db.session.remove()
        _db.engine.dispose()


def test_check_with_panda_flashes_advice_not_a_traceback(client, login_as):
    user = login_as("manager")
    html = post(client, "/tokens/check", {}, follow_redirects=True).get_data(as_text=True)
    assert "PanDA check failed: PanDA refused the token or role: your IAM token has no groups claim" in html
    assert "Traceback" not in html and "File &#34;" not in html
    flush_call_log(10)
    (row,) = _db.session.scalars(select(PandaCall).where(PandaCall.user_id == user.id)).all()
    assert row.outcome == "auth" and TRACEBACK in row.message
