"""The one place where spd-requests' wire format meets the panel's `ProductionRequest`.

The service's API is not public (DESIGN §1.6 of the anchors report): the paths, the authentication,
the paging and the field names below are the panel's reading of it, and `reqsim` serves exactly
this. When the real service differs, adapt this module (and reqsim's sample data); nothing else
knows the service's names.

Service record (a Django-REST-style JSON object)       → ProductionRequest
    id (int)                                           → id
    title (str)                                        → title
    physics_group (str)                                → physics_group
    author ({"full_name", "username"} or str)          → requester
    state ("New", "Approved", "In progress", …)        → status (STATUS_WORDS)
    generator (str)                                    → generator
    tag (str)                                          → physics_tag
    sqrt_s ("27 GeV" or a number)                      → energy_gev
    n_events (int)                                     → events_requested
    software (str)                                     → software_version
    container (str)                                    → container_path
    config_path (str)                                  → exec_path
    comment (str)                                      → comments
    created, modified (ISO 8601)                       → created_at, updated_at
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from app.prodrequests.errors import SchemaMismatch
from app.prodrequests.schema import ProductionRequest

LIST_PATH = "/api/v1/requests/"
DETAIL_PATH = "/api/v1/requests/{id}/"
PAGE_SIZE = 100  # requests asked per page of the list
MAX_PAGES = 200  # a list longer than this many pages is refused as a paging loop

# The service's status words (lower-cased) → the panel's (schema.STATUSES).
STATUS_WORDS = {
    "new": "new",
    "submitted": "new",
    "approved": "approved",
    "in progress": "in_progress",
    "running": "in_progress",
    "on hold": "on_hold",
    "done": "done",
    "completed": "done",
    "rejected": "rejected",
    "cancelled": "rejected",
}
_ENERGY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:GeV)?\s*", re.IGNORECASE)
HINT = "The service's field names are adapted in app/prodrequests/mapping.py."


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"} if token else {}


def list_params(page: int) -> dict[str, int]:
    return {"page": page, "page_size": PAGE_SIZE}


def page_results(payload: Any) -> tuple[list[Any], bool]:
    """The records of one page of the list and whether another page follows."""
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise _mismatch("the list of requests is not an object with a 'results' list")
    return payload["results"], bool(payload.get("next"))


def to_request(record: Any) -> ProductionRequest:
    """One service record as a `ProductionRequest`; `SchemaMismatch` names the first wrong field."""
    if not isinstance(record, dict):
        raise _mismatch(f"a request is not a JSON object but {type(record).__name__}")
    reader = _Reader(record)
    created = reader.time("created")
    state = reader.text("state", required=True)
    return ProductionRequest(
        id=reader.request_id,
        title=reader.text("title", required=True),
        physics_group=reader.text("physics_group"),
        requester=reader.person("author"),
        status=STATUS_WORDS.get(state.lower(), state.lower()),
        generator=reader.text("generator"),
        physics_tag=reader.text("tag"),
        energy_gev=reader.energy("sqrt_s"),
        events_requested=reader.count("n_events"),
        software_version=reader.text("software"),
        container_path=reader.text("container"),
        exec_path=reader.text("config_path"),
        comments=reader.text("comment"),
        created_at=created,
        updated_at=reader.time("modified") if reader.has("modified") else created,
    )


def _mismatch(problem: str) -> SchemaMismatch:
    return SchemaMismatch(
        f"The requests service's reply does not match the request schema: {problem}. {HINT}"
    )


class _Reader:
    """Typed access to one record's fields; every problem names the request and the field."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        value = record.get("id")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _mismatch(f"field 'id' must be a positive whole number, got {value!r}")
        self.request_id = value

    def _wrong(self, key: str, expected: str, value: Any) -> SchemaMismatch:
        if value is None:
            return _mismatch(f"request {self.request_id}: field '{key}' is missing")
        return _mismatch(f"request {self.request_id}: field '{key}' must be {expected}, got {value!r}")

    def text(self, key: str, *, required: bool = False) -> str:
        value = self.record.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise self._wrong(key, "text", value)
        return value.strip()

    def count(self, key: str) -> int:
        value = self.record.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._wrong(key, "a whole number of 0 or more", value)
        return value

    def person(self, key: str) -> str:
        value = self.record.get(key)
        if isinstance(value, dict):
            value = value.get("full_name") or value.get("username")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._wrong(key, "a name or an object with full_name/username", value)
        return value.strip()

    def energy(self, key: str) -> float | None:
        value = self.record.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        match = _ENERGY.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self._wrong(key, 'an energy in GeV such as "27 GeV"', value)
        return float(match.group(1))

    def has(self, key: str) -> bool:
        return self.record.get(key) is not None

    def time(self, key: str) -> datetime:
        value = self.record.get(key)
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None:
            raise self._wrong(key, "an ISO 8601 time", value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
