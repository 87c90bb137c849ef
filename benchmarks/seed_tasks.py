"""Fast seeding of many tasks as the sync leaves them (statuses, counters, priorities, times, final
accounting), by bulk inserts into the real tables: used by benchmarks/monitoring.py and by the task
tables' tests (tests/monitoring). Rows follow the models' rules: unique names and datasets, one
bunch per up to 100 tasks, some bunches chained, SIM and RECO steps, a few users.

Rows go through the database driver (SQLite: executemany of tuples; PostgreSQL: COPY), not through
SQLAlchemy's per-value processing. A large seed (BULK_FROM tasks or more) drops the task table's
secondary indexes and search structures first and builds them once at the end, from what the
database itself says they are (sqlite_master, pg_indexes), and sets PostgreSQL's id sequences after.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select

from app.auth.models import User
from app.chains.models import Chain, ChainStep
from app.tasks.models import Task, TaskBunch

STATUS_WEIGHTS = {  # a production history: mostly over, some running, a few waiting or failed
    "done": 50, "finished": 8, "failed": 5, "broken": 1, "aborted": 2, "running": 15, "scouting": 3,
    "ready": 2, "pending": 2, "paused": 1, "exhausted": 1, "registered": 2, None: 8,
}  # fmt: skip
FINAL = {"done", "finished", "failed", "broken", "aborted"}
CLOUDS = ("JINR", "PNPI", "SAMARA", None)
START = datetime(2025, 3, 1, tzinfo=UTC)
# Every row of one insert names the same columns.
_OPTIONAL = (
    "panda_task_id", "cloud", "jobs_total", "priority_default", "priority_current", "events_requested", "submitted_at",
    "panda_checked_at", "parent_id", "jobs_done", "jobs_failed", "started_at", "ended_at", "accounted_at",
    "accounted_jobs", "events_processed", "walltime_s", "output_bytes", "log_bytes",
)  # fmt: skip


BULK_FROM = 50_000  # tasks: from this many, indexes are built once after the rows


def seed(
    conn: Connection, count: int, *, seed_value: int = 1, users: int = 5, batch: int = 50_000, bulk: bool | None = None
) -> list[int]:
    """Insert `count` tasks (and their bunches, users and chains) after what the tables hold; returns the
    user ids. Deterministic for a seed. `bulk` (default: from BULK_FROM tasks) builds the task table's
    indexes once after the rows instead of row by row."""
    with _indexes_after(conn, count >= BULK_FROM if bulk is None else bulk):
        user_ids = _seed(conn, count, seed_value, users, batch)
    _set_sequences(conn)
    return user_ids


def _seed(conn: Connection, count: int, seed_value: int, users: int, batch: int) -> list[int]:
    rng = random.Random(seed_value)
    user_ids = _users(conn, users)
    first_task = (conn.scalar(select(func.max(Task.id))) or 0) + 1
    first_bunch = (conn.scalar(select(func.max(TaskBunch.id))) or 0) + 1
    first_chain = (conn.scalar(select(func.max(Chain.id))) or 0) + 1
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    bunches: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    chains: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    task_id, bunch_id, chain_id, done = first_task, first_bunch, first_chain, 0
    while done < count:
        size = min(count - done, rng.choice((1, 5, 20, 100)))
        step = "RECO" if bunch_id % 3 == 0 else "SIM"
        production = f"PROD{2025 + bunch_id // 50_000}-{bunch_id % 1000:03d}"
        base = f"{production}.{step}.b{bunch_id}"
        creator = rng.choice(user_ids)
        request = rng.choice((None, 1, 2, 3, 7))
        created = START + timedelta(minutes=bunch_id)
        bunches.append({
            "id": bunch_id, "idempotency_key": f"seed-{bunch_id}", "base_name": base, "step": step, "size": size,
            "definition": {"request_id": request}, "comment": "", "created_by_id": creator, "created_at": created,
        })  # fmt: skip
        if bunch_id % 7 == 0:
            chain, chain_id = chain_id, chain_id + 1
            chains.append({"id": chain, "idempotency_key": f"seed-chain-{bunch_id}", "name": f"chain-{bunch_id}",
                           "processing_type": "simul", "definition": {}, "wait_for_parent_done": False,
                           "comment": "", "created_by_id": creator, "created_at": created})  # fmt: skip
            steps.append({"chain_id": chain, "position": 1, "step": step, "bunch_id": bunch_id})
        for index in range(1, size + 1):
            tasks.append(_task(rng, task_id, bunch_id, index, base, step, production, creator, request, created,
                               rng.choices(statuses, weights)[0]))  # fmt: skip
            task_id += 1
        done += size
        bunch_id += 1
        if len(tasks) >= batch:
            _flush(conn, bunches, chains, steps, tasks)
    _flush(conn, bunches, chains, steps, tasks)
    return user_ids


def _flush(conn: Connection, *lists: list[dict[str, Any]]) -> None:
    for table, rows in zip((TaskBunch, Chain, ChainStep, Task), lists, strict=True):
        if rows:
            _write(conn, table.__tablename__, rows)
            rows.clear()


def _write(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Rows (dicts with the same keys) through the driver: datetimes as naive UTC (as app.db.UTCDateTime
    stores them), dicts as JSON text."""
    names = list(rows[0])
    sqlite = conn.dialect.name == "sqlite"

    def moment(value: datetime | None) -> Any:
        if value is None:
            return None
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else naive

    def document(value: Any) -> Any:
        return None if value is None else json.dumps(value)

    def flag(value: Any) -> Any:
        return int(value) if sqlite and isinstance(value, bool) else value

    # Converted by the values of the first row that has one (every row of a table has the same kinds).
    kinds: dict[str, Any] = {}
    for row in rows:
        for name in names:
            if name not in kinds and row[name] is not None:
                value = row[name]
                kinds[name] = (
                    moment if isinstance(value, datetime) else document if isinstance(value, dict | list)
                    else flag if isinstance(value, bool) else None
                )  # fmt: skip
        if len(kinds) == len(names):
            break
    plain = [(i, kinds[name]) for i, name in enumerate(names) if kinds.get(name) is not None]
    tuples = []
    for row in rows:
        values = list(row.values()) if list(row) == names else [row[name] for name in names]
        for i, convert in plain:
            values[i] = convert(values[i])
        tuples.append(tuple(values))
    quoted = ", ".join(f'"{name}"' for name in names)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if sqlite:
            cursor.executemany(f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(names))})', tuples)
        else:
            with cursor.copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
                for values in tuples:
                    copy.write_row(values)
    finally:
        cursor.close()


@contextmanager
def _indexes_after(conn: Connection, bulk: bool) -> Iterator[None]:
    """Without `bulk`, nothing. With it: drop the task table's secondary indexes (ix_…) and search
    structures (SQLite's FTS5 triggers, PostgreSQL's trigram index), then create them again after the
    block, and fill the FTS5 table of names from the tasks in one pass."""
    if not bulk:
        yield
        return
    if conn.dialect.name == "sqlite":
        found = conn.exec_driver_sql(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'task' AND sql IS NOT NULL"
            " AND ((type = 'index' AND name LIKE 'ix_%') OR (type = 'trigger' AND name LIKE 'task_name_fts_%'))"
        ).all()
        for kind, name, _ in found:
            conn.exec_driver_sql(f'DROP {kind.upper()} "{name}"')
        yield
        for _, _, sql in found:
            conn.exec_driver_sql(sql)
        if any(kind == "trigger" for kind, _, _ in found):
            conn.exec_driver_sql("INSERT INTO task_name_fts(task_name_fts) VALUES ('rebuild')")
        return
    found = conn.exec_driver_sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'task' AND indexname LIKE 'ix\\_%%'"
    ).all()
    for name, _ in found:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    yield
    conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for _, sql in found:
        conn.exec_driver_sql(sql)


def _set_sequences(conn: Connection) -> None:
    """PostgreSQL: the id sequences past the ids given explicitly (the app's next rows get new ids)."""
    if conn.dialect.name != "postgresql":
        return
    for table in ("task", "task_bunch", "chain", "chain_step"):
        conn.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM \"{table}\"))"
            f" WHERE EXISTS (SELECT 1 FROM \"{table}\")"
        )


def _users(conn: Connection, count: int) -> list[int]:
    existing = list(conn.scalars(select(User.id).where(User.username.like("seed-user-%")).order_by(User.id)))
    for i in range(len(existing), count):
        conn.execute(insert(User.__table__), {"username": f"seed-user-{i}", "sub": f"seed-user-{i}", "role": "manager",
                                              "display_name": "", "email": "", "active": True, "iss": "local"})  # fmt: skip
    return list(conn.scalars(select(User.id).where(User.username.like("seed-user-%")).order_by(User.id)))[:count]


def _task(rng: random.Random, task_id: int, bunch_id: int, index: int, base: str, step: str, production: str,
          creator: int, request: int | None, created: datetime, status: str | None) -> dict[str, Any]:  # fmt: skip
    row: dict[str, Any] = dict.fromkeys(_OPTIONAL)
    row |= {
        "id": task_id, "bunch_id": bunch_id, "bunch_index": index, "name": f"{base}.{index}",
        "output_dataset": f"MC2025_S1.tag.{base}.{index}", "step": step, "production": production,
        "spec": {"request_id": request}, "params": {}, "created_at": created, "created_by_id": creator,
        "request_id": request, "panda_status": status,
    }  # fmt: skip
    if status is None:
        return row
    jobs = rng.choice((10, 50, 100, 200))
    events_per_job = rng.choice((500, 1000, 2000))
    submitted = created + timedelta(minutes=rng.randint(1, 30))
    row.update(
        panda_task_id=task_id + 1000, cloud=rng.choice(CLOUDS), jobs_total=jobs,
        priority_default=rng.choice((900, 1000)), priority_current=rng.choice((880, 900, 950, 1000)),
        events_requested=jobs * events_per_job, submitted_at=submitted, panda_checked_at=submitted,
        parent_id=task_id - 1 if step == "RECO" and index > 1 else None,
    )  # fmt: skip
    if status in ("registered", "ready", "pending"):
        row["jobs_done"] = 0
        return row
    row["started_at"] = submitted + timedelta(minutes=rng.randint(1, 120))
    finished = jobs if status in ("done", "finished") else rng.randint(0, jobs)
    row.update(jobs_done=finished, jobs_failed=jobs - finished if status in FINAL else rng.randint(0, 3))
    if status in FINAL:
        row["ended_at"] = row["started_at"] + timedelta(hours=rng.randint(1, 96))
        row.update(
            accounted_at=row["ended_at"], accounted_jobs=jobs, events_processed=finished * events_per_job,
            walltime_s=finished * rng.randint(600, 7200), output_bytes=finished * rng.randint(10**8, 2 * 10**9),
            log_bytes=finished * rng.randint(10**5, 10**7),
        )  # fmt: skip
    return row
