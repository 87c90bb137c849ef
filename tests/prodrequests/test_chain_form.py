"""The chain form and the requests service: "Create chain from request" prefills the chain (its SIM step
from the request, the RECO step derived as "Add step" derives it), the path fields get the datalists
ranked for the request of step 1, and paths outside the catalog are warned about."""

from __future__ import annotations

import re
from html import unescape

import pytest
from flask import g

from app.prodrequests.models import CatalogEntry
from reqsim import Faults
from tests.chains.conftest import chain_definition, chain_form_data
from tests.helpers import csrf_token
from tests.tasks.conftest import form_values

IMAGES = "/cvmfs/spd.jinr.ru/images"
MC = "/cvmfs/spd.jinr.ru/production/MC"
JPSI_418 = "jpsi-P8-spdroot418.27GeV"


def post(client, url, data, **kwargs):
    g.pop("csrf_token", None)
    return client.post(url, data={"csrf_token": csrf_token(client, "/chains/"), **data}, **kwargs)


@pytest.fixture
def entries(app, db):
    """A catalog for the jpsi 4.1.8 request (#10, which has no paths of its own yet)."""
    rows = [
        ("container", f"{IMAGES}/spdroot-4.1.7.sif"),
        ("container", f"{IMAGES}/spdroot-4.1.8.sif"),
        ("exec", f"{MC}/{JPSI_418}.V01"),
        ("exec", f"{MC}/{JPSI_418}.V02"),
        ("exec", f"{MC}/minbias-P8-spdroot417-dev.10GeV.V01"),
    ]
    db.session.add_all(CatalogEntry(kind=k, path=p, source="admin") for k, p in rows)
    db.session.commit()


def chain_page(client, request_id: int) -> tuple[str, dict[str, str]]:
    response = client.get(f"/chains/from-request/{request_id}")
    assert response.status_code == 200, response.headers.get("Location")
    html = unescape(response.get_data(as_text=True))
    return html, form_values(html, "chain-form")


def errors(html: str) -> list[str]:
    return re.findall(r'class="chain-error">([^<]*)', html)


def test_create_chain_from_a_request_prefills_both_steps(client, login_as, clock, entries):
    login_as("manager")
    request_page = unescape(client.get("/requests/10").get_data(as_text=True))
    assert 'href="/chains/from-request/10" id="chain-from-request"' in request_page
    html, values = chain_page(client, 10)
    assert "Create chain from request #10" in html and 'id="from-request"' in html
    assert values["name"] == f"PROD2026-001 {JPSI_418}" and values["processing_type"] == "MC production"
    assert values["comment"].startswith("#10 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8 (Charmonia;")
    sim = {k.removeprefix("steps-0-"): v for k, v in values.items() if k.startswith("steps-0-")}
    reco = {k.removeprefix("steps-1-"): v for k, v in values.items() if k.startswith("steps-1-")}
    assert sim["step"] == "SIM" and sim["task_name"] == "PROD2026-001.SIM"
    assert sim["total_events"] == "20000000" and sim["request_id"] == "10" and sim["bunch_size"] == "1"
    assert sim["exec_path"] == f"{MC}/{JPSI_418}.V02"  # its physics tag, newest
    assert sim["container_path"] == f"{IMAGES}/spdroot-4.1.8.sif"  # its software version
    assert reco["step"] == "RECO" and reco["task_name"] == "PROD2026-001.RECO"
    assert reco["request_id"] == "10" and reco["bunch_size"] == "1" and reco["files_per_job"] == "1"
    assert reco["exec_path"] == sim["exec_path"] and reco["container_path"] == sim["container_path"]
    assert "total_events" not in reco  # RECO's events are derived: the form does not show the field
    assert (
        'id="steps-0-request_id-help">#10 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8 (new, Charmonia)<' in html
    )

    # Completed with what a request does not say, the prefilled chain previews without errors or warnings.
    preview = unescape(
        post(client, "/chains/preview", {**values, "steps-0-events_per_job": "4000"}).get_data(as_text=True)
    )
    assert 'id="preview"' in preview, errors(preview)
    assert "2 step(s), 2 task(s)" in preview and "20000000 events per task (derived)" in preview
    assert f"MC2025_S1.{JPSI_418}.PROD2026-001.RECO.1" in preview
    assert "preview-warning" not in preview


def test_the_reco_step_is_what_add_step_derives(client, login_as, clock, entries):
    login_as("manager")
    _, values = chain_page(client, 10)
    only_sim = {k: v for k, v in values.items() if not k.startswith("steps-1-")}
    fragment = post(client, "/chains/steps", {**only_sim, "row_action": "add"}).get_data(as_text=True)
    added = form_values(f'<form id="f">{unescape(fragment)}</form>', "f")
    assert {k: v for k, v in added.items() if k.startswith("steps-1-")} == {
        k: v for k, v in values.items() if k.startswith("steps-1-")
    }


def test_without_a_matching_path_the_physics_tag_is_in_the_dataset_names(client, login_as, clock, entries):
    login_as("manager")
    html, values = chain_page(client, 8)  # dd at 13.5 GeV with 4.1.8: no execution path of its tag yet
    tag = "dd-minbias-UrQMD-spdroot418.13.5GeV"
    assert (
        values["steps-0-exec_path"] == ""
        and values["steps-0-container_path"] == f"{IMAGES}/spdroot-4.1.8.sif"
    )
    assert values["steps-0-output_dataset"] == f"MC2025_S1.{tag}.PROD2026-001.SIM.1"
    assert values["steps-1-output_dataset"] == f"MC2025_S1.{tag}.PROD2026-001.RECO.1"
    assert values["name"] == f"PROD2026-001 {tag}"
    assert "execution files: none matches the request, choose one" in html
    # An execution path of another physics tag is refused, beside the field, before anything is saved.
    chosen = {
        **values,
        "steps-0-exec_path": f"{MC}/{JPSI_418}.V01",
        "steps-1-exec_path": f"{MC}/{JPSI_418}.V01",
    }
    preview = unescape(post(client, "/chains/preview", chosen).get_data(as_text=True))
    assert 'id="preview"' not in preview
    assert any(e.startswith("step 1 (SIM), output dataset:") and tag in e for e in errors(preview)), errors(
        preview
    )
    assert form_values(preview, "chain-form")["steps-0-exec_path"] == f"{MC}/{JPSI_418}.V01"  # kept as typed


def test_a_failing_service_sends_back_to_the_request_page(client, login_as, reqsim):
    login_as("manager")
    reqsim.set_faults(Faults(http_status=503))
    response = client.get("/chains/from-request/10")
    assert response.status_code == 302 and response.headers["Location"] == "/requests/10"
    assert "failed (HTTP 503)" in unescape(client.get("/requests/10").get_data(as_text=True))
    assert client.get("/chains/from-request/999").status_code == 302


def test_viewers_cannot_open_the_prefilled_chain_form(client, login_as):
    login_as("viewer")
    assert client.get("/chains/from-request/10").status_code == 403
    assert 'id="chain-from-request"' not in client.get("/requests/10").get_data(as_text=True)


def test_the_chain_form_loads_path_options_for_step_1s_request(client, login_as, entries):
    login_as("manager")
    html = client.get("/chains/new").get_data(as_text=True)
    assert 'id="path-options" hx-get="/requests/paths"' in html
    assert 'hx-include="#steps-0-request_id" data-request-field="#steps-0-request_id"' in html
    assert 'list="exec-path-options"' in html and 'list="container-path-options"' in html
    assert "js/path-catalog.js" in html
    options = unescape(client.get("/requests/paths?steps-0-request_id=10").get_data(as_text=True))
    execs = re.search(r'<datalist id="exec-path-options">(.*?)</datalist>', options, re.S).group(1)
    assert re.findall(r'value="([^"]+)"', execs)[:2] == [f"{MC}/{JPSI_418}.V02", f"{MC}/{JPSI_418}.V01"]
    assert (
        'id="steps-0-request_id-help" hx-swap-oob="true">#10 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.8 (new, Charmonia)<'
        in options
    )
    assert 'id="request_id-help"' in client.get("/requests/paths?request_id=10").get_data(as_text=True)
    # Only the request fields of the two forms are read; anything else ranks for no request.
    other = client.get("/requests/paths?name=10").get_data(as_text=True)
    assert 'id="request_id-help" hx-swap-oob="true">spd-requests id<' in other


def test_chain_paths_outside_the_catalog_are_a_warning(client, login_as, entries):
    login_as("manager")
    data = chain_form_data(chain_definition(bunch_size=1))  # minbias 4.1.7-dev: its image is not listed
    html = unescape(post(client, "/chains/preview", data).get_data(as_text=True))
    assert 'id="preview"' in html, errors(html)  # a warning, not a refusal
    warnings = re.findall(r'preview-warning">([^<]*)<', html)
    assert (
        f"step 1 (SIM): path to container {IMAGES}/spdroot-dev-4.1.7.sif is not in the path catalog"
        in "".join(warnings)
    )
