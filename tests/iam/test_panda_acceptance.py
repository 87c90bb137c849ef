"""The PanDA simulator, trusting our OpenID provider like panda-server trusts IAM, accepts the ID
tokens the vault hands out and refuses expired, wrongly scoped or unknown-audience ones."""

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.auth.models import User
from app.panda.errors import PandaAuthError
from app.panda.services import panda_client_for
from app.tokens import services as vault
from app.tokens.jwtutil import unverified_claims
from pandasim.app import SimApp
from pandasim.config import SimConfig
from pandasim.server import serve_in_thread
from tests.fakes.tokens import FixedTokens
from tests.helpers import post_form
from tests.oidc_fixture import build_iam_app, iam_login


def _sim(oidc_op, secondary_ids):
    config = SimConfig(
        issuer_url=oidc_op.issuer, client_ids=("panda",), secondary_ids=secondary_ids, time_scale=0
    )
    return serve_in_thread(SimApp(config))


@pytest.fixture
def sim(oidc_op):
    """A simulated PanDA whose VO config lists the panel's client id in secondary_ids."""
    running = _sim(oidc_op, ("panel",))
    yield running
    running.stop()


@pytest.fixture
def app(settings_factory, migrated_sqlite, oidc_op, sim):
    from app.extensions import db as _db

    application = build_iam_app(settings_factory, migrated_sqlite, oidc_op, panda={"url": sim.url})
    with application.app_context():
        yield application
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def real_clock(clock):
    clock.set(datetime.now(UTC))
    return clock


def _user(db, sub):
    return db.session.scalar(select(User).where(User.sub == sub))


def test_simulator_accepts_vault_tokens_and_grants_production(app, client, db, oidc_op, real_clock):
    assert iam_login(client, oidc_op, "alice").status_code == 302
    alice = _user(db, "alice")
    client_ = panda_client_for(app.config["SETTINGS"], tokens=vault)
    try:
        attrs = client_.get_user_attributes(alice)
    finally:
        client_.close()
    assert attrs.is_production_user
    # The token page's check records the same answer.
    assert post_form(client, "/tokens/check", token_page="/tokens/").status_code == 302
    page = client.get("/tokens/").get_data(as_text=True)
    assert "PanDA grants the production role" in page


def test_simulator_refuses_a_token_without_the_production_group(app, client, db, oidc_op, real_clock):
    assert iam_login(client, oidc_op, "bob").status_code == 302
    bob = _user(db, "bob")
    assert "spd/production" not in unverified_claims(vault.token_for(bob))["groups"]
    client_ = panda_client_for(app.config["SETTINGS"], tokens=vault)
    with pytest.raises(PandaAuthError, match="spd/production"):
        client_.get_user_attributes(bob)
    client_.close()


def test_simulator_refuses_an_expired_id_token(app, client, db, oidc_op, real_clock):
    assert iam_login(client, oidc_op, "alice").status_code == 302
    alice = _user(db, "alice")
    oidc_op.tamper_next_id_token(exp=int(time.time()) - 30)
    vault.refresh_now(alice)  # the vault now holds an ID token that expired 30 s ago
    from app.tokens.models import UserToken
    from app.tokens.vault import unseal

    row = db.session.scalar(select(UserToken).where(UserToken.user_id == alice.id))
    db.session.refresh(row)
    expired = unseal(row, "id_token")
    client_ = panda_client_for(app.config["SETTINGS"], tokens=FixedTokens(expired))
    with pytest.raises(PandaAuthError, match="(?i)expired"):
        client_.get_user_attributes(alice)
    client_.close()
    # ... while the vault itself never hands it out: it refreshes first.
    fresh = vault.token_for(alice)
    assert fresh != expired and unverified_claims(fresh)["exp"] > time.time()


def test_simulator_refuses_an_audience_it_does_not_list(app, client, db, oidc_op, real_clock):
    assert iam_login(client, oidc_op, "alice").status_code == 302
    alice = _user(db, "alice")
    other = _sim(oidc_op, ())  # PanDA without the panel in secondary_ids
    try:
        client_ = panda_client_for(app.config["SETTINGS"], tokens=vault, url=other.url)
        with pytest.raises(PandaAuthError) as info:
            client_.get_user_attributes(alice)
        assert "cannot extract client_id" in str(info.value)  # panda-server's words for an unknown aud
        client_.close()
    finally:
        other.stop()
