"""`RequestsClient`: the only code in the panel that talks to spd-requests, and `RequestCache`.

The client reads the whole list of requests (following the service's pages) or one request, maps
them through `mapping.py` into `ProductionRequest`s, and turns every failure into one of the errors of
`errors.py` with a sentence for the user. It knows nothing about Flask or the database.

`RequestCache` keeps the last list fetched with its time, so pages show how old the data is and keep
showing it (with the error) while the service is down; after a failure the service is left alone for
`retry_after_s` unless someone presses Refresh.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from app import clock
from app.prodrequests import mapping
from app.prodrequests.errors import (
    MalformedReply,
    RequestNotFound,
    RequestsServiceError,
    SchemaMismatch,
    ServiceAuthRefused,
    ServiceHttpError,
    ServiceTimeout,
    ServiceUnreachable,
)
from app.prodrequests.schema import ProductionRequest

if TYPE_CHECKING:  # app.config imports Flask; the client itself stays Flask-free
    from app.config import RequestsSettings


@dataclass(frozen=True)
class ClientConfig:
    """What the client needs from `RequestsSettings` (plus the resolved URL in sandbox mode)."""

    url: str
    token: str = ""
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    verify_tls: bool = True
    ca_bundle: str = ""
    proxy: str = ""

    @classmethod
    def from_settings(cls, settings: RequestsSettings, url: str | None = None) -> ClientConfig:
        return cls(
            url=settings.url if url is None else url,
            token=settings.token,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            verify_tls=settings.verify_tls,
            ca_bundle=settings.ca_bundle,
            proxy=settings.proxy,
        )


class RequestsClient:
    """Reads production requests from spd-requests; every method raises `RequestsServiceError`s."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.host = urlsplit(config.url).netloc or config.url
        self.session = requests.Session()
        self.session.trust_env = False  # *_PROXY variables are ignored: `proxy` says how to connect
        if config.proxy:
            self.session.proxies = {"http": config.proxy, "https": config.proxy}
        self.session.verify = config.ca_bundle or config.verify_tls
        self.session.headers.update({"Accept": "application/json", **mapping.auth_headers(config.token)})

    def close(self) -> None:
        self.session.close()

    def list_requests(self) -> list[ProductionRequest]:
        """Every request of the service (all pages)."""
        found: list[ProductionRequest] = []
        for page in range(1, mapping.MAX_PAGES + 1):
            records, more = mapping.page_results(self._get(mapping.LIST_PATH, mapping.list_params(page)))
            found.extend(mapping.to_request(record) for record in records)
            if not more:
                return found
        raise SchemaMismatch(
            f"The requests service at {self.host} still had more pages after {mapping.MAX_PAGES}; "
            f"the list was not read. {mapping.HINT}"
        )

    def get_request(self, request_id: int) -> ProductionRequest:
        """One request; `RequestNotFound` when the service does not know the id."""
        try:
            payload = self._get(mapping.DETAIL_PATH.format(id=request_id))
        except ServiceHttpError as exc:
            if exc.status == 404:
                raise RequestNotFound(
                    f"Request {request_id} does not exist on the requests service."
                ) from exc
            raise
        found = mapping.to_request(payload)
        if found.id != request_id:
            raise SchemaMismatch(
                f"The requests service answered request {found.id} when asked for {request_id}. {mapping.HINT}"
            )
        return found

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        url = self.config.url.rstrip("/") + path
        timeout = (self.config.connect_timeout_s, self.config.read_timeout_s)
        where = f"The requests service at {self.host}"
        try:
            response = self.session.get(url, params=params, timeout=timeout, allow_redirects=False)
        except requests.ConnectTimeout as exc:
            raise ServiceTimeout(
                f"{where} could not be reached within {self.config.connect_timeout_s:g} s."
            ) from exc
        except requests.Timeout as exc:
            raise ServiceTimeout(f"{where} did not answer within {self.config.read_timeout_s:g} s.") from exc
        except requests.RequestException as exc:
            raise ServiceUnreachable(
                f"{where} could not be reached ({_reason(exc)}). Check [requests] url and the network."
            ) from exc
        status = response.status_code
        if status in (401, 403):
            raise ServiceAuthRefused(
                f"{where} refused the panel's token (HTTP {status}); check [requests] token.", status
            )
        if status >= 500:
            raise ServiceHttpError(f"{where} failed (HTTP {status}); try again later.", status)
        if status != 200:
            raise ServiceHttpError(f"{where} answered HTTP {status} to {path}.", status)
        try:
            return response.json()
        except ValueError as exc:
            raise MalformedReply(
                f"{where} sent a reply that is not JSON; the service may be under maintenance, "
                "or [requests] url points to something else."
            ) from exc


def _reason(exc: requests.RequestException) -> str:
    """A few words on why a connection failed (urllib3's own text is long and nested)."""
    text = str(exc)
    for needle, words in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("Failed to resolve", "unknown host"),
        ("No route to host", "no route to host"),
        ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
    ):
        if needle in text:
            return words
    return exc.__class__.__name__


@dataclass(frozen=True)
class Snapshot:
    """The requests last fetched and when; `error` says why the latest refresh failed (if it did)."""

    requests: tuple[ProductionRequest, ...] = ()
    fetched_at: datetime | None = None
    error: RequestsServiceError | None = None
    failed_at: datetime | None = None

    def find(self, request_id: int) -> ProductionRequest | None:
        return next((r for r in self.requests if r.id == request_id), None)


class RequestCache:
    """The last list of requests, shared by the app's threads; one refresh at a time."""

    def __init__(self, ttl_s: float, retry_after_s: float) -> None:
        self.ttl_s = ttl_s
        self.retry_after_s = retry_after_s
        self._snapshot = Snapshot()
        self._lock = threading.Lock()

    def peek(self) -> Snapshot:
        """What is cached, without asking the service."""
        return self._snapshot

    def get(self, fetch: Callable[[], list[ProductionRequest]], *, force: bool = False) -> Snapshot:
        """The cached list while it is fresh; else `fetch()` again. A failed fetch keeps the old list
        and records the error; the service is not asked again for `retry_after_s` unless `force`."""
        with self._lock:
            current = self._snapshot
            if not force and not self._due(current):
                return current
            now = clock.now()
            try:
                found = fetch()
            except RequestsServiceError as exc:
                # Kept until the next refresh: without its traceback, which holds the failed call's frames.
                exc.__cause__ = exc.__context__ = None
                self._snapshot = Snapshot(current.requests, current.fetched_at, exc.with_traceback(None), now)
            else:
                self._snapshot = Snapshot(tuple(found), now)
            return self._snapshot

    def _due(self, snapshot: Snapshot) -> bool:
        now = clock.now()
        if snapshot.failed_at is not None:
            return (now - snapshot.failed_at).total_seconds() >= self.retry_after_s
        return snapshot.fetched_at is None or (now - snapshot.fetched_at).total_seconds() >= self.ttl_s
