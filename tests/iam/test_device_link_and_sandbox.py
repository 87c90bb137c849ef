"""Device-code linking for local accounts (like panda-client), and sandbox tokens for the built-in
PanDA simulator."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.panda.errors import PandaAuthError
from app.tokens import services as vault
from app.tokens.jwtutil import unverified_claims
from app.tokens.models import UserToken
from pandasim.issuer import SimIssuer
from tests.helpers import post_form


@pytest.fixture
def iam_overrides():
    return {"iam": {"device_client_id": "panda"}}


def test_local_user_links_a_panda_token_through_the_device_flow(client, db, login_as, oidc_op, clock):
    clock.set(datetime.now(UTC))
    user = login_as("manager")
    with pytest.raises(vault.TokenUnavailable, match="link one"):
        vault.token_for(user)
    assert post_form(client, "/tokens/link", token_page="/tokens/").status_code == 302
    page = client.get("/tokens/").get_data(as_text=True)
    user_code = re.search(r'id="user-code">([^<]+)<', page).group(1)
    assert "device_code" not in page
    # Not approved yet: the panel says so and keeps waiting.
    post_form(client, "/tokens/link/poll", token_page="/tokens/")
    assert "Not approved yet" in client.get("/tokens/").get_data(as_text=True)
    oidc_op.approve_device_code(user_code, "alice")
    assert post_form(client, "/tokens/link/poll", token_page="/tokens/").status_code == 302
    db.session.expire_all()
    row = db.session.scalar(select(UserToken).where(UserToken.user_id == user.id))
    assert row.source == "device-link" and row.client_id == "panda" and row.refresh_token_sealed is not None
    claims = unverified_claims(vault.token_for(user))
    assert claims["aud"] == "panda" and "spd/production" in claims["groups"]
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "token.linked"))
    # The linked grant refreshes like the login's (public client: no secret).
    before = oidc_op.stats()["refresh"]
    vault.refresh_now(user)
    assert oidc_op.stats()["refresh"] == before + 1


def test_iam_user_cannot_link_a_code_approved_by_another_account(client, db, oidc_op, clock):
    from tests.oidc_fixture import iam_login

    clock.set(datetime.now(UTC))
    assert iam_login(client, oidc_op, "bob").status_code == 302
    post_form(client, "/tokens/link", token_page="/tokens/")
    user_code = re.search(r'id="user-code">([^<]+)<', client.get("/tokens/").get_data(as_text=True)).group(1)
    oidc_op.approve_device_code(user_code, "carol")  # bob got carol to approve his code
    post_form(client, "/tokens/link/poll", token_page="/tokens/")
    assert "approved by another SPD-IAM account" in client.get("/tokens/").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(UserToken).where(UserToken.source == "device-link")) is None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "token.link_failed"))
    assert event.username == "bob" and "another SPD-IAM account" in event.details["reason"]


def test_a_link_in_progress_is_stored_sealed_and_outlives_a_key_rotation(client, db, login_as, oidc_op, clock):
    from app.tokens import device
    from app.tokens.models import DeviceLink

    clock.set(datetime.now(UTC))
    user = login_as("manager")
    vault.rotate_keys()  # the code is sealed under a key that can be pruned (the base key never is)
    db.session.commit()
    post_form(client, "/tokens/link", token_page="/tokens/")
    user_code = re.search(r'id="user-code">([^<]+)<', client.get("/tokens/").get_data(as_text=True)).group(1)
    # In the database (any `serve` process polls it), the secret device code sealed.
    db.session.expire_all()
    row = db.session.get(DeviceLink, user.id)
    code = device.pending_link(user).device_code
    assert row.user_code == user_code and code and code.encode() not in row.device_code_sealed
    vault.rotate_keys()
    db.session.commit()
    assert vault.prune_unused_keys() == 1
    assert device.pending_link(user).device_code == code
    oidc_op.approve_device_code(user_code, "alice")
    post_form(client, "/tokens/link/poll", token_page="/tokens/")
    assert "PanDA token linked" in client.get("/tokens/").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(DeviceLink, user.id) is None


def test_deleting_a_users_tokens_cancels_their_link_in_progress(
    client, db, login_as, make_user, oidc_op, clock
):
    from app.tokens import device

    clock.set(datetime.now(UTC))
    login_as("admin")
    target = make_user("manager")
    device.start_link(target)
    assert device.pending_link(target) is not None
    assert post_form(client, f"/tokens/all/{target.id}/delete", token_page="/tokens/").status_code == 302
    assert device.pending_link(target) is None


def test_sandbox_tokens_follow_the_panel_role(settings_factory, migrated_sqlite, make_user):
    import shutil

    from app import create_app
    from app.extensions import db as _db

    settings = settings_factory()  # no PanDA URL: sandbox
    shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    application = create_app(settings)
    issuer = SimIssuer("http://127.0.0.1:1/oidc")
    application.extensions["panda_sandbox"] = type("Sim", (), {"issuer": issuer, "config": None})()
    with application.app_context():
        from app.auth.services import create_local_user

        manager = create_local_user("mgr", "long-enough-password", role="manager")
        viewer = create_local_user("view", "long-enough-password", role="viewer")
        _db.session.commit()
        token = vault.token_for(manager)
        claims = unverified_claims(token)
        assert claims["groups"] == ["spd", "spd/production"] and claims["aud"] == "prodpanel"
        assert claims["iss"] == "http://127.0.0.1:1/oidc/" and claims["preferred_username"] == "mgr"
        assert vault.token_for(manager) == token  # reused while fresh
        assert unverified_claims(vault.token_for(viewer))["groups"] == ["spd"]
        assert vault.valid_until(viewer) is not None
        _db.session.remove()
        _db.engine.dispose()


def test_local_accounts_switched_off_leaves_iam_login(settings_factory, migrated_sqlite, oidc_op):
    from tests.oidc_fixture import build_iam_app

    application = build_iam_app(settings_factory, migrated_sqlite, oidc_op, auth={"local_accounts": False})
    with application.app_context():
        client = application.test_client()
        html = client.get("/login").get_data(as_text=True)
        assert 'id="iam-login"' in html and 'id="login-form"' not in html
        from app.extensions import db as _db

        _db.session.remove()
        _db.engine.dispose()


def test_sandbox_simulator_accepts_sandbox_tokens(settings_factory, migrated_sqlite):
    """`serve` in sandbox mode: the running simulator's own issuer mints tokens PanDA accepts."""
    import shutil

    from app import create_app
    from app.extensions import db as _db
    from app.panda.sandbox import attach_sandbox, start_sandbox
    from app.panda.services import panda_client_for

    settings = settings_factory()
    shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    application = create_app(settings)
    running = start_sandbox(settings)
    try:
        attach_sandbox(application, running)
        with application.app_context():
            from app.auth.services import create_local_user

            manager = create_local_user("mgr", "long-enough-password", role="manager")
            viewer = create_local_user("view", "long-enough-password", role="viewer")
            _db.session.commit()
            client = panda_client_for(settings, tokens=vault)
            try:
                assert client.get_user_attributes(manager).is_production_user
                with pytest.raises(PandaAuthError, match="spd/production"):
                    client.get_user_attributes(viewer)
            finally:
                client.close()
            _db.session.remove()
            _db.engine.dispose()
    finally:
        running.stop()


def test_sandbox_restart_keeps_panda_tasks_and_remints_tokens(settings_factory, migrated_sqlite):
    """`make run` stopped and started again: the simulator's tasks are still there (its state lives in
    the instance folder) and tokens minted by the previous simulator's key are replaced, not sent."""
    import shutil

    from app import create_app
    from app.auth.services import create_local_user
    from app.extensions import db as _db
    from app.panda.sandbox import attach_sandbox, start_sandbox
    from app.panda.services import panda_client_for
    from tests.panda.test_contract import task_params

    settings = settings_factory()
    shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    application = create_app(settings)
    with application.app_context():
        manager = create_local_user("mgr", "long-enough-password", role="manager")
        _db.session.commit()
        first = start_sandbox(settings)
        try:
            attach_sandbox(application, first)
            before = vault.token_for(manager)
            client = panda_client_for(settings, tokens=vault)
            try:
                task_id = client.submit(manager, task_params("spd.mc.restart.1")).task_id
            finally:
                client.close()
        finally:
            first.stop()
        assert (settings.instance_dir / "panda-sim.sqlite3").exists()

        second = start_sandbox(settings)
        try:
            attach_sandbox(application, second)
            after = vault.token_for(manager)
            assert after != before
            assert unverified_claims(after)["iss"].rstrip("/") == second.app.issuer.issuer_url
            client = panda_client_for(settings, tokens=vault)
            try:
                assert client.get_user_attributes(manager).is_production_user
                assert client.get_task_parameters(manager, task_id)["taskName"] == "spd.mc.restart.1"
            finally:
                client.close()
        finally:
            second.stop()
        _db.session.remove()
        _db.engine.dispose()


def test_sandbox_with_iam_configured_trusts_iam_for_iam_users(make_app, oidc_op, real_clock):
    """[iam] configured, no [panda] url: the built-in simulator trusts SPD-IAM like PanDA would, so
    an IAM user's own token reaches it; local accounts keep sandbox tokens."""
    from app.auth.services import create_local_user
    from app.extensions import db
    from app.panda.sandbox import attach_sandbox, start_sandbox
    from app.panda.services import panda_client_for
    from tests.oidc_fixture import iam_login

    app = make_app(panda={"url": ""})
    settings = app.config["SETTINGS"]
    assert settings.sandbox
    running = start_sandbox(settings)
    try:
        attach_sandbox(app, running)
        client = app.test_client()
        assert iam_login(client, oidc_op, "alice").status_code == 302
        alice = db.session.scalar(select(User).where(User.sub == "alice"))
        local = create_local_user("local-mgr", "long-enough-password", role="manager")
        db.session.commit()
        claims = unverified_claims(vault.token_for(alice))
        assert claims["iss"] == oidc_op.issuer and claims["aud"] == oidc_op.client_id
        assert unverified_claims(vault.token_for(local))["iss"] == running.app.issuer.issuer_url + "/"
        panda = panda_client_for(settings, tokens=vault)
        try:
            assert panda.get_user_attributes(alice).is_production_user
            assert panda.get_user_attributes(local).is_production_user
        finally:
            panda.close()
        # What the page says lasts is the IAM grant's refresh token (30 days), not a sandbox year.
        assert vault.valid_until(alice) < real_clock.current + timedelta(days=31)
        page = client.get("/tokens/").get_data(as_text=True)
        valid_until = page.split('id="valid-until">', 1)[1].split("</dd>", 1)[0]
        assert "(in 30 days)" in valid_until and "364 days" not in page
        assert [
            row.source for row in db.session.scalars(select(UserToken).where(UserToken.user_id == alice.id))
        ] == ["login"]
    finally:
        running.stop()
