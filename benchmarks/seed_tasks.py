"""Fast seeding of many tasks as the sync leaves them (statuses, counters, priorities, times, final
accounting), by bulk inserts into the real tables: used by benchmarks/monitoring.py and by the task
tables' tests (tests/monitoring). Rows follow the models' rules: unique names and datasets, one
bunch per up to 100 tasks, some bunches chained, SIM and RECO steps, a few users.
"""

from __future__ import annotations

import random
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


def seed(conn: Connection, count: int, *, seed_value: int = 1, users: int = 5, batch: int = 20_000) -> list[int]:
    """Insert `count` tasks (and their bunches, users and chains) after what the tables hold; returns the
    user ids. Deterministic for a seed."""
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
            conn.execute(insert(table.__table__), rows)  # type: ignore[attr-defined]
            rows.clear()


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
