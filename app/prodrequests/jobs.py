"""Background jobs of the requests domain (they commit, per run)."""

from __future__ import annotations

import logging

from app.extensions import db
from app.prodrequests.catalog import ScanResult, rescan

log = logging.getLogger(__name__)


def rescan_catalog() -> ScanResult:
    """The "catalog-rescan" job (at start, then every `requests.rescan_interval_s`): the path
    catalog from CVMFS. Commits."""
    result = rescan()
    db.session.commit()
    log.info("path catalog: %s", result.summary)
    return result
