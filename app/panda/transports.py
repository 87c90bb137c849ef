"""The two PanDA wire protocols: API v1 (`/api/v1/<module>/<method>`, JSON) and legacy
(`/server/panda/<method>`, form fields in, protocol-0 pickles out).

Each transport turns a client operation into one HTTP request and turns the reply into a `Reply`
shaped like the v1 envelope (success, message, data), so that the client interprets both the same
way. HTTP-level failures become `PandaUnavailable` / `PandaOutcomeUnknown` / `PandaAuthError` here;
what `success: false` means is decided by the client.

Reference: shared/reference/panda.md §1 (panda-server 1.0.4 and 0.8.1).
"""

from __future__ import annotations

import codecs
import io
import json
import pickle
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from app.panda.errors import (
    PandaAuthError,
    PandaError,
    PandaOutcomeUnknown,
    PandaRejected,
    PandaUnavailable,
    PandaUnsupported,
    first_part,
    token_advice,
)

V1 = "v1"
LEGACY = "legacy"


@dataclass
class Exchange:
    """The HTTP status of one attempt, set by the sender so the client can log it even when the call raises."""

    http_status: int | None = None


@dataclass(frozen=True)
class Reply:
    """A reply normalised to the v1 envelope."""

    success: bool
    message: str
    data: Any
    http_status: int

    @property
    def code(self) -> int | None:
        """`data` when it is a return code (an int, not a bool), else None."""
        return self.data if isinstance(self.data, int) and not isinstance(self.data, bool) else None


@dataclass(frozen=True)
class Wire:
    """Connection settings shared by both transports."""

    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    verify: bool | str = True
    proxy: str = ""  # one proxy URL for http and https ("" = direct)


# ---------------------------------------------------------------------------------------------
# Restricted unpickler for legacy replies: builtins containers/scalars and datetime only.

_SAFE_BUILTINS = frozenset(
    {
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "str",
        "bytes",
        "bytearray",
        "int",
        "float",
        "bool",
        "complex",
    }
)
_SAFE_DATETIME = {"datetime": datetime, "date": date, "timedelta": timedelta}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return super().find_class("builtins", name)
        if module == "datetime" and name in _SAFE_DATETIME:
            return _SAFE_DATETIME[name]
        if (module, name) == ("_codecs", "encode"):
            # Protocol 0 stores a datetime's state bytes as _codecs.encode(text, "latin1").
            return _latin1
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} from a PanDA reply")


def _latin1(text: str, encoding: str) -> bytes:
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing codec {encoding!r} in a PanDA reply")
    return codecs.encode(text, "latin1")


def restricted_loads(payload: bytes) -> Any:
    """Unpickle a legacy PanDA reply accepting only builtins and datetime (never arbitrary classes)."""
    return _RestrictedUnpickler(io.BytesIO(payload)).load()


# ---------------------------------------------------------------------------------------------
# JSON helpers for v1.


def _decode_special(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "__datetime__" in obj:
        try:
            return datetime.fromisoformat(obj["__datetime__"])
        except (TypeError, ValueError):
            return obj
    return obj


def decode_json(text: str) -> Any:
    """Parse a v1 reply, turning {"__datetime__": iso} back into datetimes."""
    return json.loads(text, object_hook=_decode_special)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"__datetime__": value.isoformat()}
    raise TypeError(f"cannot send {type(value).__name__} to PanDA")


# ---------------------------------------------------------------------------------------------
# HTTP with failure classification.

_TOKEN_FAILED = re.compile(r"Token authentication failed\.?\s*(.*)", re.S)
_FORBIDDEN_METHOD = re.compile(r"method \S+ is forbidden")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception behind it (causes, contexts, urllib3's `reason`, exceptions in args)."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue  # e.g. ssl.SSLError.reason is a string, not an exception
        seen.add(id(current))
        yield current
        stack.extend([getattr(current, "reason", None), current.__cause__, current.__context__, *current.args])


def _nothing_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection was never established, so the server cannot have seen the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    return any(
        isinstance(cause, NewConnectionError | ConnectTimeoutError | ConnectionRefusedError)
        for cause in _causes(exc)
    )


def _unreachable(exc: requests.ConnectionError, wire: Wire) -> str:
    """Why the connection could not be made, in words (never urllib3's `HTTPConnectionPool(...)` text)."""
    causes = list(_causes(exc))
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        why = "it refused the connection (is the server down, or the port wrong?)"
    elif any(isinstance(c, socket.gaierror) for c in causes):
        why = f"the host name {urlsplit(wire.base_url).hostname} cannot be resolved"
    elif isinstance(exc, requests.ConnectTimeout) or any(isinstance(c, ConnectTimeoutError) for c in causes):
        why = f"it did not accept a connection within {wire.connect_timeout_s:g} s"
    else:
        reason = next((c.strerror for c in causes if isinstance(c, OSError) and c.strerror), None)
        why = f"the connection failed ({reason.lower()})" if reason else "the connection failed"
    return f"PanDA at {wire.base_url} cannot be reached: {why}."


# OpenSSL's reasons when the other side does not speak TLS (a plain-HTTP port behind an https:// URL).
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST", "UNKNOWN_PROTOCOL")


def _tls_failure(exc: requests.exceptions.SSLError, base_url: str) -> str:
    """A sentence a manager can act on for a failed TLS handshake (nothing was sent)."""
    ssl_error = next((c for c in _causes(exc) if isinstance(c, ssl.SSLError)), None)
    if isinstance(ssl_error, ssl.SSLCertVerificationError):
        detail = ssl_error.verify_message or ssl_error.reason or "verification failed"
        if "mismatch" in detail:
            host = urlsplit(base_url).hostname
            return (
                f"PanDA's certificate is not valid for {host} ({detail}): put the host name the "
                "certificate was issued for in [panda] url."
            )
        if "expired" in detail:
            return f"PanDA's certificate has expired ({detail}): tell the PanDA operators."
        return (
            f"PanDA's certificate is not trusted ({detail}): set [panda] ca_bundle to the grid CA "
            "bundle (a file, or a directory of CA certificates such as /etc/grid-security/certificates)."
        )
    reason = str(getattr(ssl_error, "reason", "") or "")
    if reason.upper() in _NOT_TLS:
        return (
            f"PanDA at {base_url} does not answer TLS on this port ({reason}): check [panda] url "
            "(is it a plain-HTTP port, so that the URL should start with http://?)."
        )
    return f"The TLS connection to PanDA at {base_url} failed ({_short(exc)}): check [panda] url and ca_bundle."


class HttpSender:
    """Sends one request and classifies transport-level failures by whether the call writes."""

    def __init__(self, session_factory: Callable[[], requests.Session]) -> None:
        self._session_factory = session_factory

    def send(
        self,
        wire: Wire,
        verb: str,
        path: str,
        *,
        write: bool,
        exchange: Exchange,
        params: Any = None,
        data: Any = None,
        json_body: Any = None,
        extra_headers: dict[str, str] | None = None,
    ) -> requests.Response:
        headers = dict(wire.headers)
        if extra_headers:
            headers.update(extra_headers)
        body = None
        if json_body is not None:
            body = json.dumps(json_body, default=_json_default)
            headers["Content-Type"] = "application/json"
        url = wire.base_url.rstrip("/") + path
        try:
            response = self._session_factory().request(
                verb,
                url,
                params=params,
                data=body if body is not None else data,
                headers=headers,
                timeout=(wire.connect_timeout_s, wire.read_timeout_s),
                verify=wire.verify,
                proxies={"http": wire.proxy, "https": wire.proxy} if wire.proxy else None,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:  # the handshake failed: the request never left
            raise PandaUnavailable(_tls_failure(exc, wire.base_url)) from exc
        except requests.ConnectionError as exc:
            # ConnectTimeout is a ConnectionError too; ReadTimeout is not (handled below).
            if _nothing_sent(exc):
                raise PandaUnavailable(_unreachable(exc, wire), detail=_short(exc)) from exc
            if write:
                raise PandaOutcomeUnknown(
                    f"The connection to PanDA broke after the request was sent; it may or may not have been applied ({_short(exc)})."
                ) from exc
            raise PandaUnavailable(f"The connection to PanDA broke: {_short(exc)}") from exc
        except requests.Timeout as exc:
            if write:
                raise PandaOutcomeUnknown(
                    f"PanDA did not answer within {wire.read_timeout_s:g} s; the request may or may not have been applied."
                ) from exc
            raise PandaUnavailable(f"PanDA did not answer within {wire.read_timeout_s:g} s.") from exc
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ) as exc:
            raise PandaUnavailable(f"The PanDA URL {wire.base_url!r} is not usable: {_short(exc)}") from exc
        except requests.RequestException as exc:
            # E.g. the reply broke off mid-body (ChunkedEncodingError): the server did receive the request.
            if write:
                raise PandaOutcomeUnknown(
                    f"PanDA's reply broke off; the request may or may not have been applied ({_short(exc)})."
                ) from exc
            raise PandaUnavailable(f"PanDA's reply broke off: {_short(exc)}") from exc
        except OSError as exc:  # raised before connecting, e.g. a ca_bundle path that does not exist
            raise PandaUnavailable(
                f"The TLS settings for PanDA cannot be used ({_short(exc)}): check [panda] ca_bundle."
            ) from exc
        exchange.http_status = response.status_code
        self._check_status(response, write=write)
        return response

    @staticmethod
    def _check_status(response: requests.Response, *, write: bool) -> None:
        status = response.status_code
        if status == 200:
            return
        text = _body_text(response)
        summary = first_part(text)[:300]  # users never see a server traceback ...
        detail = text if summary != text else ""  # ... the interaction log keeps the whole reply
        if status == 403:
            if _FORBIDDEN_METHOD.search(summary):
                raise PandaUnsupported(f"PanDA does not offer this method here ({summary})", detail=detail)
            match = _TOKEN_FAILED.search(summary)
            reason = (match.group(1).strip() if match else summary) or "forbidden"
            raise PandaAuthError(
                f"PanDA refused the token or role: {token_advice(reason)}", reason=reason, detail=detail
            )
        if status == 404:
            raise PandaUnsupported(
                f"PanDA has no such endpoint (HTTP 404): {response.request.path_url.split('?')[0]}"
            )
        if status in (429, 503):
            raise PandaUnavailable(f"PanDA is temporarily unavailable (HTTP {status}).")
        if status >= 500 or status == 408:
            if write:
                raise PandaOutcomeUnknown(
                    f"PanDA failed while handling the request (HTTP {status}): {summary[:200]}; it may or may not have been applied.",
                    detail=detail,
                )
            raise PandaUnavailable(
                f"PanDA failed while handling the request (HTTP {status}): {summary[:200]}", detail=detail
            )
        raise PandaRejected(
            f"PanDA refused the request (HTTP {status}): {summary[:200]}", server_message=summary, detail=detail
        )


def _body_text(response: requests.Response) -> str:
    try:
        return response.content.decode("utf-8", "replace").strip()
    except Exception:  # pragma: no cover - defensive: a broken body must not hide the status
        return ""


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


def _bad_reply(write: bool, detail: str) -> PandaError:
    """A 200 reply the client cannot read: for a write the server did act, but we cannot tell how."""
    if write:
        return PandaOutcomeUnknown(
            f"PanDA's reply could not be read ({detail}); the request may have been applied."
        )
    return PandaUnavailable(f"PanDA's reply could not be read ({detail}).")


# ---------------------------------------------------------------------------------------------
# Operations: one table per transport, one entry per client call.


@dataclass(frozen=True)
class Op:
    """A client operation: its v1 name and whether it changes state on the server."""

    name: str
    write: bool


class V1Transport:
    """`/api/v1/<module>/<method>`: JSON body for POST, query string for GET, JSON envelope back."""

    name = V1

    # client op -> (module, method, verb)
    ROUTES: dict[str, tuple[str, str, str]] = {
        "is_alive": ("system", "is_alive", "GET"),
        "get_user_attributes": ("system", "get_user_attributes", "GET"),
        "submit": ("task", "submit", "POST"),
        "get_status": ("task", "get_status", "GET"),
        "get_details": ("task", "get_details", "GET"),
        "get_detailed_info": ("task", "get_detailed_info", "GET"),
        "get_task_parameters": ("task", "get_task_parameters", "GET"),
        "get_tasks_modified_since": ("task", "get_tasks_modified_since", "GET"),
        "get_tasks_detailed_info_since": ("task", "get_tasks_detailed_info_since", "GET"),
        "get_job_descriptions": ("task", "get_job_descriptions", "GET"),
        "kill": ("task", "kill", "POST"),
        "finish": ("task", "finish", "POST"),
        "retry": ("task", "retry", "POST"),
        "pause": ("task", "pause", "POST"),
        "resume": ("task", "resume", "POST"),
        "release": ("task", "release", "POST"),
        "avalanche": ("task", "avalanche", "POST"),
        "reassign": ("task", "reassign", "POST"),
        "change_priority": ("task", "change_priority", "POST"),
        "change_attribute": ("task", "change_attribute", "POST"),
        "change_split_rule": ("task", "change_split_rule", "POST"),
        "increase_attempts": ("task", "increase_attempts", "POST"),
        "reload_input": ("task", "reload_input", "POST"),
    }

    def __init__(self, sender: HttpSender) -> None:
        self._sender = sender

    def supports(self, op: str) -> bool:
        return op in self.ROUTES

    def call(self, wire: Wire, op: Op, args: dict[str, Any], exchange: Exchange) -> Reply:
        module, method, verb = self.ROUTES[op.name]
        path = f"/api/v1/{module}/{method}"
        # Drop unset optional arguments: the server applies its own defaults.
        args = {k: v for k, v in args.items() if v is not None}
        if verb == "GET":
            response = self._sender.send(
                wire, verb, path, write=op.write, exchange=exchange, params=_query_params(args)
            )
        else:
            response = self._sender.send(wire, verb, path, write=op.write, exchange=exchange, json_body=args)
        try:
            envelope = decode_json(response.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _bad_reply(op.write, f"not JSON: {_short(exc)}") from exc
        if not isinstance(envelope, dict) or "success" not in envelope:
            raise _bad_reply(op.write, "no success/message/data envelope")
        return Reply(
            success=envelope.get("success") is True,
            message=str(envelope.get("message") or ""),
            data=envelope.get("data"),
            http_status=response.status_code,
        )


def _query_params(args: dict[str, Any]) -> list[tuple[str, str]]:
    """GET arguments as the v1 server casts them: bools as true/false, dicts as JSON, lists repeated."""
    pairs: list[tuple[str, str]] = []
    for key, value in args.items():
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, dict):
            pairs.append((key, json.dumps(value)))
        elif isinstance(value, list | tuple):
            pairs.extend((key, str(v)) for v in value)
        else:
            pairs.append((key, str(value)))
    return pairs


def _legacy_bool(value: bool) -> str:
    return "True" if value else "False"


# Legacy server texts for role failures (0.8.1 UserIF.py).
LEGACY_ROLE_MESSAGES = (
    "production or pilot role required",
    "production role required",
    "production role is required",
)


class LegacyTransport:
    """`/server/panda/<method>` of panda-server ≤ 0.8: form fields, booleans as True/False,
    replies as protocol-0 pickles (read with a restricted unpickler), a few plain-text/JSON ones."""

    name = LEGACY

    def __init__(self, sender: HttpSender) -> None:
        self._sender = sender

    SUPPORTED = frozenset(
        {
            "is_alive",
            "get_user_attributes",
            "submit",
            "get_status",
            "get_details",
            "get_task_parameters",
            "get_tasks_modified_since",
            "get_job_descriptions",
            "kill",
            "finish",
            "retry",
            "pause",
            "resume",
            "release",
            "avalanche",
            "reassign",
            "change_priority",
            "change_attribute",
            "change_split_rule",
            "increase_attempts",
            "reload_input",
        }
    )

    def supports(self, op: str) -> bool:
        return op in self.SUPPORTED

    def call(self, wire: Wire, op: Op, args: dict[str, Any], exchange: Exchange) -> Reply:
        handler = getattr(self, f"_{op.name}", None)
        if handler is None or op.name not in self.SUPPORTED:
            raise PandaUnsupported(f"The legacy PanDA API has no equivalent of {op.name}.")
        try:
            return handler(wire, op, args, exchange)
        except PandaUnsupported as exc:
            if exchange.http_status != 403:
                raise
            # panda-server 1.0 and newer answer every legacy task method with 403 "method X is forbidden".
            raise PandaUnsupported(
                f"PanDA at {wire.base_url} forbids the legacy /server/panda/ API (removed in panda-server "
                f'1.0; {exc}): set [panda] transport to "auto" or "v1".'
            ) from exc

    # -- plumbing ---------------------------------------------------------------------------

    def _post(
        self, wire: Wire, op: Op, method: str, fields: dict[str, Any], exchange: Exchange, verb: str = "POST"
    ):
        form: dict[str, str] = {}
        for key, value in fields.items():
            if value is None:
                continue
            form[key] = _legacy_bool(value) if isinstance(value, bool) else str(value)
        path = f"/server/panda/{method}"
        if verb == "GET":
            return self._sender.send(wire, "GET", path, write=op.write, exchange=exchange, params=form)
        return self._sender.send(wire, "POST", path, write=op.write, exchange=exchange, data=form)

    def _pickled(self, response: requests.Response, op: Op) -> Any:
        payload = response.content
        try:
            return restricted_loads(payload)
        except Exception as exc:
            text = payload.decode("utf-8", "replace").strip()
            # Some legacy methods answer a bare string instead of a pickle (e.g. changeTaskPriority),
            # or the text "False" when the request carried no identity (getJediTaskDetails, ...).
            if text.startswith("Failed"):
                return text
            if text == "False":
                return False
            raise _bad_reply(op.write, f"not a readable pickle: {_short(exc)}") from exc

    @staticmethod
    def _tuple_reply(value: Any, status: int) -> Reply:
        """(code, message) with properErrorCode, or (False, message) from the early checks."""
        if isinstance(value, tuple | list) and len(value) == 2:
            code, message = value
            message = "" if message is None else str(message)
            if code is True:
                return Reply(True, message, 0, status)
            if code is False:
                return Reply(False, message, None, status)
            if isinstance(code, int):
                return Reply(code == 0, message, code, status)
        if isinstance(value, str):
            return Reply(False, value.removeprefix("Failed :").strip(), None, status)
        return Reply(False, f"unexpected legacy reply {value!r:.200}", None, status)

    def _command(self, wire, op, method, fields, exchange) -> Reply:
        response = self._post(wire, op, method, fields, exchange)
        return self._tuple_reply(self._pickled(response, op), response.status_code)

    # -- operations -------------------------------------------------------------------------

    def _is_alive(self, wire, op, args, exchange) -> Reply:
        response = self._post(wire, op, "isAlive", {}, exchange, verb="GET")
        text = response.content.decode("utf-8", "replace").strip()
        return Reply(text == "alive=yes", text, None, response.status_code)

    def _get_user_attributes(self, wire, op, args, exchange) -> Reply:
        # Legacy servers have no get_user_attributes; getVomsAttr lists the GRST_CRED_* variables
        # set from the token and the Origin role ("GRST_CRED_AUTH_TOKEN_0 : VOMS /spd/Role=production").
        response = self._post(wire, op, "getVomsAttr", {}, exchange, verb="GET")
        text = response.content.decode("utf-8", "replace")
        fqans = []
        for line in text.splitlines():
            key, _, value = line.partition(" : ")
            if key.strip().startswith("GRST_CRED_") and value.strip().startswith("VOMS"):
                fqans.append(value.split()[-1])
        is_prod = any(re.search(r"^/[^/]+/Role=production", f) for f in fqans)
        data = {"user_dn_raw": "", "user_dn_clean": "", "fqans": fqans, "is_production_user": is_prod}
        return Reply(True, text, data, response.status_code)

    def _submit(self, wire, op, args, exchange) -> Reply:
        fields = {
            "taskParams": json.dumps(args["task_parameters"]),
            "properErrorCode": True,
            "parent_tid": args.get("parent_tid"),
        }
        response = self._post(wire, op, "insertTaskParams", fields, exchange)
        value = self._pickled(response, op)
        reply = self._tuple_reply(value, response.status_code)
        code = reply.data
        if isinstance(code, int) and code in (0, 3):
            match = re.search(r"jediTaskID=(\d+)", reply.message)
            return Reply(True, reply.message, int(match.group(1)) if match else None, reply.http_status)
        return Reply(False, reply.message, code, reply.http_status)

    def _get_status(self, wire, op, args, exchange) -> Reply:
        try:
            response = self._post(
                wire, op, "getTaskStatus", {"jediTaskID": args["task_id"]}, exchange, verb="GET"
            )
        except PandaUnavailable as exc:
            # 0.8.x indexes an empty result for an unknown task and answers HTTP 500 "list index out of range".
            if exchange.http_status == 500 and "list index out of range" in str(exc):
                return Reply(False, "Task not found", None, 500)
            raise
        value = self._pickled(response, op)
        if isinstance(value, str) and value and not value.startswith("Failed"):
            return Reply(True, "", value, response.status_code)
        if isinstance(value, tuple | list) and len(value) == 2 and value[0] is False:
            return Reply(False, str(value[1]), None, response.status_code)
        return Reply(False, "Task not found", None, response.status_code)

    def _get_details(self, wire, op, args, exchange) -> Reply:
        fields = {
            "jediTaskID": args["task_id"],
            "fullFlag": bool(args.get("include_parameters")),
            "withTaskInfo": bool(args.get("include_status")),
        }
        response = self._post(wire, op, "getJediTaskDetails", fields, exchange)
        value = self._pickled(response, op)
        if isinstance(value, dict) and value:
            return Reply(True, "", value, response.status_code)
        if value is False:
            return Reply(False, "SSL secure connection is required", None, response.status_code)
        return Reply(False, "Task not found or error retrieving the details", None, response.status_code)

    def _get_task_parameters(self, wire, op, args, exchange) -> Reply:
        # The server pickles the stored JSON string ("" for an unknown task).
        response = self._post(
            wire, op, "getTaskParamsMap", {"jediTaskID": args["task_id"]}, exchange, verb="GET"
        )
        value = self._pickled(response, op)
        if isinstance(value, tuple | list) and len(value) == 2:
            if value[0] == 0 and value[0] is not False:  # panda-client's (0, json) wrapping, tolerated
                value = value[1]
            else:
                return Reply(False, str(value[1]), None, response.status_code)
        if isinstance(value, str) and value:
            try:
                return Reply(True, "", json.loads(value), response.status_code)
            except ValueError as exc:
                raise _bad_reply(False, f"task parameters are not JSON: {_short(exc)}") from exc
        return Reply(False, "Task not found", None, response.status_code)

    def _get_tasks_modified_since(self, wire, op, args, exchange) -> Reply:
        fields = {
            "timeRange": args["since"],
            "dn": args.get("dn"),
            "fullFlag": bool(args.get("full")),
            "minTaskID": args.get("min_task_id"),
            "task_type": args.get("prod_source_label") or "user",
        }
        response = self._post(wire, op, "getJediTasksInTimeRange", fields, exchange)
        value = self._pickled(response, op)
        if isinstance(value, dict):
            return Reply(True, "", value, response.status_code)
        return Reply(False, "SSL secure connection is required", None, response.status_code)

    def _get_job_descriptions(self, wire, op, args, exchange) -> Reply:
        # 0.8.x has no such call: list the task's PandaIDs, then read the jobs with getJobStatus,
        # which answers JSON (JobSpec.to_dict(): no Files, so no file sizes) to Accept: application/json.
        fields = {"jediTaskID": args["task_id"]}
        response = self._post(wire, op, "getPandaIDsWithTaskID", fields, exchange, verb="GET")
        ids = self._pickled(response, op)
        if isinstance(ids, tuple) and len(ids) == 2 and ids[0] is False:
            return Reply(False, str(ids[1]), None, response.status_code)
        if not isinstance(ids, list):
            raise _bad_reply(False, f"unexpected PandaID list {ids!r:.100}")
        if not ids:
            return Reply(True, "", [], response.status_code)
        response = self._post(wire, op, "getJobStatus", {"ids": json.dumps(ids[:5500])}, exchange)
        try:
            jobs = json.loads(response.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _bad_reply(False, f"getJobStatus is not JSON: {_short(exc)}") from exc
        jobs = [j for j in jobs if isinstance(j, dict)] if isinstance(jobs, list) else []
        if args.get("unsuccessful_only"):
            jobs = [j for j in jobs if j.get("jobStatus") in ("failed", "cancelled", "closed")]
        return Reply(True, "", jobs, response.status_code)

    def _kill(self, wire, op, args, exchange) -> Reply:
        fields = {
            "jediTaskID": args["task_id"],
            "properErrorCode": True,
            "broadcast": args.get("broadcast", False),
        }
        return self._command(wire, op, "killTask", fields, exchange)

    def _finish(self, wire, op, args, exchange) -> Reply:
        fields = {
            "jediTaskID": args["task_id"],
            "properErrorCode": True,
            "soft": bool(args.get("soft")),
            "broadcast": args.get("broadcast", False),
        }
        return self._command(wire, op, "finishTask", fields, exchange)

    def _retry(self, wire, op, args, exchange) -> Reply:
        new_parameters = args.get("new_parameters")
        fields = {
            "jediTaskID": args["task_id"],
            "properErrorCode": True,
            "newParams": json.dumps(new_parameters) if new_parameters else None,
            "noChildRetry": args.get("no_child_retry", False),
            "discardEvents": args.get("discard_events", False),
            "disable_staging_mode": args.get("disable_staging_mode", False),
            "keep_gshare_priority": args.get("keep_gshare_priority", False),
            "ignore_hard_exhausted": args.get("ignore_hard_exhausted", False),
        }
        reply = self._command(wire, op, "retryTask", fields, exchange)
        # As API v1's retry does: a code means "processed", and the code alone says how.
        return Reply(reply.data is not None, reply.message, reply.data, reply.http_status)

    def _pause(self, wire, op, args, exchange) -> Reply:
        return self._command(wire, op, "pauseTask", {"jediTaskID": args["task_id"]}, exchange)

    def _resume(self, wire, op, args, exchange) -> Reply:
        return self._command(wire, op, "resumeTask", {"jediTaskID": args["task_id"]}, exchange)

    def _avalanche(self, wire, op, args, exchange) -> Reply:
        return self._command(wire, op, "avalancheTask", {"jediTaskID": args["task_id"]}, exchange)

    def _release(self, wire, op, args, exchange) -> Reply:
        # release_task answers JSON, not a pickle.
        response = self._post(wire, op, "release_task", {"jedi_task_id": args["task_id"]}, exchange)
        try:
            value = json.loads(response.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _bad_reply(op.write, f"not JSON: {_short(exc)}") from exc
        return self._tuple_reply(tuple(value) if isinstance(value, list) else value, response.status_code)

    def _reassign(self, wire, op, args, exchange) -> Reply:
        fields = {
            "jediTaskID": args["task_id"],
            "site": args.get("site"),
            "cloud": args.get("cloud"),
            "nucleus": args.get("nucleus"),
            "mode": args.get("mode"),
        }
        return self._command(wire, op, "reassignTask", fields, exchange)

    def _change_priority(self, wire, op, args, exchange) -> Reply:
        fields = {"jediTaskID": args["task_id"], "newPriority": args["priority"]}
        response = self._post(wire, op, "changeTaskPriority", fields, exchange)
        value = self._pickled(response, op)
        return self._change_reply(value, response.status_code)

    def _change_attribute(self, wire, op, args, exchange) -> Reply:
        return self._change_named(wire, op, args, exchange, "changeTaskAttributePanda")

    def _change_split_rule(self, wire, op, args, exchange) -> Reply:
        return self._change_named(wire, op, args, exchange, "changeTaskSplitRulePanda")

    def _change_named(self, wire, op, args, exchange, method: str) -> Reply:
        """Attribute and split-rule changes take the same (task, name, value) form."""
        fields = {
            "jediTaskID": args["task_id"],
            "attrName": args["attribute_name"],
            "attrValue": args["value"],
        }
        response = self._post(wire, op, method, fields, exchange)
        return self._change_reply(self._pickled(response, op), response.status_code)

    @staticmethod
    def _change_reply(value: Any, status: int) -> Reply:
        """Direct changes answer a row count (priority) or (count, None); failures (False|2, message)."""
        if isinstance(value, tuple | list) and len(value) == 2:
            count, message = value
            if isinstance(count, int) and not isinstance(count, bool) and message is None:
                value = count
            else:
                return Reply(False, "" if message is None else str(message), None, status)
        if isinstance(value, str):
            return Reply(False, value.removeprefix("Failed :").strip(), None, status)
        if isinstance(value, int) and not isinstance(value, bool):
            if value > 0:
                return Reply(True, f"{value} tasks changed", None, status)
            return Reply(False, "Task not found", None, status)
        return Reply(False, "Exception while changing the task", None, status)

    def _increase_attempts(self, wire, op, args, exchange) -> Reply:
        fields = {"jediTaskID": args["task_id"], "increasedNr": args["increase"]}
        return self._command(wire, op, "increaseAttemptNrPanda", fields, exchange)

    def _reload_input(self, wire, op, args, exchange) -> Reply:
        fields = {
            "jediTaskID": args["task_id"],
            "properErrorCode": True,
            "ignore_hard_exhausted": args.get("ignore_hard_exhausted", False),
        }
        return self._command(wire, op, "reloadInput", fields, exchange)
