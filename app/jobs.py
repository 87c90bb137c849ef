"""The background jobs `serve` runs (app/scheduler.py): one line each, the one place to add a job.

A job is a function without arguments, called in an app context; it commits its own work (per row),
loops only over rows the database says are due, and checks `app.scheduler.stopping()` between rows.
An interval of None switches the job off with those settings.
"""

from __future__ import annotations

from flask import current_app

from app.actions.bulk import BULK_JOB
from app.actions.jobs import run_bulk_actions
from app.auth.jobs import purge_sessions
from app.launches.dispatcher import DISPATCH_JOB, RECONCILE_JOB, dispatch_pending, reconcile_unsettled
from app.launches.jobs import flag_unusable_tokens
from app.panda.calllog import CALL_LOG_JOB, store_call_log
from app.panda.services import HEALTH_MAX_AGE_S, check_panda_health
from app.prodrequests.jobs import rescan_catalog
from app.scheduler import Job
from app.stats.jobs import run_alerts
from app.sync.jobs import (
    HINTS_JOB,
    QUEUE_JOB,
    account_final_tasks,
    keep_queue_connected,
    refresh_hints,
    sync_cycle,
)
from app.tokens.jobs import refresh_tokens_ahead


def _account_final_tasks() -> None:
    account_final_tasks(current_app.config["SETTINGS"].sync.accounting_per_cycle)


def _check_panda_health() -> None:
    check_panda_health(current_app._get_current_object())  # type: ignore[attr-defined]


JOBS: tuple[Job, ...] = (
    Job(DISPATCH_JOB, dispatch_pending, lambda s: s.scheduler.dispatch_interval_s),
    Job(RECONCILE_JOB, reconcile_unsettled, lambda s: s.scheduler.reconcile_interval_s),
    Job("sync", sync_cycle, lambda s: s.sync.interval_s if s.sync.enabled else None),
    Job("final-accounting", _account_final_tasks, lambda s: s.scheduler.accounting_interval_s),
    Job(QUEUE_JOB, keep_queue_connected, lambda s: 1.0 if s.queue.enabled else None),  # it backs off itself
    Job(HINTS_JOB, refresh_hints, lambda s: s.sync.interval_s if s.queue.enabled else None),
    Job(BULK_JOB, run_bulk_actions, lambda s: s.scheduler.bulk_interval_s),
    Job("token-refresh", refresh_tokens_ahead, lambda s: s.scheduler.token_refresh_interval_s),
    Job("session-purge", purge_sessions, lambda s: s.scheduler.session_purge_interval_s),
    Job("catalog-rescan", rescan_catalog, lambda s: s.requests.rescan_interval_s),
    Job("token-flags", flag_unusable_tokens, lambda s: s.scheduler.token_refresh_interval_s),
    Job("alerts", run_alerts, lambda s: s.stats.alerts_interval_s),
    Job(CALL_LOG_JOB, store_call_log, lambda s: 2.0),  # runs of the other jobs store theirs at their end
    # Twice a minute, so that /healthz always finds a fresh answer and never probes PanDA itself.
    Job("panda-health", _check_panda_health, lambda s: HEALTH_MAX_AGE_S / 2),
)
