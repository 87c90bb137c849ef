"""SPD-IAM outages: a still-valid token keeps working, a launch without one waits instead of failing,
nobody is told to log in again, and a short ID token is not refreshed at every use."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.auth.models import User
from app.launches.models import Launch
from app.tasks.models import TaskBunch
from app.tokens import services as vault
from app.tokens.models import UserToken
from pandasim import SimApp, SimConfig, serve_in_thread
from tests.helpers import post_form, settle_launches
from tests.oidc_fixture import iam_login
from tests.tasks.conftest import form_data, post, sim_definition


def _user(db, sub) -> User:
    return db.session.scalar(select(User).where(User.sub == sub))


def _grant(db, user) -> UserToken:
    db.session.expire_all()
    return db.session.scalar(select(UserToken).where(UserToken.user_id == user.id))


def _launch(db, key: str) -> Launch:
    assert settle_launches(60)
    db.session.expire_all()
    bunch = db.session.scalar(select(TaskBunch).where(TaskBunch.idempotency_key == key))
    return bunch.tasks[0].latest_launch


@pytest.fixture
def sim_trusting():
    """A simulated PanDA trusting a given provider, with the panel's client id in secondary_ids."""
    running = []

    def start(op):
        config = SimConfig(
            issuer_url=op.issuer, client_ids=("panda",), secondary_ids=("panel",), time_scale=0
        )
        running.append(serve_in_thread(SimApp(config)))
        return running[-1]

    yield start
    for server in running:
        server.stop()


def test_an_iam_outage_loses_no_launch_and_asks_no_one_to_log_in_again(
    make_op, make_app, sim_trusting, real_clock
):
    from app.extensions import db

    op = make_op()
    sim = sim_trusting(op)
    # A bunch's dispatch thread retries its waiting launches until its deadline: keep that short.
    app = make_app(
        op, panda={"url": sim.url}, iam={"http_timeout_s": 0.5}
    )
    client = app.test_client()
    assert iam_login(client, op, "alice").status_code == 302
    # PanDA has read SPD-IAM's keys (panda-server keeps them for 10 minutes).
    post_form(client, "/tokens/check", token_page="/tokens/")
    alice = _user(db, "alice")
    expires = _grant(db, alice).id_token_expires_at

    real_clock.set(expires - timedelta(seconds=51))  # inside the refresh leeway, still valid
    op.pause()  # SPD-IAM stops answering
    page = post_form(client, "/tokens/check", token_page="/tokens/", follow_redirects=True).get_data(
        as_text=True
    )
    assert "PanDA grants the production role." in page
    assert "Log in again" not in page and "re-login" not in page.lower()
    assert 'data-status="failing"' in page and "SPD-IAM unreachable since" in page
    refreshed = post_form(client, "/tokens/refresh", token_page="/tokens/", follow_redirects=True)
    assert "the current token stays in use until" in refreshed.get_data(as_text=True)

    # A launch now goes through with the token that is still valid.
    assert post(client, "/tasks/create", form_data(sim_definition(8), key="during")).status_code == 302
    first = _launch(db, "during")
    assert first.status == "submitted", first.error

    # The token has expired and SPD-IAM is still down: the next launch waits, it does not fail.
    real_clock.set(expires + timedelta(seconds=5))
    assert post(client, "/tasks/create", form_data(sim_definition(9), key="after")).status_code == 302
    second = _launch(db, "after")
    assert second.status == "pending" and "SPD-IAM unreachable since" in second.error, second.error
    bunch_page = client.get(f"/tasks/bunch/{second.task.bunch_id}").get_data(as_text=True)
    assert "SPD-IAM unreachable since" in bunch_page and "re-login" not in bunch_page.lower()

    # SPD-IAM is back: the waiting launch goes through on the next dispatch (the scheduler's, here
    # the bunch page's "Continue dispatching").
    op.resume()
    real_clock.advance(31)  # past the vault's retry time
    # The panel's clock runs ahead of the provider's: let the refreshed token outlive it.
    op.tamper_next_id_token(exp=int((real_clock.current + timedelta(hours=1)).timestamp()))
    post(client, f"/tasks/bunch/{second.task.bunch_id}/dispatch", {})
    second = _launch(db, "after")
    assert second.status == "submitted", second.error
    assert sorted(sim.app.state.select_rows("SELECT taskName FROM tasks", ())) == [
        ("PROD2025-008.SIM",),
        ("PROD2025-009.SIM",),
    ]
    assert _grant(db, alice).last_error == "" and not _grant(db, alice).needs_relogin


def test_the_refresh_leeway_is_capped_below_a_short_id_token_lifetime(make_op, make_app, real_clock):
    from app.extensions import db

    op = make_op(OP_ID_TOKEN_TTL="60")  # shorter than the default leeway of 120 s
    app = make_app(op)
    assert iam_login(app.test_client(), op, "alice").status_code == 302
    alice = _user(db, "alice")
    before = op.stats()["refresh"]
    assert len({vault.token_for(alice) for _ in range(3)}) == 1
    assert op.stats()["refresh"] == before  # a 60 s token with 60 s left needs no refresh
    real_clock.set(_grant(db, alice).id_token_expires_at - timedelta(seconds=25))  # past half its life
    vault.token_for(alice)
    assert op.stats()["refresh"] == before + 1


def test_iam_unreachable_at_login_start_is_said_on_the_panels_own_page(make_op, make_app):
    op = make_op()
    client = make_app(op, iam={"http_timeout_s": 0.5}).test_client()
    assert client.get("/auth/iam/login").headers["Location"].startswith(op.issuer)  # discovery read
    op.pause()
    response = client.get("/auth/iam/login")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "SPD-IAM cannot be reached" in client.get("/login").get_data(as_text=True)
