"""`PandaClient`: the only code in the panel that talks to PanDA.

It speaks both server protocols (API v1 and the legacy `/server/panda/` API, see `transports.py`),
authenticates every user call with the user's IAM ID token and `Origin: <vo>.<role>`, returns typed
results, raises errors that say what the caller may do (`errors.py`), and records every HTTP
exchange through a `recorder` callback (the Flask side stores them in the `panda_call` table).

The client knows nothing about Flask or the database, so it runs the same in a view, in the
scheduler's threads and in scripts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import requests
import urllib3

from app import clock
from app.panda.errors import (
    PandaAuthError,
    PandaError,
    PandaNotFound,
    PandaOutcomeUnknown,
    PandaRejected,
    PandaRoleMissing,
    PandaUnavailable,
    PandaUnsupported,
    first_part,
    human_sentence,
)
from app.panda.results import (
    ChangeResult,
    CommandResult,
    JobDescription,
    ServerAlive,
    SubmitResult,
    TaskDetails,
    TaskInfo,
    TaskSummary,
    UserAttributes,
)
from app.panda.transports import (
    LEGACY,
    LEGACY_ROLE_MESSAGES,
    V1,
    Exchange,
    HttpSender,
    LegacyTransport,
    Op,
    Reply,
    V1Transport,
    Wire,
)
from app.tokens.errors import TokenUnavailable
from app.tokens.jwtutil import JWT_SHAPE

if TYPE_CHECKING:  # for the types only: the client itself stays free of Flask and the database
    from app.auth.models import User
    from app.config import PandaSettings

log = logging.getLogger(__name__)

__all__ = [
    "CallRecord",
    "ClientConfig",
    "PandaApi",
    "PandaClient",
    "Recorder",
    "TokenSource",
    "forget_transport",
]


class TokenSource(Protocol):
    """Gives the IAM ID token to send for a user (implemented in app/tokens/).

    `token_for` raises `app.tokens.errors.TokenUnavailable` (with `.reason`) when the user has no
    usable token (never logged in with IAM, refresh failed, ...); its `IamUnreachable` when SPD-IAM
    is down and no valid token is left (transient: wait, do not ask for a new login).
    """

    def token_for(self, user: User) -> str: ...


class PandaApi(Protocol):
    """What the panel asks of PanDA, on behalf of a user (with the user's own token).

    `PandaClient` implements it; the panel obtains one from `app.extensions.panda_clients`, and the
    unit tests' fake (tests/fakes/) is checked against it. A caller that needs another PanDA call
    adds it here first.
    """

    server: str

    def close(self) -> None: ...

    def get_user_attributes(self, user: User) -> UserAttributes: ...

    def check_production_role(self, user: User) -> UserAttributes: ...

    def submit(
        self, user: User, task_params: dict[str, Any], parent_tid: int | None = None
    ) -> SubmitResult: ...

    def get_detailed_info(self, user: User, task_id: int) -> TaskInfo: ...

    def get_tasks_detailed_info_since(
        self,
        user: User,
        since: datetime | None = None,
        *,
        filters: dict[str, Any] | None = None,
        n_tasks: int = 500,
        comment: str = "",
    ) -> list[TaskInfo]: ...

    def get_tasks_modified_since(
        self,
        user: User,
        since: datetime,
        *,
        dn: str | None = None,
        full: bool = False,
        min_task_id: int | None = None,
        prod_source_label: str = "managed",
    ) -> list[TaskSummary]: ...

    def get_job_descriptions(
        self, user: User, task_id: int, *, unsuccessful_only: bool = False
    ) -> list[JobDescription]: ...

    # Task actions (app/actions): queued commands and direct changes, each with the manager's comment.
    def kill(self, user: User, task_id: int, *, broadcast: bool = False, comment: str = "") -> CommandResult: ...

    def finish(
        self, user: User, task_id: int, *, soft: bool = False, broadcast: bool = False, comment: str = ""
    ) -> CommandResult: ...

    def retry(
        self, user: User, task_id: int, *, new_parameters: dict[str, Any] | None = None, comment: str = ""
    ) -> CommandResult: ...

    def pause(self, user: User, task_id: int, *, comment: str = "") -> CommandResult: ...

    def resume(self, user: User, task_id: int, *, comment: str = "") -> CommandResult: ...

    def release(self, user: User, task_id: int, *, comment: str = "") -> CommandResult: ...

    def avalanche(self, user: User, task_id: int, *, comment: str = "") -> CommandResult: ...

    def reassign(
        self, user: User, task_id: int, *, site: str | None = None, cloud: str | None = None, comment: str = ""
    ) -> CommandResult: ...

    def increase_attempts(self, user: User, task_id: int, increase: int, *, comment: str = "") -> CommandResult: ...

    def change_priority(self, user: User, task_id: int, priority: int, *, comment: str = "") -> ChangeResult: ...

    def change_attribute(
        self, user: User, task_id: int, attribute_name: str, value: int, *, comment: str = ""
    ) -> ChangeResult: ...

    def change_split_rule(
        self, user: User, task_id: int, attribute_name: str, value: str, *, comment: str = ""
    ) -> ChangeResult: ...


@dataclass(frozen=True)
class CallRecord:
    """One HTTP exchange with PanDA (or one refused attempt), handed to the recorder."""

    started_at: datetime
    user_id: int | None
    server: str
    transport: str
    method: str
    task_id: int | None
    params: dict[str, Any]
    http_status: int | None
    return_code: int | None
    message: str
    duration_ms: int
    outcome: str  # ok | rejected | not_found | auth | unavailable | unknown | unsupported | error
    attempt: int = 1
    comment: str = ""  # the manager's reason for a command: kept in the log, never sent to PanDA


Recorder = Callable[[CallRecord], None]


@dataclass(frozen=True)
class ClientConfig:
    """What the client needs from `PandaSettings` (plus the resolved URL in sandbox mode)."""

    url: str
    transport: str = "auto"  # auto | v1 | legacy
    vo: str = "spd"
    role: str = "production"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    retries: int = 2
    retry_backoff_s: float = 0.5
    verify: bool = True
    ca_bundle: str = ""
    proxy: str = ""
    production_group: str = "spd/production"

    @classmethod
    def from_settings(cls, settings: PandaSettings, url: str | None = None) -> ClientConfig:
        """Build from `PandaSettings`; `url` overrides `settings.url` (e.g. the sandbox simulator's)."""
        return cls(
            url=url if url is not None else settings.url,
            transport=settings.transport,
            vo=settings.vo,
            role=settings.role,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            retries=settings.retries,
            retry_backoff_s=settings.retry_backoff_s,
            verify=settings.verify,
            ca_bundle=settings.ca_bundle,
            proxy=settings.proxy,
            production_group=settings.production_group,
        )

    @property
    def origin(self) -> str:
        return f"{self.vo}.{self.role}" if self.role else self.vo


# Every operation: does it change server state (never retried once sent)?
OPS: dict[str, Op] = {
    name: Op(name, write)
    for name, write in {
        "is_alive": False,
        "get_user_attributes": False,
        "submit": True,
        "get_status": False,
        "get_details": False,
        "get_detailed_info": False,
        "get_task_parameters": False,
        "get_tasks_modified_since": False,
        "get_tasks_detailed_info_since": False,
        "get_job_descriptions": False,
        "kill": True,
        "finish": True,
        "retry": True,
        "pause": True,
        "resume": True,
        "release": True,
        "avalanche": True,
        "reassign": True,
        "change_priority": True,
        "change_attribute": True,
        "change_split_rule": True,
        "increase_attempts": True,
        "reload_input": True,
    }.items()
}

# Server texts that mean "your identity/role is not enough" (v1 common.py and legacy UserIF.py).
_AUTH_MESSAGES = (
    "SSL secure connection is required",
    "not the task owner or no production role",
    *LEGACY_ROLE_MESSAGES,
)
MESSAGE_DATABASE = "database error in the PanDA server"
LOG_TEXT_MAX = 4000  # characters of a message kept in the interaction log (panda_call.message)
_NOT_FOUND = re.compile(r"not found", re.I)
# Credential keys; a bare "token" is JEDI's storage token of a dataset item, shown as sent.
_SECRET_KEYS = re.compile(r"secret|password|authorization|passcode|.+_token$", re.I)

# Detected transport per server base URL (shared by all clients of the process).
_transport_cache: dict[str, str] = {}
_transport_lock = threading.Lock()


def forget_transport(url: str | None = None) -> None:
    """Drop the cached protocol detection for one server (or all), e.g. after a server upgrade."""
    with _transport_lock:
        if url is None:
            _transport_cache.clear()
        else:
            _transport_cache.pop(_base_url(url), None)


def _base_url(url: str) -> str:
    """Scheme+host+port(+prefix): panda-client style URLs ending in /server/panda or /api/v1 are trimmed."""
    url = url.rstrip("/")
    for suffix in ("/server/panda", "/api/v1", "/api/latest"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def strip_secrets(value: Any) -> Any:
    """A copy of call parameters safe for the log: anything that looks like a credential is masked."""
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_KEYS.search(str(k)) else strip_secrets(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_secrets(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return JWT_SHAPE.sub("***", value)
    return value


def _since_text(since: datetime) -> str:
    """PanDA wants naive UTC as "%Y-%m-%d %H:%M:%S"."""
    if since.tzinfo is not None:
        since = since.astimezone(UTC)
    return since.strftime("%Y-%m-%d %H:%M:%S")


class PandaClient:
    """Calls PanDA on behalf of panel users. Thread-safe; one instance per server is enough."""

    def __init__(
        self,
        config: ClientConfig,
        tokens: TokenSource | None = None,
        *,
        recorder: Recorder | None = None,
        sleep: Callable[[float], None] = time.sleep,
        session_factory: Callable[[], requests.Session] | None = None,
    ) -> None:
        if config.transport not in ("auto", V1, LEGACY):
            raise ValueError(f"panda.transport must be auto, v1 or legacy, not {config.transport!r}")
        self.config = config
        self.server = _base_url(config.url)
        self._tokens = tokens
        self._recorder = recorder
        self._sleep = sleep
        self._local = threading.local()
        sender = HttpSender(session_factory or self._session)
        self._transports: dict[str, V1Transport | LegacyTransport] = {
            V1: V1Transport(sender),
            LEGACY: LegacyTransport(sender),
        }
        self._verify = _tls_verify(config)
        # Production-role answers per (user, token hash): PanDA decides from the token + Origin, so an
        # answer holds for the token's lifetime (a new group membership comes with a new token).
        self._attr_cache: dict[tuple[Any, str], UserAttributes] = {}
        self._attr_lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing

    def _session(self) -> requests.Session:
        """One requests.Session per thread: sessions are not guaranteed thread-safe."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # only the configured panda.proxy, never one from the environment
            self._local.session = session
        return session

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    def _wire(self, token: str | None) -> Wire:
        headers = {"Accept": "application/json", "Origin": self.config.origin}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return Wire(
            base_url=self.server,
            headers=headers,
            connect_timeout_s=self.config.connect_timeout_s,
            read_timeout_s=self.config.read_timeout_s,
            verify=self._verify,
            proxy=self.config.proxy,
        )

    def _record(self, record: CallRecord) -> None:
        if self._recorder is None:
            return
        try:
            self._recorder(dataclasses.replace(record, message=JWT_SHAPE.sub("***", record.message)))
        except Exception:  # the log must never break a PanDA call
            log.exception("could not record PanDA call %s", record.method)

    def _record_refusal(
        self, exc: PandaError, user_id: int | None, tname: str, method: str, task_id: int | None, args: dict,
        comment: str = "",
    ) -> None:
        """Record a call the client refused before sending anything (no token, unsupported)."""
        self._record(
            CallRecord(
                clock.now(), user_id, self.server, tname, method, task_id, strip_secrets(args),
                None, None, str(exc), 0, exc.outcome, comment=comment,
            )
        )  # fmt: skip

    @property
    def transport(self) -> str:
        """The protocol in use for this server ("v1" or "legacy"), probing it on first use."""
        return self._detect()

    def _detect(self) -> str:
        if self.config.transport != "auto":
            return self.config.transport
        with _transport_lock:
            cached = _transport_cache.get(self.server)
        if cached:
            return cached
        detected = self._probe()
        with _transport_lock:
            _transport_cache[self.server] = detected
        return detected

    def _probe(self) -> str:
        """GET /api/v1/system/is_alive, then /server/panda/isAlive (reference §0.1).

        Only a server without the v1 endpoint (404, "forbidden method") is taken for a legacy one: a
        v1 server that is briefly failing must not be cached as legacy for the life of the process.
        """
        errors: list[str] = []
        for name in (V1, LEGACY):
            try:
                reply = self._attempt(self._transports[name], OPS["is_alive"], {}, None, None, 1, name)
            except PandaUnsupported as exc:
                errors.append(f"{name}: {exc}")
                continue
            except PandaError as exc:
                raise PandaUnavailable(
                    f"PanDA at {self.server} could not be probed ({name}: {exc}); try again later",
                    method="is_alive",
                    server=self.server,
                ) from exc
            if reply.success:
                return name
            if name == V1:  # an answer in the v1 envelope: a v1 server, not alive right now
                raise PandaUnavailable(
                    f"PanDA at {self.server} is not alive: {reply.message or 'no reason given'}",
                    method="is_alive",
                    server=self.server,
                )
            errors.append(f"{name}: {reply.message or 'not alive'}")
        raise PandaUnavailable(
            f"PanDA at {self.server} answers neither API v1 nor the legacy API ({'; '.join(errors)})",
            method="is_alive",
            server=self.server,
        )

    def _attempt(
        self,
        transport: V1Transport | LegacyTransport,
        op: Op,
        args: dict[str, Any],
        token: str | None,
        user_id: int | None,
        attempt: int,
        transport_name: str,
        task_id: int | None = None,
        interpret: Callable[[Reply], tuple[Any, int | None, int | None]] | None = None,
        comment: str = "",
    ) -> Any:
        """One HTTP exchange, recorded whatever happens. Returns the Reply, or interpret(reply)[0]."""
        started_at = clock.now()
        exchange = Exchange()
        t0 = time.monotonic()
        record = dict(
            started_at=started_at,
            user_id=user_id,
            server=self.server,
            transport=transport_name,
            method=op.name,
            task_id=task_id,
            params=strip_secrets(args),
            attempt=attempt,
            comment=comment,
        )
        try:
            reply = transport.call(self._wire(token), op, args, exchange)
            if interpret is None:
                outcome = "ok" if reply.success else "rejected"
                self._record(
                    CallRecord(
                        **record,
                        http_status=exchange.http_status,
                        return_code=reply.code,
                        message=reply.message[:LOG_TEXT_MAX],
                        duration_ms=_ms(t0),
                        outcome=outcome,
                    )
                )
                return reply
            value, code, new_task_id = interpret(reply)
            self._record(
                CallRecord(
                    **{**record, "task_id": new_task_id or task_id},
                    http_status=exchange.http_status,
                    return_code=code,
                    message=reply.message[:LOG_TEXT_MAX],
                    duration_ms=_ms(t0),
                    outcome="ok",
                )
            )
            return value
        except PandaError as exc:
            exc.method = exc.method or op.name
            exc.server = exc.server or self.server
            code = exc.code if isinstance(exc, PandaRejected) else None
            self._record(
                CallRecord(
                    **record,
                    http_status=exchange.http_status,
                    return_code=code,
                    message=_log_text(exc),
                    duration_ms=_ms(t0),
                    outcome=exc.outcome,
                )
            )
            raise

    def _call(
        self,
        name: str,
        user: User | None,
        args: dict[str, Any],
        interpret: Callable[[Reply], tuple[Any, int | None, int | None]],
        *,
        task_id: int | None = None,
        auth: bool = True,
        comment: str = "",
    ) -> Any:
        op = OPS[name]
        user_id = _user_id(user)
        attempts = 1 + max(0, self.config.retries)
        token: str | None = None
        for attempt in range(1, attempts + 1):
            try:
                transport_name = self._detect()
                transport = self._transports[transport_name]
                if auth and token is None:
                    token = self._token(user, op, args, user_id, task_id, transport_name, comment)
                if not transport.supports(name):
                    exc = PandaUnsupported(
                        f"The {transport_name} PanDA API has no equivalent of {name}.",
                        method=name,
                        server=self.server,
                    )
                    self._record_refusal(exc, user_id, transport_name, name, task_id, args, comment)
                    raise exc
                return self._attempt(
                    transport, op, args, token, user_id, attempt, transport_name, task_id, interpret, comment
                )
            except PandaUnavailable:
                # Only "nothing was processed" errors are retried (including a failed protocol
                # probe); a write that may have been applied raises PandaOutcomeUnknown instead.
                if attempt >= attempts:
                    raise
                self._sleep(self.config.retry_backoff_s * (2 ** (attempt - 1)))
        raise AssertionError("unreachable")  # pragma: no cover

    def _token(
        self,
        user: User | None,
        op: Op,
        args: dict[str, Any],
        user_id: int | None,
        task_id: int | None,
        tname: str,
        comment: str = "",
    ) -> str:
        if self._tokens is None or user is None:
            reason = "no token provider configured" if self._tokens is None else "no user given"
            exc = PandaAuthError(
                f"Cannot call PanDA without a user token ({reason}).", reason=reason, method=op.name
            )
        else:
            try:
                token = self._tokens.token_for(user)
            except TokenUnavailable as err:
                reason = getattr(err, "reason", "") or str(err)
                # The reason says what to do (a new login only when that can help).
                exc = PandaAuthError(
                    f"No usable IAM token to call PanDA: {reason}.",
                    reason=reason,
                    method=op.name,
                )
                exc.__cause__ = err
            else:
                if token:
                    return token
                exc = PandaAuthError(
                    "The token provider returned an empty token.", reason="empty token", method=op.name
                )
        exc.server = self.server
        self._record_refusal(exc, user_id, tname, op.name, task_id, args, comment)
        raise exc

    # ------------------------------------------------------------------ interpretation

    @staticmethod
    def _failure(reply: Reply, kind: str) -> PandaError:
        """A `success: false` (or non-zero code) reply as the right exception.

        kind: submit | command | increase | change | read (codes differ: see errors.py tables).
        """
        message = first_part(reply.message)  # the whole message stays in the interaction log
        code = reply.code
        if any(text in message for text in _AUTH_MESSAGES):
            return PandaAuthError(f"PanDA refused the role or identity: {message}", reason=message)
        if message == MESSAGE_DATABASE:
            # The server's database failed the request: nothing was stored, safe to retry.
            return PandaUnavailable(f"PanDA answered: {message}")
        not_found = (
            (kind == "command" and code == 2)
            or (kind == "increase" and code == 1)
            or (kind != "submit" and code is None and _NOT_FOUND.search(message) is not None)
        )
        if not_found:
            return PandaNotFound(
                human_sentence(2, "command", message), code=code, server_message=message, kind=kind
            )
        if kind in ("read", "change"):
            return PandaRejected(
                f"PanDA refused the request: {message}", code=code, server_message=message, kind=kind
            )
        return PandaRejected(
            human_sentence(code, kind, message), code=code, server_message=message, kind=kind
        )

    def _plain(self, convert: Callable[[Any], Any]) -> Callable[[Reply], tuple[Any, int | None, int | None]]:
        def interpret(reply: Reply) -> tuple[Any, int | None, int | None]:
            if not reply.success:
                raise self._failure(reply, "read")
            return convert(reply.data), None, None

        return interpret

    def _command(
        self, reply: Reply, kind: str = "command", accepted: tuple[int, ...] = (0,)
    ) -> tuple[CommandResult, int | None, int | None]:
        code = reply.code
        # `retry` answers success=true with a rejection code in data (reference §1.2): check data.
        if not reply.success or code not in (*accepted, None):
            raise self._failure(reply, kind)
        # A retry with new parameters of a production task registers a new task ("new jediTaskID=N").
        match = re.search(r"new jediTaskID=(\d+)", reply.message)
        new_task_id = int(match.group(1)) if match else None
        return CommandResult(code=code or 0, message=reply.message, new_task_id=new_task_id), code or 0, None

    def _change(self, reply: Reply) -> tuple[ChangeResult, int | None, int | None]:
        if not reply.success:
            raise self._failure(reply, "change")
        match = re.search(r"(\d+) tasks? changed", reply.message)
        n_changed = int(match.group(1)) if match else 1
        if n_changed == 0:
            raise PandaNotFound(
                human_sentence(2, "command", reply.message), code=2, server_message=reply.message
            )
        return ChangeResult(n_changed=n_changed, message=reply.message), None, None

    # ------------------------------------------------------------------ public calls

    def is_alive(self) -> ServerAlive:
        """Unauthenticated liveness check; raises PandaUnavailable when PanDA cannot be reached."""

        def interpret(reply: Reply) -> tuple[ServerAlive, None, None]:
            if not reply.success:
                raise PandaUnavailable(f"PanDA says it is not alive: {reply.message}")
            return ServerAlive(alive=True, transport=self._detect(), message=reply.message), None, None

        return self._call("is_alive", None, {}, interpret, auth=False)

    def get_user_attributes(self, user: User) -> UserAttributes:
        """What PanDA sees of the user's token + Origin (DN, FQANs, production role)."""
        return self._call(
            "get_user_attributes", user, {}, self._plain(lambda d: UserAttributes.from_dict(d or {}))
        )

    def check_production_role(self, user: User) -> UserAttributes:
        """Refuse (PandaRoleMissing) unless PanDA grants the production role to this user's token.

        Without it the server silently turns a production task into a user analysis task
        (reference §0.3), so every submission goes through here first.
        """
        key_token = ""  # the cache is per token: new IAM groups come with a new token
        if self._tokens is not None and user is not None:
            # Without a token nothing is cached; get_user_attributes below reports it as PandaAuthError.
            with contextlib.suppress(TokenUnavailable):
                key_token = hashlib.sha256(self._tokens.token_for(user).encode()).hexdigest()
        key = (_user_id(user), key_token)
        with self._attr_lock:
            attrs = self._attr_cache.get(key) if key_token else None
        if attrs is None:
            attrs = self.get_user_attributes(user)
            if key_token:
                with self._attr_lock:
                    if len(self._attr_cache) >= 1000:
                        self._attr_cache.clear()
                    self._attr_cache[key] = attrs
        if not attrs.is_production_user:
            group, origin = self.config.production_group, self.config.origin
            raise PandaRoleMissing(
                f"PanDA does not grant you the production role: your IAM token lacks group {group} "
                f"(needed for Origin {origin}). Ask the SPD IAM admins to add your account to {group}, "
                "then log in again. Nothing was submitted.",
                reason=f"not a member of {group}",
                method="submit",
                server=self.server,
            )
        return attrs

    def submit(self, user: User, task_params: dict[str, Any], parent_tid: int | None = None) -> SubmitResult:
        """Register a task. A PandaOutcomeUnknown here means: do NOT resubmit; reconcile by task name."""
        self.check_production_role(user)

        def interpret(reply: Reply) -> tuple[SubmitResult, int, int]:
            if not reply.success:
                raise self._failure(reply, "submit")
            if reply.code is None:
                raise PandaOutcomeUnknown(
                    f"PanDA accepted the task but its reply has no task id ({reply.message!r}); reconcile by task name."
                )
            # Code 3 (accepted as incremental execution) says "reactivation accepted" (insertTaskParamsPanda).
            code = 3 if "reactivation accepted" in reply.message else 0
            return SubmitResult(task_id=reply.data, code=code, message=reply.message), code, reply.data

        args: dict[str, Any] = {"task_parameters": task_params, "parent_tid": parent_tid}
        return self._call("submit", user, args, interpret)

    def get_status(self, user: User, task_id: int) -> str:
        """The task's JEDI status; PandaNotFound right after submit until JEDI picks it up."""
        return self._call("get_status", user, {"task_id": task_id}, self._plain(str), task_id=task_id)

    def get_details(
        self, user: User, task_id: int, *, include_parameters: bool = False, include_status: bool = True
    ) -> TaskDetails:
        args = {
            "task_id": task_id,
            "include_parameters": include_parameters,
            "include_status": include_status,
        }
        return self._call(
            "get_details",
            user,
            args,
            self._plain(lambda d: TaskDetails.from_dict(task_id, d or {})),
            task_id=task_id,
        )

    def get_detailed_info(self, user: User, task_id: int) -> TaskInfo:
        """Everything PanDA says about one task. On the legacy API (no such call) it is assembled
        from getJediTaskDetails + getTaskParamsMap: status, name, owner, priority and file counts
        from the input statistics; times and current priority stay None (`raw["assembled"]`)."""
        if self._detect() == LEGACY:
            return self._assembled_info(user, task_id)
        return self._call(
            "get_detailed_info",
            user,
            {"task_id": task_id},
            self._plain(lambda d: TaskInfo.from_dict(d or {})),
            task_id=task_id,
        )

    def _assembled_info(self, user: User, task_id: int) -> TaskInfo:
        details = self.get_details(user, task_id, include_status=True)
        params = self.get_task_parameters(user, task_id)
        stats = details.statistics
        data: dict[str, Any] = {
            "jediTaskID": task_id,
            "taskName": params.get("taskName"),
            "status": details.status or "",
            "userName": params.get("userName"),
            "reqID": params.get("reqID"),
            "taskPriority": params.get("taskPriority"),
            "site": params.get("site"),
            "cloud": params.get("cloud"),
            "nucleus": params.get("nucleus"),
            "nFiles": sum(stats.values()) if stats else None,
            "nFilesFinished": stats.get("finished") if stats else None,
            "nFilesFailed": stats.get("failed") if stats else None,
            "raw_task_params": params,
            "assembled": True,
        }
        return TaskInfo.from_dict(data)

    def get_task_parameters(self, user: User, task_id: int) -> dict[str, Any]:
        """The task parameter map as stored by PanDA."""

        def convert(data: Any) -> dict[str, Any]:
            if isinstance(data, str):
                data = json.loads(data)
            return dict(data or {})

        return self._call(
            "get_task_parameters", user, {"task_id": task_id}, self._plain(convert), task_id=task_id
        )

    def get_tasks_modified_since(
        self,
        user: User,
        since: datetime,
        *,
        dn: str | None = None,
        full: bool = False,
        min_task_id: int | None = None,
        prod_source_label: str = "managed",
    ) -> list[TaskSummary]:
        """Tasks of `dn` (default: the caller) modified since `since`. The server keys them by reqID,
        so tasks sharing a reqID collapse to one entry: prefer get_tasks_detailed_info_since."""
        args = {
            "since": _since_text(since),
            "dn": dn,
            "full": full,
            "min_task_id": min_task_id,
            "prod_source_label": prod_source_label,
        }

        def convert(data: Any) -> list[TaskSummary]:
            items = data.values() if isinstance(data, dict) else data or []
            return sorted(
                (TaskSummary.from_dict(t) for t in items if isinstance(t, dict)), key=lambda t: t.task_id
            )

        return self._call("get_tasks_modified_since", user, args, self._plain(convert))

    def get_tasks_detailed_info_since(
        self,
        user: User,
        since: datetime | None = None,
        *,
        filters: dict[str, Any] | None = None,
        n_tasks: int = 500,
        comment: str = "",
    ) -> list[TaskInfo]:
        """Full task info for the caller's tasks (or `filters["userName"]`) modified since `since`;
        `comment` (never sent) says in the PanDA log why the panel asked."""
        args = {
            "since": _since_text(since) if since else None,
            "filters": json.dumps(filters) if filters else None,
            "n_tasks": n_tasks,
        }

        def convert(data: Any) -> list[TaskInfo]:
            return [TaskInfo.from_dict(t) for t in data or [] if isinstance(t, dict)]

        return self._call("get_tasks_detailed_info_since", user, args, self._plain(convert), comment=comment)

    def get_job_descriptions(
        self, user: User, task_id: int, *, unsuccessful_only: bool = False
    ) -> list[JobDescription]:
        args = {"task_id": task_id, "unsuccessful_only": unsuccessful_only}

        def convert(data: Any) -> list[JobDescription]:
            return [JobDescription.from_dict(j) for j in data or [] if isinstance(j, dict)]

        return self._call("get_job_descriptions", user, args, self._plain(convert), task_id=task_id)

    # -- commands (queued by PanDA; a newer command replaces an unexecuted one) --------------
    # `comment`: the manager's reason, stored with the call in the interaction log (never sent).

    def kill(self, user: User, task_id: int, *, broadcast: bool = False, comment: str = "") -> CommandResult:
        args = {"task_id": task_id, "broadcast": broadcast}
        return self._call("kill", user, args, self._command, task_id=task_id, comment=comment)

    def finish(
        self, user: User, task_id: int, *, soft: bool = False, broadcast: bool = False, comment: str = ""
    ) -> CommandResult:
        """Finish the task; `soft` waits for running jobs instead of killing them."""
        args = {"task_id": task_id, "soft": soft, "broadcast": broadcast}
        return self._call("finish", user, args, self._command, task_id=task_id, comment=comment)

    def retry(
        self,
        user: User,
        task_id: int,
        *,
        new_parameters: dict[str, Any] | None = None,
        no_child_retry: bool = False,
        discard_events: bool = False,
        disable_staging_mode: bool = False,
        keep_gshare_priority: bool = False,
        ignore_hard_exhausted: bool = False,
        comment: str = "",
    ) -> CommandResult:
        """Retry a finished/failed/exhausted task. With `new_parameters` PanDA re-inserts the task
        parameters, which is a submission: the production role is checked first."""
        if new_parameters:
            self.check_production_role(user)
        args = {
            "task_id": task_id,
            "new_parameters": new_parameters or None,
            "no_child_retry": no_child_retry,
            "discard_events": discard_events,
            "disable_staging_mode": disable_staging_mode,
            "keep_gshare_priority": keep_gshare_priority,
            "ignore_hard_exhausted": ignore_hard_exhausted,
        }
        # With new parameters PanDA re-inserts the task parameters: 0 = registered as a new task
        # (`new_task_id`), 3 = accepted as an incremental execution of this task.
        accepted = (0, 3) if new_parameters else (0,)
        return self._call(
            "retry", user, args, lambda reply: self._command(reply, accepted=accepted), task_id=task_id,
            comment=comment,
        )  # fmt: skip

    def pause(self, user: User, task_id: int, *, comment: str = "") -> CommandResult:
        return self._call("pause", user, {"task_id": task_id}, self._command, task_id=task_id, comment=comment)

    def resume(self, user: User, task_id: int, *, comment: str = "") -> CommandResult:
        return self._call("resume", user, {"task_id": task_id}, self._command, task_id=task_id, comment=comment)

    def release(self, user: User, task_id: int, *, comment: str = "") -> CommandResult:
        return self._call("release", user, {"task_id": task_id}, self._command, task_id=task_id, comment=comment)

    def avalanche(self, user: User, task_id: int, *, comment: str = "") -> CommandResult:
        return self._call(
            "avalanche", user, {"task_id": task_id}, self._command, task_id=task_id, comment=comment
        )

    def reassign(
        self,
        user: User,
        task_id: int,
        *,
        site: str | None = None,
        cloud: str | None = None,
        nucleus: str | None = None,
        mode: str | None = None,
        comment: str = "",
    ) -> CommandResult:
        """Reassign to exactly one of site/cloud/nucleus; mode is kill (default), soft or nokill."""
        targets = [t for t in (site, cloud, nucleus) if t]
        if len(targets) != 1:
            raise ValueError("reassign needs exactly one of site, cloud or nucleus")
        if mode not in (None, "kill", "soft", "nokill"):
            raise ValueError("reassign mode must be kill, soft or nokill")
        args = {"task_id": task_id, "site": site, "cloud": cloud, "nucleus": nucleus, "mode": mode}
        return self._call("reassign", user, args, self._command, task_id=task_id, comment=comment)

    def increase_attempts(self, user: User, task_id: int, increase: int, *, comment: str = "") -> CommandResult:
        if increase < 0:
            raise ValueError("increase must be a positive integer")
        args = {"task_id": task_id, "increase": increase}
        return self._call(
            "increase_attempts", user, args, lambda reply: self._command(reply, "increase"), task_id=task_id,
            comment=comment,
        )  # fmt: skip

    def reload_input(self, user: User, task_id: int, *, ignore_hard_exhausted: bool = False) -> CommandResult:
        args = {"task_id": task_id, "ignore_hard_exhausted": ignore_hard_exhausted}
        return self._call("reload_input", user, args, self._command, task_id=task_id)

    # -- direct changes ------------------------------------------------------------------------

    def change_priority(self, user: User, task_id: int, priority: int, *, comment: str = "") -> ChangeResult:
        """Set the task's current priority (taskPriority stays as submitted)."""
        args = {"task_id": task_id, "priority": int(priority)}
        return self._call("change_priority", user, args, self._change, task_id=task_id, comment=comment)

    def change_attribute(
        self, user: User, task_id: int, attribute_name: str, value: int, *, comment: str = ""
    ) -> ChangeResult:
        """attribute_name: ramCount, wallTime, cpuTime or coreCount."""
        args = {"task_id": task_id, "attribute_name": attribute_name, "value": int(value)}
        return self._call("change_attribute", user, args, self._change, task_id=task_id, comment=comment)

    def change_split_rule(
        self, user: User, task_id: int, attribute_name: str, value: str, *, comment: str = ""
    ) -> ChangeResult:
        """attribute_name: a two-letter split-rule code PanDA allows to change (e.g. NF, NJ, MF)."""
        args = {"task_id": task_id, "attribute_name": attribute_name, "value": str(value)}
        return self._call("change_split_rule", user, args, self._change, task_id=task_id, comment=comment)


def _tls_verify(config: ClientConfig) -> bool | str:
    """What requests checks PanDA's certificate against: [panda] ca_bundle (file or directory), else
    the system's CA store (grid CAs are often installed there), else requests' own bundle."""
    if not config.verify:
        # The warning is the banner on every page, not a line per request in the log.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return False
    if config.ca_bundle:
        return config.ca_bundle
    system = ssl.get_default_verify_paths()
    for path in (system.cafile, system.capath):
        if path and os.path.exists(path):
            return path
    return True


def _log_text(exc: PandaError) -> str:
    """The interaction log's message for a failed call: what the user saw, then the server's whole
    reply when the message shows only part of it (e.g. a 403 with a Python traceback)."""
    text = str(exc)
    if exc.detail and exc.detail not in text:
        text = f"{text}\nPanDA's reply: {exc.detail}"
    return text[:LOG_TEXT_MAX]


def _user_id(user: User | None) -> int | None:
    value = getattr(user, "id", None)
    return value if isinstance(value, int) else None


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)
