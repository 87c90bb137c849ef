"""The launch dispatcher: claims due launch rows (the outbox) and submits them to PanDA exactly once.

Exactly once, step by step:
1. ``claim`` moves a row pending → sending by compare-and-set (a conditional UPDATE; on PostgreSQL
   through ``FOR UPDATE SKIP LOCKED``, so another panel instance on the same database skips the row
   at once) and commits *before* the request leaves: no other dispatcher can send it.
2. The reply decides: submitted (PanDA task id stored), failed (refused, or no usable token: the
   reason is kept; "resend failed" makes a new attempt row), back to pending (PanDA could not be
   reached, so nothing was sent: it goes again by itself after a backoff), or unknown (the request
   was sent and no usable reply came).
3. Unknown rows, and rows found in "sending" after a crash, are never resent on absence alone:
   ``settle_unknown`` looks their names up in PanDA, in bulk (one listing per owner and cycle), and
   adopts the task id when found. A look-up cannot see a task before JEDI's refiner registers it, so
   a miss proves nothing by itself. Positive evidence of absence is a task the panel submitted
   *after* the unknown one already being visible: then the refiner has passed that point, the unknown
   submit never arrived and a new attempt goes out by itself. Without that evidence the row waits
   (``reconcile_grace_s``), then goes to a manager's decision (needs_decision).
4. A launch that waits (for its chain parent, for a task it was scheduled after, for SPD-IAM) is
   not claimed (``gates.gate``): it stays pending with the reason ("waiting for task 123 to reach
   50 % of its jobs") and goes out on a later dispatch.

This module is background work: it commits itself, one transaction per dispatch round (the replies
that came back and the claims of the launches that go next: ``send_all``). The scheduler's "dispatch" job
(``dispatch_pending``) sends due rows every few seconds, and at once when a request committed
launches (``dispatch_soon``); its "reconcile" job (``reconcile_unsettled``) settles unanswered ones.
Launches that came due while the panel was down are just due at start. Submits go out
``[panda] max_parallel_submits`` at a time, each worker with its own client and database session;
tests run the jobs as the scheduler would (``tests.helpers.settle_launches``).
"""

from __future__ import annotations

import contextvars
import logging
import queue
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import Flask, current_app
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app import clock
from app.audit.services import record
from app.auth.models import User
from app.config import get_settings
from app.extensions import db, panda_clients
from app.launches.gates import dependencies, gate, may_go
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
from app.panda.results import SubmitResult
from app.scheduler import stopping, wake_after_commit
from app.tasks.models import Task
from app.tokens import services as token_vault
from app.tokens.errors import TokenUnavailable
from app.version import VERSION

log = logging.getLogger(__name__)

DISPATCH_JOB, RECONCILE_JOB = "dispatch", "reconcile"  # their names in app.jobs.JOBS
S = LaunchStatus
T = TypeVar("T")
INCONCLUSIVE = (
    "PanDA cannot confirm whether this task arrived (its task listing hides tasks sharing a request id). "
    "Check PanDA for the task name; if it is not there, a manager marks it not submitted, then resends."
)
# The comment the PanDA log shows on the dispatcher's own look-ups (no user asked for them).
BACKGROUND = "background: settling unanswered submits by task name"
LOOKUP_MARGIN = timedelta(hours=1)  # PanDA's clock may be behind the panel's


def claim(launch_id: int, now: datetime, manifest: dict[str, Any] | None = None) -> bool:
    """pending → sending (with the `manifest` of what is about to be sent), committed; False when
    someone else claimed it (or it is not pending). The dispatcher claims through `_claim_one`
    inside its own transaction (several rows and the previous replies in one commit)."""
    won = _claim_one(launch_id, now, manifest)
    db.session.commit()
    return won


def _claim_one(launch_id: int, now: datetime, manifest: dict[str, Any] | None = None) -> bool:
    """The compare-and-set of a claim, in the current transaction (the caller commits before sending).

    The one transition made by compare-and-set instead of `transition()`: the database settles which
    dispatcher wins; the state table still decides that the move is allowed. On PostgreSQL the row
    is locked with SKIP LOCKED, so a second panel instance claiming it at the same moment skips it
    instead of waiting for the first one's commit.
    """
    check(S.PENDING, S.SENDING)
    pending = select(Launch.id).where(Launch.id == launch_id, Launch.status == S.PENDING)
    if db.session.get_bind().dialect.name == "postgresql":
        pending = pending.with_for_update(skip_locked=True)
    result = db.session.execute(
        update(Launch)
        .where(Launch.id.in_(pending.scalar_subquery()), Launch.status == S.PENDING)
        .values(status=S.SENDING, claimed_at=now, **({"manifest": manifest} if manifest is not None else {}))
        .execution_options(synchronize_session=False)
    )
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


@dataclass(frozen=True)
class Outgoing:
    """A claimed launch as a submit worker sends it: plain values (a worker has a session of its own)."""

    launch_id: int
    owner_id: int
    params: dict[str, Any]
    parent_tid: int | None


@dataclass(frozen=True)
class Outcome:
    """What one submit gave: PanDA's result, or the exception it raised."""

    launch_id: int
    result: SubmitResult | None = None
    error: BaseException | None = None


def _take(launch: Launch, server: str, now: datetime) -> Outgoing | None:
    """Claim a due pending launch in the current transaction, unless `gates.gate` holds it back, and
    say what to send (None: held back, claimed elsewhere, or settled without sending). The caller
    commits before the request leaves: the claim stores what is about to be sent."""
    if launch.status != S.PENDING:
        return None
    held = gate(launch)
    if held.wait:
        if launch.error != held.reason:
            launch.error = held.reason
        return None
    tries = (launch.manifest or {}).get("unreachable_tries", 0)
    manifest = {**build_manifest(launch, held.parent_tid, server), "unreachable_tries": tries}
    if not _claim_one(launch.id, now, manifest=manifest):
        db.session.refresh(launch)  # someone else's claim: leave the row to them
        return None
    # The claim's UPDATE bypassed the ORM: the loaded row learns its new state without a write.
    for name, value in (("status", S.SENDING), ("claimed_at", now), ("manifest", manifest)):
        set_committed_value(launch, name, value)
    task = launch.task
    if task.panda_task_id is not None:
        # Submitted by an earlier attempt (e.g. reconciled later): never a second time.
        transition(launch, S.SUBMITTED, error=f"already in PanDA as task {task.panda_task_id}")
        launch.panda_task_id = task.panda_task_id
        return None
    found = dependencies(launch)
    if not found.goes:  # refused, or claimed while a task it depends on changed: never sent then
        launch.manifest = build_manifest(launch, None)
        transition(launch, S.FAILED, error=found.refusal or f"{found.reason}; resend later")
        return None
    if launch.created_by_id is None:  # PanDA calls carry the owner's token
        transition(launch, S.FAILED, error="not sent: the account that created it no longer exists")
        return None
    return Outgoing(launch.id, launch.created_by_id, task.params, found.parent_tid)


def _submit(client: PandaApi, owner: User, item: Outgoing) -> Outcome:
    """Send one claimed launch; never raises (the outcome carries the exception)."""
    try:
        return Outcome(item.launch_id, result=client.submit(owner, item.params, parent_tid=item.parent_tid))
    except Exception as exc:
        return Outcome(item.launch_id, error=exc)


def _store(launch: Launch, outcome: Outcome) -> None:
    """Record what a submit of a claimed launch gave (the claim committed what was sent)."""
    exc, result = outcome.error, outcome.result
    if isinstance(exc, PandaOutcomeUnknown):
        _unanswered(launch, f"{exc} The panel will look the task up by name; it is not resent.",
                    {"outcome": "unknown", "message": str(exc)})  # fmt: skip
    elif isinstance(exc, PandaRejected):
        transition(launch, S.FAILED, error=exc.human, reply={"outcome": "rejected", "code": exc.code,
                                                             "message": exc.server_message or str(exc)})  # fmt: skip
    elif isinstance(exc, PandaAuthError):
        transition(launch, S.FAILED, error=str(exc), reply={"outcome": "auth", "message": exc.reason})
    elif isinstance(exc, PandaUnavailable):
        _retry_later(launch, exc)
    elif isinstance(exc, TokenUnavailable):  # no usable IAM token: nothing left the panel
        transition(launch, S.FAILED, error=f"not sent: {exc.reason}",
                   reply={"outcome": "not_sent", "message": exc.reason})  # fmt: skip
    elif exc is not None or result is None:  # unexpected: the request may have left, so settle it by name
        log.error("launch %s: unexpected error around the submit", launch.id, exc_info=exc)
        error = f"unexpected error ({exc.__class__.__name__}); looking the task up by name"
        _unanswered(launch, error, {"outcome": "unknown", "message": str(exc)})
    else:
        adopt(launch, result.task_id, "submit", {"outcome": "ok", "task_id": result.task_id,
                                                 "code": result.code, "message": result.message})  # fmt: skip


def _unanswered(launch: Launch, error: str, reply: dict[str, Any]) -> None:
    """The request may have reached PanDA: unknown, never resent on absence alone. The moment is kept
    apart from the status's own times: only submits started after it count as evidence of absence."""
    transition(launch, S.UNKNOWN, error=error, reply={**reply, "unanswered_at": clock.now().isoformat()})


def _unanswered_at(launch: Launch) -> datetime:
    reply = (launch.manifest or {}).get("panda_reply") or {}
    stamp = reply.get("unanswered_at")
    return datetime.fromisoformat(stamp) if stamp else launch.claimed_at or launch.created_at


def _retry_later(launch: Launch, exc: PandaUnavailable) -> None:
    """PanDA could not be reached (or refused before processing): nothing was sent, so the launch goes
    back to pending and is tried again by itself, waiting longer each time (no manager needed)."""
    settings = get_settings().tasks
    tries = int((launch.manifest or {}).get("unreachable_tries", 0)) + 1
    wait = min(settings.unreachable_retry_s * 2 ** (tries - 1), settings.unreachable_retry_max_s)
    due = clock.now() + timedelta(seconds=wait)
    error = f"{exc} Nothing was sent; the panel tries again by itself at {due:%H:%M:%S} UTC."
    transition(launch, S.PENDING, error=error, reply={"outcome": "unavailable", "message": str(exc)})
    launch.manifest = {**(launch.manifest or {}), "unreachable_tries": tries}
    launch.due_at, launch.claimed_at, launch.finished_at = due, None, None


# --- unanswered submits: looked up in bulk, resent only on positive evidence of absence ----------


@dataclass
class Settled:
    """What one pass over unanswered submits did (counts of launches), and the PanDA calls it made."""

    calls: int = 0
    adopted: int = 0  # found in PanDA by name
    resent: int = 0  # proven absent (a later task is visible): a new attempt goes out
    undecided: int = 0  # moved to a manager's decision
    waiting: int = 0  # not visible yet, no evidence yet: asked again next time
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.adopted + self.resent + self.undecided + self.waiting

    def sentence(self) -> str:
        """For a manager who asked: what the look-up found."""
        parts = [
            f"{self.adopted} found in PanDA and adopted" if self.adopted else "",
            f"{self.resent} proven not in PanDA (a task sent later is there) and sent again"
            if self.resent
            else "",
            f"{self.waiting + self.undecided} not visible in PanDA yet"
            if self.waiting + self.undecided
            else "",
            *self.errors,
        ]
        return "; ".join(p for p in parts if p) or "nothing was waiting for a look-up"


@dataclass(frozen=True)
class Listing:
    """What one owner's listing showed: the lowest PanDA id per visible task name, and (legacy
    servers) the task name listed for each request id: it hides every other task of that request."""

    ids: dict[str, int]
    complete: bool = True  # False: cut at n_tasks, so a name it lacks may still be in PanDA
    shown_for_request: dict[Any, str] = field(default_factory=dict)

    def hides(self, task: Task) -> bool:
        """A legacy listing shows one task per request id: a miss proves nothing when another shows."""
        shown = self.shown_for_request.get(task.params.get("reqID"))
        return shown is not None and shown != task.name


def _list_names(client: PandaApi, owner: User, user_name: str, names: list[str], since: datetime,
                comment: str) -> Listing:  # fmt: skip
    """Which of `names` one listing of the owner's tasks shows (one PanDA call)."""
    ids: dict[str, int] = {}
    wanted = set(names)
    limit = get_settings().sync.max_tasks_per_call
    try:
        # The owner's tasks modified since shortly before the oldest submit in question (the margin
        # covers a PanDA clock behind ours). Not a name filter: PanDA cuts the listing at n_tasks
        # before it applies a regular expression, so only a listing shorter than the limit is whole.
        infos = client.get_tasks_detailed_info_since(
            owner, since - LOOKUP_MARGIN, filters={"userName": user_name} if user_name else None,
            n_tasks=limit, comment=comment,
        )  # fmt: skip
        for info in infos:
            if info.name in wanted:
                ids[info.name] = min(info.task_id, ids.get(info.name, info.task_id))
        return Listing(ids, complete=len(infos) < limit)
    except PandaUnsupported:
        pass
    # Legacy servers (< 1.0) only list the owner's tasks modified in a time window, keyed by reqID:
    # tasks sharing a request id hide each other, so a miss proves nothing for such a task.
    summaries = client.get_tasks_modified_since(owner, since - timedelta(days=1), dn=user_name or None)
    for summary in summaries:
        if summary.name in wanted:
            ids[summary.name] = min(summary.task_id, ids.get(summary.name, summary.task_id))
    return Listing(ids, shown_for_request={s.req_id: s.name for s in summaries if s.req_id is not None})


def _later_submitted(launch: Launch) -> Launch | None:
    """The first launch of the same owner that was claimed after this one's request ended and that
    PanDA answered (or that was found there): seeing it in PanDA proves the refiner got past this one."""
    ended = _unanswered_at(launch)
    return db.session.scalars(
        select(Launch)
        .where(
            Launch.created_by_id == launch.created_by_id,
            Launch.status == S.SUBMITTED,
            Launch.claimed_at > ended,
        )
        .order_by(Launch.claimed_at, Launch.id)
        .limit(1)
    ).first()


def _grace() -> timedelta:
    """How long an unanswered submit may stay invisible in PanDA (JEDI's pick-up window) before the
    panel, without evidence either way, asks a manager to decide."""
    return timedelta(seconds=get_settings().tasks.reconcile_grace_s)


def _mark_stale_sending() -> None:
    """Rows a dispatcher left in "sending" (it died, or its request hung past every timeout) become
    unknown: the request may have left. From now on a later submit counts as evidence against them."""
    for launch_id in _stale_sending():
        launch = db.session.get_one(Launch, launch_id)
        if launch.status == S.SENDING:
            error = "the panel stopped while sending it; the task is looked up by name, not resent"
            _unanswered(launch, error, {"outcome": "unknown", "message": "left in sending"})
    db.session.commit()


def settle_unknown(client: PandaApi, launch_ids: Iterable[int] | None = None, *, comment: str = BACKGROUND,
                   by: User | None = None, commit: Callable[[], None] | None = None) -> Settled:  # fmt: skip
    """Look unanswered submits up in PanDA by name, in bulk, and settle what the answer proves.

    Without `launch_ids`: every unknown launch (and stale "sending" row), as the background job does;
    with them (a manager's "look it up now"): those launches, including ones awaiting a decision.
    One listing per owner (its tasks modified since shortly before the oldest unknown submit) shows
    the unknown names and, for each, the first task the panel submitted after it (the evidence). Found → adopted. Not found while the later task is
    visible → failed and sent again as a new attempt. Otherwise it waits; an unknown one older than
    ``reconcile_grace_s`` goes to a manager's decision. Commits per owner (a request passes
    ``commit=db.session.flush``: its own transaction boundary commits).
    """
    report = Settled()
    if launch_ids is None:
        _mark_stale_sending()
        rows = list(db.session.scalars(select(Launch).where(Launch.status == S.UNKNOWN).order_by(Launch.id)))
    else:
        wanted = list(launch_ids)
        rows = list(db.session.scalars(select(Launch).where(Launch.id.in_(wanted)).order_by(Launch.id)))
        rows = [r for r in rows if r.status in (S.UNKNOWN, S.NEEDS_DECISION) and r.task.panda_task_id is None]
    groups: dict[tuple[int | None, str], list[Launch]] = defaultdict(list)
    for launch in rows:
        groups[(launch.created_by_id, launch.task.params.get("userName") or "")].append(launch)
    for (_owner_id, user_name), launches in groups.items():
        if stopping():  # `serve` stops: the other owners' rows are looked up at the next start
            break
        try:
            _settle_group(client, user_name, launches, comment, by, report)
        except (PandaError, TokenUnavailable) as exc:  # raised before any row changed
            report.errors.append(f"PanDA could not be asked ({exc})")
            for launch in launches:
                launch.error = f"{_base_error(launch)} Looked up at {clock.now():%H:%M:%S} UTC: PanDA could not be asked ({exc}); asked again later."
        (commit or db.session.commit)()
    return report


def _base_error(launch: Launch) -> str:
    """The launch's reason without the note of its last look-up (each look-up replaces it)."""
    return launch.error.split(" Looked up at ", 1)[0]


def _settle_group(client: PandaApi, user_name: str, launches: list[Launch], comment: str, by: User | None,
                  report: Settled) -> None:  # fmt: skip
    owner = launches[0].created_by
    if owner is None:
        raise PandaAuthError("the account that sent it no longer exists", reason="no owner")
    evidence = {launch.id: _later_submitted(launch) for launch in launches}
    names = sorted({launch.task.name for launch in launches} | {e.task.name for e in evidence.values() if e})
    since = min(launch.claimed_at or launch.created_at for launch in launches)
    listing = _list_names(client, by or owner, user_name, names, since, comment)
    report.calls += 1
    now = clock.now()
    for launch in launches:
        task = launch.task
        found = listing.ids.get(task.name)
        later = evidence[launch.id]
        if found is not None:
            how = "reconciled by task name" + (f" (looked up by {by.username})" if by else "")
            adopt(launch, found, how, {"outcome": "reconciled", "task_id": found})
            report.adopted += 1
        elif listing.hides(task):
            if launch.status == S.UNKNOWN:
                transition(launch, S.NEEDS_DECISION, error=INCONCLUSIVE)
            report.undecided += 1
        elif later is not None and later.task.name in listing.ids and listing.complete:
            _resend_absent(launch, later, by)
            report.resent += 1
        elif launch.status == S.UNKNOWN and now - (launch.claimed_at or launch.created_at) > _grace():
            transition(launch, S.NEEDS_DECISION, error=(
                f"PanDA shows no task named {task.name} {int(_grace().total_seconds())} s after the unanswered "
                "submit, and no task sent after it is visible yet to prove it never arrived. Look it up "
                "again, adopt its PanDA id if you find it, or confirm it is not in PanDA to send it again."
            ))  # fmt: skip
            report.undecided += 1
        else:
            why = (
                "no task sent after it is visible yet"
                if later is None
                else f"{later.task.name}, sent after it, is not visible yet either"
            )
            launch.error = f"{_base_error(launch)} Looked up at {now:%H:%M:%S} UTC: not in PanDA yet ({why}); asked again later."
            report.waiting += 1


def _resend_absent(launch: Launch, later: Launch, by: User | None) -> None:
    """The unanswered submit did not arrive (``later`` is visible, this one is not): close it and
    queue the next attempt, which needs no further check."""
    from app.launches.services import new_launch  # services build on this module

    task = launch.task
    reason = f"not in PanDA: {later.task.name}, sent after it, is already visible there"
    transition(launch, S.FAILED, error=f"{reason}; sent again as attempt {launch.attempt + 1}")
    owner = launch.created_by
    assert owner is not None
    new_launch(
        task,
        launch.attempt + 1,
        owner,
        clock.now(),
        confirmed_absent_by=f"panel ({later.task.name} visible)"[:150],
    )
    db.session.flush()
    record("launch.resend_absent", target=task.name, user=by,
           details={"task_id": task.id, "attempt": launch.attempt + 1, "evidence": later.task.name})  # fmt: skip


def reconcile(launch_id: int, client: PandaApi) -> str:
    """Settle one unknown (or stale "sending") launch as the background pass would. Commits."""
    launch = db.session.get_one(Launch, launch_id)
    if launch.status == S.SENDING and launch_id in _stale_sending():
        _mark_stale_sending()
    if launch.status == S.UNKNOWN:
        settle_unknown(client, [launch_id])
    return launch.status


def send_all(launch_ids: list[int], client: PandaApi | None = None) -> None:
    """Dispatch these launches, ``[panda] max_parallel_submits`` at a time.

    This thread claims and records: each commit stores the replies that came back and claims the
    launches that go next (as many as submits may be in flight), so a launch is claimed only right
    before it is sent, and the database sees one commit per round instead of two per launch. The
    submits go out from worker threads, each with a PanDA client and a database session of its own.
    A client given by the caller is used from this thread only (one client is not safe to share
    between threads), so its launches go one at a time, in order. Each owner's token is looked up
    once per call (`one_token_per_user`).
    """
    workers = min(get_settings().panda.max_parallel_submits, len(launch_ids))
    with token_vault.one_token_per_user():
        if client is not None or workers <= 1:
            panda = client or panda_clients()
            try:
                _rounds(launch_ids, _InlineSender(panda))
            finally:
                if client is None:
                    panda.close()
            return
        with _WorkerSender(current_app._get_current_object(), workers) as sender:  # type: ignore[attr-defined]
            _rounds(launch_ids, sender)


def _rounds(launch_ids: list[int], sender: _InlineSender | _WorkerSender) -> None:
    """Claim, send and record `launch_ids` through `sender`, one commit per round (see `send_all`).

    The rows stay loaded across the rounds' commits (each launch is read fresh when it is taken,
    its task, bunch and owner once): reloading them after every commit cost more than the commit."""
    session = db.session()
    session.expire_all()  # what the rounds load is read from the database, once
    expiring, session.expire_on_commit = session.expire_on_commit, False
    try:
        _send_rounds(launch_ids, sender)
    finally:
        session.expire_on_commit = expiring
        session.expire_all()


def _send_rounds(launch_ids: list[int], sender: _InlineSender | _WorkerSender) -> None:
    todo = deque(launch_ids)
    came_back: list[Outcome] = []
    sent: dict[int, Launch] = {}  # launches in flight, as loaded when they were taken
    in_flight = 0
    while True:
        outgoing: list[Outgoing] = []
        try:
            free = 0 if stopping() else sender.width - in_flight  # `serve` stops: nothing more is claimed
            wanted = [todo.popleft() for _ in range(min(len(todo), free))]
            launches = _load(wanted)
            for outcome in came_back:
                _isolated(_store, sent.pop(outcome.launch_id), outcome)
            now = clock.now()
            while wanted:
                for launch_id in wanted:
                    if launch_id in launches and (
                        item := _isolated(_take, launches[launch_id], sender.server, now)
                    ):
                        outgoing.append(item)
                        sent[launch_id] = launches[launch_id]
                # Held back or settled without sending: fill their places from what is left.
                free = 0 if stopping() else sender.width - in_flight - len(outgoing)
                wanted = [todo.popleft() for _ in range(min(len(todo), free))]
                launches = _load(wanted) if wanted else launches
            db.session.commit()
        except Exception:  # the database refused a write: nothing of this round goes out
            log.exception("launches %s: recording or claiming failed",
                          sorted({o.launch_id for o in came_back} | {i.launch_id for i in outgoing}))  # fmt: skip
            db.session.rollback()  # rows left "sending" were claimed and may have been sent: reconciled by name
            outgoing = []
        for item in outgoing:
            sender.put(item)
        in_flight += len(outgoing)
        if not in_flight:
            if not todo or stopping():
                return
            came_back = []
            continue
        came_back = sender.take()
        in_flight -= len(came_back)


def _isolated(step: Callable[..., T], launch: Launch, *args: Any) -> T | None:
    """`step(launch, *args)`, where one row's failure stops neither the round nor the others: the
    row's unsaved changes are dropped, and a claim the step made is given back (nothing was sent:
    the launch stays pending). A reply that could not be stored leaves the row "sending": it is
    looked up by name. (Not a savepoint: on SQLite each would be a commit of its own.)"""
    try:
        return step(launch, *args)
    except Exception:
        log.exception("launch %s: %s failed", launch.id, step.__name__.strip("_"))
        claimed_at = launch.claimed_at if step is _take and launch.status == S.SENDING else None
        db.session.expire(launch.task)
        db.session.expire(launch)
        if claimed_at is not None:
            db.session.execute(
                update(Launch)
                .where(Launch.id == launch.id, Launch.status == S.SENDING, Launch.claimed_at == claimed_at)
                .values(status=S.PENDING, claimed_at=None)
                .execution_options(synchronize_session=False)
            )
        return None


def _load(launch_ids: list[int]) -> dict[int, Launch]:
    """These launches and their tasks in one query (the claim reads them)."""
    rows = db.session.scalars(
        select(Launch)
        .where(Launch.id.in_(launch_ids))
        .options(joinedload(Launch.task))  # bunch and owner: the same few for many launches, loaded once
    )
    return {launch.id: launch for launch in rows}


class _InlineSender:
    """Sends from the dispatching thread itself, one launch at a time."""

    width = 1

    def __init__(self, client: PandaApi) -> None:
        self.client, self.server = client, client.server
        self._queue: deque[Outgoing] = deque()

    def put(self, item: Outgoing) -> None:
        self._queue.append(item)

    def take(self) -> list[Outcome]:
        item = self._queue.popleft()
        owner = db.session.get(User, item.owner_id)
        if owner is None:
            return [
                Outcome(
                    item.launch_id, error=TokenUnavailable("the account that created it no longer exists")
                )
            ]
        return [_submit(self.client, owner, item)]


class _WorkerSender:
    """`width` worker threads, each with its own app context, database session and PanDA client; they
    only send (owners are read once per worker). `take` waits for one outcome and returns every
    outcome that has come back by then."""

    def __init__(self, app: Flask, width: int) -> None:
        self.width, self.app = width, app
        self._in: queue.SimpleQueue[Outgoing | None] = queue.SimpleQueue()
        self._out: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(width, thread_name_prefix="submit")
        self._workers: list[Future[None]] = []
        with app.app_context():
            probe = panda_clients()
            self.server = probe.server
            probe.close()

    def __enter__(self) -> _WorkerSender:
        # Each worker runs in a copy of this context: they share the cycle's tokens (`one_token_per_user`).
        self._workers = [
            self._pool.submit(contextvars.copy_context().run, self._work) for _ in range(self.width)
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for _ in self._workers:
            self._in.put(None)
        self._pool.shutdown(wait=True)
        for worker in self._workers:
            worker.result()  # a worker's own failure is not silent

    def put(self, item: Outgoing) -> None:
        self._in.put(item)

    def take(self) -> list[Outcome]:
        outcomes = [self._out.get()]
        while True:
            try:
                outcomes.append(self._out.get_nowait())
            except queue.Empty:
                return outcomes

    def _work(self) -> None:
        with self.app.app_context():
            client = panda_clients()
            owners: dict[int, User] = {}
            try:
                while (item := self._in.get()) is not None:
                    try:
                        owner = owners.get(item.owner_id)
                        if owner is None:
                            owner = db.session.get_one(User, item.owner_id)
                            db.session.expunge(owner)  # read once; no read transaction kept open
                            db.session.rollback()
                            owners[item.owner_id] = owner
                    except Exception as exc:  # the owner could not be read: nothing was sent
                        db.session.rollback()
                        self._out.put(
                            Outcome(
                                item.launch_id, error=TokenUnavailable(f"the owner could not be read ({exc})")
                            )
                        )
                        continue
                    self._out.put(_submit(client, owner, item))
            finally:
                client.close()
                db.session.remove()


def _stale_sending() -> list[int]:
    """Rows left in "sending" by a dispatcher that died (a restart): longer than any submit can take."""
    query = select(Launch.id).where(Launch.status == S.SENDING, Launch.claimed_at < _stale_limit())
    return list(db.session.scalars(query))


def _stale_limit() -> datetime:
    """Claimed before this, a row still "sending" has outlived any submit, the client's own retries of
    a request PanDA never received included: its dispatcher died."""
    panda = get_settings().panda
    attempts = panda.retries + 1
    longest = (
        attempts * (panda.connect_timeout_s + panda.read_timeout_s) + panda.retry_backoff_s * 2**attempts
    )
    return clock.now() - timedelta(seconds=longest + 5)


def dispatch_due(limit: int = 1000, client: PandaApi | None = None) -> int:
    """Submit launches whose ``due_at`` has come (any bunch), then settle unknown and stale ones in
    bulk. Returns how many rows were handled. The scheduler runs the two halves as separate jobs."""
    return dispatch_pending(limit, client) + reconcile_unsettled(client)


def dispatch_pending(limit: int = 1000, client: PandaApi | None = None) -> int:
    """The "dispatch" job: submit the pending launches that are due, oldest first (a resend's new
    attempt goes out at the next run). Returns how many rows it took."""
    due = list(
        db.session.scalars(
            select(Launch.id)
            .where(Launch.status == S.PENDING, Launch.due_at <= clock.now(), may_go())
            .order_by(Launch.due_at, Launch.id)
            .limit(limit)
        )
    )
    db.session.commit()  # no transaction (nor SQLite read lock) held while PanDA is asked
    send_all(due, client)
    if stopping():
        left = db.session.scalar(select(func.count()).where(Launch.status == S.PENDING, Launch.id.in_(due)))
        if left:
            log.info("stopping: %d launch(es) left for the next start", left)
    return len(due)


def reconcile_unsettled(client: PandaApi | None = None) -> int:
    """The "reconcile" job: look up by name, in bulk, the launches without an answer (unknown, or left
    in "sending" by a crash), never resending them on absence alone. Returns how many it settled."""
    panda = client or panda_clients()
    try:
        return settle_unknown(panda).handled
    finally:
        if client is None:
            panda.close()


def dispatch_soon(*, reconcile: bool = False) -> None:
    """Wake the dispatch job (and the reconcile job) once the current transaction commits: the
    job's own session sees the new rows then."""
    wake_after_commit(DISPATCH_JOB)
    if reconcile:
        wake_after_commit(RECONCILE_JOB)


def dispatching(bunch_id: int) -> bool:
    """Whether a dispatcher (of any panel instance) is sending one of the bunch's launches now: a
    row claimed recently enough to still be waiting for PanDA's answer."""
    query = select(Launch.id).join(Task, Launch.task_id == Task.id)
    query = query.where(
        Task.bunch_id == bunch_id, Launch.status == S.SENDING, Launch.claimed_at >= _stale_limit()
    )
    return db.session.scalar(query.limit(1)) is not None
