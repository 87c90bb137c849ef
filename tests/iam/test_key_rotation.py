"""Signing-key rotation: a restarted provider (a new key under the same key id) needs no restart of
the panel or of PanDA. Each re-reads the key set once, rate-limited, before refusing a token."""

from datetime import timedelta

from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.panda.services import panda_client_for
from app.tokens import services as vault
from pandasim import SimApp, SimConfig, serve_in_thread
from tests.oidc_fixture import iam_login, stop_op


def _failures(db) -> list[str]:
    db.session.expire_all()
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed"))
    return [e.details.get("reason", "") for e in events]


def test_a_restarted_provider_needs_no_restart_of_the_panel_or_of_panda(make_op, make_app, real_clock):
    from app.extensions import db

    op = make_op()
    config = SimConfig(issuer_url=op.issuer, client_ids=("panda",), secondary_ids=("panel",), time_scale=0)
    sim = serve_in_thread(SimApp(config))
    try:
        app = make_app(op, panda={"url": sim.url})
        assert iam_login(app.test_client(), op, "alice").headers["Location"].endswith("/")
        alice = db.session.scalar(select(User).where(User.sub == "alice"))
        panda = panda_client_for(app.config["SETTINGS"], tokens=vault, url=sim.url)
        try:
            assert panda.get_user_attributes(alice).is_production_user  # PanDA has read the keys

            stop_op(op)
            op = make_op(port=op.port)  # same address and key id, a new key
            assert iam_login(app.test_client(), op, "alice").headers["Location"].endswith("/")
            assert op.stats()["jwks"] == 1  # the panel read the new key set once
            assert panda.get_user_attributes(alice).is_production_user  # and so does PanDA
        finally:
            panda.close()

        # Another restart moments later: the panel does not read the key set again at once...
        stop_op(op)
        op = make_op(port=op.port)
        refused = iam_login(app.test_client(), op, "alice")
        assert refused.headers["Location"].endswith("/login")
        assert "signature does not match SPD-IAM's published keys" in _failures(db)[-1]
        assert op.stats()["jwks"] == 0
        # ... but once the rate limit's interval has passed.
        real_clock.advance(timedelta(seconds=31).total_seconds())
        assert iam_login(app.test_client(), op, "alice").headers["Location"].endswith("/")
        assert op.stats()["jwks"] == 1
    finally:
        sim.stop()
