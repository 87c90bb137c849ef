"""The launch dispatcher: claims due launch rows (the outbox) and submits them to PanDA exactly once.

Exactly once, step by step:
1. ``claim`` moves a row pending → sending with a conditional UPDATE and commits *before* the request
   leaves, so a second dispatcher (another thread, a double click, the scheduler) cannot claim it.
2. The reply decides: submitted (PanDA task id stored), failed (rejected / unavailable / no token: the
   server's reason is kept; "resend failed" makes a new attempt row), or unknown (the request was sent
   and no reply came).
3. Unknown rows, and rows found in "sending" after a crash, are never resent: ``reconcile`` looks the
   task up by name in PanDA and adopts the task id when found. When PanDA cannot tell (its listing
   may hide the task), the row waits for a manager's decision (needs_decision).
4. A launch that waits (for its chain parent, for a task it was scheduled after, for SPD-IAM) is
   not claimed (``gates.gate``): it stays pending with the reason ("waiting for task 123 to reach
   50 % of its jobs") and goes out on a later dispatch.

This module is a background job: it commits, one transaction per row. It runs in a thread per bunch
started once a request's launches are committed (``dispatch_after_commit``), and at start-up for
launches that came due while the panel was down (``dispatch_due``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import ColumnElement, CursorResult, select, update

from app import clock
from app.config import get_settings
from app.extensions import db, panda_clients
from app.launches.gates import dependencies, gate
from app.launches.models import Launch
from app.launches.states import LaunchStatus, check, transition
from app.panda.client import PandaApi
from app.panda.errors import (
    PandaAuthError,
    PandaError,
    PandaOutcomeUnknown,
    PandaRejected,
    PandaUnavailable,
    PandaUnsupported,
)
from app.tasks.models import Task
from app.tokens.errors import TokenUnavailable
from app.transaction import after_commit
from app.version import VERSION

log = logging.getLogger(__name__)

S = LaunchStatus
INCONCLUSIVE = (
    "PanDA cannot confirm whether this task arrived (its task listing hides tasks sharing a request id). "
    "Check PanDA for the task name; if it is not there, a manager marks it not submitted, then resends."
)


def claim(launch_id: int, now: datetime) -> bool:
    """pending → sending, committed; False when someone else claimed it (or it is not pending).

    The one transition made by a conditional UPDATE instead of `transition()`: the database settles
    which dispatcher wins; the state table still decides that the move is allowed.
    """
    check(S.PENDING, S.SENDING)
    result = db.session.execute(
        update(Launch)
        .where(Launch.id == launch_id, Launch.status == S.PENDING)
        .values(status=S.SENDING, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


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
        "user": user.username if user else None,
        "user_display_name": user.name if user else None,
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


def adopt(launch: Launch, panda_task_id: int, how: str, reply: dict[str, Any]) -> None:
    """The launch's task is PanDA task `panda_task_id` (answered, found by name, or confirmed by a manager)."""
    launch.panda_task_id = panda_task_id
    launch.task.panda_task_id = panda_task_id
    transition(launch, S.SUBMITTED, reply={**reply, "how": how})


def dispatch_launch(launch_id: int, client: PandaApi) -> str:
    """Claim and submit one launch, unless `gates.gate` holds it back; returns its status. Commits."""
    launch = db.session.get_one(Launch, launch_id)
    if launch.status == S.PENDING:
        held = gate(launch)
        if held.wait:
            if launch.error != held.reason:
                launch.error = held.reason
                db.session.commit()
            return launch.status
    if not claim(launch_id, clock.now()):
        return db.session.get_one(Launch, launch_id).status
    launch = db.session.get_one(Launch, launch_id)
    _send(launch, client)
    db.session.commit()
    return launch.status


def _send(launch: Launch, client: PandaApi) -> None:
    """Submit a claimed launch and record the outcome (commits once, just before sending)."""
    task = launch.task
    if task.panda_task_id is not None:
        # Submitted by an earlier attempt (e.g. reconciled later): never a second time.
        transition(launch, S.SUBMITTED, error=f"already in PanDA as task {task.panda_task_id}")
        launch.panda_task_id = task.panda_task_id
        return
    found = dependencies(launch)
    if not found.goes:  # refused, or claimed while a task it depends on changed: never sent then
        launch.manifest = build_manifest(launch, None)
        transition(launch, S.FAILED, error=found.refusal or f"{found.reason}; resend later")
        return
    parent_tid = found.parent_tid
    if launch.attempt > 1 and not launch.confirmed_absent_by:
        # An earlier attempt may have reached PanDA after all: look before sending again.
        try:
            lookup = find_in_panda(client, launch)
        except PandaError as exc:
            error = f"could not check PanDA for an earlier attempt ({exc}); resend later"
            transition(launch, S.FAILED, error=error)
            return
        if lookup.task_id is not None:
            adopt(launch, lookup.task_id, "found by name before resending", {"task_id": lookup.task_id})
            return
        if not lookup.conclusive:
            transition(launch, S.NEEDS_DECISION, error=INCONCLUSIVE)
            return
    if launch.created_by is None:  # PanDA calls carry the owner's token
        transition(launch, S.FAILED, error="not sent: the account that created it no longer exists")
        return
    launch.manifest = build_manifest(launch, parent_tid, client.server)
    db.session.commit()
    try:
        result = client.submit(launch.created_by, task.params, parent_tid=parent_tid)
    except PandaOutcomeUnknown as exc:
        transition(launch, S.UNKNOWN, error=f"{exc} The panel will look the task up by name; it is not resent.",
                   reply={"outcome": "unknown", "message": str(exc)})  # fmt: skip
    except PandaRejected as exc:
        transition(launch, S.FAILED, error=exc.human, reply={"outcome": "rejected", "code": exc.code,
                                                             "message": exc.server_message or str(exc)})  # fmt: skip
    except PandaAuthError as exc:
        transition(launch, S.FAILED, error=str(exc), reply={"outcome": "auth", "message": exc.reason})
    except PandaUnavailable as exc:
        transition(launch, S.FAILED, error=f"{exc} Nothing was submitted; resend when PanDA is back.",
                   reply={"outcome": "unavailable", "message": str(exc)})  # fmt: skip
    except TokenUnavailable as exc:  # no usable IAM token: nothing left the panel
        transition(launch, S.FAILED, error=f"not sent: {exc.reason}",
                   reply={"outcome": "not_sent", "message": exc.reason})  # fmt: skip
    except Exception as exc:  # unexpected: the request may have left, so settle it by name, never resend
        log.exception("launch %s: unexpected error around the submit", launch.id)
        error = f"unexpected error ({exc.__class__.__name__}); looking the task up by name"
        transition(launch, S.UNKNOWN, error=error)
    else:
        adopt(launch, result.task_id, "submit", {"outcome": "ok", "task_id": result.task_id,
                                                 "code": result.code, "message": result.message})  # fmt: skip


@dataclass(frozen=True)
class Lookup:
    """What PanDA says about a task name: its id, or whether its absence is certain."""

    task_id: int | None
    conclusive: bool = True  # False: the listing could hide the task (legacy listing keyed by reqID)


def find_in_panda(client: PandaApi, launch: Launch) -> Lookup:
    """Look the launch's task up in PanDA by name (the way to settle an unknown outcome; never resend)."""
    task = launch.task
    owner = launch.created_by
    if owner is None:
        raise PandaAuthError("the account that sent it no longer exists", reason="no owner")
    filters = {"taskName": task.name}
    user_name = task.params.get("userName")
    if user_name:
        filters["userName"] = user_name
    try:
        # No "since": PanDA's own clock may differ from ours; the server caps the window to 90 days.
        infos = client.get_tasks_detailed_info_since(owner, None, filters=filters, n_tasks=10)
        matches = sorted(info.task_id for info in infos if info.name == task.name)
        return Lookup(matches[0] if matches else None)
    except PandaUnsupported:
        pass
    # Legacy servers (< 1.0) only list the owner's tasks modified in a time window, keyed by reqID:
    # tasks sharing a request id hide each other, so a miss proves nothing when another task holds
    # our reqID in the listing.
    since = (launch.claimed_at or launch.created_at) - timedelta(days=1)
    summaries = client.get_tasks_modified_since(
        owner, since, dn=user_name or None, prod_source_label=task.params.get("prodSourceLabel", "managed")
    )
    matches = sorted(s.task_id for s in summaries if s.name == task.name)
    if matches:
        return Lookup(matches[0])
    req_id = task.params.get("reqID")
    hidden = req_id is not None and any(s.req_id == req_id for s in summaries)
    return Lookup(None, conclusive=not hidden)


def _grace() -> timedelta:
    """How long an unanswered submit may stay invisible in PanDA (JEDI's pick-up window) before the
    panel stops waiting for it and reports it failed (then it may be resent)."""
    return timedelta(seconds=get_settings().tasks.reconcile_grace_s)


def reconcile(launch_id: int, client: PandaApi) -> str:
    """Settle an unknown (or stale "sending") launch by asking PanDA for the task by name. Commits."""
    launch = db.session.get_one(Launch, launch_id)
    if launch.status not in (S.UNKNOWN, S.SENDING):
        return launch.status
    try:
        lookup = find_in_panda(client, launch)
    except PandaError as exc:
        launch.error = f"reconciliation pending: {exc}"
        db.session.commit()
        return launch.status
    if lookup.task_id is not None:
        found = lookup.task_id
        adopt(launch, found, "reconciled by task name", {"outcome": "reconciled", "task_id": found})
    elif not lookup.conclusive:
        transition(launch, S.NEEDS_DECISION, error=INCONCLUSIVE)
    elif clock.now() - (launch.claimed_at or launch.created_at) > _grace():
        error = (
            f"PanDA has no task named {launch.task.name} {int(_grace().total_seconds())} s "
            "after the unanswered submit: it did not arrive; resend it."
        )
        transition(launch, S.FAILED, error=error)
    db.session.commit()
    return launch.status


def dispatch_bunch(
    bunch_id: int, *, deadline_s: float | None = None, client: PandaApi | None = None
) -> dict[str, int]:
    """Submit every pending launch of a bunch, then reconcile its unknown ones until settled or the
    deadline passes. Returns counts by final launch status."""
    deadline = time.monotonic() + (
        deadline_s if deadline_s is not None else get_settings().tasks.dispatch_deadline_s
    )
    panda = client or panda_clients()
    try:
        for launch_id in _launch_ids(bunch_id, S.PENDING):
            if time.monotonic() > deadline:
                break
            _guarded(dispatch_launch, launch_id, panda)
        delay = 0.2
        while time.monotonic() < deadline:
            # Rows awaiting a manager's decision are left alone: asking PanDA again changes nothing.
            unsettled = _launch_ids(bunch_id, S.UNKNOWN) + _stale_sending(bunch_id)
            waiting = _launch_ids(bunch_id, S.PENDING)  # held back by parent_gate
            if not unsettled and not waiting:
                break
            for launch_id in unsettled:
                _guarded(reconcile, launch_id, panda)
            for launch_id in waiting:
                _guarded(dispatch_launch, launch_id, panda)
            time.sleep(delay)  # give PanDA time to make the task visible; not a test wait
            delay = min(delay * 2, 5.0)
    finally:
        if client is None:
            panda.close()
    return _counts(bunch_id)


def _guarded(step: Callable[[int, PandaApi], str], launch_id: int, client: PandaApi) -> None:
    """One row's failure (e.g. the database refusing a write) must not stop the others. A row it
    leaves in "sending" was claimed, and may have been sent: it is reconciled by name later."""
    try:
        step(launch_id, client)
    except Exception:
        log.exception("launch %s: %s failed", launch_id, step.__name__)
        db.session.rollback()


def _launch_ids(bunch_id: int, status: LaunchStatus) -> list[int]:
    db.session.expire_all()
    query = (
        select(Launch.id)
        .join(Task, Launch.task_id == Task.id)
        .where(Task.bunch_id == bunch_id, Launch.status == status, Launch.due_at <= clock.now())
        .order_by(Task.bunch_index, Launch.id)
    )
    return list(db.session.scalars(query))


def _stale_sending(bunch_id: int | None = None) -> list[int]:
    """Rows left in "sending" by a dispatcher that died (a restart): longer than any request can take.
    One bunch's, or every bunch's when `bunch_id` is None."""
    panda = get_settings().panda
    limit = clock.now() - timedelta(seconds=panda.connect_timeout_s + panda.read_timeout_s + 30)
    conditions: list[ColumnElement[bool]] = [Launch.status == S.SENDING, Launch.claimed_at < limit]
    query = select(Launch.id).where(*conditions)
    if bunch_id is not None:
        query = query.join(Task, Launch.task_id == Task.id).where(Task.bunch_id == bunch_id)
    return list(db.session.scalars(query))


def _counts(bunch_id: int) -> dict[str, int]:
    rows = db.session.scalars(
        select(Launch.status).join(Task, Launch.task_id == Task.id).where(Task.bunch_id == bunch_id)
    )
    counts: dict[str, int] = {}
    for status in rows:
        counts[status] = counts.get(status, 0) + 1
    return counts


def dispatch_due(limit: int = 100, client: PandaApi | None = None) -> int:
    """Submit launches whose ``due_at`` has come (any bunch) and reconcile unknown/stale ones.

    For start-up (and later the scheduler): a row left in "sending" by a crash is reconciled, never
    resent. Returns how many rows were handled.
    """
    panda = client or panda_clients()
    handled = 0
    try:
        due = db.session.scalars(
            select(Launch.id)
            .where(Launch.status == S.PENDING, Launch.due_at <= clock.now())
            .order_by(Launch.due_at)
            .limit(limit)
        ).all()
        for launch_id in due:
            _guarded(dispatch_launch, launch_id, panda)
            handled += 1
        unknown = db.session.scalars(select(Launch.id).where(Launch.status == S.UNKNOWN)).all()
        for launch_id in [*unknown, *_stale_sending()]:
            _guarded(reconcile, launch_id, panda)
            handled += 1
    finally:
        if client is None:
            panda.close()
    return handled


# --- background dispatch, one thread per bunch ------------------------------------------------------

_running: set[int] = set()
_running_lock = threading.Lock()
_threads: list[threading.Thread] = []


def dispatch_after_commit(bunch_id: int) -> None:
    """Dispatch the bunch in the background once the current transaction commits (before that, the
    dispatcher's own session cannot see the new launches)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]

    def start() -> None:
        start_background_dispatch(app, bunch_id)

    after_commit(start)


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
