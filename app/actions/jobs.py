"""The bulk-action job: sends every pending bulk item, one at a time, each committed on its own.

A module-level function without arguments for the scheduler's job list (it runs in an app
context); it ends after the item in hand when `serve` stops. An item is claimed (pending → sending, committed) before its command leaves, so two
panel processes never send it twice; an item left "sending" by a process that stopped mid-call is
settled as unknown after `STUCK_AFTER` (PanDA may have registered it: "retry the failed ones" can
send it again, and a newer command replaces an unexecuted one).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import exists, func, select, update

from app import clock
from app.actions import services
from app.actions.matrix import Action
from app.actions.models import BulkAction, BulkItem, Outcome
from app.extensions import db, panda_clients
from app.panda.client import PandaApi
from app.scheduler import stopping

log = logging.getLogger(__name__)

STUCK_AFTER = timedelta(minutes=10)


def run_bulk_actions(client: PandaApi | None = None) -> int:
    """Send the pending items of every bulk action, oldest first; returns how many were handled."""
    _settle_stuck()
    panda = client or panda_clients()
    handled = 0
    try:
        while not stopping() and (item := _claim()) is not None:
            try:
                _send(item, panda)
            except Exception:  # a bug must not leave the item "sending" nor stop the other items
                log.exception("bulk item %s failed", item.id)
                db.session.rollback()
                item.outcome, item.updated_at = Outcome.UNKNOWN, clock.now()
                item.reason = "an internal error stopped this command: PanDA may have registered it"
            _finish_bulk(item.bulk)
            db.session.commit()
            handled += 1
        if stopping():
            left = db.session.scalar(select(func.count()).where(BulkItem.outcome == Outcome.PENDING))
            if left:
                log.info("stopping: %d bulk action item(s) left for the next start", left)
    finally:
        if client is None:
            panda.close()
        db.session.rollback()
    return handled


def _claim() -> BulkItem | None:
    """The oldest pending item, now "sending" (committed), or None when none is left."""
    while True:
        item_id = db.session.scalar(
            select(BulkItem.id).where(BulkItem.outcome == Outcome.PENDING).order_by(BulkItem.id).limit(1)
        )
        if item_id is None:
            db.session.commit()
            return None
        claimed = db.session.execute(
            update(BulkItem)
            .where(BulkItem.id == item_id, BulkItem.outcome == Outcome.PENDING)
            .values(outcome=Outcome.SENDING, updated_at=clock.now())
        ).rowcount  # type: ignore[attr-defined]
        db.session.commit()
        if claimed:
            return db.session.get_one(BulkItem, item_id)


def _send(item: BulkItem, panda: PandaApi) -> None:
    bulk, task = item.bulk, item.task
    user = bulk.created_by
    action = Action(bulk.action)
    item.updated_at = clock.now()
    if user is None or not user.active:
        item.outcome, item.reason = Outcome.FAILED, "the user who started this bulk action can no longer act"
        return
    answer = services.verdict(task, action, user, bulk.params)
    if not answer:  # the status changed since the selection was confirmed
        item.outcome, item.reason = Outcome.NOT_ALLOWED, answer.reason
        return
    command = services.act_on_task(
        task, action, bulk.params, user, bulk.comment, client=panda, bulk_id=bulk.id
    )
    item.outcome, item.reason, item.command_id = command.outcome, command.message, command.id


def _finish_bulk(bulk: BulkAction) -> None:
    left = db.session.scalar(
        select(
            exists().where(
                BulkItem.bulk_id == bulk.id, BulkItem.outcome.in_((Outcome.PENDING, Outcome.SENDING))
            )
        )
    )
    if not left and bulk.finished_at is None:
        bulk.finished_at = clock.now()


def _settle_stuck() -> None:
    stuck = list(
        db.session.scalars(
            select(BulkItem).where(
                BulkItem.outcome == Outcome.SENDING, BulkItem.updated_at < clock.now() - STUCK_AFTER
            )
        )
    )
    for item in stuck:
        log.warning("bulk item %s was left sending; settled as unknown", item.id)
        item.outcome = Outcome.UNKNOWN
        item.reason = "the panel stopped while sending this command: PanDA may have registered it"
        item.updated_at = clock.now()
        _finish_bulk(item.bulk)
    db.session.commit()
