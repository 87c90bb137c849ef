"""Background jobs of the requests domain (they commit, per run)."""

from __future__ import annotations

import logging

from flask import Flask

from app.extensions import db
from app.prodrequests.catalog import ScanResult, rescan

log = logging.getLogger(__name__)


def scheduled_rescan(app: Flask) -> ScanResult | None:
    """The periodic refresh of the path catalog (`serve` runs it once at start; a scheduler job runs
    it periodically). Commits; a failure is logged and returns None."""
    with app.app_context():
        try:
            result = rescan()
            db.session.commit()
            log.info("path catalog: %s", result.summary)
            return result
        except Exception:
            db.session.rollback()
            log.exception("path catalog scan failed")
            return None
        finally:
            db.session.remove()
