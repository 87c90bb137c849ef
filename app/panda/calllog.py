"""The PanDA interaction log's writer: stores the client's CallRecords in `panda_call`.

The recorder writes `panda_call` rows from a small writer thread with its own sessions, because:
- the log must survive a rollback of the caller's transaction (a failed launch must still show
  the calls it made);
- on SQLite a caller that has flushed holds the database write lock while it waits for PanDA, so
  a synchronous write from another connection in the same thread would wait for itself;
- it must work from the scheduler's threads, outside any Flask app context.
`flush_call_log()` waits until everything recorded so far is stored (tests, shutdown).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.extensions import db
from app.panda.client import CallRecord
from app.panda.models import OUTCOMES, PandaCall

log = logging.getLogger(__name__)


class CallLogWriter:
    """Stores CallRecords in `panda_call` from one daemon thread, in short own transactions."""

    _BATCH = 200

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.Queue[CallRecord | None] = queue.Queue()
        self._pending = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, record: CallRecord) -> None:
        with self._cond:
            self._pending += 1
        self._ensure_thread()
        self._queue.put(record)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="panda-call-log", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Let the writer thread end after storing what it already has."""
        self._queue.put(None)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record handed over so far is stored (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while len(batch) < self._BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in batch if r is not None]
            try:
                self._store(records)
            finally:
                with self._cond:
                    self._pending -= len(records)
                    self._cond.notify_all()
            if any(r is None for r in batch):
                return

    def _store(self, records: list[CallRecord]) -> None:
        if not records:
            return
        deadline = time.monotonic() + 60
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
        if writer is None or writer.engine is not engine:
            if writer is not None:
                writer.stop()  # an engine that was disposed and whose id got reused
            writer = CallLogWriter(engine)
            _writers[id(engine)] = writer
        return writer


def flush_call_log(timeout: float = 10.0) -> bool:
    """Wait until all recorded calls are stored; True when nothing is left pending."""
    with _writers_lock:
        writers = list(_writers.values())
    return all(w.flush(timeout) for w in writers)


atexit.register(flush_call_log, 5.0)


def stop_call_log(timeout: float = 10.0) -> None:
    """`serve`'s last stop step: store every recorded call before the process ends (the writer
    threads are daemons, so rows still queued at exit would be lost)."""
    if not flush_call_log(timeout):
        log.error(
            "some PanDA calls were not stored in the interaction log within %.0f s of shutdown", timeout
        )
