"""The PanDA interaction log's writer: stores the client's CallRecords in `panda_call`.

A recorded call waits in memory and is stored in a short transaction of its own, never in the
caller's, because:
- the log must survive a rollback of the caller's transaction (a failed launch must still show
  the calls it made);
- on SQLite a caller that has flushed holds the database write lock while it waits for PanDA, so
  writing from another connection at once, in the same thread, would wait for itself.
So the records are stored once the caller's work is over: at the end of each request and of each
background job's run (`init_call_log`), by the `panda-call-log` job while a long run goes on, and at
exit. `flush_call_log()` stores everything recorded so far, in the calling thread.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.extensions import db
from app.panda.client import CallRecord
from app.panda.models import OUTCOMES, PandaCall

log = logging.getLogger(__name__)

CALL_LOG_JOB = "panda-call-log"  # its name in app.jobs.JOBS


class CallLogWriter:
    """Keeps CallRecords until `flush` stores them in `panda_call`, in recording order."""

    _BATCH = 200

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._records: list[CallRecord] = []
        self._lock = threading.Lock()
        self._storing = threading.Lock()  # one flush at a time keeps the rows in recording order

    def __call__(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)

    def flush(self, timeout: float = 10.0, *, wait: bool = True) -> bool:
        """Store every record handed over so far (records the database refuses for `timeout`
        seconds are dropped, logged); False when another flush kept it waiting past `timeout`, or
        at all without `wait` (that flush goes on until nothing is left)."""
        deadline = time.monotonic() + timeout
        if not self._storing.acquire(timeout=timeout if wait else 0):
            return False
        try:
            while True:
                with self._lock:
                    batch, self._records = self._records[: self._BATCH], self._records[self._BATCH :]
                if not batch:
                    return True
                self._store(batch, deadline)
        finally:
            self._storing.release()

    def _store(self, records: list[CallRecord], deadline: float) -> None:
        delay = 0.05
        while True:
            try:
                with Session(self.engine) as session, session.begin():
                    session.add_all([_row(r) for r in records])
                return
            except OperationalError as exc:
                # SQLite: another connection holds the write lock longer than busy_timeout; wait and retry.
                if time.monotonic() > deadline:
                    log.error("dropped %d PanDA call log rows: %s", len(records), exc.__class__.__name__)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except Exception:
                log.exception("dropped %d PanDA call log rows", len(records))
                return


def _row(record: CallRecord) -> PandaCall:
    return PandaCall(
        at=record.started_at,
        user_id=record.user_id,
        server=record.server[:300],
        transport=record.transport[:16],
        method=record.method[:64],
        task_id=record.task_id,
        params=_jsonable(record.params),
        http_status=record.http_status,
        return_code=record.return_code,
        message=record.message[:4000],
        duration_ms=record.duration_ms,
        outcome=record.outcome if record.outcome in OUTCOMES else "error",
        attempt=record.attempt,
        comment=record.comment[:4000],
    )


def _jsonable(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return "…"
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_writers: dict[int, CallLogWriter] = {}
_writers_lock = threading.Lock()


def db_recorder(engine: Engine | None = None) -> CallLogWriter:
    """The recorder that stores calls in `panda_call` (one writer per engine, shared by clients)."""
    if engine is None:
        engine = db.engine
    with _writers_lock:
        writer = _writers.get(id(engine))
        if writer is None or writer.engine is not engine:  # new, or a disposed engine's id reused
            writer = CallLogWriter(engine)
            _writers[id(engine)] = writer
        return writer


def flush_call_log(timeout: float = 10.0, *, wait: bool = True) -> bool:
    """Store all recorded calls now, in this thread; True when nothing is left pending."""
    with _writers_lock:
        writers = list(_writers.values())
    return all([w.flush(timeout, wait=wait) for w in writers])


def store_call_log() -> None:
    """The `panda-call-log` job: store what long runs of other jobs recorded so far."""
    flush_call_log()


def init_call_log(app: Flask) -> None:
    """Store the calls a request or a job's run made once it is over (its transaction has ended)."""

    def store(_: BaseException | None) -> None:
        flush_call_log(wait=False)  # a flush under way in another thread stores these too

    app.teardown_request(store)
    app.teardown_appcontext(store)


atexit.register(flush_call_log, 5.0)


def stop_call_log(timeout: float = 10.0) -> None:
    """`serve`'s last stop step: store every recorded call before the process ends."""
    if not flush_call_log(timeout):
        log.error(
            "some PanDA calls were not stored in the interaction log within %.0f s of shutdown", timeout
        )
