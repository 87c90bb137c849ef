"""The requests client against the simulator over real HTTP: mapping, paging, and every failure as a
clear sentence (that never contains the token)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.prodrequests import mapping
from app.prodrequests.client import ClientConfig, RequestsClient
from app.prodrequests.errors import (
    MalformedReply,
    RequestNotFound,
    SchemaMismatch,
    ServiceAuthRefused,
    ServiceHttpError,
    ServiceTimeout,
    ServiceUnreachable,
)
from reqsim import Faults
from tests.helpers import free_port
from tests.prodrequests.conftest import TOKEN


def test_lists_every_request_mapped_to_the_schema(requests_client, reqsim):
    found = requests_client.list_requests()
    assert [r.id for r in found] == list(range(1, 26))
    first = found[0]
    assert first.title == "minbias (Pythia8) at 10 GeV, SpdRoot 4.1.7"
    assert first.physics_group == "Detector performance"
    assert first.requester == "Elena Zemlyanichkina"
    assert first.status == "done" and first.generator == "Pythia8"
    assert first.physics_tag == "minbias-P8-spdroot417-dev.10GeV"
    assert first.energy_gev == 10.0 and first.events_requested == 40_000_000
    assert first.software_version == "spdroot-dev-4.1.7"
    assert first.container_path == "/cvmfs/spd.jinr.ru/images/spdroot-dev-4.1.7.sif"
    assert first.exec_path == "/cvmfs/spd.jinr.ru/production/MC/minbias-P8-spdroot417-dev.10GeV.V01"
    assert first.created_at == datetime(2025, 1, 17, 10, 30, tzinfo=UTC)
    assert first.to_json()["updated_at"] == "2025-01-20T15:30:00+00:00"
    fresh = found[7]  # a new request: no paths yet
    assert (fresh.status, fresh.container_path, fresh.exec_path) == ("new", "", "")
    assert found[17].energy_gev is None  # a particle gun
    assert {r.status for r in found} == {"new", "approved", "in_progress", "on_hold", "done", "rejected"}


def test_follows_the_pages(requests_client, reqsim, monkeypatch):
    monkeypatch.setattr(mapping, "PAGE_SIZE", 7)
    before = reqsim.calls
    assert len(requests_client.list_requests()) == 25
    assert reqsim.calls - before == 4


def test_one_request_and_an_unknown_one(requests_client):
    assert requests_client.get_request(3).title == "jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.7"
    with pytest.raises(RequestNotFound, match=r"^Request 999 does not exist on the requests service\.$"):
        requests_client.get_request(999)


def failure(client, exc_type):
    with pytest.raises(exc_type) as caught:
        client.list_requests()
    assert TOKEN not in caught.value.message
    return caught.value.message


def test_http_500_is_a_sentence(requests_client, reqsim):
    reqsim.set_faults(Faults(http_status=500))
    message = failure(requests_client, ServiceHttpError)
    assert message == f"The requests service at {requests_client.host} failed (HTTP 500); try again later."


def test_malformed_json_is_a_sentence(requests_client, reqsim):
    reqsim.set_faults(Faults(malformed_json=True))
    message = failure(requests_client, MalformedReply)
    assert "sent a reply that is not JSON" in message and "[requests] url" in message


def test_a_reply_of_another_schema_names_the_field(requests_client, reqsim):
    reqsim.set_faults(Faults(bad_schema=True))
    message = failure(requests_client, SchemaMismatch)
    assert "request 1: field 'title' is missing" in message
    assert "app/prodrequests/mapping.py" in message


def test_a_slow_service_times_out_with_a_sentence(requests_client, reqsim):
    reqsim.set_faults(Faults(latency_ms=2000, times=1))
    message = failure(requests_client, ServiceTimeout)
    assert message == f"The requests service at {requests_client.host} did not answer within 1.5 s."


def test_a_wrong_token_is_refused_with_a_sentence(reqsim_server):
    client = RequestsClient(ClientConfig(url=reqsim_server.url, token="wrong-token"))
    try:
        message = failure(client, ServiceAuthRefused)
    finally:
        client.close()
    assert "refused the panel's token (HTTP 401); check [requests] token" in message
    assert "wrong-token" not in message


def test_nothing_listening_is_unreachable():
    client = RequestsClient(
        ClientConfig(url=f"http://127.0.0.1:{free_port()}", token=TOKEN, connect_timeout_s=1)
    )
    try:
        message = failure(client, ServiceUnreachable)
    finally:
        client.close()
    assert "could not be reached (connection refused). Check [requests] url and the network." in message
