"""The simulator's WSGI application: the requests API as the panel expects spd-requests to serve it.

    GET /api/v1/requests/?page=N&page_size=M   {"count", "next", "previous", "results": [request…]}
    GET /api/v1/requests/<id>/                 one request, or 404 {"detail": "Not found."}
    GET|POST /_sim/faults                      fault injection (JSON body: Faults fields)
    POST /_sim/requests                        add or replace one request (the service's format)

With a token configured, API calls need "Authorization: Token <token>" (else 401).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from .config import Faults, ReqSimConfig
from .data import sample_requests

Environ = dict[str, Any]
API = "/api/v1/requests/"


class ReqSimApp:
    """A WSGI callable serving production requests; `requests` maps id → the service's record."""

    def __init__(self, config: ReqSimConfig) -> None:
        self.config = config
        self.requests: dict[int, dict[str, Any]] = {r["id"]: r for r in sample_requests()}
        self.faults = config.faults
        self.calls = 0  # API calls answered (faults included), for tests
        self._lock = threading.Lock()

    def set_faults(self, faults: Faults | dict[str, Any]) -> None:
        with self._lock:
            self.faults = faults if isinstance(faults, Faults) else Faults.from_dict(faults)

    def put(self, record: dict[str, Any]) -> None:
        """Add or replace a request (a dict in the service's format with an integer "id")."""
        with self._lock:
            self.requests[int(record["id"])] = record

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: Environ, start_response) -> list[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith("/_sim/") and self.config.admin_endpoints:
            return self._admin(environ, start_response, path)
        if not path.startswith(API):
            return _json(start_response, "404 Not Found", {"detail": "Not found."})
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"detail": "Method not allowed."})
        if self.config.token and environ.get("HTTP_AUTHORIZATION", "") != f"Token {self.config.token}":
            return _json(start_response, "401 Unauthorized", {"detail": "Invalid token."})
        fault = self._take_fault()
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        if fault.http_status:
            status = f"{fault.http_status} Simulated Failure"
            return _bytes(start_response, status, b"<h1>Server Error</h1>", "text/html")
        if fault.malformed_json:
            return _bytes(
                start_response, "200 OK", b'{"count": 3, "results": [{"id": 1, "ti', "application/json"
            )
        rest = path[len(API) :].strip("/")
        if not rest:
            return self._list(environ, start_response, fault.bad_schema)
        if not rest.isdigit() or int(rest) not in self.requests:
            return _json(start_response, "404 Not Found", {"detail": "Not found."})
        record = self.requests[int(rest)]
        return _json(start_response, "200 OK", _broken(record) if fault.bad_schema else record)

    def _take_fault(self) -> Faults:
        """The faults for this call (a copy), counting one down from `times`."""
        with self._lock:
            self.calls += 1
            current = self.faults
            if current.times == 0:
                return Faults()
            if current.times > 0:
                self.faults = Faults(**{**current.as_dict(), "times": current.times - 1})
            return current

    def _list(self, environ: Environ, start_response, bad_schema: bool) -> list[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            page = int(query.get("page", ["1"])[0])
            size = min(
                int(query.get("page_size", [str(self.config.page_size)])[0]), self.config.max_page_size
            )
        except ValueError:
            return _json(start_response, "400 Bad Request", {"detail": "Invalid page."})
        records = [self.requests[k] for k in sorted(self.requests)]
        pages = max(1, -(-len(records) // size)) if size > 0 else 0
        if size <= 0 or not 1 <= page <= pages:
            return _json(start_response, "404 Not Found", {"detail": "Invalid page."})
        chunk = records[(page - 1) * size : page * size]
        base = _base_url(environ) + API

        def link(n: int) -> str | None:
            return f"{base}?page={n}&page_size={size}" if 1 <= n <= pages else None

        body = {
            "count": len(records),
            "next": link(page + 1),
            "previous": link(page - 1),
            "results": [_broken(r) for r in chunk] if bad_schema else chunk,
        }
        return _json(start_response, "200 OK", body)

    def _admin(self, environ: Environ, start_response, path: str) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            body = json.loads(environ["wsgi.input"].read(length) if length > 0 else b"{}")
        except json.JSONDecodeError as exc:
            return _json(start_response, "400 Bad Request", {"error": str(exc)})
        if path == "/_sim/faults":
            if method == "POST":
                try:
                    self.set_faults(body)
                except (ValueError, TypeError) as exc:
                    return _json(start_response, "400 Bad Request", {"error": str(exc)})
            return _json(start_response, "200 OK", self.faults.as_dict())
        if path == "/_sim/requests" and method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("id"), int):
                return _json(start_response, "400 Bad Request", {"error": "a request needs an integer id"})
            self.put(body)
            return _json(start_response, "200 OK", body)
        return _json(start_response, "404 Not Found", {"error": "unknown admin endpoint"})


def _broken(record: dict[str, Any]) -> dict[str, Any]:
    """A record as a service with another schema would send it: fields renamed, a number as text."""
    broken = {k: v for k, v in record.items() if k not in ("title", "n_events")}
    broken["name"] = record.get("title")
    broken["events"] = f"{record.get('n_events')} events"
    return broken


def _base_url(environ: Environ) -> str:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


def _json(start_response, status: str, data: Any) -> list[bytes]:
    return _bytes(start_response, status, json.dumps(data).encode(), "application/json")


def _bytes(start_response, status: str, payload: bytes, content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
    return [payload]
