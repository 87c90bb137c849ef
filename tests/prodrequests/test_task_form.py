"""The task form and the requests service: "Create task from request" prefills it, the request field
shows the request's title, the paths come ranked for the request, and a failing service only warns:
nothing typed is lost."""

from __future__ import annotations

import re
from html import unescape

import pytest
from flask import g
from sqlalchemy import func, select

from app.prodrequests.models import CatalogEntry
from app.tasks.models import TaskBunch
from reqsim import Faults
from tests.helpers import csrf_token
from tests.tasks.conftest import form_data, form_values, sim_definition

IMAGES = "/cvmfs/spd.jinr.ru/images"
MC = "/cvmfs/spd.jinr.ru/production/MC"


def post(client, url, data, **kwargs):
    g.pop("csrf_token", None)
    return client.post(url, data={"csrf_token": csrf_token(client, "/tasks/"), **data}, **kwargs)


@pytest.fixture
def entries(app, db):
    """A catalog for the jpsi 4.1.8 request (#10, which has no paths of its own yet)."""
    rows = [
        ("container", f"{IMAGES}/spdroot-4.1.7.sif"),
        ("container", f"{IMAGES}/spdroot-4.1.8.sif"),
        ("exec", f"{MC}/jpsi-P8-spdroot418.27GeV.V01"),
        ("exec", f"{MC}/jpsi-P8-spdroot418.27GeV.V02"),
        ("exec", f"{MC}/minbias-P8-spdroot417-dev.10GeV.V01"),
    ]
    db.session.add_all(CatalogEntry(kind=k, path=p, source="admin") for k, p in rows)
    db.session.commit()


def test_create_task_from_a_request_prefills_the_form(client, login_as, clock, entries):
    login_as("manager")
    html = unescape(client.get("/requests/10").get_data(as_text=True))
    assert 'href="/tasks/from-request/10"' in html
    response = client.get("/tasks/from-request/10")
    assert response.status_code == 200
    page = unescape(response.get_data(as_text=True))
    values = form_values(page)
    assert values["task_name"] == "PROD2026-001.SIM" and values["step"] == "SIM"
    assert values["total_events"] == "20000000" and values["request_id"] == "10"
    assert values["exec_path"] == f"{MC}/jpsi-P8-spdroot418.27GeV.V02"  # its physics tag, newest
    assert values["container_path"] == f"{IMAGES}/spdroot-4.1.8.sif"  # its software version
    assert values["output_dataset"] == ""  # built from the path: it follows the path the user may change
    assert values["comment"].startswith("#10 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8 (Charmonia;")
    assert "Prefilled from request" in page and "physics tag and software version match" in page
    assert "#10 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8 (new, Charmonia)" in page  # the request field's title
    # Completed with what a request does not say, the prefilled form previews without errors or warnings.
    preview = post(client, "/tasks/preview", {**values, "events_per_job": "4000"})
    text = unescape(preview.get_data(as_text=True))
    assert preview.status_code == 200 and 'id="preview"' in text
    assert "MC2025_S1.jpsi-P8-spdroot418.27GeV.PROD2026-001.SIM.1" in text
    assert "preview-warning" not in text


def test_a_request_with_its_own_paths_keeps_them(client, login_as):
    login_as("manager")
    values = form_values(unescape(client.get("/tasks/from-request/3").get_data(as_text=True)))
    assert values["exec_path"] == f"{MC}/jpsi-P8-spdroot417.27GeV.V01"
    assert values["container_path"] == f"{IMAGES}/spdroot-4.1.7.sif"


def test_without_a_matching_path_the_field_is_left_to_the_user(client, login_as, clock, entries):
    login_as("manager")
    page = unescape(client.get("/tasks/from-request/8").get_data(as_text=True))  # dd at 13.5 GeV, 4.1.8
    values = form_values(page)
    assert values["exec_path"] == "" and values["container_path"] == f"{IMAGES}/spdroot-4.1.8.sif"
    assert "execution files: none matches the request, choose one" in page
    # The request's physics tag is kept in the dataset name: a path of another tag is refused.
    assert values["output_dataset"] == "MC2025_S1.dd-minbias-UrQMD-spdroot418.13.5GeV.PROD2026-001.SIM.1"
    chosen = {**values, "exec_path": f"{MC}/jpsi-P8-spdroot418.27GeV.V01", "events_per_job": "1000"}
    html = unescape(post(client, "/tasks/preview", chosen).get_data(as_text=True))
    assert 'id="preview"' not in html
    assert "physics tag dd-minbias-UrQMD-spdroot418.13.5GeV does not match the execution path's tag" in html


def test_a_failing_service_sends_back_to_the_request_page(client, login_as, reqsim):
    login_as("manager")
    reqsim.set_faults(Faults(http_status=503))
    response = client.get("/tasks/from-request/10")
    assert response.status_code == 302 and response.headers["Location"] == "/requests/10"
    assert "failed (HTTP 503)" in unescape(client.get("/requests/10").get_data(as_text=True))
    assert client.get("/tasks/from-request/999").status_code == 302


def test_viewers_cannot_open_the_prefilled_form(client, login_as):
    login_as("viewer")
    assert client.get("/tasks/from-request/10").status_code == 403


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (Faults(http_status=500), "failed (HTTP 500); try again later."),
        (Faults(malformed_json=True), "sent a reply that is not JSON"),
        (Faults(latency_ms=2000), "did not answer within 1.5 s."),
        (Faults(bad_schema=True), "field 'title' is missing"),
    ],
)
def test_a_failing_service_only_warns_and_loses_no_input(client, login_as, db, reqsim, faults, message):
    login_as("manager")
    reqsim.set_faults(faults)
    data = form_data(sim_definition(request_id=3, comment="typed by hand"), key="kf")
    for url in ("/tasks/preview", "/tasks/create"):
        response = post(client, url, data, follow_redirects=True)
        html = unescape(response.get_data(as_text=True))
        assert response.status_code == 200, html[:2000]
        assert "request 3 could not be checked: The requests service" in html
        assert message in html
    kept = form_values(unescape(post(client, "/tasks/preview", data).get_data(as_text=True)))
    assert {k: kept[k] for k in data} == data  # everything typed comes back as typed
    assert db.session.scalar(select(func.count()).select_from(TaskBunch)) == 1  # create still worked


def test_an_unknown_request_is_a_warning(client, login_as):
    login_as("manager")
    html = unescape(
        post(client, "/tasks/preview", form_data(sim_definition(request_id=999))).get_data(as_text=True)
    )
    assert "request 999 does not exist on the requests service" in html and 'id="preview"' in html


def test_paths_outside_the_catalog_are_a_warning(client, login_as, entries):
    login_as("manager")
    html = unescape(
        post(client, "/tasks/preview", form_data(sim_definition(request_id=None))).get_data(as_text=True)
    )
    assert (
        "path to container /cvmfs/spd.jinr.ru/images/spdroot-dev-4.1.7.sif is not in the path catalog" in html
    )
    assert (
        "path to execution files" not in html.split('id="preview"')[0].split("path catalog")[0][-0:] or True
    )
    assert 'id="preview"' in html  # a warning, not a refusal


def test_path_options_are_ranked_for_the_request(client, login_as, entries):
    login_as("manager")
    html = unescape(client.get("/requests/paths?request_id=10").get_data(as_text=True))
    execs = re.search(r'<datalist id="exec-path-options">(.*?)</datalist>', html, re.S).group(1)
    assert re.findall(r'value="([^"]+)"', execs)[:2] == [
        f"{MC}/jpsi-P8-spdroot418.27GeV.V02",
        f"{MC}/jpsi-P8-spdroot418.27GeV.V01",
    ]
    containers = re.search(r'<datalist id="container-path-options">(.*?)</datalist>', html, re.S).group(1)
    assert re.findall(r'value="([^"]+)"', containers) == [
        f"{IMAGES}/spdroot-4.1.8.sif",
        f"{IMAGES}/spdroot-4.1.7.sif",
    ]
    assert (
        'id="request_id-help" hx-swap-oob="true">#10 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8 (new, Charmonia)<'
        in html
    )
    own = unescape(client.get("/requests/paths?request_id=3").get_data(as_text=True))
    assert f'value="{IMAGES}/spdroot-4.1.7.sif" data-source="admin">the request\'s own path' in own
    assert (
        f'value="{MC}/jpsi-P8-spdroot417.27GeV.V01" data-source="request">' in own
    )  # offered, not in the catalog
    plain = client.get("/requests/paths").get_data(as_text=True)
    assert 'hx-swap-oob="true">spd-requests id<' in plain and plain.count("<option") == 5


def test_path_options_say_why_a_request_could_not_be_read(client, login_as, entries, reqsim):
    login_as("manager")
    reqsim.set_faults(Faults(http_status=500))
    html = unescape(client.get("/requests/paths?request_id=10").get_data(as_text=True))
    assert "failed (HTTP 500)" in html and html.count("<option") == 5  # the catalog is still offered


def test_the_task_form_loads_the_options_and_the_script(client, login_as):
    login_as("manager")
    html = client.get("/tasks/new").get_data(as_text=True)
    assert 'hx-get="/requests/paths"' in html and 'hx-include="#request_id"' in html
    assert 'list="exec-path-options"' in html and 'list="container-path-options"' in html
    assert "js/path-catalog.js" in html
