"""The launches' background job for the scheduler's job list (app/scheduler.py): a module-level
function without arguments, run in an app context; it commits."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select

from app import clock
from app.auth.models import User
from app.extensions import db
from app.launches import schedule
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.tokens import services as token_vault

log = logging.getLogger(__name__)


def flag_unusable_tokens() -> int:
    """Flag pending launches whose owner's token is not usable for them (none, refused, or ending
    before the launch is due) with "token unusable: log in again …", and clear the flag once it is
    usable again. Commits. Returns how many launches were newly flagged."""
    pending = db.session.scalars(
        select(Launch).where(Launch.status == LaunchStatus.PENDING).order_by(Launch.id)
    ).all()
    by_owner: dict[int | None, list[Launch]] = {}
    for row in pending:
        by_owner.setdefault(row.created_by_id, []).append(row)
    flagged = 0
    now = clock.now()
    for owner_id, rows in by_owner.items():
        owner = db.session.get(User, owner_id) if owner_id is not None else None
        until = token_vault.valid_until(owner) if owner is not None else None  # once per owner
        for row in rows:
            flag = _flag(owner, until, row.due_at if row.due_at > now else None)
            if row.token_problem != flag:
                if flag:
                    flagged += 1
                    log.warning("launch %s of %s flagged: %s", row.id, row.task.name, flag)
                row.token_problem = flag
    db.session.commit()
    return flagged


def _flag(owner: User | None, until: datetime | None, at: datetime | None) -> str:
    if owner is None:
        return f"{schedule.TOKEN_UNUSABLE}: the account that scheduled it no longer exists"
    problem = schedule.token_problem_for(owner, until, at)
    if problem is None:
        return ""
    text = problem if problem.startswith(schedule.TOKEN_UNUSABLE) else f"{schedule.TOKEN_UNUSABLE}: {problem}"
    return text[:500]
