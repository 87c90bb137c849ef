"""Background jobs of the auth domain (they commit)."""

from __future__ import annotations

import logging

from flask import current_app

from app.auth.sessions import purge_expired
from app.extensions import db

log = logging.getLogger(__name__)


def purge_sessions() -> int:
    """The "session-purge" job: delete timed-out login sessions (mostly abandoned anonymous ones)."""
    purged = purge_expired(current_app._get_current_object())  # type: ignore[attr-defined]
    db.session.commit()
    if purged:
        log.info("purged %d expired session(s)", purged)
    return purged
