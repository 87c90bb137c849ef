"""The requests cache: fresh data is reused, stale data refetched, failures keep the old data with
the error, and a failed service is left alone for retry_after_s unless forced."""

from __future__ import annotations

from datetime import UTC, datetime

from app.prodrequests.client import RequestCache
from app.prodrequests.errors import ServiceTimeout
from app.prodrequests.mapping import to_request


def request(number: int):
    return to_request(
        {
            "id": number,
            "title": f"r{number}",
            "state": "New",
            "n_events": 1,
            "created": "2025-01-01T00:00:00Z",
        }
    )


class Service:
    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    def __call__(self):
        self.calls += 1
        if self.failing:
            raise ServiceTimeout("The requests service at x did not answer within 1 s.")
        return [request(self.calls)]


def test_fresh_data_is_reused_and_stale_data_fetched_again(clock):
    cache, service = RequestCache(ttl_s=300, retry_after_s=30), Service()
    assert cache.peek().fetched_at is None
    first = cache.get(service)
    assert first.fetched_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC) and first.find(1).title == "r1"
    clock.advance(299)
    assert cache.get(service) is first and service.calls == 1
    clock.advance(1)
    assert cache.get(service).find(2) is not None and service.calls == 2
    assert cache.get(service, force=True).find(3) is not None


def test_a_failure_keeps_the_old_data_and_waits_before_asking_again(clock):
    cache, service = RequestCache(ttl_s=60, retry_after_s=30), Service()
    good = cache.get(service)
    clock.advance(61)
    service.failing = True
    failed = cache.get(service)
    assert failed.requests == good.requests and failed.fetched_at == good.fetched_at
    assert isinstance(failed.error, ServiceTimeout) and failed.failed_at == clock()
    clock.advance(29)
    assert cache.get(service) is failed and service.calls == 2  # not asked again yet
    assert cache.get(service, force=True).error is not None and service.calls == 3  # Refresh asks
    clock.advance(30)
    service.failing = False
    recovered = cache.get(service)
    assert recovered.error is None and recovered.find(4) is not None and recovered.fetched_at == clock()
