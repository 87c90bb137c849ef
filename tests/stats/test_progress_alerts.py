"""Progress and ETA of bunches, chains and requests, stalled tasks, the dashboard, and the alerts
with their notifications delivered once per event to a local SMTP sink (aiosmtpd) and a webhook
receiver on loopback; the panel runs against the simulator over HTTP."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from flask import g
from sqlalchemy import select, update

from app.extensions import db
from app.launches.schedule import Schedule
from app.stats import alerts, jobs, progress
from app.stats.models import Alert, AlertDelivery, TaskProgress
from app.sync import jobs as sync_jobs
from app.tasks import services
from app.tasks.models import Task
from pandasim import Faults
from tests.conftest import TEST_PASSWORD
from tests.helpers import post_form
from tests.tasks.conftest import sim_definition


def log_in_again(app, user):
    """A new browser session for `user` (the old one ended while the clock moved)."""
    g.pop("csrf_token", None)  # the test's app context outlives requests: Flask-WTF's cached token too
    client = app.test_client()
    response = post_form(client, "/login", {"username": user.username, "password": TEST_PASSWORD})
    assert response.status_code == 302
    return client


@pytest.fixture
def advance(sim, clock):
    """Move the simulator's clock; the panel's clock stays the real one while it calls PanDA (the
    simulator checks the sandbox tokens' times against the real clock); tests set it to PanDA's
    time, or later, to read what the panel shows then."""
    clock.set(datetime.now(UTC))

    def run(seconds: float) -> None:
        sim.advance(seconds)
        clock.set(datetime.now(UTC))

    return run


def test_bunch_progress_eta_and_stalled_tasks(app, sim, submit, client, login_as, clock, advance):
    owner = login_as("manager")
    bunch = submit(4, owner=owner)
    assert progress.bunch_progress(bunch.id).eta is None  # nothing produced yet
    advance(150 + 3300)  # running, most jobs of the first waves done
    sync_jobs.sync_cycle()
    clock.set(sim.clock.now_dt())  # read when PanDA's clock says (the rate is measured on it)
    now = progress.bunch_progress(bunch.id)
    assert now.unit == "events" and now.requested == 40000 and 0 < now.produced < now.requested
    assert now.active == 4 and now.eta is not None and now.eta > clock() and not now.stalled
    page = client.get(f"/statistics/progress/bunch/{bunch.id}").get_data(as_text=True)
    assert "ETA" in page and f"of {now.requested:,} events" in page and "Stalled" not in page
    assert f"/statistics/progress/bunch/{bunch.id}" in client.get(f"/tasks/bunch/{bunch.id}").get_data(
        as_text=True
    )

    clock.set(datetime.now(UTC) + timedelta(hours=7))  # PanDA stuck: over [stats] stalled_hours (6)
    client = log_in_again(app, owner)  # the session ended meanwhile
    stalled = progress.bunch_progress(bunch.id).stalled
    assert sorted(s.id for s in stalled) == sorted(t.id for t in bunch.tasks)
    assert "Stalled" in client.get(f"/statistics/progress/bunch/{bunch.id}").get_data(as_text=True)

    raised = alerts.evaluate()
    db.session.commit()
    assert sorted(a.task_id for a in raised) == sorted(t.id for t in bunch.tasks)
    assert {a.kind for a in raised} == {"stalled"} and {a.user_id for a in raised} == {owner.id}
    assert alerts.evaluate() == []  # the same event is not raised twice
    home = client.get("/").get_data(as_text=True)
    assert home.count('data-alert-kind="stalled"') == 4
    assert 'data-status="running"' in home and "mine=1" in home and "Running bunches and chains" in home

    advance(30000)
    sync_jobs.sync_cycle()  # the jobs moved again: the stall is over
    alerts.evaluate()
    db.session.commit()
    assert db.session.scalars(select(Alert).where(Alert.cleared_at.is_(None))).all() == []
    done = progress.bunch_progress(bunch.id)
    tasks = db.session.scalars(select(Task).where(Task.bunch_id == bunch.id)).all()
    assert done.active == 0 and done.eta is None
    assert done.produced == sum(t.events_processed for t in tasks) > now.produced  # as PanDA counted them


def test_another_user_sees_the_team_alerts_but_not_others(
    sim, submit, make_user, client, login_as, clock, advance
):
    owner = make_user("manager")
    submit(1, owner=owner)
    advance(150)
    sync_jobs.sync_cycle()
    sim.set_faults(Faults(reset_rate=1.0))  # PanDA unreachable
    sync_jobs.sync_cycle()
    clock.advance(hours=7)
    alerts.evaluate()
    db.session.commit()
    login_as("viewer")
    home = client.get("/").get_data(as_text=True)
    assert 'data-alert-kind="panda"' in home and 'data-alert-kind="stalled"' not in home
    assert "PanDA unreachable" in home
    assert 'data-alert-kind="panda"' in client.get("/statistics/dashboard").get_data(as_text=True)


class Sink:
    """An SMTP server on loopback keeping what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp_sink():
    sink = Sink()
    with socket.socket() as probe:  # aiosmtpd needs the port before it listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, f"http://127.0.0.1:{server.server_port}/hooks/secret-token"
    server.shutdown()
    server.server_close()


def test_notifications_are_delivered_once_per_event(
    sim, submit, make_user, client, login_as, app, clock, advance, smtp_sink, webhook
):
    sink, port = smtp_sink
    posts, hook_url = webhook
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(
        settings,
        notify=dataclasses.replace(
            settings.notify, smtp_host="127.0.0.1", smtp_port=port, webhook_url=hook_url
        ),
    )
    owner = login_as("manager")
    owner.email = "owner@example.org"
    db.session.commit()
    g.pop("csrf_token", None)  # cached before the login (see log_in_again)
    response = post_form(
        client,
        "/statistics/notifications",
        {"email": "y", "webhook": "y"},
        token_page="/statistics/notifications",
    )
    assert response.status_code == 302
    quiet = make_user("viewer")  # not opted in: receives nothing
    quiet.email = "quiet@example.org"
    db.session.commit()

    submit(2, owner=owner)
    advance(150)
    sync_jobs.sync_cycle()
    sim.set_faults(Faults(reset_rate=1.0))
    sync_jobs.sync_cycle()
    clock.advance(hours=7)

    report = jobs.run_alerts()
    assert report.raised == 3 and report.errors == []  # two stalled tasks, PanDA unreachable
    assert len(sink.messages) == 3 and all(to == ["owner@example.org"] for to, _ in sink.messages)
    assert any("PanDA unreachable" in body for _, body in sink.messages)
    assert len(posts) == 3 and sum("@" + owner.username in p["text"] for p in posts) == 2

    again = jobs.run_alerts()  # nothing new: nothing sent again
    assert again.raised == 0 and again.sent == 0 and len(sink.messages) == 3 and len(posts) == 3
    assert db.session.scalar(select(db.func.count()).select_from(AlertDelivery)) == 6

    # The webhook goes away: the e-mail of a new event still goes, the post is tried again later.
    db.session.execute(update(TaskProgress).values(moved_at=clock() - timedelta(hours=8)))  # stalled anew
    db.session.commit()
    app.config["SETTINGS"] = dataclasses.replace(
        app.config["SETTINGS"],
        notify=dataclasses.replace(app.config["SETTINGS"].notify, webhook_url="http://127.0.0.1:9/x"),
    )
    failing = jobs.run_alerts()
    assert failing.raised == 2 and failing.sent == 2 and len(failing.errors) == 2
    assert all(
        "secret" not in e and "127.0.0.1:9" not in e for e in failing.errors
    )  # the hook's URL stays out


def test_a_scheduled_launch_whose_token_will_not_last_alerts_its_owner(app, make_user, client, login_as):
    owner = login_as("manager")
    due = datetime.now(UTC) + timedelta(hours=3)
    bunch, *_ = services.create_bunch(
        sim_definition(number=31, bunch_size=1),
        owner,
        "token-alert",
        is_admin=False,
        schedule=Schedule(at=due),
    )
    db.session.commit()
    assert alerts.token_expiry(datetime.now(UTC)) == []  # sandbox tokens are minted when needed
    launch = bunch.tasks[0].launches[0]
    launch.token_problem = "the refresh token was revoked"  # as the launches' token check flags it
    db.session.commit()
    [raised] = alerts.evaluate()
    assert raised.kind == "token" and raised.user_id == owner.id and "revoked" in raised.message
    db.session.commit()
    home = client.get("/").get_data(as_text=True)
    assert 'data-alert-kind="token"' in home and "Upcoming scheduled launches" in home
    assert bunch.tasks[0].name in home  # listed among the upcoming launches
