"""The launch dispatcher: claims due launch rows (the outbox) and submits them to PanDA exactly once.

Exactly once, step by step:
1. ``claim`` moves a row pending → sending with a conditional UPDATE and commits *before* the request
   leaves, so a second dispatcher (another thread, a double click, the scheduler) cannot claim it.
2. The reply decides: submitted (PanDA task id stored), failed (rejected / unavailable / no token: the
   server's reason is kept; "resend failed" makes a new attempt row), or unknown (the request was sent
   and no reply came).
3. Unknown rows, and rows found in "sending" after a crash, are never resent: ``reconcile`` looks the
   task up by name in PanDA and adopts the task id when found.

This module commits (it is a job, one transaction per row); it runs in a background thread started by
the view, and later from the scheduler for delayed launches (``dispatch_due``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select, update

from app import VERSION, clock
from app.config import get_settings
from app.extensions import db
from app.tasks.models import Launch, Task

log = logging.getLogger(__name__)

INCONCLUSIVE = (
    "PanDA cannot confirm whether this task arrived (its task listing hides tasks sharing a request id). "
    "Check PanDA for the task name; if it is not there, a manager marks it not submitted, then resends."
)


class _Tokens:
    """TokenSource over ``app.tokens.token_for`` (imported lazily: app/tokens is another domain)."""

    def token_for(self, user: Any) -> str:
        from app.tokens import token_for

        return token_for(user)


def make_client(*, interactive: bool = False):
    """A PanDA client for the current app, recording every call in the interaction log.

    ``interactive`` (page views): short read timeout and no retries, so a slow PanDA cannot hang a page.
    """
    from app.panda.services import panda_client_for

    settings = get_settings()
    if interactive:
        panda = dataclasses.replace(
            settings.panda, read_timeout_s=min(settings.panda.read_timeout_s, 5.0), retries=0
        )
        settings = dataclasses.replace(settings, panda=panda)
    return panda_client_for(settings, _Tokens())


def claim(launch_id: int, now: datetime) -> bool:
    """pending → sending, committed; False when someone else claimed it (or it is not pending)."""
    result = db.session.execute(
        update(Launch)
        .where(Launch.id == launch_id, Launch.status == "pending")
        .values(status="sending", claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def _finish(launch: Launch, status: str, *, error: str = "", reply: dict[str, Any] | None = None) -> None:
    launch.status = status
    launch.error = error[:4000]
    launch.finished_at = clock.now()
    manifest = dict(launch.manifest or {})
    if reply is not None:
        manifest["panda_reply"] = reply
    launch.manifest = manifest


def build_manifest(launch: Launch, parent_tid: int | None, server: str = "") -> dict[str, Any]:
    """What is about to be sent, who sends it and with which panel version (the PanDA reply is added)."""
    task = launch.task
    bunch = task.bunch
    user = launch.created_by
    spec = task.spec
    return {
        "manifest_version": 1,
        "panel_version": VERSION,
        "task_name": task.name,
        "bunch": bunch.base_name,
        "bunch_index": task.bunch_index,
        "bunch_size": bunch.size,
        "launch_idempotency_key": launch.idempotency_key,
        "attempt": launch.attempt,
        "user": getattr(user, "username", None),
        "user_display_name": getattr(user, "name", None),
        "sent_at": clock.now().isoformat(),
        "request_id": spec.get("request_id"),
        "container_path": spec.get("container_path"),
        "exec_path": spec.get("exec_path"),
        "output_dataset": task.output_dataset,
        "offset": spec.get("offset"),
        "parent_tid": parent_tid,
        "panda_server": server,
        "task_parameters": task.params,
        "definition": bunch.definition,
    }


def _adopt(launch: Launch, panda_task_id: int, how: str, reply: dict[str, Any]) -> None:
    task = launch.task
    launch.panda_task_id = panda_task_id
    task.panda_task_id = panda_task_id
    _finish(launch, "submitted", reply={**reply, "how": how})


def dispatch_launch(launch_id: int, client: Any) -> str:
    """Claim and submit one launch; returns its final status. Commits."""
    from app.panda.errors import (
        PandaAuthError,
        PandaError,
        PandaOutcomeUnknown,
        PandaRejected,
        PandaUnavailable,
    )
    from app.tokens.errors import TokenUnavailable

    now = clock.now()
    if not claim(launch_id, now):
        return db.session.get(Launch, launch_id).status
    launch = db.session.get(Launch, launch_id)
    task = launch.task
    user = launch.created_by
    if task.panda_task_id is not None:
        # Submitted by an earlier attempt (e.g. reconciled later): never a second time.
        _finish(launch, "submitted", error=f"already in PanDA as task {task.panda_task_id}")
        launch.panda_task_id = task.panda_task_id
        db.session.commit()
        return launch.status
    parent_tid = None
    if task.parent is not None:
        if task.parent.panda_task_id is None:
            launch.manifest = build_manifest(launch, None)
            _finish(
                launch, "failed", error=f"parent task {task.parent.name} is not in PanDA yet; resend later"
            )
            db.session.commit()
            return launch.status
        parent_tid = task.parent.panda_task_id
    if launch.attempt > 1 and not launch.confirmed_absent_by:
        # An earlier attempt may have reached PanDA after all: look before sending again.
        try:
            lookup = _find_in_panda(client, launch)
        except PandaError as exc:
            _finish(
                launch, "failed", error=f"could not check PanDA for an earlier attempt ({exc}); resend later"
            )
            db.session.commit()
            return launch.status
        if lookup.task_id is not None:
            _adopt(launch, lookup.task_id, "found by name before resending", {"task_id": lookup.task_id})
            db.session.commit()
            return launch.status
        if not lookup.conclusive:
            _finish(launch, "unknown", error=INCONCLUSIVE)
            db.session.commit()
            return launch.status
    launch.manifest = build_manifest(launch, parent_tid, getattr(client, "server", ""))
    db.session.commit()
    try:
        result = client.submit(user, task.params, parent_tid=parent_tid)
    except PandaOutcomeUnknown as exc:
        _finish(launch, "unknown", error=f"{exc} The panel will look the task up by name; it is not resent.")
        launch.manifest = {**launch.manifest, "panda_reply": {"outcome": "unknown", "message": str(exc)}}
    except PandaRejected as exc:
        _finish(launch, "failed", error=exc.human, reply={"outcome": "rejected", "code": exc.code,
                                                           "message": exc.server_message or str(exc)})  # fmt: skip
    except PandaAuthError as exc:
        _finish(launch, "failed", error=str(exc), reply={"outcome": "auth", "message": exc.reason})
    except PandaUnavailable as exc:
        _finish(launch, "failed", error=f"{exc} Nothing was submitted; resend when PanDA is back.",
                reply={"outcome": "unavailable", "message": str(exc)})  # fmt: skip
    except TokenUnavailable as exc:  # no usable IAM token: nothing left the panel
        _finish(
            launch,
            "failed",
            error=f"not sent: {exc.reason}",
            reply={"outcome": "not_sent", "message": exc.reason},
        )
    except Exception as exc:  # unexpected: the request may have left, so settle it by name, never resend
        log.exception("launch %s: unexpected error around the submit", launch_id)
        _finish(
            launch,
            "unknown",
            error=f"unexpected error ({exc.__class__.__name__}); looking the task up by name",
        )
    else:
        _adopt(launch, result.task_id, "submit", {"outcome": "ok", "task_id": result.task_id,
                                                   "code": result.code, "message": result.message})  # fmt: skip
    db.session.commit()
    return launch.status


@dataclass(frozen=True)
class Lookup:
    """What PanDA says about a task name: its id, or whether its absence is certain."""

    task_id: int | None
    conclusive: bool = True  # False: the listing could hide the task (legacy listing keyed by reqID)


def _find_in_panda(client: Any, launch: Launch) -> Lookup:
    """Look the launch's task up in PanDA by name (the way to settle an unknown outcome; never resend)."""
    from app.panda.errors import PandaUnsupported

    task = launch.task
    filters = {"taskName": task.name}
    user_name = task.params.get("userName")
    if user_name:
        filters["userName"] = user_name
    try:
        # No "since": PanDA's own clock may differ from ours; the server caps the window to 90 days.
        infos = client.get_tasks_detailed_info_since(launch.created_by, None, filters=filters, n_tasks=10)
        matches = sorted(info.task_id for info in infos if info.name == task.name)
        return Lookup(matches[0] if matches else None)
    except PandaUnsupported:
        pass
    # Legacy servers (< 1.0) only list the owner's tasks modified in a time window, keyed by reqID:
    # tasks sharing a request id hide each other, so a miss proves nothing when another task holds
    # our reqID in the listing.
    since = (launch.claimed_at or launch.created_at) - timedelta(days=1)
    summaries = client.get_tasks_modified_since(
        launch.created_by, since, dn=user_name or None,
        prod_source_label=task.params.get("prodSourceLabel", "managed"),
    )  # fmt: skip
    matches = sorted(s.task_id for s in summaries if s.name == task.name)
    if matches:
        return Lookup(matches[0])
    req_id = task.params.get("reqID")
    hidden = req_id is not None and any(s.req_id == req_id for s in summaries)
    return Lookup(None, conclusive=not hidden)


def adopt_by_id(task: Task, panda_task_id: int, user: Any, client: Any) -> str | None:
    """A manager found the task in PanDA by hand: adopt its id once PanDA confirms the name.
    Returns an error sentence, or None when adopted (committed)."""
    from app.panda.errors import PandaError

    launch = task.latest_launch
    if launch is None or launch.status != "unknown" or task.panda_task_id is not None:
        return "the task is not waiting for a decision"
    try:
        info = client.get_detailed_info(user, panda_task_id)
    except PandaError as exc:
        return f"PanDA could not confirm task {panda_task_id}: {exc}"
    if info.name != task.name:
        return f"PanDA task {panda_task_id} is named {info.name!r}, not {task.name!r}"
    _adopt(launch, panda_task_id, f"adopted by {getattr(user, 'username', '?')} after checking PanDA",
           {"outcome": "adopted", "task_id": panda_task_id})  # fmt: skip
    db.session.commit()
    return None


def _grace() -> timedelta:
    """How long an unanswered submit may stay invisible in PanDA (JEDI's pick-up window) before the
    panel stops waiting for it and reports it failed (then it may be resent)."""
    return timedelta(seconds=get_settings().tasks.reconcile_grace_s)


def reconcile(launch_id: int, client: Any) -> str:
    """Settle an unknown (or stale "sending") launch by asking PanDA for the task by name. Commits."""
    from app.panda.errors import PandaError

    launch = db.session.get(Launch, launch_id)
    if launch.status not in ("unknown", "sending"):
        return launch.status
    try:
        lookup = _find_in_panda(client, launch)
    except PandaError as exc:
        launch.error = f"reconciliation pending: {exc}"
        db.session.commit()
        return launch.status
    if lookup.task_id is not None:
        found = lookup.task_id
        _adopt(launch, found, "reconciled by task name", {"outcome": "reconciled", "task_id": found})
    elif not lookup.conclusive:
        if launch.status == "sending":
            _finish(launch, "unknown", error=INCONCLUSIVE)
        else:
            launch.error = INCONCLUSIVE
    elif clock.now() - (launch.claimed_at or launch.created_at) > _grace():
        _finish(
            launch,
            "failed",
            error=f"PanDA has no task named {launch.task.name} {int(_grace().total_seconds())} s "
            "after the unanswered submit: it did not arrive; resend it.",
        )
    db.session.commit()
    return launch.status


def dispatch_bunch(bunch_id: int, *, deadline_s: float | None = None, client: Any = None) -> dict[str, int]:
    """Submit every pending launch of a bunch, then reconcile its unknown ones until settled or the
    deadline passes. Returns counts by final launch status."""
    deadline = time.monotonic() + (
        deadline_s if deadline_s is not None else get_settings().tasks.dispatch_deadline_s
    )
    own_client = client is None
    client = client or make_client()
    try:
        launch_ids = _launch_ids(bunch_id, ("pending",))
        for launch_id in launch_ids:
            if time.monotonic() > deadline:
                break
            _guarded(dispatch_launch, launch_id, client)
        delay = 0.2
        while time.monotonic() < deadline:
            # Rows PanDA cannot settle wait for a manager; polling them again changes nothing.
            unknown = _launch_ids(bunch_id, ("unknown",), Launch.error != INCONCLUSIVE)
            unknown += _stale_sending(bunch_id)
            if not unknown:
                break
            for launch_id in unknown:
                _guarded(reconcile, launch_id, client)
            time.sleep(delay)  # give PanDA time to make the task visible; not a test wait
            delay = min(delay * 2, 5.0)
    finally:
        if own_client:
            client.close()
    return _counts(bunch_id)


def _guarded(step: Any, launch_id: int, client: Any) -> None:
    """One row's failure (e.g. the database refusing a write) must not stop the others. A row it
    leaves in "sending" was claimed, and may have been sent: it is reconciled by name later."""
    try:
        step(launch_id, client)
    except Exception:
        log.exception("launch %s: %s failed", launch_id, step.__name__)
        db.session.rollback()


def _launch_ids(bunch_id: int, statuses: tuple[str, ...], *conditions: Any) -> list[int]:
    db.session.expire_all()
    query = (
        select(Launch.id)
        .join(Task, Launch.task_id == Task.id)
        .where(
            Task.bunch_id == bunch_id, Launch.status.in_(statuses), Launch.due_at <= clock.now(), *conditions
        )
        .order_by(Task.bunch_index, Launch.id)
    )
    return list(db.session.scalars(query))


def _stale_sending(bunch_id: int | None = None) -> list[int]:
    """Rows left in "sending" by a dispatcher that died (a restart): longer than any request can take.
    One bunch's, or every bunch's when `bunch_id` is None."""
    panda = get_settings().panda
    limit = clock.now() - timedelta(seconds=panda.connect_timeout_s + panda.read_timeout_s + 30)
    query = select(Launch.id).where(Launch.status == "sending", Launch.claimed_at < limit)
    if bunch_id is not None:
        query = query.join(Task, Launch.task_id == Task.id).where(Task.bunch_id == bunch_id)
    return list(db.session.scalars(query))


def _counts(bunch_id: int) -> dict[str, int]:
    rows = db.session.execute(
        select(Launch.status).join(Task, Launch.task_id == Task.id).where(Task.bunch_id == bunch_id)
    )
    counts: dict[str, int] = {}
    for (status,) in rows:
        counts[status] = counts.get(status, 0) + 1
    return counts


def dispatch_due(limit: int = 100, client: Any = None) -> int:
    """Submit launches whose ``due_at`` has come (any bunch) and reconcile unknown/stale ones.

    For the scheduler (delayed launches) and for start-up: a row left in "sending" by a crash is
    reconciled, never resent. Returns how many rows were handled.
    """
    own_client = client is None
    client = client or make_client()
    handled = 0
    try:
        now = clock.now()
        ids = db.session.scalars(
            select(Launch.id)
            .where(Launch.status == "pending", Launch.due_at <= now)
            .order_by(Launch.due_at)
            .limit(limit)
        ).all()
        for launch_id in ids:
            _guarded(dispatch_launch, launch_id, client)
            handled += 1
        # Unknown outcomes awaiting a manager's decision (INCONCLUSIVE) are left to the manager:
        # asking PanDA again cannot settle them.
        unknown = db.session.scalars(
            select(Launch.id).where(Launch.status == "unknown", Launch.error != INCONCLUSIVE)
        ).all()
        for launch_id in [*unknown, *_stale_sending()]:
            _guarded(reconcile, launch_id, client)
            handled += 1
    finally:
        if own_client:
            client.close()
    return handled


# --- background dispatch started by the view ------------------------------------------------------

_running: set[int] = set()
_running_lock = threading.Lock()
_threads: list[threading.Thread] = []


def start_background_dispatch(app: Flask, bunch_id: int) -> threading.Thread | None:
    """Dispatch a bunch in a daemon thread (the page shows progress); one thread per bunch at a time."""
    with _running_lock:
        if bunch_id in _running:
            return None
        _running.add(bunch_id)

    def run() -> None:
        try:
            with app.app_context():
                try:
                    dispatch_bunch(bunch_id)
                finally:
                    db.session.remove()
        except Exception:
            log.exception("background dispatch of bunch %s failed", bunch_id)
        finally:
            with _running_lock:
                _running.discard(bunch_id)

    thread = threading.Thread(target=run, name=f"dispatch-bunch-{bunch_id}", daemon=True)
    thread.start()
    with _running_lock:  # forget finished threads: a long-running panel starts one per bunch
        _threads[:] = [t for t in _threads if t.is_alive()]
        _threads.append(thread)
    return thread


def is_dispatching(bunch_id: int) -> bool:
    with _running_lock:
        return bunch_id in _running


def wait_for_dispatchers(timeout: float = 30.0) -> bool:
    """Join the background dispatch threads (tests and shutdown); True when all finished."""
    deadline = time.monotonic() + timeout
    for thread in list(_threads):
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in _threads if t.is_alive()]
    _threads[:] = alive
    return not alive
