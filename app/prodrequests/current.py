"""The app's view of spd-requests: its client, its shared cache, the current snapshot.

In sandbox mode (no [requests] url) `serve` starts the simulator and stores its URL under
`SANDBOX_URL_KEY` (app/prodrequests/sandbox.py).
"""

from __future__ import annotations

from flask import current_app

from app.config import get_settings
from app.prodrequests.client import ClientConfig, RequestCache, RequestsClient, Snapshot
from app.prodrequests.errors import ServiceNotConfigured
from app.prodrequests.schema import ProductionRequest

SANDBOX_URL_KEY = "REQUESTS_SANDBOX_URL"
_CACHE_KEY = "prodrequests_cache"


def service_url() -> str:
    """The configured URL, else the sandbox simulator's; "" when there is neither."""
    return get_settings().requests.url or current_app.config.get(SANDBOX_URL_KEY, "")


def make_client() -> RequestsClient:
    """A client for the configured service (the caller closes it)."""
    url = service_url()
    if not url:
        raise ServiceNotConfigured(
            "No requests service is configured ([requests] url) and the built-in simulator is not "
            "running (`prodpanel serve` starts it when the url is empty)."
        )
    return RequestsClient(ClientConfig.from_settings(get_settings().requests, url=url))


def _cache() -> RequestCache:
    cfg = get_settings().requests
    return current_app.extensions.setdefault(_CACHE_KEY, RequestCache(cfg.cache_s, cfg.retry_after_s))


def _fetch_all() -> list[ProductionRequest]:
    client = make_client()
    try:
        return client.list_requests()
    finally:
        client.close()


def snapshot(*, force: bool = False) -> Snapshot:
    """The requests (fetched again when the cache is stale, or at once with `force`)."""
    return _cache().get(_fetch_all, force=force)


def cached() -> Snapshot:
    """What is cached, never asking the service (for labels on pages that must not wait)."""
    return _cache().peek()


def fetch_request(request_id: int) -> ProductionRequest:
    """One request: from the snapshot when it is there, else asked from the service (which may know a
    request newer than the cached list). Raises `RequestsServiceError`s, `RequestNotFound` included."""
    cached_list = snapshot()
    found = cached_list.find(request_id)
    if found is not None:
        return found
    if cached_list.error is not None:  # the service failed just now: do not wait for it twice
        raise cached_list.error
    client = make_client()
    try:
        return client.get_request(request_id)
    finally:
        client.close()
