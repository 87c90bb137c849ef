"""Failed jobs' errors: normalised and counted per task at the final accounting, then summed over
any set of tasks (overall, a bunch, a chain, one task) with the affected tasks and, where one is
known, the action that usually helps (memory errors: retry with more memory)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, delete, func, select

from app.chains.models import ChainStep
from app.extensions import db
from app.panda.results import JobDescription
from app.stats.models import TaskError
from app.tasks.models import Task

# PanDA's error fields in the order they explain a failure best: the pilot saw it first-hand.
SOURCES = ("pilot", "exe", "ddm", "sup", "taskBuffer", "jobDispatcher", "brokerage")
MEMORY_CODES = {("pilot", 1212), ("pilot", 1235), ("pilot", 1223)}  # out of memory, exceeded max, bad_alloc
MEMORY_WORDS = re.compile(
    r"out of memory|bad_alloc|exceeded (?:the )?(?:maximum allowed )?memory|maxrss", re.I
)
DEFAULT_RAM_MB = 2000  # JEDI's ramCount when a task sets none

_PATTERNS = (
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I), "<url>"),
    (re.compile(r"(?:/[\w.+$-]+){2,}/?"), "<path>"),
    (re.compile(r"\b(?:[a-z0-9-]+\.)+[a-z]{2,}(?::\d+)?\b", re.I), "<host>"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def normalise(text: str) -> str:
    """One message per kind of error: URLs, paths, host names, hex and numbers become placeholders."""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text.strip()[:300]


def _code(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def job_error(job: JobDescription) -> tuple[str, int, str]:
    """The (source, code, own text) a failed job reports: the first PanDA field with a code or text."""
    for source in SOURCES:
        code, diag = _code(job.raw.get(f"{source}ErrorCode")), job.raw.get(f"{source}ErrorDiag")
        diag = "" if diag in (None, "NULL") else str(diag)
        if code or diag:
            return source, code, diag or f"{source} error {code}"
    return "unknown", 0, job.error_diag or "the job failed without an error code"


def record_errors(task: Task, jobs: Iterable[JobDescription]) -> None:
    """Replace the task's stored errors with those of its failed jobs (the accounting reads them all)."""
    counts: Counter[tuple[str, int, str]] = Counter()
    examples: dict[tuple[str, int, str], str] = {}
    for job in jobs:
        if job.status != "failed":
            continue
        source, code, diag = job_error(job)
        key = (source, code, normalise(diag))
        counts[key] += 1
        examples.setdefault(key, diag[:2000])
    db.session.execute(delete(TaskError).where(TaskError.task_id == task.id))
    db.session.add_all(
        TaskError(task_id=task.id, source=s, code=c, message=m, example=examples[(s, c, m)], jobs=n)
        for (s, c, m), n in counts.items()
    )


def is_memory(source: str, code: int, message: str) -> bool:
    return (source, code) in MEMORY_CODES or bool(MEMORY_WORDS.search(message))


def more_memory(task: Task) -> int:
    """Memory per core to retry a task that ran out of it with: half as much again, in 500 MB steps."""
    current = (task.spec or {}).get("memory_mb") or (task.params or {}).get("ramCount") or DEFAULT_RAM_MB
    return -(-int(current) * 3 // 2 // 500) * 500


Q = TypeVar("Q", bound=Select[*tuple[Any, ...]])

# --- the summary ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which tasks an error summary covers (none set: every task)."""

    task_id: int | None = None
    bunch_id: int | None = None
    chain_id: int | None = None

    def where(self, query: Q) -> Q:
        """`query` (over task_error joined with task) limited to the scope's tasks."""
        if self.task_id is not None:
            query = query.where(TaskError.task_id == self.task_id)
        if self.bunch_id is not None:
            query = query.where(Task.bunch_id == self.bunch_id)
        if self.chain_id is not None:
            steps = select(ChainStep.bunch_id).where(ChainStep.chain_id == self.chain_id)
            query = query.where(Task.bunch_id.in_(steps))
        return query


@dataclass(frozen=True)
class AffectedTask:
    id: int
    name: str
    jobs: int
    retry_memory_mb: int | None  # memory errors: the retry's prefilled memory


@dataclass(frozen=True)
class ErrorGroup:
    source: str
    code: int
    message: str
    example: str
    jobs: int
    tasks: int
    affected: list[AffectedTask]

    @property
    def memory(self) -> bool:
        return is_memory(self.source, self.code, self.message)


def error_groups(scope: Scope, limit: int = 50, affected_limit: int = 20) -> list[ErrorGroup]:
    """Failed jobs grouped by normalised error, most jobs first, each with its most affected tasks."""
    jobs = func.sum(TaskError.jobs).label("jobs")
    query = select(TaskError.source, TaskError.code, TaskError.message, jobs,
                   func.count(TaskError.task_id.distinct()), func.min(TaskError.example))  # fmt: skip
    rows = db.session.execute(
        scope.where(query.join(Task, Task.id == TaskError.task_id))
        .group_by(TaskError.source, TaskError.code, TaskError.message)
        .order_by(jobs.desc(), TaskError.source, TaskError.code, TaskError.message)
        .limit(limit)
    ).all()
    groups = []
    for source, code, message, n_jobs, n_tasks, example in rows:
        tasks = db.session.execute(
            scope.where(select(Task, TaskError.jobs).join(Task, Task.id == TaskError.task_id))
            .where(TaskError.source == source, TaskError.code == code, TaskError.message == message)
            .order_by(TaskError.jobs.desc(), Task.id)
            .limit(affected_limit)
        ).all()
        memory = is_memory(source, code, message)
        affected = [AffectedTask(t.id, t.name, n, more_memory(t) if memory else None) for t, n in tasks]
        groups.append(ErrorGroup(source, code, message, example, int(n_jobs), n_tasks, affected))
    return groups
