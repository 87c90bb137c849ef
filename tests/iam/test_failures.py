"""What users see when IAM is misconfigured or unreachable, and disabled accounts."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.tokens import services as vault
from app.tokens.models import UserToken
from tests.oidc_fixture import iam_login


def _failures(db):
    return [
        e.details.get("reason", "")
        for e in db.session.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed"))
    ]


def test_issuer_configured_without_its_trailing_slash_is_refused(make_app, oidc_op):
    from app.extensions import db

    application = make_app(iam={"issuer": oidc_op.issuer.rstrip("/")})
    response = application.test_client().get("/auth/iam/login")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert any("issuer does not match" in r for r in _failures(db))


def test_unreachable_iam_is_reported_not_crashed(make_app):
    from app.extensions import db

    application = make_app(iam={"issuer": "http://127.0.0.1:9/"})
    client = application.test_client()
    response = client.get("/auth/iam/login")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "cannot be reached" in client.get("/login").get_data(as_text=True)
    assert any("cannot be reached" in r for r in _failures(db))


def test_disabled_iam_account_is_refused(make_app, oidc_op):
    from app.extensions import db

    application = make_app()
    assert iam_login(application.test_client(), oidc_op, "bob").status_code == 302
    user = db.session.scalar(select(User).where(User.sub == "bob"))
    user.active = False
    db.session.commit()
    response = iam_login(application.test_client(), oidc_op, "bob")
    assert response.headers["Location"].endswith("/login")
    assert any("disabled" in r for r in _failures(db))


def test_iam_down_during_refresh_is_temporary_not_relogin(make_app, oidc_op, clock):
    from app.extensions import db

    clock.set(datetime.now(UTC))
    application = make_app()
    assert iam_login(application.test_client(), oidc_op, "alice").status_code == 302
    user = db.session.scalar(select(User).where(User.sub == "alice"))
    row = db.session.scalar(select(UserToken).where(UserToken.user_id == user.id))
    row.issuer = "http://127.0.0.1:9/"  # as if IAM were down
    db.session.commit()
    clock.set(row.id_token_expires_at)
    with pytest.raises(vault.TokenUnavailable) as info:
        vault.token_for(user)
    assert not info.value.relogin and "unreachable" in info.value.reason
    db.session.expire_all()
    row = db.session.get(UserToken, row.id)
    assert not row.needs_relogin and "unreachable" in row.last_error
