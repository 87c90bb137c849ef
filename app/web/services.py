"""The health report behind /healthz."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import current_app

from app import migrate
from app.extensions import db

log = logging.getLogger(__name__)


def health_report() -> dict[str, dict[str, Any]]:
    """Database reachability, migration state and whatever other checks the domains registered
    (app.extensions["health_checks"]); each part says whether it is ok."""
    report: dict[str, dict[str, Any]] = {}
    try:
        state = migrate.state(db.session.connection())  # read at all: the database answers
        report["database"] = {"ok": True}
        report["migrations"] = {
            "ok": state.current == state.head,
            "current": state.current,
            "head": state.head,
        }
    except Exception as exc:  # the point of a health check is to report, not to fail
        db.session.rollback()  # nothing to keep; the request's commit must not trip over it
        log.warning("health check: database unreachable: %s", exc.__class__.__name__)
        report["database"] = {"ok": False, "error": exc.__class__.__name__}
        report["migrations"] = {"ok": False}
    for name, check in current_app.extensions.get("health_checks", {}).items():
        report[name] = check()
    report["process"] = {"ok": True, "pid": os.getpid()}  # which `serve` process answered (--processes)
    return report
