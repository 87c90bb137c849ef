"""The mapping of the service's records (unit tests on plain dicts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.prodrequests.errors import SchemaMismatch
from app.prodrequests.mapping import page_results, to_request

RECORD = {
    "id": 5,
    "title": "A request",
    "physics_group": "Charmonia",
    "author": "someone",
    "state": "In progress",
    "n_events": 1000,
    "created": "2025-05-01T12:00:00",
}


def test_minimal_record_and_defaults():
    found = to_request(RECORD)
    assert found.status == "in_progress" and found.requester == "someone"
    assert found.created_at == datetime(2025, 5, 1, 12, tzinfo=UTC) == found.updated_at  # naive = UTC
    assert (found.physics_tag, found.container_path, found.exec_path, found.energy_gev) == ("", "", "", None)
    assert found.label == "#5 A request"


@pytest.mark.parametrize(
    ("value", "energy"), [("27 GeV", 27.0), ("13.5GeV", 13.5), (10, 10.0), ("  27 gev ", 27.0), ("", None)]
)
def test_energies(value, energy):
    assert to_request({**RECORD, "sqrt_s": value}).energy_gev == energy


def test_unknown_status_words_are_kept():
    assert to_request({**RECORD, "state": "Validating"}).status == "validating"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"id": True}, "field 'id' must be a positive whole number, got True"),
        ({"id": "5"}, "field 'id' must be a positive whole number"),
        ({"title": None}, "request 5: field 'title' is missing"),
        ({"title": "  "}, "request 5: field 'title' must be text"),
        ({"n_events": -1}, "request 5: field 'n_events' must be a whole number of 0 or more, got -1"),
        ({"n_events": 1.5}, "field 'n_events' must be a whole number"),
        ({"sqrt_s": "fast"}, "field 'sqrt_s' must be an energy in GeV"),
        ({"created": "yesterday"}, "field 'created' must be an ISO 8601 time, got 'yesterday'"),
        ({"author": 7}, "field 'author' must be a name"),
    ],
)
def test_wrong_fields_are_named(changes, problem):
    with pytest.raises(SchemaMismatch) as caught:
        to_request({**RECORD, **changes})
    assert problem in caught.value.message


def test_the_page_envelope():
    assert page_results({"results": [RECORD], "next": "…?page=2"}) == ([RECORD], True)
    assert page_results({"results": [], "next": None}) == ([], False)
    with pytest.raises(SchemaMismatch, match="'results' list"):
        page_results([RECORD])
