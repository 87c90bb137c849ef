"""PanDA over HTTPS: the simulator serves TLS with certificates from a test CA (trustme), and every
TLS failure (untrusted CA, hostname mismatch, https:// to a plain-HTTP port, a ca_bundle that does
not exist) reaches the manager as PandaUnavailable with a sentence saying what to change, on every
path a user meets: the client, /healthz, "Check with PanDA", the PanDA log and a launch."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest
import trustme
from sqlalchemy import select

from app.extensions import db as _db
from app.launches.models import Launch
from app.panda.calllog import flush_call_log
from app.panda.client import CallRecord, ClientConfig, PandaClient
from app.panda.errors import PandaUnavailable
from app.panda.models import PandaCall
from pandasim import SimConfig, create_simulator, serve_in_thread
from tests.helpers import settle_launches
from tests.pandasim.conftest import PROD_GROUPS
from tests.tasks.conftest import form_data, post, sandbox_app, sim_definition


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ca") / "grid-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def ca_dir(ca_file, tmp_path_factory) -> str:
    """A directory of CA certificates with OpenSSL's hash links, like /etc/grid-security/certificates."""
    folder = tmp_path_factory.mktemp("certificates")
    shutil.copy(ca_file, folder / "test-ca.pem")
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to index a CA directory (Debian package openssl)")
    subprocess.run(["openssl", "rehash", str(folder)], check=True, capture_output=True)
    return str(folder)


def serve(ca: trustme.CA | None, ca_file: str, *hostnames: str):
    """The simulator over HTTPS with a certificate for `hostnames` (plain HTTP when ca is None); it
    fetches its own issuer's keys over TLS, trusting the test CA."""
    sim = create_simulator(SimConfig(seed=2, time_scale=0, ca_bundle=ca_file))
    if ca is None:
        return serve_in_thread(sim)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hostnames).configure_cert(context)
    return serve_in_thread(sim, ssl_context=context)


@pytest.fixture(scope="module")
def https_sim(ca, ca_file):
    running = serve(ca, ca_file, "127.0.0.1", "localhost")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def wrong_host_sim(ca, ca_file):
    running = serve(ca, ca_file, "panda.invalid")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def plain_sim(ca_file):
    running = serve(None, ca_file)
    yield running
    running.stop()


class Tokens:
    def __init__(self, sim) -> None:
        self.token = sim.mint_token("pm", "Test Manager", PROD_GROUPS)

    def token_for(self, user) -> str:
        return self.token


def client_for(url: str, records: list[CallRecord], sim=None, **config) -> PandaClient:
    settings = dict(url=url, transport="v1", connect_timeout_s=2.0, read_timeout_s=5.0, retries=0)
    return PandaClient(
        ClientConfig(**{**settings, **config}), Tokens(sim) if sim else None, recorder=records.append
    )


def unavailable(client: PandaClient) -> str:
    with pytest.raises(PandaUnavailable) as caught:
        client.is_alive()
    return str(caught.value)


@pytest.mark.parametrize("bundle", ["file", "directory"])
def test_a_trusted_certificate_works_from_a_ca_file_or_directory(https_sim, ca_file, ca_dir, bundle):
    records: list[CallRecord] = []
    client = client_for(
        https_sim.url, records, https_sim.app, ca_bundle=ca_file if bundle == "file" else ca_dir
    )
    assert https_sim.url.startswith("https://")
    assert client.is_alive().alive
    # The simulator checked the token against its issuer's keys, fetched over TLS too.
    assert client.get_user_attributes(object()).is_production_user is True
    assert [r.outcome for r in records] == ["ok", "ok"]


def test_an_untrusted_certificate_says_to_set_the_ca_bundle(https_sim):
    records: list[CallRecord] = []
    message = unavailable(client_for(https_sim.url, records))  # the system store lacks the test CA
    assert message.startswith("PanDA's certificate is not trusted (")
    assert "set [panda] ca_bundle to the grid CA bundle" in message
    assert [(r.method, r.outcome, r.http_status, r.message) for r in records] == [
        ("is_alive", "unavailable", None, message)
    ]


def test_a_certificate_for_another_host_says_which_host(wrong_host_sim, ca_file):
    message = unavailable(client_for(wrong_host_sim.url, [], ca_bundle=ca_file))
    assert message.startswith("PanDA's certificate is not valid for 127.0.0.1 (")
    assert "mismatch" in message and "[panda] url" in message


def test_https_to_a_plain_http_port_says_to_check_the_scheme(plain_sim):
    url = plain_sim.url.replace("http://", "https://")
    message = unavailable(client_for(url, []))
    assert message.startswith(f"PanDA at {url} does not answer TLS on this port (")
    assert "should start with http://" in message


def test_a_missing_ca_bundle_is_named(https_sim, tmp_path):
    message = unavailable(client_for(https_sim.url, [], ca_bundle=str(tmp_path / "nowhere.pem")))
    assert "check [panda] ca_bundle" in message and "nowhere.pem" in message


def test_verify_false_accepts_an_untrusted_certificate(https_sim):
    assert client_for(https_sim.url, [], verify=False).is_alive().alive


# ------------------------------------------------------------------ the panel against an untrusted PanDA


@pytest.fixture
def app(settings_factory, migrated_sqlite, https_sim):
    """The panel in sandbox mode bound to the HTTPS simulator, without its CA (client, login_as and
    db use this app)."""
    settings = settings_factory(panda={"transport": "v1", "retries": 0, "connect_timeout_s": 2.0})
    application = sandbox_app(settings, migrated_sqlite, https_sim.app)
    application.config["TESTING"] = True
    with application.app_context():
        yield application
        flush_call_log(10)
        _db.session.remove()
        _db.engine.dispose()


def test_healthz_answers_json_503_with_the_reason(client):
    response = client.get("/healthz")
    assert response.status_code == 503 and response.is_json
    panda = response.get_json()["panda"]
    assert panda["ok"] is False and panda["error"].startswith("PanDA's certificate is not trusted")


def test_check_with_panda_shows_the_message_and_the_log_has_the_row(client, login_as):
    user = login_as("manager")
    page = post(client, "/tokens/check", {}, follow_redirects=True)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "PanDA check failed: PanDA&#39;s certificate is not trusted" in html
    flush_call_log(10)
    rows = _db.session.scalars(select(PandaCall).where(PandaCall.user_id == user.id)).all()
    assert [(r.method, r.outcome) for r in rows] == [("get_user_attributes", "unavailable")]
    assert "set [panda] ca_bundle" in rows[0].message


def test_a_launch_that_sent_nothing_waits_to_go_again_not_unknown(client, login_as, https_sim):
    login_as("manager")
    assert post(client, "/tasks/create", form_data(sim_definition(), key="tls")).status_code == 302
    assert settle_launches(60)
    _db.session.expire_all()
    launch = _db.session.scalar(select(Launch))
    assert launch.status == "pending", launch.error  # nothing was sent: it goes again by itself
    assert "certificate is not trusted" in launch.error
    assert "Nothing was sent; the panel tries again by itself at" in launch.error
    assert launch.manifest["panda_reply"]["outcome"] == "unavailable"
    assert https_sim.app.state.stats()["tasks"] == 0


def test_every_page_warns_when_tls_is_not_verified(settings_factory, migrated_sqlite, https_sim, make_user):
    settings = settings_factory(panda={"transport": "v1", "verify": False})
    application = sandbox_app(settings, migrated_sqlite, https_sim.app)
    with application.app_context():
        client = application.test_client()
        assert client.get("/healthz").status_code == 200  # the untrusted certificate is accepted
        for url in ("/login", "/healthz"):
            body = client.get(url).get_data(as_text=True)
            assert ('id="tls-unverified"' in body) is (url == "/login")
        _db.session.remove()
        _db.engine.dispose()
