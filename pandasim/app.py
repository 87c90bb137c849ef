"""The simulator's WSGI application: URL dispatch, encodings and fault injection like panda.py."""

from __future__ import annotations

import datetime as _dt
import decimal
import gzip
import hashlib
import io
import json
import threading
import time
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.formparser import parse_form_data

from . import api_v1, legacy
from .auth import TokenChecker
from .clock import SimClock
from .config import Faults, SimConfig
from .issuer import SimIssuer
from .mq import JediTicker, StatusPublisher
from .taskbuffer import PandaCore, SimRequest

Environ = dict[str, Any]


def encode_special_cases(obj: Any) -> Any:
    """json default= of panda-server: datetimes as {"__datetime__": iso}, Decimals as numbers."""
    if isinstance(obj, _dt.datetime):
        return {"__datetime__": obj.isoformat()}
    if isinstance(obj, decimal.Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError(f"Type not serializable for {obj} ({type(obj)})")


class SimApp:
    """A WSGI callable behaving like panda-server (+JEDI) for the panel's calls.

    Attributes: `config`, `clock` (SimClock), `state` (the JEDI store), `issuer` (SimIssuer
    when embedded, else None), `faults` (mutable Faults), `url` (once served).
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.clock = SimClock(config.time_scale)
        self.core = PandaCore(config, self.clock)
        self.state = self.core.jedi
        saved = self.state.saved_clock()
        if saved > self.clock.now():  # a stored state whose simulated time ran ahead: continue from there
            self.clock.advance(saved - self.clock.now())
        embedded = not config.issuer_url or bool(config.local_client_ids)
        self.issuer: SimIssuer | None = SimIssuer() if embedded else None
        discovery = (
            config.issuer_url.rstrip("/") + "/.well-known/openid-configuration" if config.issuer_url else ""
        )
        self.checker = TokenChecker(config, discovery)
        self.faults: Faults = config.faults
        self._fault_calls: dict[str, int] = defaultdict(int)  # calls per method since faults were set
        self._fault_lock = threading.Lock()
        self.calls: Counter[str] = Counter()  # API calls per method since start (see /_sim/stats)
        self.publisher: StatusPublisher | None = None
        self._ticker: JediTicker | None = None
        if config.mq_url:
            self.publisher = StatusPublisher(config.mq_url, config.mq_destination)
            self.state.on_status = self.publisher.publish

    def start_jedi(self) -> None:
        """With a broker, JEDI runs by itself (statuses change and messages go out between calls)."""
        if self.publisher is not None and self._ticker is None:
            self._ticker = JediTicker(self.core.now, self.config.mq_tick_s)
            self._ticker.start()

    def stop_jedi(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        if self.publisher is not None:
            self.publisher.close()
        self.url = ""

    # ------------------------------------------------------------------ setup helpers
    def set_base_url(self, url: str) -> None:
        """Tell the app where it is served; the embedded issuer lives under `<url>/oidc`."""
        self.url = url.rstrip("/")
        if self.issuer is not None:
            self.issuer.set_url(self.url + "/oidc")
            if self.config.issuer_url:
                self.checker.local_discovery_url = self.issuer.discovery_url
            else:
                self.checker.discovery_url = self.issuer.discovery_url

    def mint_token(
        self, sub: str, name: str, groups: list[str], lifetime_s: int = 3600, aud: str | None = None
    ) -> str:
        """Mint an ID token with the embedded issuer for its first client id."""
        if self.issuer is None:
            raise RuntimeError("the simulator uses an external issuer; mint tokens there")
        ids = self.config.local_client_ids if self.config.issuer_url else self.config.client_ids
        return self.issuer.mint_id_token(sub, name, groups, aud or ids[0], lifetime_s)

    def set_faults(self, faults: Faults | dict[str, Any]) -> None:
        self.faults = faults if isinstance(faults, Faults) else Faults.from_dict(faults)
        with self._fault_lock:
            self._fault_calls.clear()

    def advance(self, seconds: float) -> None:
        """Advance the simulated clock and apply what became due."""
        self.clock.advance(seconds)
        self.core.now()

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: Environ, start_response) -> list[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith("/oidc/") or path == "/oidc":
            return self._issuer(environ, start_response, path[len("/oidc") :])
        if path.startswith("/auth/") and path.endswith("_auth_config.json"):
            name = path[len("/auth/") : -len("_auth_config.json")]
            if name.replace(":", ".") in self.checker.vo_files:
                return _json(start_response, "200 OK", self.checker.auth_config_file())
            return _text(start_response, "404 Not Found", "Not Found")
        if path.startswith("/_sim/") and self.config.admin_endpoints:
            return self._admin(environ, start_response, path)
        fields = path.split("/")
        legacy_server = self.config.version == "0.8"
        if path.startswith("/api/") and len(fields) == 5:
            if legacy_server:  # 0.8.x behind Apache: only /server/panda/ is mapped to the server
                return _text(start_response, "404 Not Found", "Not Found")
            version, module, method = fields[2], fields[3], fields[4]
            func = api_v1.MODULES.get(module, {}).get(method) if version in ("v1", "latest") else None
            return self._dispatch(environ, start_response, method, func, new_api=True)
        if path.startswith("/server/panda/") and len(fields) == 4:
            method = fields[3]
            # 1.0.x removed the legacy task methods: each answers 403 "method X is forbidden"
            func = legacy.METHODS.get(method) if legacy_server else None
            return self._dispatch(environ, start_response, method, func, new_api=False)
        return _text(start_response, "404 Not Found", "Not Found")

    def _dispatch(self, environ: Environ, start_response, method_name: str, func, new_api: bool):
        with self._fault_lock:
            self.calls[method_name] += 1
        if func is None:
            return _text(start_response, "403 Forbidden", f"ERROR : method {method_name} is forbidden")
        request_method = environ.get("REQUEST_METHOD", "GET")
        content_type = environ.get("CONTENT_TYPE")
        json_app = content_type == "application/json" or (
            new_api and environ.get("HTTP_ACCEPT") == "application/json"
        )
        json_body = content_type == "application/json" and request_method in ("PUT", "POST")

        env: dict[str, str] = {
            "REQUEST_METHOD": request_method,
            "HTTP_ACCEPT": environ.get("HTTP_ACCEPT", ""),
        }
        auth = environ.get("HTTP_AUTHORIZATION")
        if auth:
            parts = auth.split()
            if len(parts) > 1:
                decision = self.checker.decide(parts[1], environ.get("HTTP_ORIGIN"))
                if not decision["authenticated"]:
                    return _text(
                        start_response,
                        "403 Forbidden",
                        f"ERROR : Token authentication failed. {decision['message']}",
                    )
                env.update(decision["env"])

        call = self._next_call(method_name)
        fault = self._draw_fault(method_name, call)
        if fault == "http500":
            return _text(
                start_response, "500 INTERNAL SERVER ERROR", "ERROR : simulated internal server error"
            )
        if fault == "reset":
            return _drop(start_response)
        if fault == "fail":
            failure = {"success": False, "message": "database error in the PanDA server", "data": None}
            if new_api:
                return _text(start_response, "200 OK", json.dumps(failure) if json_app else str(failure))
            return _bytes(
                start_response, "200 OK", legacy.dumps((False, "database error in the PanDA server"))
            )

        body = _body(environ)
        try:
            params = self._parse(environ, body, new_api, json_app, json_body, request_method)
        except (json.JSONDecodeError, UnicodeDecodeError, gzip.BadGzipFile, OSError) as exc:
            return _text(
                start_response, "500 INTERNAL SERVER ERROR", f"ERROR : received invalid JSON : {exc}"
            )

        req = SimRequest(sim=self.core, method=request_method, env=env)
        self.core.now()  # apply every transition that became due before answering
        try:
            result = func(req, **params) if isinstance(params, dict) else func(req)
        except Exception as exc:  # like panda.py: HTTP 500 with the exception text
            return _text(start_response, "500 INTERNAL SERVER ERROR", str(exc))

        if result is True or result is False:
            result = str(result)
        if new_api:
            out = (
                json.dumps(result, default=encode_special_cases)
                if json_app
                else (result if isinstance(result, str) else str(result))
            )
        else:
            out = result
        payload = out.encode() if isinstance(out, str) else out

        if method_name in ("submit", "insertTaskParams") and self._draw_submit_timeout(method_name, call):
            time.sleep(self.faults.stall_s)  # committed; the client times out or sees the connection drop
            return _drop(start_response)
        return _bytes(start_response, "200 OK", payload)

    @staticmethod
    def _parse(
        environ: Environ, body: bytes, new_api: bool, json_app: bool, json_body: bool, request_method: str
    ):
        if new_api and json_body:
            if environ.get("HTTP_CONTENT_ENCODING") == "gzip":
                body = gzip.decompress(body)
            return json.loads(body)
        if not new_api and json_app:
            params = json.loads(gzip.decompress(body))
            return {k: ("True" if v is True else "False" if v is False else v) for k, v in params.items()}
        if request_method in ("GET", "HEAD"):
            grouped: dict[str, list[str]] = defaultdict(list)
            for key, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
                grouped[key].append(value)
            return {k: v[0] if len(v) == 1 else v for k, v in grouped.items()}
        sub = dict(environ)
        sub["wsgi.input"] = io.BytesIO(body)
        sub["CONTENT_LENGTH"] = str(len(body))
        _, form, files = parse_form_data(sub)
        params = {k: form.get(k) for k in form}
        params.update({k: files.get(k) for k in files})
        return params

    # ------------------------------------------------------------------ faults
    def _applies(self, method: str) -> bool:
        return not self.faults.methods or method in self.faults.methods

    def _next_call(self, method: str) -> int | None:
        """The index of this call among the calls of `method` that faults apply to (None: none apply).

        Faults are drawn per (seed, method, index), so the n-th submit meets the same fault whatever
        other calls, threads or timings came in between.
        """
        if not self._applies(method):
            return None
        with self._fault_lock:
            index = self._fault_calls[method]
            self._fault_calls[method] = index + 1
        return index

    def _uniform(self, method: str, index: int, salt: str) -> float:
        key = f"{self.config.seed}:{method}:{index}:{salt}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64

    def _draw_fault(self, method: str, index: int | None) -> str | None:
        faults = self.faults
        if index is None:
            return None
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        x, y = self._uniform(method, index, "fault"), self._uniform(method, index, "kind")
        if x < faults.error_rate:
            return "http500" if y < 0.5 else "fail"
        if x < faults.error_rate + faults.reset_rate:
            return "reset"
        return None

    def _draw_submit_timeout(self, method: str, index: int | None) -> bool:
        if not self.faults.submit_timeout_rate or index is None:
            return False
        return self._uniform(method, index, "stall") < self.faults.submit_timeout_rate

    # ------------------------------------------------------------------ issuer and admin
    def _issuer(self, environ: Environ, start_response, sub_path: str):
        if self.issuer is None:
            return _text(start_response, "404 Not Found", "Not Found")
        answer = self.issuer.handle(sub_path, environ.get("REQUEST_METHOD", "GET"), _body(environ))
        if answer is None:
            return _text(start_response, "404 Not Found", "Not Found")
        return _json(start_response, answer[0], answer[1])

    def _admin(self, environ: Environ, start_response, path: str):
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            body = json.loads(_body(environ) or b"{}")
        except json.JSONDecodeError as exc:
            return _json(start_response, "400 Bad Request", {"error": str(exc)})
        if path == "/_sim/faults":
            if method == "POST":
                try:
                    self.set_faults(body)
                except (ValueError, TypeError) as exc:
                    return _json(start_response, "400 Bad Request", {"error": str(exc)})
            return _json(start_response, "200 OK", self.faults.as_dict())
        if path == "/_sim/clock":
            if method == "POST":
                if "scale" in body:
                    self.clock.set_scale(float(body["scale"]))
                if "advance_s" in body:
                    self.advance(float(body["advance_s"]))
            return _json(
                start_response, "200 OK", {"now": self.clock.now_dt().isoformat(), "scale": self.clock.scale}
            )
        if path == "/_sim/stats":
            self.core.now()
            with self._fault_lock:
                calls = dict(self.calls)
            return _json(start_response, "200 OK", {**self.state.stats(), "calls": calls})
        if path == "/_sim/mint" and method == "POST" and self.issuer is not None:
            status, answer = self.issuer.handle("/mint", "POST", json.dumps(body).encode())
            return _json(start_response, status, answer)
        return _json(start_response, "404 Not Found", {"error": "unknown admin endpoint"})


def _body(environ: Environ) -> bytes:
    """The request body (b"" without a Content-Length)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _text(start_response, status: str, text: str) -> list[bytes]:
    return _bytes(start_response, status, text.encode())


def _bytes(start_response, status: str, payload: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(payload)))])
    return [payload]


def _json(start_response, status: str, data: Any) -> list[bytes]:
    payload = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def _drop(start_response):
    """Send headers and a fragment, then stop: the server closes the connection mid-reply."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4096")])
    return iter([b"{"])
