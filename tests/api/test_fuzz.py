"""schemathesis against the live panel (waitress on loopback, real HTTP): every operation of the
OpenAPI document, with data that fits the schema and data that does not, must answer without a
server error, with a status code, content type, headers and body its document declares."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.actions.conftest import new_task
from tests.e2e.conftest import LiveServer
from tests.helpers import settle_launches

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]  # fmt: skip


@pytest.fixture
def live(app, make_token, make_user, fake_panda):
    """The panel served on loopback with one task in PanDA (id 1 exists for the examples) and an
    admin's write token (every operation is allowed to it)."""
    new_task(make_user("manager"), "running")
    _, token = make_token("admin", "write")
    server = LiveServer(app)
    server.start()
    yield server.url, token
    server.stop()
    assert settle_launches(60)


@pytest.fixture
def api_schema(live):
    url, _ = live
    return schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


# One test item for every operation (schemathesis's lazy schema): about 250 s on a slow 2-core machine,
# beyond the suite's 300 s per-test limit when the other worker is busy; each call has its own 30 s limit.
@pytest.mark.timeout(900)
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_as_documented(case, live):
    url, token = live
    case.call_and_validate(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, checks=CHECKS,
                           timeout=30)  # fmt: skip
