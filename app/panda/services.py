"""PanDA services: the client factory, the health check, and the interaction log's queries.

The log's writer (`calllog.py`) stores every call a client makes.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased, selectinload

from app.audit.services import within_days
from app.auth.models import User
from app.config import Settings, get_settings
from app.extensions import SeekPage, db, panda_clients, seek_paginate
from app.inputs import as_id
from app.panda.calllog import db_recorder
from app.panda.client import CallRecord, ClientConfig, PandaApi, PandaClient, Recorder, TokenSource
from app.panda.errors import PandaError
from app.panda.models import PandaCall
from app.tokens import services as token_vault
from app.tokens.errors import TokenUnavailable

# Where the sandbox simulator listens when no PanDA URL is configured (set by `serve`).
SANDBOX_URL_KEY = "PANDA_SANDBOX_URL"


# ---------------------------------------------------------------------------------------------
# Client factory and health.


def panda_url(settings: Settings) -> str:
    """The configured PanDA URL, or the sandbox simulator's when none is configured."""
    if settings.panda.url:
        return settings.panda.url
    if has_app_context():
        return current_app.config.get(SANDBOX_URL_KEY, "") or ""
    return ""


def panda_client_for(
    settings: Settings,
    tokens: TokenSource = token_vault,
    *,
    engine: Engine | None = None,
    recorder: Recorder | None = None,
    url: str | None = None,
) -> PandaClient:
    """A PanDA client for these settings, recording every call in `panda_call`.

    `tokens` gives users' ID tokens (default: the token vault, which needs an app context);
    `engine` defaults to the app's database (needed outside an app context, e.g. in scheduler
    threads); `url` overrides the resolved server URL.
    """
    config = ClientConfig.from_settings(settings.panda, url=url if url is not None else panda_url(settings))
    return PandaClient(config, tokens, recorder=recorder or db_recorder(engine))


def make_client(*, interactive: bool = False) -> PandaApi:
    """The app's PanDA client factory (installed in `app.extensions.panda_clients`): a client for
    the current app's settings, with the users' tokens from the vault, logging every call.

    ``interactive`` (a user waiting for a page): short read timeout and no retries, so a slow PanDA
    cannot hang the page.
    """
    settings = get_settings()
    if interactive:
        panda = dataclasses.replace(
            settings.panda, read_timeout_s=min(settings.panda.read_timeout_s, 5.0), retries=0
        )
        settings = dataclasses.replace(settings, panda=panda)
    return panda_client_for(settings)


def panda_alive(settings: Settings, *, url: str | None = None) -> dict[str, Any]:
    """Health-check entry for /healthz: {"ok", "url", "transport", "sandbox", "error"?}.

    Uses short timeouts and no retries; only failed probes are logged, so that monitoring
    polling /healthz does not flood the interaction log.
    """
    target = url if url is not None else panda_url(settings)
    report: dict[str, Any] = {"ok": False, "url": target, "sandbox": not settings.panda.url}
    if not target:
        report["error"] = "no PanDA URL configured and no sandbox simulator running"
        return report
    config = ClientConfig.from_settings(settings.panda, url=target)
    config = dataclasses.replace(
        config, connect_timeout_s=min(config.connect_timeout_s, 3.0), read_timeout_s=5.0, retries=0
    )
    recorder = None
    if has_app_context():
        writer = db_recorder()

        def recorder(record: CallRecord) -> None:
            if record.outcome != "ok":
                writer(record)

    client = PandaClient(config, None, recorder=recorder)
    try:
        alive = client.is_alive()
        report.update(ok=alive.alive, transport=alive.transport)
    except PandaError as exc:
        report["error"] = str(exc)[:300]
    finally:
        client.close()
    return report


# A /healthz hit shows the last check younger than this; only an older one (or none) probes PanDA.
HEALTH_MAX_AGE_S = 60.0


@dataclass(frozen=True)
class HealthCheck:
    url: str
    at: float  # time.monotonic() of the check
    report: dict[str, Any]


def check_panda_health(app: Flask) -> dict[str, Any]:
    """Probe PanDA now and keep the answer for /healthz (the scheduler's health job runs this)."""
    settings = app.config["SETTINGS"]
    report = panda_alive(settings)
    app.extensions["panda_health"] = HealthCheck(panda_url(settings), time.monotonic(), report)
    return report


def last_panda_health(app: Flask) -> dict[str, Any]:
    """PanDA's reachability for /healthz: the last check, unless it is older than HEALTH_MAX_AGE_S
    or was made for another URL; then a probe now (so monitoring polling /healthz costs PanDA at most
    one call a minute, and a hit costs no network call in between)."""
    last: HealthCheck | None = app.extensions.get("panda_health")
    fresh = last is not None and time.monotonic() - last.at < HEALTH_MAX_AGE_S
    if fresh and last is not None and last.url == panda_url(app.config["SETTINGS"]):
        return last.report
    return check_panda_health(app)


# ---------------------------------------------------------------------------------------------
# Queries for the pages.


@dataclass(frozen=True)
class CallFilters:
    method: str = ""
    outcome: str = ""
    user: str = ""  # username (exact) or user id
    task_id: int | None = None
    since: date | None = None  # whole UTC days, both included
    until: date | None = None


CALL_KEYS = (PandaCall.at, PandaCall.id)  # the log's order (descending: newest first), for keyset paging


def calls_query(filters: CallFilters) -> Select[PandaCall]:
    """Calls matching the filters, newest first."""
    query = (
        select(PandaCall)
        .options(selectinload(PandaCall.user))
        .order_by(PandaCall.at.desc(), PandaCall.id.desc())
    )
    if filters.method:
        query = query.where(PandaCall.method == filters.method)
    if filters.outcome:
        query = query.where(PandaCall.outcome == filters.outcome)
    if filters.task_id is not None:
        query = query.where(PandaCall.task_id == filters.task_id)
    query = query.where(*within_days(PandaCall.at, filters.since, filters.until))
    if filters.user:
        if (user_id := as_id(filters.user)) is not None:
            query = query.where(PandaCall.user_id == user_id)
        else:
            query = query.where(PandaCall.user_id.in_(select(User.id).where(User.username == filters.user)))
    return query


def calls_for_task(
    task_id: int, after: int | None = None, before: int | None = None, per_page: int = 20
) -> SeekPage:
    """One page of the PanDA calls about one task, newest first: the first, or the one after (older)
    or before (newer) the call `after` / `before`, by keyset."""
    query = calls_query(CallFilters(task_id=task_id))
    return seek_paginate(query, CALL_KEYS, per_page=per_page, cursors=(after, before))


def call_methods() -> list[str]:
    """Method names present in the log (for the filter's choices): a loose index scan (each name is
    the smallest one after the previous, through ix_panda_call_method), so a few lookups however long
    the log is, where DISTINCT would read the whole index."""
    methods = select(func.min(PandaCall.method).label("method")).cte("methods", recursive=True)
    later = aliased(PandaCall)
    following = select(func.min(later.method)).where(later.method > methods.c.method).scalar_subquery()
    methods = methods.union_all(select(following).select_from(methods).where(methods.c.method.is_not(None)))
    return [m for m in db.session.scalars(select(methods.c.method).order_by(methods.c.method)) if m is not None]


# ---------------------------------------------------------------------------------------------
# The production-role check of the token pages.


@dataclass(frozen=True)
class RoleCheck:
    """PanDA's answer to "does this user's token carry the production role?" (None: no answer)."""

    is_production: bool | None
    message: str  # stored on the user's grants, shown on the token pages
    notice: str  # what the user is told at once

    @property
    def category(self) -> str:
        return {True: "success", False: "warning", None: "danger"}[self.is_production]


def check_production_role(user: User) -> RoleCheck:
    """Ask PanDA what it makes of the user's token (`get_user_attributes`), with the user's own
    token, and remember the answer on the user's grants; flushes."""
    client = panda_clients(interactive=True)
    try:
        attrs = client.get_user_attributes(user)
    except TokenUnavailable as exc:
        check = RoleCheck(None, f"no token: {exc.reason}", f"No token for PanDA: {exc.reason}")
    except PandaError as exc:
        check = RoleCheck(None, str(exc)[:300], f"PanDA check failed: {exc}")
    else:
        ok = bool(attrs.is_production_user)
        message = "PanDA grants the production role" if ok else "PanDA does NOT grant the production role"
        check = RoleCheck(ok, message, message + ".")
    finally:
        client.close()
    token_vault.record_panda_check(user, check.is_production, check.message)
    return check
