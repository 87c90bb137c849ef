"""Background jobs of the tokens domain."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from app import clock
from app.config import get_settings
from app.extensions import db
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.scheduler import stopping
from app.tokens import services
from app.tokens.errors import TokenUnavailable

log = logging.getLogger(__name__)


def refresh_tokens_ahead() -> int:
    """The "token-refresh" job: the owners of launches due within `scheduler.token_refresh_ahead_min`
    get a token now (refreshed when it is close to its expiry), so an IAM hiccup shows up before the
    launch, not at it. Returns how many owners have a usable token."""
    ahead = timedelta(minutes=get_settings().scheduler.token_refresh_ahead_min)
    owners: list[int] = db.session.scalars(  # type: ignore[assignment]  # created_by_id is not NULL here
        select(Launch.created_by_id)
        .where(
            Launch.status == LaunchStatus.PENDING,
            Launch.due_at <= clock.now() + ahead,
            Launch.created_by_id.is_not(None),
        )
        .distinct()
    ).all()
    db.session.rollback()  # the vault writes in sessions of its own
    ready = 0
    for owner_id in owners:
        if stopping():
            break
        try:
            services.token_for(owner_id)
        except TokenUnavailable as exc:  # the launch reports it when it is due; say it ahead here
            log.warning("user %s has no usable token for a launch due soon: %s", owner_id, exc.reason)
        else:
            ready += 1
    return ready
